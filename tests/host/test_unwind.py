"""Every thread's frames in the summary (read_unwind, after the release) against
gdb's "thread apply all bt" on the kernel's own full core of the same crash (the
recept's dump_fat_core: the kernel's stream as it came), thread by thread: our
test programs (frame pointers or not, threads, static, i386) and programs nobody
here wrote (Debian's sleep, python3, xz).  gdb reads no separate debug files, as
on a device: both name functions from the binaries' own symbol tables."""

import json
import os
import resource
import signal
import subprocess
import time

import pytest

from lab.unwind import assert_same_as_gdb


def _generic(**extra):
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with open(os.path.join(root, "conf", "generic.recept.json")) as f:
        recept = json.load(f)
    recept.update(live_dumper=False, dump_fat_core=True, **extra)
    return recept


def _core_limit():
    resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY,) * 2)


def crash_killed(crasher, argv, sig, after=0.5, recept=None):
    """Start argv, send it sig after `after` seconds; its dump directory."""
    base = crasher.configure(recept or _generic())
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, preexec_fn=_core_limit)
    time.sleep(after)
    p.send_signal(sig)
    p.wait(timeout=30)
    crasher.wait_idle()
    return crasher.dump_of(base, p.pid)


@pytest.mark.parametrize("name", ["crash3", "crash3_o2", "threads8", "crash3_static",
                                  "crash3_i386"])
def test_our_programs_every_thread_as_gdb(crasher, programs, name):
    if name not in programs:
        pytest.skip("no compiler for %s" % name)
    d = crasher.crash([programs[name]], _generic())
    s = assert_same_as_gdb(d, programs[name])
    hows = [f["how"] for f in s["frames"]]
    assert hows[0] == "pc" and set(hows[1:]) == {"cfi"}, hows  # all by CFI, no guess


def test_debian_sleep_killed_with_sigsegv(crasher):
    d = crash_killed(crasher, ["/usr/bin/sleep", "100"], signal.SIGSEGV)
    s = assert_same_as_gdb(d, "/usr/bin/sleep")
    assert len(s["frames"]) >= 3 and "scan" not in [f["how"] for f in s["frames"]]


def test_python3_abort(crasher):
    d = crasher.crash(["/usr/bin/python3", "-c", "import os; os.abort()"], _generic())
    s = assert_same_as_gdb(d, "/usr/bin/python3")
    assert len(s["frames"]) > 16  # more than the old cut


def test_xz_with_four_threads_killed_with_sigabrt(crasher, tmp_path):
    src = tmp_path / "data"
    with open(src, "wb") as f:
        f.write(os.urandom(64 << 20))
    d = crash_killed(crasher, ["xz", "-T4", "-1", "-k", "-c", str(src)], signal.SIGABRT,
                     after=1.0)
    s = assert_same_as_gdb(d, "/usr/bin/xz")
    assert len(s["thread_frames"]) >= 3


@pytest.mark.parametrize("argv", [["altstack"], ["altstack", "overflow"], ["altstack", "onstack"],
                                  ["overflow"], ["overflow", "thread"]])
def test_signal_frames_and_stack_overflows_as_gdb(crasher, programs, argv):
    """A SIGSEGV handler that aborts, on a sigaltstack (after a fault or a stack
    overflow) or on the same stack: the frames go on through <signal handler
    called> into level3, level2, level1, main; a stack overflow in the main
    thread or a thread: every recurse() frame, then main or the thread's start
    (programs of issue 12's stacks work)."""
    if argv[0] not in programs:
        pytest.skip("%s is not built here (tests/programs/%s.c)" % (argv[0], argv[0]))
    exe = programs[argv[0]]
    d = crasher.crash([exe] + argv[1:], _generic())
    s = assert_same_as_gdb(d, exe)
    names = [f["symbol"] for f in s["frames"]]
    if argv[0] == "altstack":
        assert "<signal handler called>" in names
        assert [f["how"] for f in s["frames"]][names.index("<signal handler called>") + 1] \
            == "signal"


def test_vdso_frames_named_as_gdb(crasher, programs):
    """Threads stopped in the vDSO (clock_gettime answering a CPU-time clock
    by a system call of its own; spinning on CLOCK_MONOTONIC, gettimeofday):
    their first frame is the vDSO's, named from its .dynsym in the image
    copied from memory as gdb names it, and the walk goes on through the C
    library into the thread's function."""
    d = crasher.crash([programs["vdsospin"]], _generic())
    s = assert_same_as_gdb(d, programs["vdsospin"])
    vdso = [n for n, m in enumerate(s["modules"]) if m["path"] == "[vdso]"]
    assert vdso, s["modules"]
    firsts = [t["frames"][0] for t in s["thread_frames"]]
    in_vdso = [f for f in firsts if f["module"] in vdso]
    assert len(in_vdso) >= 2 and all(f["symbol"] for f in in_vdso), firsts
    names = [(f["symbol"] or "??").split("+")[0] for t in s["thread_frames"]
             for f in t["frames"]]
    assert "cputime" in names and "clock_gettime" in names, names
