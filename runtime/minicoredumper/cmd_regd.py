"""minicoredumper_regd: the registry daemon (docs/FORMATS.md §8).

    minicoredumper_regd [--state PATH] [--prune-interval SECONDS]
                        [--max-per-user N] [--max-rate N]

Applications linked with libminicoredumper (ours or the original's) tell it
that they registered dump data; the handler and minicoredumper_trigger read
the resulting PID list to live-dump them.  The protocol is the original's:
an AF_UNIX datagram socket bound to the abstract address "\\0minicoredumper"
zero-padded to the whole 108-byte sun_path; 8-byte messages in native byte
order {u32 req; u32 data}, req 1 register, 2 unregister, 3 shutdown; the reply
{req, ~data} goes back to the sender's address ("\\0minicoredumper.<pid>",
padded).  The sender's PID comes from SCM_CREDENTIALS (SO_PASSCRED), never
from the message or its address.  Shutdown is accepted only from root or the
daemon's own user; a request of any other kind gets no reply.

The list is the file pidlist.STATE (format in live_pidlist.py), rewritten
atomically after every change.  Datagrams are taken in batches: what is
queued (at most BATCH) is read at once, the list is rewritten once for the
whole batch, then every request of it is answered, so a reply still means
the list on disk says so, and the work per datagram does not grow with the
list.  Processes that died without unregistering are dropped by every batch
of registrations (PRUNE_STEP of them, in turn) and every --prune-interval
seconds (all).

One user cannot deny registration to the others.  The daemon runs at
niceness NICE (when started at 0); the socket's queue holds
QUEUE requests (not the kernel's default 10, which a flood of blocked senders
keeps full, so that a library's send, which never waits, fails); a user
other than root may have at most --max-per-user processes registered
(default MAX_PER_USER) and send at most --max-rate requests per second (a
bucket of that many that refills at that rate; default MAX_RATE); a request
beyond either is not acted on and gets no reply (the library's registration
then fails, as without a daemon), and is logged once per user per prune
interval.

A daemon started after one was killed (-9) takes over the live entries of the list it left: clients
register once per process and would not tell a new daemon again.  SIGTERM or
SIGINT (or an allowed shutdown request) stops it cleanly and removes the list.
Only one daemon can own the abstract name (per network namespace): a second
one fails to bind with EADDRINUSE and exits with a message saying so.  It
stays in the foreground and logs like the handler (syslog, else /dev/kmsg).
"""

import argparse
import errno
import os
import select
import socket
import struct
import sys
import time

from . import __version__, live_pidlist as pidlist
from . import linux
from .daemon import STOP_POLL, Stop, StopOnSignals
from .log import Logger

SUN_PATH = 108
ADDRESS = b"\0minicoredumper".ljust(SUN_PATH, b"\0")
MESSAGE = struct.Struct("=II")
REGISTER, UNREGISTER, SHUTDOWN = 1, 2, 3
PRUNE_INTERVAL = 10.0
BATCH = 256  # datagrams read before the list is written and they are answered
NICE = -10  # the daemon's niceness when started with the default 0: its answers are waited for
QUEUE = 1024  # datagrams the daemon's socket holds (the kernel's default: 10)
QLEN_SYSCTL = "/proc/sys/net/unix/max_dgram_qlen"
PRUNE_STEP = 32  # processes a batch looks at for prune (the interval's prune: all)
MAX_PER_USER = 256  # registered processes of one user other than root
MAX_RATE = 200  # requests per second of one user other than root (and the burst)


class PidList:
    """The registered processes {pid: start time}, in registration order,
    mirrored to the state file, and the user of each {pid: uid}."""

    def __init__(self, path):
        self.path = path
        self.entries = {}
        self.owners = {}
        self.per_user = {}  # uid -> how many of entries are theirs
        self.cursor = 0  # where prune(most) goes on

    def adopt(self):
        """Take over the live entries of a list a killed daemon left; returns how many."""
        try:
            old = pidlist.load(self.path)
        except pidlist.StateError:
            return 0  # no list or a damaged one: nothing to take over
        for pid, start in old:
            if pidlist.alive(pid, start):
                try:
                    uid = os.stat("/proc/%d" % pid).st_uid
                except OSError:
                    continue  # gone meanwhile
                self._add(pid, start, uid)
        return len(self.entries)

    def count(self, uid):
        return self.per_user.get(uid, 0)

    def register(self, pid, uid):
        """True if the list changed (a new process, or a reused PID moved to the end)."""
        start = pidlist.start_time(pid)
        if start is None or self.entries.get(pid) == start:
            return False
        self.unregister(pid)  # a reused PID goes to the end, as new
        self._add(pid, start, uid)
        return True

    def _add(self, pid, start, uid):
        self.entries[pid] = start
        self.owners[pid] = uid
        self.per_user[uid] = self.per_user.get(uid, 0) + 1

    def unregister(self, pid):
        """True if pid was registered."""
        if self.entries.pop(pid, None) is None:
            return False
        uid = self.owners.pop(pid)
        self.per_user[uid] -= 1
        if not self.per_user[uid]:
            del self.per_user[uid]
        return True

    def prune(self, most=None):
        """Drop processes that are gone; returns their PIDs.  most: look at no
        more than this many, those looked at longest ago (a round robin),
        else at all."""
        pids = list(self.entries)
        if most is not None and len(pids) > most:
            at = self.cursor % len(pids)
            pids = (pids[at:] + pids[:at])[:most]
            self.cursor = at + most
        dead = [pid for pid in pids if not pidlist.alive(pid, self.entries[pid])]
        for pid in dead:
            self.unregister(pid)
        return dead

    def save(self):
        pidlist.save(self.path, list(self.entries.items()))


class Limits:
    """Per user (other than root and the daemon's own): at most max_per_user
    registered processes, at most max_rate requests per second (a token
    bucket holding max_rate).  0 turns a limit off.  What was refused is
    logged once per user per interval (report())."""

    def __init__(self, max_per_user=MAX_PER_USER, max_rate=MAX_RATE):
        self.max_per_user = max_per_user
        self.max_rate = max_rate
        self.buckets = {}  # uid -> (tokens, time.monotonic() of the last refill)
        self.refused = {}  # uid -> [requests over the rate, registrations over the count]
        self.free = (0, os.geteuid())

    def allow(self, uid, now):
        """True if uid may send one more request now (takes one token)."""
        if not self.max_rate or uid in self.free:
            return True
        tokens, then = self.buckets.get(uid, (self.max_rate, now))
        tokens = min(self.max_rate, tokens + (now - then) * self.max_rate)
        if tokens < 1:
            self.buckets[uid] = (tokens, now)
            self.refused.setdefault(uid, [0, 0])[0] += 1
            return False
        self.buckets[uid] = (tokens - 1, now)
        return True

    def may_register(self, registry, pid, uid):
        """True unless uid is at its count (a PID already registered always may)."""
        if not self.max_per_user or uid in self.free or pid in registry.entries or \
                registry.count(uid) < self.max_per_user:
            return True
        self.refused.setdefault(uid, [0, 0])[1] += 1
        return False

    def report(self, log, now):
        """Log what was refused since the last report; forget buckets that are full."""
        for uid, (rate, count) in sorted(self.refused.items()):
            why = []
            if rate:
                why.append("%d request(s) over %d per second" % (rate, self.max_rate))
            if count:
                why.append("%d registration(s) over %d processes" % (count, self.max_per_user))
            log.warning("uid %d: %s refused (no reply)" % (uid, " and ".join(why)))
        self.refused.clear()
        for uid, (tokens, then) in list(self.buckets.items()):
            if tokens + (now - then) * self.max_rate >= self.max_rate:
                del self.buckets[uid]


def credentials(ancdata):
    """(pid, uid, gid) from an SCM_CREDENTIALS message, or None."""
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS and \
                len(data) >= linux.UCRED.size:
            return linux.UCRED.unpack_from(data)
    return None


def handle(registry, limits, log, data, ancdata, now):
    """Act on one datagram in memory; returns (req, value, pid, changed: the
    list changed) for a request to answer, else None.  A refused shutdown is
    logged here."""
    creds = credentials(ancdata)
    if len(data) != MESSAGE.size or creds is None:
        return None
    pid, uid, _ = creds
    req, value = MESSAGE.unpack(data)
    if req not in (REGISTER, UNREGISTER, SHUTDOWN) or not limits.allow(uid, now):
        return None
    changed = False
    if req == REGISTER:
        if not limits.may_register(registry, pid, uid):
            return None
        changed = registry.register(pid, uid)
    elif req == UNREGISTER:
        changed = registry.unregister(pid)
    elif uid not in (0, os.geteuid()):
        log.warning("shutdown request from pid %d (uid %d) refused" % (pid, uid))
        return None
    return req, value, pid, changed


def serve_batch(sock, registry, limits, log, first):
    """Act on the datagram first (recvmsg's result) and on what else is queued
    (at most BATCH in all); then, if any was a register or unregister, prune
    (PRUNE_STEP processes of the list) and rewrite the list if it changed;
    then answer.  Raises Stop for an allowed shutdown (after the
    answers)."""
    room = socket.CMSG_SPACE(linux.UCRED.size)
    answers, acted, changed, stop = [], False, False, None
    now = time.monotonic()
    got = first
    for _ in range(BATCH):
        data, ancdata, _, addr = got
        done = handle(registry, limits, log, data, ancdata, now)
        if done is not None:
            req, value, pid, change = done
            changed |= change
            acted |= req != SHUTDOWN
            if addr:
                answers.append((MESSAGE.pack(req, ~value & 0xFFFFFFFF), addr))
            if req == SHUTDOWN:
                stop = Stop("shutdown requested by pid %d" % pid)
                break
        try:
            got = sock.recvmsg(64, room)
        except (BlockingIOError, InterruptedError):
            break  # nothing more queued
    if acted:
        dead = registry.prune(PRUNE_STEP)
        for gone in dead:
            log.info("pid %d died without unregistering: dropped" % gone)
        if changed or dead:
            registry.save()
    for reply, addr in answers:
        try:
            sock.sendto(reply, addr)
        except OSError:
            pass  # the client gave up waiting, or its queue is full
    if stop is not None:
        raise stop


def serve(sock, registry, log, interval, stop, limits=None):
    """Serve datagrams until stop (daemon.StopOnSignals) or a shutdown request
    says so (daemon.Stop); dead clients are dropped, and refusals of the
    per-user limits (Limits) logged, every interval seconds."""
    limits = limits or Limits()
    sock.setblocking(False)  # waits are in select(), reads and replies never block
    room = socket.CMSG_SPACE(linux.UCRED.size)
    next_prune = time.monotonic() + interval
    while True:
        stop.check()
        now = time.monotonic()
        if now >= next_prune:
            next_prune = now + interval
            limits.report(log, now)
            dead = registry.prune()
            for gone in dead:
                log.info("pid %d died without unregistering: dropped" % gone)
            if dead:
                registry.save()
        if not select.select([sock], [], [], min(interval, STOP_POLL))[0]:
            continue
        try:
            got = sock.recvmsg(64, room)
        except (BlockingIOError, InterruptedError):
            continue  # taken back meanwhile: nothing to do
        serve_batch(sock, registry, limits, log, got)


def build_parser():
    p = argparse.ArgumentParser(prog="minicoredumper_regd",
                                description="minicoredumper registry daemon (stays in the "
                                            "foreground)")
    p.add_argument("--version", action="version", version="%(prog)s " + __version__)
    p.add_argument("--state", default=pidlist.STATE,
                   help="the PID list file (default %(default)s)")
    p.add_argument("--prune-interval", type=float, default=PRUNE_INTERVAL, metavar="SECONDS",
                   help="how often dead clients are dropped (default %(default)s)")
    p.add_argument("--max-per-user", type=int, default=MAX_PER_USER, metavar="N",
                   help="registered processes of one user other than root (0: no limit; "
                        "default %(default)s)")
    p.add_argument("--max-rate", type=int, default=MAX_RATE, metavar="N",
                   help="requests per second of one user other than root (0: no limit; "
                        "default %(default)s)")
    return p


def datagram_socket(queue, log):
    """An AF_UNIX datagram socket whose queue holds `queue` datagrams.  The kernel
    gives a socket the queue length net.unix.max_dgram_qlen says when it is
    created (10 by default): that sysctl is raised for that moment and put back.
    Where it cannot be written, the socket keeps the system's (logged)."""
    try:
        with open(QLEN_SYSCTL) as f:
            old = f.read().strip()
    except OSError:
        old = None  # no such sysctl here: nothing to raise
    if old is None or not old.isdigit() or int(old) >= queue:
        return socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        with open(QLEN_SYSCTL, "w") as f:
            f.write(str(queue))
    except OSError as e:
        log.warning("%s cannot be raised to %d (%s): the daemon's queue holds %s requests, "
                    "which a flood fills" % (QLEN_SYSCTL, queue, e.strerror or e, old))
        return socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        return socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    finally:
        with open(QLEN_SYSCTL, "w") as f:
            f.write(old)


def raise_priority(log):
    """Run at NICE when started at the default niceness (0), so that a flood of
    another user's processes competing for the CPUs does not delay the answers
    that libraries wait for (100 ms); a niceness set by whoever started the
    daemon (systemd's Nice=) is left alone."""
    try:
        if os.getpriority(os.PRIO_PROCESS, 0) == 0:
            os.setpriority(os.PRIO_PROCESS, 0, NICE)
    except OSError as e:
        log.info("niceness not raised to %d: %s" % (NICE, e.strerror or e))


def main(argv=None):
    args = build_parser().parse_args(argv)
    log = Logger("minicoredumper_regd")
    sock = datagram_socket(QUEUE, log)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    try:
        sock.bind(ADDRESS)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            msg = ("another registry daemon is running: the abstract socket address "
                   "@minicoredumper is taken (bind: EADDRINUSE); not starting")
        else:
            msg = "cannot bind the abstract socket address @minicoredumper: %s" % e.strerror
        print("minicoredumper_regd: " + msg, file=sys.stderr)
        log.error(msg)
        return 1
    raise_priority(log)
    registry = PidList(args.state)
    try:
        stop = StopOnSignals()
        os.makedirs(os.path.dirname(args.state) or ".", 0o755, exist_ok=True)
        kept = registry.adopt()
        registry.save()
        log.info("started, list in %s%s" % (args.state, ", %d registered processes taken over "
                                            "from a previous daemon" % kept if kept else ""))
        serve(sock, registry, log, args.prune_interval, stop,
              Limits(max(0, args.max_per_user), max(0, args.max_rate)))
    except Stop as e:
        pidlist.remove(args.state)
        log.info("stopped (%s), list removed" % e)
        return 0
    except OSError as e:
        msg = "%s: %s" % (args.state, e.strerror or e)
        print("minicoredumper_regd: " + msg, file=sys.stderr)
        log.error(msg)
        return 1
    finally:
        sock.close()


if __name__ == "__main__":
    raise SystemExit(main())
