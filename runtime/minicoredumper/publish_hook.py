"""PUBLISH (after): the main config's on_dump program, run on each published dump.

    ON_DUMP... DIR

where field devices hand dumps to their uploader.  It runs after the crashed
process was released and the dump published, so neither waits for it and a
hook that fails, hangs or crashes costs no dump.  start() returns at once:
it forks a short-lived middle process, which forks the watcher and exits, so
the watcher belongs to init, not to the handler (which exits soon in pipe
mode) nor to minicoredumper_sockd (which must neither block nor collect
zombies).  The watcher, a copy of the handler with its files closed:

- starts the program with os.posix_spawn in a session of its own, stdin on
  /dev/null, stdout and stderr into a pipe, SIGPIPE and SIGXFSZ back at their
  defaults, the handler's environment with MINICOREDUMPER_ON_DUMP=DIR added
  (crash.HOOK_ENV: the dump of a crash of the hook, or of a process it
  started, runs no hook, so a crashing hook cannot start itself again and
  again);
- reads its output, keeping the last TAIL_BYTES, until it exits or the time
  limit (on_dump_timeout_seconds) passes: then its whole process group gets
  SIGTERM, and SIGKILL GRACE seconds later;
- logs the result, one line (info when it exited 0, else a warning), and at
  most LOG_LINES lines of its output, with the crashed process's PID as every
  line of the handler.

What the program leaves running in its session when it exits in time is left
alone.  No new interpreter is started: the watcher is a fork of the handler.
"""

import os
import time

import _signal

from .crash import HOOK_ENV
from .linux import SIGNAL_NAMES

KERNEL_PATH = "/sbin:/bin:/usr/sbin:/usr/bin"  # what the kernel gives its helpers
POLL = 0.02  # seconds between two looks at the program
GRACE = 1.0  # seconds from SIGTERM to SIGKILL at the time limit
TAIL_BYTES = 4096  # of the program's output, the last ones are kept
LOG_LINES = 5  # of those, at most this many lines are logged
LINE_MAX = 300  # characters of one logged output line
COMM = b"mcd-on_dump"  # the watcher's name in ps


def start(argv, dirpath, timeout, log):
    """Run argv + [dirpath] detached, bounded by timeout seconds, its result logged
    by a watcher process; returns at once (after one short-lived fork)."""
    try:
        middle = os.fork()
    except OSError as e:
        log.error("on_dump: cannot fork (%s): %s not run on %s" % (e.strerror, argv[0], dirpath))
        return
    if middle == 0:
        _middle(argv, dirpath, timeout, log)  # never returns
    while True:
        try:
            os.waitpid(middle, 0)  # it exits right after its fork
            return
        except InterruptedError:
            continue  # a signal: the middle process is still to be collected
        except ChildProcessError:
            return  # already collected: nothing to wait for


def _middle(argv, dirpath, timeout, log):
    """The middle process: a new session, the watcher forked, gone at once."""
    code = 1
    try:
        os.setsid()  # no terminal's signals reach the watcher or the program
        if os.fork() == 0:
            code = 0
            try:
                watch(argv, dirpath, timeout, log)
            except BaseException:
                log.exception("on_dump: the watcher failed")
        else:
            code = 0
    except BaseException:
        try:
            log.error("on_dump: cannot start the watcher: %s not run on %s" % (argv[0], dirpath))
        except BaseException:
            pass  # nothing more to do: the dump is published either way
    finally:
        os._exit(code)


def _detach(log):
    """The watcher's own state: default signal handling, files of the handler
    (the core stream, the socket server's sockets) closed, 0-2 on /dev/null."""
    import gc  # built in
    gc.disable()  # no finalizer of the handler's objects closes an fd number reused here
    for sig in (_signal.SIGALRM, _signal.SIGTERM, _signal.SIGINT):
        _signal.signal(sig, _signal.SIG_DFL)
    try:
        fd = os.open("/proc/self/comm", os.O_WRONLY)
        try:
            os.write(fd, COMM)
        finally:
            os.close(fd)
    except OSError:
        pass  # only the name in ps
    log.close()
    os.closerange(0, os.sysconf("SC_OPEN_MAX"))
    null = os.open("/dev/null", os.O_RDWR)  # 0
    os.dup2(null, 1)
    os.dup2(null, 2)
    log.reopen()
    os.chdir("/")


class Tail:
    """The last TAIL_BYTES of a stream and how many lines it had."""

    def __init__(self):
        self.data = b""
        self.lines = 0

    def read(self, fd):
        """Everything fd (non-blocking) has now."""
        while True:
            try:
                b = os.read(fd, 65536)
            except BlockingIOError:
                return
            except OSError:
                return  # nothing more to read from this pipe
            if not b:
                return
            self.lines += b.count(b"\n")
            self.data = (self.data + b)[-TAIL_BYTES:]

    def last_lines(self):
        """(up to LOG_LINES last non-empty lines, how many earlier ones are not among them)."""
        if self.data and not self.data.endswith(b"\n"):
            self.lines += 1
        text = self.data.decode("utf-8", "replace")
        lines = [l.rstrip()[:LINE_MAX] for l in text.splitlines() if l.strip()]
        shown = lines[-LOG_LINES:]
        return shown, max(0, self.lines - len(shown))


def watch(argv, dirpath, timeout, log):
    """Run the program and log what became of it (the watcher's whole work)."""
    _detach(log)
    env = dict(os.environ)
    env.setdefault("PATH", KERNEL_PATH)
    env[HOOK_ENV] = dirpath  # no hook on a dump of the hook's own crash (crash.from_hook)
    r, w = os.pipe()
    t0 = time.monotonic()
    try:
        pid = os.posix_spawn(argv[0], list(argv) + [dirpath], env, file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
            (os.POSIX_SPAWN_DUP2, w, 1), (os.POSIX_SPAWN_DUP2, w, 2)],
            setsid=True, setsigdef=(_signal.SIGPIPE, _signal.SIGXFSZ))
    except OSError as e:
        log.error("on_dump: cannot run %s: %s" % (argv[0], e.strerror or e))
        return
    finally:
        os.close(w)
    os.set_blocking(r, False)
    out = Tail()
    end = t0 + timeout
    cut = None  # the signal sent at the time limit
    while True:
        out.read(r)
        got, status = os.waitpid(pid, os.WNOHANG)
        if got:
            break
        now = time.monotonic()
        if now >= end:
            cut = _signal.SIGKILL if cut else _signal.SIGTERM
            try:
                os.killpg(pid, cut)  # its session is its process group
            except OSError:
                pass  # the group is gone already: waitpid tells
            end = now + GRACE if cut == _signal.SIGTERM else float("inf")
        time.sleep(POLL)
    out.read(r)  # what is there now; nothing waits for what it left running
    os.close(r)
    secs = time.monotonic() - t0
    name = argv[0]
    if cut:
        level, what = "warning", "cut off at the time limit (on_dump_timeout_seconds %g): %s" % (
            timeout, "killed" if cut == _signal.SIGKILL else "terminated")
    elif os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        level, what = "warning", "killed by signal %d%s after %.1f s" % (
            sig, " (%s)" % SIGNAL_NAMES[sig] if sig in SIGNAL_NAMES else "", secs)
    elif os.WEXITSTATUS(status):
        level, what = "warning", "exited with status %d after %.1f s" % (
            os.WEXITSTATUS(status), secs)
    else:
        level, what = "info", "done in %.1f s" % secs
    log.log(level, "on_dump %s on %s: %s" % (name, dirpath, what))
    shown, earlier = out.last_lines()
    if earlier:
        log.log(level, "on_dump output: (%d earlier lines not logged)" % earlier)
    for line in shown:
        log.log(level, "on_dump output: " + line)
