"""Live dumps: the registered data of running processes, each stopped as briefly
as possible (docs/FORMATS.md §8).

Per process, while it still runs: its state (skipped if already traced,
stopped, a zombie or gone), its recept (its own exe and comm against the main
config's watch rules, by the caller's recept_for), its modules, where
libminicoredumper keeps its list, and /proc/PID/mem opened.  Then the pause:
PTRACE_SEIZE every thread of /proc/PID/task (listed again until no new thread
shows up), PTRACE_INTERRUPT each, and wait (waitpid __WALL, woken by SIGCHLD)
until every one has really stopped; read the list and the data with the crash
path's code (plan.registered_items, plan.registered_external); then
PTRACE_DETACH every thread, always (try/finally), giving back a signal a
thread stopped with.  The pause runs from the first SEIZE to the last DETACH;
it is measured, and bounded by max_pause: threads not stopped by then mean the
process is not dumped, reads after it return nothing (the data is cut short).
A thread seized but not stopped in time cannot be detached while it runs: it
is detached as soon as it stops, and at the latest when this process exits
(the kernel detaches a dead tracer's tracees).

Once it runs again, its files go to DIR/dumps/PID/ (built under a hidden
.part name, then renamed):
    IDENT        as for a crashed process (docs/FORMATS.md §6)
    core-data    bin data registered without an ident (there is no core for it
                 to go into), block after block, each [pointer if indirect] +
                 [data unless NODUMP]
    symbol.map   docs/FORMATS.md §6 lines for both; the first column is where the block
                 starts in its file, as there is no core
The idents core-data and symbol.map are therefore reserved in live dumps.

ptrace goes through libc with ctypes: this module is in the daemon package,
never on the crash path.
"""

import ctypes
import errno
import os
import time

import _signal as signal  # the C module: `signal` imports enum

from . import read_registrations  # noqa: F401  (imported now, not during the first pause)
from .linux import arch_for_machine
from .publish_dumpdir import DumpDir
from .write_externals import write_externals
from .read_modules import find_modules, find_symbol
from .decide_plan import Externals, registered_external, registered_items, registration_symbols
from .read_process import Process, ProcessMemory, identity, status_field

PTRACE_DETACH = 17
PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207
WALL = 0x40000000  # __WALL: wait for threads (clone children) too
TASK_ROUNDS = 8
CORE_DATA = "core-data"
RESERVED = (CORE_DATA, "symbol.map")
ODD_STATES = {"T": "stopped", "t": "stopped by a tracer", "Z": "a zombie", "X": "dead",
              "x": "dead"}

_libc = None
_stragglers = []  # threads seized, not stopped in time: detached when they stop


class Skip(Exception):
    """This process is not dumped; the message says why."""


def _setup():
    """libc's ptrace, and SIGCHLD blocked (sigtimedwait takes the tracees' stops)."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.ptrace.restype = ctypes.c_long
        _libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})


def _ptrace(request, tid, data=0):
    if _libc.ptrace(request, tid, None, data or None) == -1:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def _detach(tid, status):
    """Detach a stopped thread; a signal it stopped with is delivered, not lost."""
    sig = os.WSTOPSIG(status) if status >> 16 == 0 else 0  # signal-delivery-stop
    try:
        _ptrace(PTRACE_DETACH, tid, sig)
    except OSError:
        pass  # gone meanwhile


class PausedMemory(ProcessMemory):
    """/proc/PID/mem that reads nothing once the pause bound has passed."""

    deadline = float("inf")
    cut = False

    def read(self, addr, size):
        if time.monotonic() > self.deadline:
            self.cut = True
            return b""
        return ProcessMemory.read(self, addr, size)


class Stopper:
    """Every thread of one process seized and stopped, then released."""

    def __init__(self, pid, max_pause):
        self.pid = pid
        self.max_pause = max_pause
        self.threads = {}  # tid -> wait status of its stop (None: not stopped yet)
        self.first = None  # monotonic time of the first SEIZE
        self.deadline = None
        self.pause = None  # seconds, first SEIZE to last DETACH

    def stop(self):
        for _ in range(TASK_ROUNDS):
            try:
                tids = [int(t) for t in os.listdir("/proc/%d/task" % self.pid)]
            except FileNotFoundError:
                raise Skip("exited meanwhile") from None
            new = [t for t in tids if t not in self.threads]
            if not new:
                if not self.threads:
                    raise Skip("exited meanwhile")
                return
            for tid in new:
                if self.first is None:
                    self.first = time.monotonic()
                    self.deadline = self.first + self.max_pause
                try:
                    _ptrace(PTRACE_SEIZE, tid)
                except OSError as e:
                    if e.errno == errno.ESRCH:
                        continue  # the thread ended
                    raise Skip("thread %d cannot be traced (%s): traced by someone else?"
                               % (tid, e.strerror)) from None
                self.threads[tid] = None
                try:
                    _ptrace(PTRACE_INTERRUPT, tid)
                except OSError:
                    pass  # it ended: waitpid says so
            self._wait()
        raise Skip("new threads keep appearing")

    def _wait(self):
        while True:
            for tid in [t for t, st in self.threads.items() if st is None]:
                try:
                    got, status = os.waitpid(tid, os.WNOHANG | WALL)
                except ChildProcessError:
                    del self.threads[tid]  # the thread exited: it needs no stop
                    continue
                if got == 0:
                    continue
                if os.WIFSTOPPED(status):
                    self.threads[tid] = status
                else:
                    del self.threads[tid]  # exited or killed
            running = [t for t, st in self.threads.items() if st is None]
            if not running:
                return
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise Skip("thread %s did not stop within %.0f ms" % (
                    ", ".join(map(str, running)), self.max_pause * 1000))
            signal.sigtimedwait({signal.SIGCHLD}, left)

    def release(self):
        """Detach every thread (one not stopped yet is detached when it stops)."""
        for tid, status in self.threads.items():
            if status is None:
                _stragglers.append(tid)
            else:
                _detach(tid, status)
        self.threads = {}
        if self.first is not None:
            self.pause = time.monotonic() - self.first


def release_stragglers(timeout=0.0):
    """Detach threads that stopped late; waits up to timeout for the rest."""
    end = time.monotonic() + timeout
    while _stragglers:
        for tid in list(_stragglers):
            try:
                got, status = os.waitpid(tid, os.WNOHANG | WALL)
            except ChildProcessError:
                got, status = tid, 0  # not our tracee any more (it exited): nothing left to release
            if got:
                _stragglers.remove(tid)
                if os.WIFSTOPPED(status):
                    _detach(tid, status)
        left = end - time.monotonic()
        if not _stragglers or left <= 0:
            return
        signal.sigtimedwait({signal.SIGCHLD}, left)


class Result:
    """What a live dump of one process gave."""

    def __init__(self, pid, comm):
        self.pid = pid
        self.comm = comm
        self.pause = None
        self.files = 0
        self.path = None
        self.warnings = []

    def __str__(self):
        where = "%d files in %s" % (self.files, self.path) if self.path else \
            "nothing registered in scope"
        return "live dump of %d (%s): %s, paused %.2f ms%s" % (
            self.pid, self.comm, where, self.pause * 1000,
            "; " + "; ".join(self.warnings[:3]) if self.warnings else "")


def dump_process(pid, outdir, scope, recept_for, max_pause):
    """Live-dump one process into outdir/dumps/PID/; a Result, or Skip raised.

    recept_for(exe, comm) gives the process's recept, or None: not dumped;
    max_pause bounds the pause (seconds)."""
    _setup()
    ident = identity(pid)
    if ident is None:
        raise Skip("exited")
    if ident[0] in ODD_STATES:
        raise Skip("it is %s" % ODD_STATES[ident[0]])
    tracer = status_field(pid, "TracerPid")
    if tracer not in (None, "0"):
        raise Skip("already traced by pid %s" % tracer)
    try:
        proc = Process(pid, memory=PausedMemory)
    except OSError as e:
        raise Skip("/proc/%d/mem: %s" % (pid, e.strerror)) from None
    try:
        result = Result(pid, proc.comm())
        recept = recept_for(proc.exe(), result.comm)
        if recept is None:
            raise Skip("no watch rule matches it")
        modules = find_modules(proc, proc.mem, warn=result.warnings.append)
        try:
            symbols = registration_symbols(lambda name: find_symbol(modules, name))
        finally:
            modules.close()
        if symbols is None:
            raise Skip("it does not use libminicoredumper")
        layout = modules[0].layout
        arch = arch_for_machine(modules[0].ehdr.machine)
        externals, core = Externals(), []
        warn = result.warnings.append
        stopper = Stopper(pid, max_pause)
        try:
            stopper.stop()
            proc.mem.deadline = stopper.deadline
            proc.guard_memory()  # its mappings as they are now that it is stopped
            for it in registered_items(proc.mem, layout, arch, symbols, recept["registered"],
                                       scope, warn):
                if it.ident in RESERVED:
                    warn("ident %r is reserved in live dumps: skipped" % it.ident)
                elif it.ident is None:
                    core.append(registered_external(it, proc.mem, CORE_DATA))
                else:
                    externals.add(registered_external(it, proc.mem), warn)
        finally:
            stopper.release()
            result.pause = stopper.pause
        if proc.mem.cut:
            warn("the pause bound (%.0f ms) cut the data short" % (max_pause * 1000))
        skipped = proc.mem.skip_report()
        if skipped:
            warn(skipped)
    finally:
        proc.close()
    if externals or core:
        result.path, result.files = write_dump(outdir, pid, externals + core, layout.word)
    return result


def write_dump(outdir, pid, externals, word):
    """outdir/dumps/PID/ with the external dumps; returns (path, file count)."""
    os.makedirs(outdir + "/dumps", 0o700, exist_ok=True)
    dd = DumpDir(outdir + "/dumps", str(pid))
    try:
        write_externals(dd, "", externals, word)
        return dd.publish(manifest=False), len(dd.records)
    except BaseException:
        dd.discard()
        raise
