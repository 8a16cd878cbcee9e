"""minicoredumper_sockd: the resident crash handler on the kernel's coredump socket.

    minicoredumper_sockd [--socket PATH] [--config PATH] [--no-install] [--protocol auto|plain|request]

Since Linux 6.16 core_pattern may be "@PATH": the kernel connects to the
listening AF_UNIX stream socket PATH and writes the core into the
connection; the crashing process stays until the server closes it.  Linux
6.17 added "@@PATH", the request/ack protocol: the kernel first sends a
struct coredump_req {u32 size; u32 size_ack; u64 mask}, the server answers
struct coredump_ack {u32 size; u32 spare; u64 mask} with COREDUMP_KERNEL
(write the core) or COREDUMP_REJECT (write nothing), plus COREDUMP_WAIT
(keep the process until we close), and the kernel confirms with a u32
marker (0: accepted), then writes the core.  With it, a crash the handler
would not dump (rate limit, no watch rule) is rejected before the kernel
writes anything.

Each crash in a worker process of its own (os.fork), at most MAX_WORKERS
at a time: a crash that is slow or stuck (a file system that never answers,
a stopped worker) never holds up another.  The worker runs the pipe
handler's pipeline (crash.Crash: READ, DECIDE, WRITE, PUBLISH) as the pipe
handler does, with the accepted connection as the stream, closing it as the
release, the crashed PID from SO_PEERCRED and its pidfd from SO_PEERPIDFD,
and the same hard deadline (SIGALRM: HARD_GRACE seconds past the config's
deadline_seconds, counted from the connection's arrival).  The server
watches every worker: at that hard deadline it shuts the connection down
(the kernel reaps the crashed process whatever the worker is doing), and a
worker still there WATCHDOG_SLACK seconds later is killed and its crash
logged as abandoned; the server goes on serving.  Nothing is imported per
crash: the crash path's modules are imported at start and the workers
inherit them, and the parsed config is kept in the server (handler's
JsonCache: keyed by stat), refreshed before each fork.

core_pattern: unless --no-install, the server sets core_pattern to "@PATH"
("@@PATH" with the request protocol) once it listens, and on SIGTERM/SIGINT
puts back what was there before (the pipe handler after `mcd install --mode
socket`): while the server is not running, crashes go to the pipe handler.
If it dies without restoring (SIGKILL, a crash of its own) the kernel cannot
connect and writes no dump at all (it logs "Unable to connect to coredump
socket"); the systemd unit restarts it (Restart=always), and a restarted
server takes the saved pattern over.
"""

import argparse
import os
import signal
import socket
import struct
import sys
import time

from . import __version__
from .corepattern import SOCKET, kernel_has_request_protocol, kernel_has_socket_mode  # noqa: F401
from . import linux
from .files import read_exact
from .daemon import STOP_POLL, Stop, StopOnSignals
from .log import Logger

BACKLOG = 16
MAX_WORKERS = 8  # crashes handled at the same time; more wait in the backlog
WATCHDOG_SLACK = 0.25  # seconds past a worker's hard deadline before it is killed
SO_PEERPIDFD = 77  # Linux 6.5
# include/uapi/linux/coredump.h (Linux 6.17)
COREDUMP_KERNEL, COREDUMP_USERSPACE, COREDUMP_REJECT, COREDUMP_WAIT = 1, 2, 4, 8
REQ_HEAD = struct.Struct("=IIQ")  # size, size_ack, mask
ACK = struct.Struct("=IIQ")  # size, spare, mask
MARK = struct.Struct("=I")
MARK_REQACK = 0
# include/uapi/linux/pidfd.h: PIDFD_GET_INFO = _IOWR(0xFF, 11, struct pidfd_info), here
# its 72-byte second version {u64 mask, cgroupid; u32 pid, tgid, ppid, ruid, rgid, euid,
# egid, suid, sgid, fsuid, fsgid; s32 exit_code; u32 coredump_mask, spare} (Linux 6.16).
PIDFD_INFO = struct.Struct("=QQ11IiII")
PIDFD_GET_INFO = (3 << 30) | (PIDFD_INFO.size << 16) | (0xFF << 8) | 11
PIDFD_INFO_COREDUMP = 1 << 4
PIDFD_COREDUMP_USER, PIDFD_COREDUMP_ROOT = 1 << 2, 1 << 3


def dump_mode(pidfd):
    """What %d gives the pipe handler, from the pidfd: 1 (dumpable), 2 (not dumpable,
    fs.suid_dumpable = 2: root-only), or None if the kernel does not say."""
    import fcntl
    buf = bytearray(PIDFD_INFO.size)
    struct.pack_into("=Q", buf, 0, PIDFD_INFO_COREDUMP)
    try:
        fcntl.ioctl(pidfd, PIDFD_GET_INFO, buf)
    except (OSError, TypeError, ValueError):
        return None  # an older kernel or no coredump info: the dump mode is unknown (None)
    fields = PIDFD_INFO.unpack(buf)
    if not fields[0] & PIDFD_INFO_COREDUMP:
        return None
    if fields[-2] & PIDFD_COREDUMP_ROOT:
        return 2
    return 1 if fields[-2] & PIDFD_COREDUMP_USER else None


def preload():
    """Import the crash path now, not at the first crash."""
    from . import (config, crash, decide_plan, decide_storage, publish_dumpdir,  # noqa: F401
                   publish_hook, read_corestream, read_modules, read_process, write_artefacts,
                   write_core, write_sinks, write_summary)


class Connection:
    """One accepted kernel connection: who crashed, and the request protocol."""

    def __init__(self, conn, request):
        self.conn = conn
        self.request = request
        self.acked = False
        self.closed = False
        pid, self.uid, self.gid = linux.UCRED.unpack(
            conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, linux.UCRED.size))
        self.pid = pid
        try:
            self.pidfd = conn.getsockopt(socket.SOL_SOCKET, SO_PEERPIDFD)
        except OSError:
            self.pidfd = None  # a kernel before 6.5: no pidfd, the PID is checked as in pipe mode
        self.req_mask = 0
        if request:
            head = read_exact(conn.recv, REQ_HEAD.size)
            size, self.size_ack, self.req_mask = REQ_HEAD.unpack(head)
            if size > REQ_HEAD.size:
                read_exact(conn.recv, min(size - REQ_HEAD.size, 4096))

    def ack(self, mask):
        """Answer the kernel's request (request protocol); True if it accepted."""
        self.acked = True
        self.conn.sendall(ACK.pack(ACK.size, 0, mask))
        mark, = MARK.unpack(read_exact(self.conn.recv, MARK.size))
        return mark == MARK_REQACK

    def stream_ready(self):
        """The handler is about to read the core: let the kernel write it."""
        if self.request and not self.acked:
            if not self.ack(COREDUMP_KERNEL | COREDUMP_WAIT):
                raise OSError("the kernel refused our coredump ack")

    def release(self):
        """Close the connection: the kernel reaps the crashed process."""
        if self.closed:
            return
        self.closed = True
        try:
            if self.request and not self.acked:
                self.ack(COREDUMP_REJECT | COREDUMP_WAIT)  # nothing is written
        except (OSError, EOFError):
            pass  # the kernel is gone or stopped listening: closing releases the process anyway
        shut_down(self.conn)  # whoever else still has the fd (the server) holds nothing
        self.conn.close()
        if self.pidfd is not None:
            try:
                os.close(self.pidfd)
            except OSError:
                pass  # already closed by the kernel's side: nothing leaks


def shut_down(conn):
    """Shut a kernel connection down both ways: the kernel, reading for the
    end of it, lets the crashed process go, whoever still has its fd."""
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already shut down or reset by the kernel: released either way


def handle(conn, cfg_path, cache, request, log, t0=None, hard_deadline=False):
    """One crash on an accepted connection, through the pipe handler's pipeline;
    t0: its arrival (time.monotonic()); hard_deadline: end this process
    HARD_GRACE seconds past the deadline (SIGALRM), as the pipe handler does."""
    from .crash import Arrival, Crash
    t0 = time.monotonic() if t0 is None else t0
    c = None
    try:
        # Reads from the kernel time out at the deadline (and the crash as a whole).
        left = max(0.001, t0 + config_deadline(cache, cfg_path) - time.monotonic())
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO,
                        struct.pack("=qq", int(left), int(left % 1 * 1e6)))
        c = Connection(conn, request)
        log.set_pid(c.pid)
        arrival = Arrival(pid=c.pid, uid=c.uid, gid=c.gid, signal=0, time=int(time.time()),
                          hostname=os.uname().nodename, comm="", config=cfg_path,
                          pidfd=c.pidfd,
                          dump_mode=dump_mode(c.pidfd) if c.pidfd is not None else None,
                          stream=conn.fileno(), release=c.release,
                          stream_ready=c.stream_ready, t0=t0, hard_deadline=hard_deadline)
        return Crash(arrival, log, cache).run()
    except Stop:
        raise
    except Exception:
        log.exception("crash handling failed")  # a bug of ours: the traceback says where
        return 1
    finally:
        if c is not None:
            c.release()
        else:
            shut_down(conn)
            conn.close()
        log.prefix = ""


def config_deadline(cache, cfg_path):
    """The config's deadline_seconds (the default when it cannot be read)."""
    from .config import DEFAULT_CONFIG, ConfigError, DEFAULT_DEADLINE, load_main_config
    try:
        return load_main_config(cfg_path or DEFAULT_CONFIG, [], cache).deadline
    except (ConfigError, OSError, ValueError):
        # the crash itself reports an unusable config; this only sizes the timeouts
        return DEFAULT_DEADLINE


class Worker:
    """A crash being handled in a child process: its connection (the server's
    copy), the pid, the crashed pid if known, and when to let go of it."""

    def __init__(self, pid, conn, release_at):
        self.pid = pid
        self.conn = conn
        self.release_at = release_at  # the hard deadline: the connection shut down
        self.kill_at = release_at + WATCHDOG_SLACK
        self.peer = peer_pid(conn)
        self.killed = False


def peer_pid(conn):
    """The crashed PID of a kernel connection (SO_PEERCRED), None if unknown."""
    try:
        return linux.UCRED.unpack(conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                  linux.UCRED.size))[0]
    except OSError:
        return None


class Workers:
    """The crashes being handled, one child process each (os.fork), watched:
    at its hard deadline a worker's connection is shut down (its crashed
    process released), WATCHDOG_SLACK later the worker is killed (logged as
    abandoned).  A killed worker that does not go (uninterruptible sleep) is
    reaped when it goes and holds no place."""

    def __init__(self, log):
        self.log = log
        self.running = {}  # pid -> Worker
        self.gone = []  # pids killed, not reaped yet

    def full(self):
        return len(self.running) >= MAX_WORKERS

    def start(self, conn, sock, cfg_path, cache, request):
        """Handle the crash on conn in a new worker (in this process if fork fails)."""
        from .crash import HARD_GRACE
        t0 = time.monotonic()
        release_at = t0 + config_deadline(cache, cfg_path) + HARD_GRACE  # cache warm for it
        try:
            pid = os.fork()
        except OSError as e:
            self.log.error("cannot start a worker (%s): crash handled by the server itself"
                           % e.strerror)
            handle(conn, cfg_path, cache, request, self.log, t0)
            return
        if pid == 0:  # the worker
            status = 1
            try:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    signal.signal(sig, signal.SIG_DFL)
                sock.close()
                for w in self.running.values():
                    if w.conn is not None:
                        w.conn.close()  # other crashes' connections are theirs to close
                status = handle(conn, cfg_path, cache, request, self.log, t0, hard_deadline=True)
            finally:
                os._exit(status)
        self.running[pid] = Worker(pid, conn, release_at)

    def next_event(self):
        """Seconds until the next watchdog action (None: nothing to watch)."""
        times = [w.kill_at if w.conn is None else w.release_at for w in self.running.values()]
        return max(0.0, min(times) - time.monotonic()) if times else None

    def check(self):
        """Reap the workers that ended; release and kill the ones past their time."""
        for pid in list(self.gone):
            if self._reaped(pid):
                self.gone.remove(pid)
        now = time.monotonic()
        for pid, w in list(self.running.items()):
            if self._reaped(pid):
                self._forget(w)
            elif w.conn is not None and now >= w.release_at:
                shut_down(w.conn)  # the crashed process goes, whatever the worker does
                w.conn.close()
                w.conn = None
            elif w.conn is None and now >= w.kill_at:
                os.kill(pid, signal.SIGKILL)
                self.log.log("error", "%sthe crash's worker %d did not finish by its hard "
                             "deadline: crash abandoned, worker killed, the crashed process "
                             "released" % ("pid %d: " % w.peer if w.peer else "", pid))
                del self.running[pid]
                if not self._reaped(pid):
                    self.gone.append(pid)

    def _forget(self, w):
        del self.running[w.pid]
        if w.conn is not None:
            w.conn.close()

    @staticmethod
    def _reaped(pid):
        try:
            got, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return True  # not ours any more: nothing to wait for
        return got == pid

    def finish(self):
        """Wait for every worker, each at most until it is killed."""
        while self.running:
            self.check()
            wait = self.next_event()
            time.sleep(min(0.01, wait) if wait is not None else 0.01)


def serve(sock, cfg_path, cache, request, log, stop, max_crashes=None):
    """Handle crashes, each in a worker (Workers), until stop
    (daemon.StopOnSignals) says so (daemon.Stop) or max_crashes were handled;
    the workers still running are waited for (each at most until its hard
    deadline) before it returns."""
    workers = Workers(log)
    n = 0
    try:
        while max_crashes is None or n < max_crashes:
            stop.check()
            workers.check()
            wait = workers.next_event()
            timeout = STOP_POLL if wait is None else min(STOP_POLL, wait + 0.001)
            if workers.full():
                time.sleep(min(timeout, 0.01))
                continue  # no place for another crash: the kernel's connections wait
            sock.settimeout(timeout)  # accepted sockets are blocking
            try:
                conn, _ = sock.accept()
            except socket.timeout:
                continue  # no crash this poll: look at the workers and the stop flag again
            except InterruptedError:
                continue  # a signal: look at the stop flag again
            workers.start(conn, sock, cfg_path, cache, request)
            n += 1
    finally:
        workers.finish()


def state_file(sock_path):
    return sock_path + ".saved-core-pattern"


def install_pattern(pattern, state):
    """Put pattern in core_pattern; the previous value is saved in state (a restarted
    server keeps the first saved value: it is the pipe pattern, not ours)."""
    from .corepattern import read_sysctl, write_sysctl
    old = read_sysctl("core_pattern")
    if not old.startswith("@"):
        from .files import replace_file
        replace_file(state, (old + "\n").encode())
    write_sysctl("core_pattern", pattern)


def restore_pattern(ours, state):
    """Put the saved pattern back if core_pattern is still ours; True if done."""
    from .corepattern import read_sysctl, write_sysctl
    try:
        with open(state) as f:
            saved = f.read().rstrip("\n")
        now = read_sysctl("core_pattern")
    except OSError:
        return False  # no saved pattern (never installed): nothing to restore
    if now == ours:
        write_sysctl("core_pattern", saved)
    os.unlink(state)
    return True


def build_parser():
    p = argparse.ArgumentParser(prog="minicoredumper_sockd",
                                description="resident crash handler on the kernel's "
                                            "coredump socket (Linux 6.16+)")
    p.add_argument("--version", action="version", version="%(prog)s " + __version__)
    p.add_argument("--socket", default=SOCKET, help="socket path (default %(default)s)")
    p.add_argument("--config", help="main config (default /etc/minicoredumper/"
                                    "minicoredumper.cfg.json)")
    p.add_argument("--no-install", action="store_true",
                   help="leave core_pattern alone (default: '@PATH' while running)")
    p.add_argument("--protocol", choices=("auto", "plain", "request"), default="auto",
                   help="'@' (plain, 6.16) or '@@' (request/ack, 6.17); auto: what the "
                        "kernel has")
    p.add_argument("--max-crashes", type=int, help=argparse.SUPPRESS)  # benchmarks
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    log = Logger("minicoredumper_sockd")
    if not kernel_has_socket_mode():
        msg = "the kernel (%s) has no coredump socket (Linux 6.16+): not starting; " \
              "the pipe handler stays in charge" % os.uname().release
        print("minicoredumper_sockd: " + msg, file=sys.stderr)
        log.error(msg)
        return 1
    request = (args.protocol == "request" or
               args.protocol == "auto" and kernel_has_request_protocol())
    from .config import JsonCache
    preload()
    cache = JsonCache()
    os.makedirs(os.path.dirname(args.socket) or ".", 0o755, exist_ok=True)
    try:
        os.unlink(args.socket)  # a previous server's; one server per path
    except FileNotFoundError:
        pass  # no earlier socket at this path
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    old_umask = os.umask(0o077)  # root only: nobody else may pose as the kernel
    try:
        sock.bind(args.socket)
    finally:
        os.umask(old_umask)
    sock.listen(BACKLOG)
    pattern = ("@@" if request else "@") + os.path.abspath(args.socket)
    stop = StopOnSignals()
    installed = False
    try:
        if not args.no_install:
            install_pattern(pattern, state_file(args.socket))
            installed = True
        log.info("listening on %s (%s protocol)%s" % (
            args.socket, "request/ack" if request else "plain",
            ", core_pattern = " + pattern if installed else ""))
        serve(sock, args.config, cache, request, log, stop, args.max_crashes)
    except Stop as e:
        log.info("stopped (%s)" % e)
    finally:
        if installed:
            restore_pattern(pattern, state_file(args.socket))
        sock.close()
        try:
            os.unlink(args.socket)
        except OSError:
            pass  # already gone: nothing to clean up
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
