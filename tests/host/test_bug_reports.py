"""Crashes taken from public bug reports against crash handlers, real kernel, real gdb.

Each test names its report (URL) and what happened there, and crashes a program
of ours (tests/programs/oddcrash.c, throwing.cpp) or a Debian binary driven
into the same state, under the real kernel with our handler in core_pattern
(the generic recept, with the kernel's own core kept beside ours: dump_fat_core).
What a user expects of each, asserted:

- the crashed process reaped, and its dump published, within the deadline;
- gdb's backtrace from our core equal in function names to gdb's on the
  kernel's own core of the same crash, and every thread's frames in the
  summary equal to gdb's there (lab.unwind.assert_same_as_gdb);
- the summary's exe, comm and signal those of the process that crashed;
- nothing written outside base_dir (the crasher's work directory and the
  crashed process's working directory as they were).

A watch rule on the program's name keeps other processes out of base_dir
(unshare and strace re-raise the signal their child died of; other sessions'
crashes may come while our core_pattern is installed).
"""

import ctypes
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import time

import pytest

from lab.gdb import backtrace, extract_core
from lab.programs import FRAMES
from lab.unwind import assert_same_as_gdb
from minicoredumper.config import DEFAULT_DEADLINE
from test_process_files import mode  # noqa: F401 (a fixture: "pipe", "socket")
from test_socket import published, server  # noqa: F401 (server: a fixture)
from test_summary_fields import build_id
from test_unwind import _core_limit, _generic

LEVELS = FRAMES["crash3"]  # oddcrash crashes through crash3's three calls
SIGNAL_FRAME = "<signal handler called>"
# C++ names as our summary gives them (from .symtab, not demangled)
NO_DEMANGLING = ("set print demangle off", "set print asm-demangle off")
SYS_TGKILL = 234  # x86-64
SI_TKILL = -6  # si_code of a signal sent with tgkill
SLEEPERS = ("import threading, time\n"
            "for _ in range(3):\n"
            "    threading.Thread(target=time.sleep, args=(60,)).start()\n"
            "time.sleep(60)\n")


def tree(path):
    """{relative path: (size, mtime_ns)} of everything under path."""
    out = {}
    for root, dirs, files in os.walk(path):
        for n in dirs + files:
            full = os.path.join(root, n)
            st = os.lstat(full)
            out[os.path.relpath(full, path)] = (st.st_size, st.st_mtime_ns)
    return out


class Crash:
    """argv run until it crashes, under the generic recept with dump_fat_core,
    only crashes of an exe matching `exe` (a watch-rule glob) dumped: .rc,
    .reaped and .published (seconds from the start, or from the end of act,
    to reaped and to the dump published), .dir (the one dump), .pid (the
    crashed process's, from the dump's name), .summary (summary.json).  mode
    "socket": minicoredumper_sockd is on the coredump socket (the mode fixture),
    which publishes after the release.  act(Popen): what to do to the process
    once started (it is then timed from the end of act)."""

    def __init__(self, crasher, argv, tmp_path, exe, mode="pipe", act=None,
                 timeout=DEFAULT_DEADLINE + 20, **popen):
        __tracebackhide__ = True
        base = crasher.configure(_generic())
        recept = os.path.join(crasher.workdir, "recept%d.json" % crasher.n)
        crasher.configure(config={"base_dir": base, "watch": [{"exe": exe, "recept": recept}]})
        cwd = tmp_path / "cwd"
        cwd.mkdir(exist_ok=True)
        work, here = tree(crasher.workdir), tree(str(cwd))
        t0 = time.monotonic()
        p = subprocess.Popen(argv, cwd=str(cwd), stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             preexec_fn=_core_limit, **popen)
        try:
            if act is not None:
                act(p)
                t0 = time.monotonic()
            self.rc = p.wait(timeout=timeout)
        finally:
            if p.poll() is None:  # it did not crash: not left running
                p.kill()
                p.wait()
        self.reaped = time.monotonic() - t0
        if mode == "socket":
            published(base, timeout=DEFAULT_DEADLINE + 2)
        else:
            crasher.wait_idle()
        self.published = time.monotonic() - t0
        dumps = sorted(os.listdir(base)) if os.path.isdir(base) else []
        if len(dumps) != 1 or dumps[0].startswith("."):
            crasher.dump_of(base, p.pid)  # fails, with the handler's log
        self.dir = os.path.join(base, dumps[0])
        self.pid = int(dumps[0].rsplit(".", 1)[1])
        with open(os.path.join(self.dir, "summary.json")) as f:
            self.summary = json.load(f)
        rel = os.path.relpath(base, crasher.workdir)
        after = {k: v for k, v in tree(crasher.workdir).items()
                 if k != rel and not k.startswith(rel + os.sep)}
        assert after == work and tree(str(cwd)) == here, "written outside base_dir"

    def assert_published_in_time(self):
        """Reaped within the deadline (the hard deadline is a second later),
        published within a second after that."""
        __tracebackhide__ = True
        assert self.reaped <= DEFAULT_DEADLINE + 1 and \
            self.published <= DEFAULT_DEADLINE + 2, (self.reaped, self.published)

    def assert_identity(self, exe, comm, sig=signal.SIGSEGV):
        __tracebackhide__ = True
        s = self.summary
        assert (s["pid"], s["exe"], s["comm"], s["signal"]) == (self.pid, exe, comm, sig), \
            (s["pid"], s["exe"], s["comm"], s["signal"])

    def frames(self):
        """The crashing thread's function names in the summary, innermost first."""
        return [(f["symbol"] or "??").split("+")[0] for f in self.summary["frames"]]

    def assert_core_as_kernels(self, exe, tmp_path, early=()):
        """gdb's backtrace of the crashing thread from our core is the one
        from the kernel's core (function names); returns it."""
        __tracebackhide__ = True
        ours = backtrace(exe, extract_core(self.dir, str(tmp_path)), early=early)
        kernels = backtrace(exe, os.path.join(self.dir, "fatcore"), early=early)
        assert list(ours) == list(kernels) and len(ours) > 1, \
            "ours %s, the kernel's %s; gdb on ours:\n%s" % (
                list(ours), list(kernels), ours.gdb_text[-3000:])
        return ours


def crash_oddcrash(crasher, programs, tmp_path, *args, **kw):
    return Crash(crasher, [programs["oddcrash"]] + list(args), tmp_path, "*/oddcrash", **kw)


# --- the thread-group leader gone -------------------------------------------------

def test_leader_exited_with_pthread_exit(crasher, programs, tmp_path, mode):
    """https://github.com/open-telemetry/opentelemetry-ebpf-profiler/pull/376 :
    a process whose main thread called pthread_exit() lost its /proc view
    (maps, exe) while its other threads ran.  Here such a thread crashes: the
    zombie leader's /proc/PID/mem answers ESRCH, its maps are empty, its exe is
    gone; before the fix the handler said "not dumped: /proc/PID: No such
    process" and wrote nothing, in pipe mode and in socket mode."""
    exe = programs["oddcrash"]
    c = crash_oddcrash(crasher, programs, tmp_path, "leader", mode=mode)
    c.assert_published_in_time()
    c.assert_identity(exe, "oddcrash")
    assert c.summary["tid"] != c.pid and c.summary["exe_build_id"] == build_id(exe)
    assert c.frames()[:4] == LEVELS[:3] + ["crash_thread"]
    c.assert_core_as_kernels(exe, tmp_path)
    assert_same_as_gdb(c.dir, exe)


# --- signals the program handles, blocks or ignores -------------------------------

def test_fault_inside_the_programs_own_sigsegv_handler(crasher, programs, tmp_path):
    """https://github.com/getsentry/sentry-native/pull/1894 : a second fault
    while the first one's handler runs (SIGSEGV blocked in it) re-entered an
    in-process crash handler, which spun forever.  The kernel kills with the
    second fault; the dump shows the handler's frames, the signal frame, and
    the first fault's frames under it."""
    exe = programs["oddcrash"]
    c = crash_oddcrash(crasher, programs, tmp_path, "nested")
    c.assert_published_in_time()
    c.assert_identity(exe, "oddcrash")
    names = c.frames()
    assert names[:6] == LEVELS[:3] + ["faulting_handler", SIGNAL_FRAME, "level_c"], names
    c.assert_core_as_kernels(exe, tmp_path)
    assert_same_as_gdb(c.dir, exe)


@pytest.mark.parametrize("how", ["blocked", "ignored"])
def test_fault_with_sigsegv_blocked_or_ignored(crasher, programs, tmp_path, how):
    """https://github.com/tarantool/tarantool/issues/8083 : threads that
    blocked SIGSEGV got no crash report from the in-process handler; the
    kernel forces the default action on a fault it cannot deliver (blocked
    or SIG_IGN), and the process dies with a core."""
    exe = programs["oddcrash"]
    c = crash_oddcrash(crasher, programs, tmp_path, how)
    c.assert_published_in_time()
    c.assert_identity(exe, "oddcrash")
    assert c.frames()[:4] == LEVELS
    c.assert_core_as_kernels(exe, tmp_path)
    assert_same_as_gdb(c.dir, exe)


# --- nothing, or nothing usual, to unwind from ------------------------------------

def test_call_through_a_null_function_pointer(crasher, programs, tmp_path):
    """https://github.com/getsentry/sentry-cocoa/pull/7866 : a call through a
    NULL function pointer crashes with pc 0, and the crash handler's stack
    cursor gave no frame past it.  gdb goes on from the return address the
    call pushed (on top of the stack); before the fix our walk took the frame
    record at fp and skipped the calling function (call_null)."""
    exe = programs["oddcrash"]
    c = crash_oddcrash(crasher, programs, tmp_path, "nullcall")
    c.assert_published_in_time()
    c.assert_identity(exe, "oddcrash")
    assert c.frames()[:3] == ["??", "call_null", "main"], c.frames()
    assert c.summary["frames"][0]["pc"] == "0x0"
    c.assert_core_as_kernels(exe, tmp_path)
    assert_same_as_gdb(c.dir, exe)


def test_stack_pointer_zero(crasher, programs, tmp_path):
    """https://github.com/google/honggfuzz/pull/41 : crashes whose unwinder
    found zero frames (pc 0) were mishandled by the crash analysis.  With pc
    and sp both 0 there is nothing to unwind: the dump still comes, with the
    one frame gdb shows and the reason the walk ended."""
    exe = programs["oddcrash"]
    c = crash_oddcrash(crasher, programs, tmp_path, "sp0")
    c.assert_published_in_time()
    c.assert_identity(exe, "oddcrash")
    s = c.summary
    assert (s["registers"]["rip"], s["registers"]["rsp"]) == ("0x0", "0x0")
    kernels = backtrace(exe, os.path.join(c.dir, "fatcore"))
    assert c.frames() == list(kernels) == ["??"], (c.frames(), kernels.gdb_text)
    assert "SP 0x0" in s["frames_end"]


# --- names and arguments --------------------------------------------------------------

def test_comm_with_spaces(crasher, programs, tmp_path):
    """https://github.com/abrt/abrt/pull/1308 : a thread name with spaces
    (%e in core_pattern) reached abrt-hook-ccpp as several arguments and
    only its first word was used.  Our handler's arguments after %e (the
    options, the config path) still arrive: the dump is in this config's
    base_dir, its summary's comm the whole name ('/' is the kernel's '!')."""
    exe = programs["oddcrash"]
    c = crash_oddcrash(crasher, programs, tmp_path, "name", "a b  c/d e")
    c.assert_published_in_time()
    c.assert_identity(exe, "a b  c!d e")
    assert os.path.basename(c.dir).startswith("a b  c!d e.")
    assert c.frames()[:4] == LEVELS
    c.assert_core_as_kernels(exe, tmp_path)
    assert_same_as_gdb(c.dir, exe)


def odd_copy(programs, tmp_path, directory):
    """A copy of oddcrash in tmp_path/directory (a name of bytes), its path as bytes."""
    d = os.path.join(os.fsencode(str(tmp_path)), directory)
    os.mkdir(d)
    exe = os.path.join(d, b"oddcrash")
    shutil.copy(programs["oddcrash"], exe)
    return exe


def test_exe_path_with_spaces_and_a_newline(crasher, programs, tmp_path):
    """https://github.com/systemd/systemd/issues/10786 : coredumpctl showed
    "/bin/sh /tmp/test out.sh to ge ther stand alone", and the executable's
    path and the arguments could not be told apart.  Our summary.json has the
    path as it is; summary.txt's first line stays one line (a newline in the
    path written as maps writes it, \012); before the fix the newline split it."""
    exe = odd_copy(programs, tmp_path, b"test out\nx")
    argv = [exe, b"to ge ther", b"stand", b"alone"]
    c = Crash(crasher, argv, tmp_path, "*/oddcrash")
    c.assert_published_in_time()
    c.assert_identity(os.fsdecode(exe), "oddcrash")
    with open(os.path.join(c.dir, "summary.txt")) as f:
        first, second = f.read().splitlines()[:2]
    assert first.startswith("%s (pid %d," % (os.fsdecode(exe).replace("\n", "\\012"), c.pid))
    assert first.endswith("fault address 0x0") and second.startswith("on "), (first, second)
    assert c.frames()[:4] == LEVELS
    c.assert_core_as_kernels(os.fsdecode(exe), tmp_path)
    assert_same_as_gdb(c.dir, os.fsdecode(exe))


@pytest.mark.xfail(strict=True, reason="summary.json's cmdline joins the arguments with "
                   "spaces (write_artefacts, docs/FORMATS.md §9): telling them apart needs "
                   "a format change (a list, or quoting)")
def test_command_line_arguments_can_be_told_apart(crasher, programs, tmp_path):
    """https://github.com/systemd/systemd/issues/10786 : the arguments of
    "/tmp/test out.sh 'to ge ther' stand alone" could not be told apart in
    coredumpctl's Command Line.  Nor in our summary's cmdline."""
    exe = programs["oddcrash"]
    c = crash_oddcrash(crasher, programs, tmp_path, "to ge ther", "stand", "alone")
    assert shlex.split(c.summary["cmdline"]) == [exe, "to ge ther", "stand", "alone"], \
        c.summary["cmdline"]


def test_bytes_not_utf8_in_name_path_and_arguments(crasher, programs, tmp_path):
    """https://github.com/giampaolo/psutil/issues/515 : a process whose command
    line held a malformed UTF-8 sequence made psutil (and glances) raise
    UnicodeDecodeError.  Here the thread name, the executable's directory and
    an argument hold bytes that are not UTF-8: the dump is published, its
    summary.json is UTF-8 JSON, its directory name one printable component."""
    exe = odd_copy(programs, tmp_path, b"bin\xfe")
    c = Crash(crasher, [exe, b"name", b"odd\xff\xc3"], tmp_path, "*/oddcrash")
    c.assert_published_in_time()
    with open(os.path.join(c.dir, "summary.json"), "rb") as f:
        assert json.loads(f.read().decode("utf-8", "strict")) == c.summary
    name = os.path.basename(c.dir)
    assert name.isprintable() and name.startswith("odd") and name.endswith(".%d" % c.pid)
    assert c.summary["exe_build_id"] == build_id(exe) and c.summary["signal"] == 11
    assert c.frames()[:4] == LEVELS
    c.assert_core_as_kernels(os.fsdecode(exe), tmp_path)
    assert_same_as_gdb(c.dir, os.fsdecode(exe))


@pytest.mark.xfail(strict=True, reason="summary.json writes exe's and comm's undecodable "
                   "bytes as '?' (the %e argument's, in pipe mode) or U+FFFD (/proc/PID/comm, "
                   "in socket mode), where fds' targets have \\xNN (docs/FORMATS.md §9): "
                   "one convention for all of them is a format decision")
def test_exe_and_comm_keep_their_bytes_not_utf8(crasher, programs, tmp_path):
    """https://github.com/giampaolo/psutil/issues/515 : bytes that are not
    UTF-8 in what the kernel says of a process.  The summary's exe and comm
    should keep them, as its fds' targets do (\\xNN)."""
    exe = odd_copy(programs, tmp_path, b"bin\xfe")
    c = Crash(crasher, [exe, b"name", b"odd\xff"], tmp_path, "*/oddcrash")
    s = c.summary
    assert (s["exe"], s["comm"]) == (exe.decode("utf-8", "backslashreplace"), "odd\\xff"), \
        (s["exe"], s["comm"])


def test_huge_command_line(crasher, programs, tmp_path):
    """https://github.com/checkpoint-restore/criu/pull/2103 : criu's core
    dump writer failed on a command line longer than its 80-byte field.
    Here 2 MB of arguments: the dump is published on time and the summary
    keeps the command line's beginning, cut."""
    exe = programs["oddcrash"]
    c = crash_oddcrash(crasher, programs, tmp_path, "x", *["y" * 100000] * 20)
    c.assert_published_in_time()
    c.assert_identity(exe, "oddcrash")
    cmdline = c.summary["cmdline"]
    assert cmdline.startswith(exe + " x yyy") and len(cmdline) < 100000 * 20
    assert c.frames()[:4] == LEVELS
    c.assert_core_as_kernels(exe, tmp_path)


def test_uncaught_cxx_exception(crasher, programs, tmp_path):
    """https://github.com/envoyproxy/envoy/issues/487 : for an uncaught C++
    exception "an uncaught exception has the correct stack in a core dump"
    (std::terminate is called at the throw point).  Our dump has it: abort
    under libstdc++'s terminate, __cxa_throw, then the functions that threw."""
    if "throwing" not in programs:
        pytest.skip("no C++ compiler (g++)")
    exe = programs["throwing"]
    c = Crash(crasher, [exe], tmp_path, "*/throwing")
    c.assert_published_in_time()
    c.assert_identity(exe, "throwing", signal.SIGABRT)
    names = c.frames()
    i = names.index("__cxa_throw")
    assert "abort" in names[:i] and names[i + 1:i + 4] == ["_ZL7level_bi", "_ZL7level_ai",
                                                            "main"], names
    c.assert_core_as_kernels(exe, tmp_path, early=NO_DEMANGLING)
    assert_same_as_gdb(c.dir, exe, early=NO_DEMANGLING)


# --- the process's environment: descriptors, tracer, namespaces, root ---------------

def test_no_free_file_descriptor(crasher, programs, tmp_path):
    """https://github.com/rust-minidump/minidump-writer/pull/90 : Firefox
    crashes suspected of file-descriptor exhaustion, which the minidump did
    not show.  A process that used every descriptor of RLIMIT_NOFILE 16: the
    dump comes, and its summary shows the limit and the 16 descriptors."""
    exe = programs["oddcrash"]
    c = crash_oddcrash(crasher, programs, tmp_path, "nofile")
    c.assert_published_in_time()
    c.assert_identity(exe, "oddcrash")
    s = c.summary
    assert s["rlimits"]["nofile"] == [16, 16], s["rlimits"]
    assert sorted(s["fds"], key=int) == [str(n) for n in range(16)] and not s["fds_more"]
    assert c.frames()[:4] == LEVELS
    c.assert_core_as_kernels(exe, tmp_path)
    assert_same_as_gdb(c.dir, exe)


def test_crash_while_traced(crasher, programs, tmp_path):
    """https://github.com/rr-debugger/rr/issues/859 : a crash handler
    (breakpad) that ptraces the crashed process met one already traced (by rr)
    and failed.  Ours needs no ptrace: a program crashing under strace -f is
    dumped as any other."""
    if shutil.which("strace") is None:
        pytest.skip("no strace")
    exe = programs["oddcrash"]
    c = Crash(crasher, ["strace", "-f", "-o", "/dev/null", exe], tmp_path, "*/oddcrash")
    c.assert_published_in_time()
    c.assert_identity(exe, "oddcrash")
    assert c.frames()[:4] == LEVELS
    c.assert_core_as_kernels(exe, tmp_path)
    assert_same_as_gdb(c.dir, exe)


def test_signal_sent_to_a_thread_that_is_not_the_main_one(crasher, tmp_path):
    """https://github.com/dragonflydb/dragonfly/issues/3902 : "problems with
    using a piped core_pattern when a proactor thread crashes ... when a kill
    signal is sent to a ProactorXX thread and not a main thread".  Debian's
    python3 with three threads asleep, SIGSEGV sent with tgkill to the last
    one: that thread is the crashing one, the sender is named, every thread's
    frames are gdb's."""
    threads = []

    def tgkill_a_worker(p):
        end = time.monotonic() + 10
        while len(threads) < 4 and time.monotonic() < end:
            time.sleep(0.05)
            threads[:] = sorted(int(t) for t in os.listdir("/proc/%d/task" % p.pid))
        libc = ctypes.CDLL(None, use_errno=True)
        assert libc.syscall(SYS_TGKILL, p.pid, threads[-1], signal.SIGSEGV) == 0

    exe = os.path.realpath("/usr/bin/python3")
    c = Crash(crasher, [exe, "-c", SLEEPERS], tmp_path, "*/python3*", act=tgkill_a_worker)
    c.assert_published_in_time()
    c.assert_identity(exe, os.path.basename(exe))
    s = c.summary
    assert s["tid"] == threads[-1] != c.pid and s["code"] == SI_TKILL
    assert s["sender"] == {"pid": os.getpid(), "uid": 0}
    assert len(s["thread_frames"]) == len(threads) - 1
    c.assert_core_as_kernels(exe, tmp_path)
    assert_same_as_gdb(c.dir, exe)


def test_init_of_a_pid_namespace(crasher, programs, tmp_path):
    """https://github.com/systemd/systemd/issues/1930 : systemd-coredump was
    given the PID in the crashed process's own namespace (%p) and read the
    metadata of whatever had that PID on the host.  Ours is PID 1 of a new PID
    and mount namespace: the summary has its host PID and its own exe, comm
    and command line (not those of the host's PID 1)."""
    exe = programs["oddcrash"]
    c = Crash(crasher, ["unshare", "-p", "-m", "--fork", "--mount-proc", exe, "pidns"],
              tmp_path, "*/oddcrash")
    assert c.rc == -signal.SIGSEGV  # unshare re-raises its child's signal (not exit 3)
    c.assert_published_in_time()
    c.assert_identity(exe, "oddcrash")
    assert c.pid != 1 and c.summary["cmdline"] == exe + " pidns"
    assert c.frames()[:4] == LEVELS
    c.assert_core_as_kernels(exe, tmp_path)
    assert_same_as_gdb(c.dir, exe)


def test_chroot_whose_paths_name_other_files_here(crasher, programs, tmp_path):
    """https://github.com/canonical/apport/pull/528 : apport checked the
    executable of a crash in a container by its path outside the container,
    where another file (or none) is.  Ours runs in a chroot where
    /usr/bin/sleep is our program: the summary's build-id and function names
    come from the file the process ran, not from the handler's
    /usr/bin/sleep."""
    root = tmp_path / "root"
    prog = root / "usr" / "bin" / "sleep"
    libs = re.findall(r"(/\S+) \(0x", subprocess.run(
        ["ldd", programs["oddcrash"]], capture_output=True, text=True).stdout)
    for path in [str(prog)] + [str(root) + lib for lib in libs]:
        os.makedirs(os.path.dirname(path), exist_ok=True)
    shutil.copy(programs["oddcrash"], str(prog))
    for lib in libs:
        shutil.copy(lib, str(root) + lib)
    c = Crash(crasher, ["chroot", str(root), "/usr/bin/sleep"], tmp_path, "*/sleep")
    c.assert_published_in_time()
    c.assert_identity(str(prog), "sleep")
    assert c.summary["exe_build_id"] == build_id(str(prog)) != build_id("/usr/bin/sleep")
    assert c.frames()[:4] == LEVELS
    c.assert_core_as_kernels(str(prog), tmp_path)
    assert_same_as_gdb(c.dir, str(prog))
