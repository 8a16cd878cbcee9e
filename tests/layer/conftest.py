"""tests/layer/conftest.py: the session fixtures of the layer tests: BitBake harness
runs (bbharness.py) for a systemd distro with ptest and a sysvinit distro without it.
Helpers are in layertest.py."""

import pytest

from layertest import run_harness  # tests/layer is on pytest.ini's pythonpath


@pytest.fixture(scope="session")
def bb_systemd(tmp_path_factory):
    """All recipes parsed for a systemd distro with package tests (ptest, as in wrynose's
    defaults), their tasks run under bash."""
    return run_harness(tmp_path_factory.mktemp("bb-systemd"), "systemd usrmerge ptest", "bash")


@pytest.fixture(scope="session")
def bb_sysvinit(tmp_path_factory):
    """All recipes parsed for a sysvinit distro without ptest, their tasks run under
    /bin/sh (dash)."""
    return run_harness(tmp_path_factory.mktemp("bb-sysvinit"), "sysvinit", "sh")
