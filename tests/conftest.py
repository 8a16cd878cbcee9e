"""Shared fixtures: the runtime on sys.path, built crash programs, and a real
kernel core_pattern pointed at the handler (restored afterwards, always)."""

import os
import shutil
import sys
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "runtime"))
sys.path.insert(0, os.path.join(ROOT, "tests"))

from crashlab import Crasher, build_programs  # noqa: E402
import regdlab  # noqa: E402


@pytest.fixture(scope="session")
def programs(tmp_path_factory):
    """The crash test programs, built once: name -> path."""
    return build_programs(str(tmp_path_factory.mktemp("programs")))


@pytest.fixture(scope="session")
def crasher(tmp_path_factory):
    """Installs the handler in core_pattern for the host tests; restores on exit."""
    if os.geteuid() != 0:
        pytest.skip("real-kernel tests need root (core_pattern)")
    workdir = tempfile.mkdtemp(prefix="mcdt.")  # short: core_pattern holds 127 chars
    c = Crasher(workdir)
    try:
        c.install()
        yield c
    finally:
        c.restore()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def regd():
    """regdlab.Lab: registry daemons (start) and registered apps (app) of one test in
    a private network namespace; all stopped after it."""
    if os.geteuid() != 0:
        pytest.skip("registry tests need root (network namespace, ptrace)")
    lab = regdlab.Lab()
    try:
        yield lab
    finally:
        lab.close()
