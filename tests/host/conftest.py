"""Fixtures of more than one host test file: a setuid-root crash3 and fs.suid_dumpable
(test_suid, test_socket)."""

import os
import shutil

import pytest

SUID_DUMPABLE = "/proc/sys/fs/suid_dumpable"


@pytest.fixture
def suid_crash3(programs, tmp_path):
    """A root-owned setuid copy of crash3 that an unprivileged user can run."""
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv missing")
    d = tmp_path / "suid"
    d.mkdir()
    os.chmod(str(tmp_path), 0o755)
    os.chmod(str(d), 0o755)
    exe = str(d / "crash3")
    shutil.copy(programs["crash3"], exe)
    os.chown(exe, 0, 0)
    os.chmod(exe, 0o4755)
    return exe


@pytest.fixture
def suid_dumpable():
    """set(value) writes fs.suid_dumpable; the old value is back after the test."""
    with open(SUID_DUMPABLE) as f:
        saved = f.read().strip()

    def set_(value):
        with open(SUID_DUMPABLE, "w") as f:
            f.write(str(value))
    try:
        yield set_
    finally:
        set_(saved)
