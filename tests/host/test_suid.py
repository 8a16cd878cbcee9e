"""A setuid-root program run by an unprivileged user, under fs.suid_dumpable.

0: the process is not dumpable and the kernel does not even start the
   handler: no dump, no log line.
2: the kernel starts the handler with dump mode (%d) 2; every artefact is
   root's and readable by nobody else, and the log says why.
"""

import os
import shutil
import stat
import subprocess

import pytest

from minicoredumper.commands import mcd
from coretools import backtrace, extract_core

SUID_DUMPABLE = "/proc/sys/fs/suid_dumpable"


@pytest.fixture
def suid_crash3(programs, tmp_path):
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
    with open(SUID_DUMPABLE) as f:
        saved = f.read().strip()

    def set_(value):
        with open(SUID_DUMPABLE, "w") as f:
            f.write(str(value))
    try:
        yield set_
    finally:
        set_(saved)


def _as_nobody(exe):
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", exe]


def _kmsg_about(pid):
    out = subprocess.run(["dmesg"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "pid %d: " % pid in line]


def test_suid_dumpable_0_no_dump(crasher, suid_crash3, suid_dumpable):
    suid_dumpable(0)
    base = crasher.configure({})
    rc, _, pid = crasher.run(_as_nobody(suid_crash3))
    assert rc == -11
    # The kernel did not start the handler: not even base_dir was created.
    assert not os.path.exists(base)


def test_suid_dumpable_2_root_only(crasher, suid_crash3, suid_dumpable, tmp_path):
    suid_dumpable(2)
    base = crasher.configure({"write_proc_info": True, "write_debug_log": True})
    rc, _, pid = crasher.run(_as_nobody(suid_crash3))
    assert rc == -11
    dumps = [x for x in os.listdir(base) if not x.startswith(".")]
    assert len(dumps) == 1
    d = os.path.join(base, dumps[0])
    n = 0
    for top, dirs, files in os.walk(d):
        for name in [""] + dirs + files:
            st = os.lstat(os.path.join(top, name))
            assert st.st_uid == 0 and st.st_gid == 0, (top, name)
            assert not stat.S_IMODE(st.st_mode) & 0o077, (top, name, oct(st.st_mode))
            n += 1
    assert n > 5
    with open(os.path.join(d, "debug.txt")) as f:
        text = f.read()
    if mcd.kernel_version() >= (3, 7):
        assert "dump_mode 2" in text
        if not os.path.exists("/dev/log"):
            assert any("root-only artefacts" in line for line in _kmsg_about(pid))
    assert backtrace(suid_crash3, extract_core(d, str(tmp_path))) == [
        "level_c", "level_b", "level_a", "main"]
