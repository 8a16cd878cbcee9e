"""The kernel's core_pattern interface: its sysctls, the handler's
core_pattern line, what the running kernel supports (newer specifiers,
the coredump socket), and the lock its users take before they change it.
Used by mcd install, the socket server and the tests.
Sources: core(5) and the kernel's Documentation/admin-guide/sysctl/kernel.rst."""

import os
import sys
import time

PROC_SYS = "/proc/sys/kernel"
CORE_PATTERN_MAX = 127
PIPE_LIMIT = 0x7FFFFFFF
SPECIFIERS = "%P %u %g %s %t %h %e"


def read_sysctl(name):
    """A /proc/sys/kernel value, without the newline."""
    with open("%s/%s" % (PROC_SYS, name)) as f:
        return f.read().rstrip("\n")


def write_sysctl(name, value):
    """Set a /proc/sys/kernel value (root only: PermissionError otherwise)."""
    with open("%s/%s" % (PROC_SYS, name), "w") as f:
        f.write(value)


def kernel_version(release=None):
    """(major, minor) of the running kernel (or of a uname release string)."""
    release = release or os.uname().release
    parts = []
    for p in release.split(".")[:2]:
        digits = ""
        for ch in p:
            if not ch.isdigit():
                break
            digits += ch
        parts.append(int(digits or 0))
    return tuple(parts + [0] * (2 - len(parts)))


def identity_options(version=None):
    """The newer specifiers this kernel expands, as handler options (docs/FORMATS.md §1:
    accepted, never required): the dump mode %d (Linux 3.7) and the pidfd %F
    (Linux 6.16: the kernel installs the crashed process's pidfd as fd 3 of
    the helper and %F expands to that number)."""
    version = version or kernel_version()
    opts = []
    if version >= (3, 7):
        opts.append("--dump-mode=%d")
    if version >= (6, 16):
        opts.append("--pidfd=%F")
    return " ".join(opts)


SOCKET = "/run/minicoredumper/coredump.socket"  # minicoredumper_sockd's (cmd_sockd.py)


def kernel_has_socket_mode(version=None):
    """core_pattern "@PATH": the kernel writes cores to a listening socket (Linux 6.16)."""
    return (version or kernel_version()) >= (6, 16)


def kernel_has_request_protocol(version=None):
    """core_pattern "@@PATH": the request/ack protocol (Linux 6.17)."""
    return (version or kernel_version()) >= (6, 17)


def core_pattern(handler, config=None, options=None):
    """The core_pattern line for handler; ValueError if the kernel would truncate it.
    options: extra handler options (default: identity_options() of this kernel)."""
    options = identity_options() if options is None else options
    pattern = "|%s %s" % (handler, SPECIFIERS)
    if options:
        pattern += " " + options
    if config:
        pattern += " " + os.path.abspath(config)
    if len(pattern) > CORE_PATTERN_MAX:
        raise ValueError("core_pattern would be %d characters, the kernel takes %d; use a "
                         "shorter --config or --handler path" % (len(pattern), CORE_PATTERN_MAX))
    return pattern


# --- one user of core_pattern at a time -------------------------------------------------

LOCK = "/run/lock/minicoredumper-core-pattern.lock"
LOCK_POLL = 0.05  # seconds between two tries of a bounded wait
_held = {}  # path -> [file, depth, pid] of the locks this process holds


class LockBusy(Exception):
    """The lock stayed taken for the whole wait; holder says by whom."""

    def __init__(self, path, holder, waited):
        super().__init__("core_pattern is in use by %s (it holds %s; waited %g s); try "
                         "again when it has restored core_pattern" % (holder, path, waited))
        self.holder = holder


class CorePatternLock:
    """The lock every user of core_pattern (mcd install and uninstall, the test
    sessions, the demo, the benchmarks) holds while it changes it and until it
    has put it back, so two never overlap.

    A POSIX record lock (lockf) on path: the kernel drops it when its process
    ends, and a child forked meanwhile does not inherit it (unlike flock), so a
    crashed program never keeps it.  The file holds the holder's "pid N (argv)"
    for the message of whoever waits.  Taken again in the process that holds it,
    it is only counted (closing a second descriptor of the file would drop the
    process's lock).  wait: None waits as long as it takes (on_wait(holder) once
    when it must wait), else at most that many seconds, then LockBusy.
    OSError if path cannot be opened (PermissionError: not root)."""

    def __init__(self, wait=None, on_wait=None, path=LOCK):
        self.wait, self.on_wait, self.path = wait, on_wait, path
        self.taken = False

    def acquire(self):
        import fcntl
        mine = _held.get(self.path)
        if mine is not None and mine[2] == os.getpid():
            mine[1] += 1
        else:
            f = open(self.path, "a+")
            try:
                self._lock(f, fcntl)
            except BaseException:
                f.close()
                raise
            f.truncate(0)
            f.write("pid %d (%s)\n" % (os.getpid(), " ".join(sys.argv)[:200]))
            f.flush()
            _held[self.path] = [f, 1, os.getpid()]
        self.taken = True
        return self

    def _lock(self, f, fcntl):
        import errno

        def take():
            try:
                fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                return False  # another process holds it
        if take():
            return
        if self.wait is None:
            if self.on_wait is not None:
                self.on_wait(holder(f))
            fcntl.lockf(f, fcntl.LOCK_EX)
            return
        end = time.monotonic() + self.wait
        while time.monotonic() < end:
            time.sleep(LOCK_POLL)
            if take():
                return
        raise LockBusy(self.path, holder(f), self.wait)

    def release(self):
        if not self.taken:
            return
        self.taken = False
        mine = _held[self.path]
        mine[1] -= 1
        if mine[1] == 0:
            del _held[self.path]
            mine[0].close()  # drops the lock

    def __enter__(self):
        return self if self.taken else self.acquire()

    def __exit__(self, *exc):
        self.release()


def holder(f):
    """Who holds the lock file f, as its holder wrote it ("pid N (argv)")."""
    f.seek(0)
    return f.read(512).strip() or "another process"
