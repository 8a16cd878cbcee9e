"""A setuid-root program run by an unprivileged user, under fs.suid_dumpable.

0: the process is not dumpable and the kernel does not even start the
   handler: no dump, no log line.
2: the kernel starts the handler with dump mode (%d) 2; every artefact is
   root's and readable by nobody else, and the log says why.
"""

import os
import stat

from minicoredumper import corepattern
from lab.gdb import assert_frames, backtrace, extract_core
from lab.logs import handler_log
from lab.programs import FRAMES

# The fixtures suid_crash3 and suid_dumpable are in conftest.py (test_socket's too).


def _as_nobody(exe):
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", exe]


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
    d = crasher.dump_of(base, pid)
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
    if corepattern.kernel_version() >= (3, 7):
        assert "dump_mode 2" in text
        log = handler_log(pid)
        assert any("root-only artefacts" in line for line in log), log
    assert_frames(FRAMES["crash3"], backtrace(suid_crash3, extract_core(d, str(tmp_path))))
