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

Each crash in a worker process (Workers), one crash at a time per worker,
at most MAX_WORKERS workers: a crash that is slow or stuck (a file system
that never answers, a stopped worker) never holds up another.  The server
accepts each connection and hands it to an idle worker (the fd with
SCM_RIGHTS on the worker's control socket, docs/FORMATS.md §10), the one
that handled the most crashes, or to a new one when none is idle.  The
worker runs the pipe handler's pipeline (crash.Crash: READ, DECIDE, WRITE,
PUBLISH) as the pipe handler does, with the connection as the stream,
closing it as the release, the crashed PID from SO_PEERCRED and its pidfd
from SO_PEERPIDFD, and the same hard deadline (SIGALRM: HARD_GRACE seconds
past the config's deadline_seconds, counted from the connection's arrival).
The server watches every worker: at that hard deadline it shuts the
connection down (the kernel reaps the crashed process whatever the worker is
doing), and a worker still at it WATCHDOG_SLACK seconds later is killed and
its crash logged as abandoned; an idle worker that does not take a crash
within TAKE_TIMEOUT is killed and the crash handed to another; the server
goes on serving.

Why workers live on (up to WORKER_CRASHES crashes each): the crash path is
imported in the server at start (preload) and a forked worker shares its
pages, but every page it writes is copied on the first write (reference
counts, the collector's headers, the interpreter specialising the crash
path's code): in a fresh fork some 1,300 page faults and 5 ms before the
crashed process is released; a worker that handled a crash before has the
pages as its own, and the code warm (tests/bench/bench_sockd.py).  A new worker started while
nothing else happens (the first one, at start) makes them its own at once
(warm_up).  The parsed config is kept (handler's JsonCache: keyed by stat).

core_pattern: unless --no-install, the server sets core_pattern to "@PATH"
("@@PATH" with the request protocol) once it listens, and on SIGTERM/SIGINT
puts back what was there before (the pipe handler after `mcd install --mode
socket`): while the server is not running, crashes go to the pipe handler.
If it dies without restoring (SIGKILL, a crash of its own) the kernel cannot
connect and writes no dump at all (it logs "Unable to connect to coredump
socket"); run it under a supervisor that restarts it (README: a systemd unit
with Restart=always), and a restarted server takes the saved pattern over.
"""

import argparse
import os
import select
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
KILL_WAIT = 0.05  # seconds the server waits for a killed worker to go (else: reaped later)
TAKE_TIMEOUT = 0.5  # seconds an idle worker has to take a crash before it is killed
WORKER_CRASHES = 100  # crashes one worker handles before a new one takes its place
IDLE_RETIRE = 10.0  # seconds an idle worker is kept when another one is idle too
HANDOFF = struct.Struct("=d")  # server -> worker, with the connection's fd: its arrival
FD = struct.Struct("=i")  # one fd in an SCM_RIGHTS message
TAKEN, DONE = b"t", b"d"  # worker -> server: the crash received; the crash handled
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
    """A worker process as the server sees it: the server's end of its control
    socket, how many crashes it was handed, and the crash it has (busy) or
    had: the server's copy of that connection (None once closed), its
    arrival, when it was handed over, whether the worker took it, the
    crashed PID, and when to let go of it."""

    def __init__(self, pid, ctl):
        self.pid = pid
        self.ctl = ctl
        self.crashes = 0
        self.busy = False
        self.conn = None
        self.t0 = self.handed_at = self.release_at = self.kill_at = None
        self.taken = False
        self.spent = False  # to be given no more crashes
        self.peer = None
        self.idle_since = time.monotonic()

    def hand(self, conn, t0):
        """Send the worker the crash on conn (arrived at t0, time.monotonic());
        OSError if it cannot take it."""
        socket.send_fds(self.ctl, [HANDOFF.pack(t0)], [conn.fileno()])
        self.handed_at = time.monotonic()
        self.crashes += 1
        self.busy, self.taken = True, False
        self.conn, self.t0 = conn, t0
        self.peer = peer_pid(conn)

    def set_deadline(self, hard_deadline):
        """hard_deadline (time.monotonic()): the connection shut down then, the
        worker killed WATCHDOG_SLACK later if it is still at it."""
        self.release_at = hard_deadline
        self.kill_at = hard_deadline + WATCHDOG_SLACK

    def next_event(self):
        """When the server must look at this worker next (None: idle)."""
        if not self.busy:
            return None
        if self.conn is None:
            return self.kill_at
        return self.release_at if self.taken else min(self.release_at,
                                                      self.handed_at + TAKE_TIMEOUT)

    def drop_conn(self):
        """Close the server's copy of the crash's connection, shut down first:
        the crashed process is released whoever else still has it."""
        if self.conn is not None:
            shut_down(self.conn)
            self.conn.close()
            self.conn = None


def peer_pid(conn):
    """The crashed PID of a kernel connection (SO_PEERCRED), None if unknown."""
    try:
        return linux.UCRED.unpack(conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                  linux.UCRED.size))[0]
    except OSError:
        return None


def take(ctl):
    """The next crash handed over on ctl: (connection, arrival), or None when
    the server closed ctl (or sent something that is no crash)."""
    while True:
        try:
            msg, anc, _, _ = ctl.recvmsg(HANDOFF.size, socket.CMSG_SPACE(FD.size),
                                         socket.MSG_CMSG_CLOEXEC)
            break
        except InterruptedError:
            continue  # a signal: the message is still to be read
    fds = [FD.unpack_from(data)[0] for level, kind, data in anc
           if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS
           and len(data) >= FD.size]
    if len(msg) != HANDOFF.size or len(fds) != 1:
        for fd in fds:
            os.close(fd)
        return None
    conn = socket.socket(fileno=fds[0])
    conn.setblocking(True)  # reads time out through SO_RCVTIMEO (handle)
    return conn, HANDOFF.unpack(msg)[0]


def work(ctl, cfg_path, cache, request, log):
    """A worker's life: the crashes handed over on ctl, one at a time, each
    acknowledged (TAKEN) as soon as it arrives and reported (DONE) once
    handled, with the pipe handler's hard deadline (SIGALRM, cancelled after
    each crash); it ends when the server closes ctl."""
    while True:
        crash = take(ctl)
        if crash is None:
            return
        ctl.sendall(TAKEN)
        handle(crash[0], cfg_path, cache, request, log, crash[1], hard_deadline=True)
        signal.setitimer(signal.ITIMER_REAL, 0)  # this crash's hard deadline is over
        signal.signal(signal.SIGALRM, signal.SIG_DFL)  # and its handler with it
        ctl.sendall(DONE)


def warm_up():
    """Make the pages the crash path writes this worker's own before a crash
    comes (after fork they are the server's, copied on the first write to
    each): a full collection writes every tracked object's GC header, and
    asking for every tracked object's referents writes their reference counts
    (strings, code, ...).  About 5 MiB and 5 ms, once per worker."""
    import gc
    gc.collect()
    for obj in gc.get_objects():
        gc.get_referents(obj)


class Workers:
    """The worker processes (at most MAX_WORKERS), each handling one crash at
    a time, a crash handed over by the server (the connection's fd on the
    worker's control socket, SCM_RIGHTS) to the idle worker that handled the
    most (the warmest), or to a new worker when none is idle.  Watched: a
    worker that does not take a crash within TAKE_TIMEOUT is killed and the
    crash handed to another; at its hard deadline a crash's connection is
    shut down (its crashed process released), WATCHDOG_SLACK later its worker
    is killed (logged as abandoned); a worker that finishes a crash past its
    hard deadline gets no other, nor one that handled WORKER_CRASHES, nor an
    idle one IDLE_RETIRE after its last crash while a warmer one is idle too
    (after a burst of crashes, one worker stays).  A killed worker that does not go
    (uninterruptible sleep) is reaped when it goes and holds no place.  While
    no crash is being handled and there is no worker, one is started and
    warmed up (the spare), so that the next crash waits for no fork."""

    def __init__(self, sock, cfg_path, cache, request, log):
        self.sock = sock
        self.cfg_path, self.cache, self.request, self.log = cfg_path, cache, request, log
        self.running = {}  # pid -> Worker
        self.gone = []  # pids killed or retired, not reaped yet

    def full(self):
        """No worker is idle and there is no room for another."""
        return len(self.running) >= MAX_WORKERS and all(w.busy or w.spent
                                                        for w in self.running.values())

    def spare(self):
        """A warmed-up worker when there is none (and so no crash being handled),
        with the config parsed (config_deadline: the cache warm)."""
        if not self.running:
            config_deadline(self.cache, self.cfg_path)
            self.fork(warm=True)

    def fork(self, warm=False):
        """A new idle worker; None if it cannot be started."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            pid = os.fork()
        except OSError as e:
            ours.close()
            theirs.close()
            self.log.error("cannot start a worker (%s)" % e.strerror)
            return None
        if pid == 0:  # the worker
            try:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    signal.signal(sig, signal.SIG_DFL)
                self.sock.close()
                ours.close()
                for w in self.running.values():  # other workers' ends and crashes are theirs
                    w.ctl.close()
                    if w.conn is not None:
                        w.conn.close()
                if warm:
                    warm_up()
                work(theirs, self.cfg_path, self.cache, self.request, self.log)
            finally:
                os._exit(0)
        theirs.close()
        ours.setblocking(False)
        w = self.running[pid] = Worker(pid, ours)
        return w

    def hand(self, conn, t0):
        """Hand the crash on conn (arrived at t0, time.monotonic()) to the
        warmest idle worker, or to a new one; handled here if no worker can be
        started (or none takes it)."""
        from .crash import HARD_GRACE
        # first: a worker forked below gets the config parsed
        hard_deadline = t0 + config_deadline(self.cache, self.cfg_path) + HARD_GRACE
        for _ in range(MAX_WORKERS + 1):  # each failed try costs a worker: bounded
            idle = [w for w in self.running.values() if not w.busy and not w.spent]
            w = max(idle, key=lambda w: w.crashes) if idle else self.fork()
            if w is None:
                break
            try:
                w.hand(conn, t0)
            except OSError as e:
                self.log.error("worker %d cannot take a crash (%s): killed"
                               % (w.pid, e.strerror or e))
                self.retire(w, kill=True)
                continue
            w.set_deadline(hard_deadline)
            return
        self.log.error("no worker for a crash: handled by the server itself")
        handle(conn, self.cfg_path, self.cache, self.request, self.log, t0)

    def wait(self, timeout, accepting=True):
        """Wait at most timeout seconds for the workers' messages (handled
        here) or, when accepting and not full(), a connection; True if one may
        be waiting to be accepted."""
        p = select.poll()
        by_fd = {w.ctl.fileno(): w for w in self.running.values()}
        for fd in by_fd:
            p.register(fd, select.POLLIN)
        if accepting and not self.full():
            p.register(self.sock.fileno(), select.POLLIN)
        try:
            events = p.poll(max(0, int(timeout * 1000 + 0.999)))
        except InterruptedError:
            return False  # a signal: look at the stop flag first
        incoming = False
        for fd, _ in events:
            w = by_fd.get(fd)
            if w is None:
                incoming = True
            elif self.running.get(w.pid) is w:
                self.heard(w)
        return incoming

    @staticmethod
    def heard(w):
        """The worker's messages: TAKEN, DONE (the end of its control socket:
        it is ending, reaped by check())."""
        for _ in range(2):  # at most TAKEN and DONE are waiting
            try:
                msg = w.ctl.recv(len(DONE))
            except BlockingIOError:
                return  # nothing more
            except OSError:
                return  # its end is gone: reaped by check()
            if msg == TAKEN:
                w.taken = True
            elif msg == DONE and w.busy:
                # released at its hard deadline already, or enough: no more crashes
                w.spent = w.conn is None or w.crashes >= WORKER_CRASHES
                w.busy = False
                w.idle_since = time.monotonic()
                w.drop_conn()
                return
            else:
                return  # its end is gone: reaped by check()

    def next_event(self):
        """Seconds until the next watchdog action (None: nothing to watch)."""
        times = [t for t in (w.next_event() for w in self.running.values()) if t is not None]
        return max(0.0, min(times) - time.monotonic()) if times else None

    def check(self):
        """Reap the workers that ended; retire those spent and the idle ones
        but the warmest after IDLE_RETIRE; a crash not taken in time (or whose
        worker ended before taking it) handed to another worker; connections
        past their hard deadline shut down, their workers killed
        WATCHDOG_SLACK later."""
        for pid in list(self.gone):
            if self._reaped(pid):
                self.gone.remove(pid)
        now = time.monotonic()
        idle = sorted((w for w in self.running.values() if not w.busy and not w.spent),
                      key=lambda w: w.crashes)
        for w in idle[:-1]:  # the warmest stays
            w.spent = now >= w.idle_since + IDLE_RETIRE
        for pid, w in list(self.running.items()):
            if self.running.get(pid) is not w:
                continue  # retired meanwhile
            if w.busy and not w.taken:
                self.heard(w)  # a TAKEN not read yet counts
            if self._reaped(pid) or w.spent and not w.busy:
                self.retire(w)
            elif not w.busy:
                continue
            elif w.conn is not None and now >= w.release_at:
                w.drop_conn()  # the crashed process goes, whatever the worker does
            elif w.conn is not None and not w.taken and now >= w.handed_at + TAKE_TIMEOUT:
                self.log.error("worker %d did not take a crash within %.2f s: killed, the "
                               "crash handed to another" % (pid, TAKE_TIMEOUT))
                self.retire(w, kill=True)
            elif w.conn is None and now >= w.kill_at:
                self.log.error("%sthe crash's worker %d did not finish by its hard "
                               "deadline: crash abandoned, worker killed, the crashed process "
                               "released" % ("pid %d: " % w.peer if w.peer else "", pid))
                self.retire(w, kill=True)

    def retire(self, w, kill=False):
        """Give a worker no more crashes: its control socket closed (an idle
        worker ends then); kill: end it now (SIGKILL).  A crash it had not
        taken goes to another worker (it is dead, or never read it: one
        reader only), one it had taken is released."""
        end = time.monotonic()
        if kill:
            try:
                os.kill(w.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass  # already gone: reaped all the same
            end += KILL_WAIT
            if w.busy and not w.taken:
                self.heard(w)  # it can say no more: a TAKEN sent before is the last word
        del self.running[w.pid]
        w.ctl.close()
        while not self._reaped(w.pid):
            if time.monotonic() >= end:
                self.gone.append(w.pid)
                break
            time.sleep(0.001)
        if w.busy and not w.taken and w.conn is not None:
            conn, w.conn = w.conn, None
            self.hand(conn, w.t0)
        else:
            w.drop_conn()

    @staticmethod
    def _reaped(pid):
        try:
            got, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return True  # not ours any more: nothing to wait for
        return got == pid

    def finish(self):
        """Retire every worker once it is idle (each busy one at most until it
        is killed); the retired ones are waited for a moment."""
        while self.running:
            for w in [w for w in self.running.values() if not w.busy]:
                self.retire(w)
            wait = self.next_event()
            self.wait(min(0.01, wait) if wait is not None else 0.01, accepting=False)
            self.check()
        end = time.monotonic() + 1
        while self.gone and time.monotonic() < end:
            time.sleep(0.01)
            self.check()


def serve(sock, cfg_path, cache, request, log, stop, max_crashes=None):
    """Handle crashes, each in a worker (Workers), until stop
    (daemon.StopOnSignals) says so (daemon.Stop) or max_crashes were handled;
    the workers still running are waited for (each at most until its hard
    deadline) before it returns."""
    sock.setblocking(False)
    workers = Workers(sock, cfg_path, cache, request, log)
    n = 0
    try:
        while max_crashes is None or n < max_crashes:
            stop.check()
            workers.check()
            workers.spare()
            wait = workers.next_event()
            if not workers.wait(STOP_POLL if wait is None else min(STOP_POLL, wait + 0.001)):
                continue
            try:
                conn, _ = sock.accept()
            except (BlockingIOError, InterruptedError):
                continue  # gone before we took it, or a signal: look at the stop flag again
            workers.hand(conn, time.monotonic())
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
