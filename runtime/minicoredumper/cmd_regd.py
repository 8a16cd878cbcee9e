"""minicoredumper_regd: the registry daemon (docs/FORMATS.md §8).

    minicoredumper_regd [--state PATH] [--prune-interval SECONDS]

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
atomically on every change.  Each change, and every --prune-interval seconds,
drops processes that died without unregistering.  A daemon started after one
was killed (-9) takes over the live entries of the list it left: clients
register once per process and would not tell a new daemon again.  SIGTERM or
SIGINT (or an allowed shutdown request) stops it cleanly and removes the list.
Only one daemon can own the abstract name (per network namespace): a second
one fails to bind with EADDRINUSE and exits with a message saying so.  It
stays in the foreground and logs like the handler (syslog, else /dev/kmsg).
"""

import argparse
import errno
import os
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



class PidList:
    """The registered processes {pid: start time}, in registration order,
    mirrored to the state file."""

    def __init__(self, path):
        self.path = path
        self.entries = {}

    def adopt(self):
        """Take over the live entries of a list a killed daemon left; returns how many."""
        try:
            old = pidlist.load(self.path)
        except pidlist.StateError:
            return 0  # no list or a damaged one: nothing to take over
        for pid, start in old:
            if pidlist.alive(pid, start):
                self.entries[pid] = start
        return len(self.entries)

    def register(self, pid):
        start = pidlist.start_time(pid)
        if start is not None and self.entries.get(pid) != start:
            self.entries.pop(pid, None)  # a reused PID goes to the end, as new
            self.entries[pid] = start

    def unregister(self, pid):
        self.entries.pop(pid, None)

    def prune(self):
        """Drop processes that are gone; returns their PIDs."""
        dead = [pid for pid, start in self.entries.items() if not pidlist.alive(pid, start)]
        for pid in dead:
            del self.entries[pid]
        return dead

    def save(self):
        pidlist.save(self.path, list(self.entries.items()))


def credentials(ancdata):
    """(pid, uid, gid) from an SCM_CREDENTIALS message, or None."""
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS and \
                len(data) >= linux.UCRED.size:
            return linux.UCRED.unpack_from(data)
    return None


def handle(sock, registry, log, data, ancdata, addr):
    """Act on one datagram; raises Stop for an allowed shutdown."""
    creds = credentials(ancdata)
    if len(data) != MESSAGE.size or creds is None:
        return
    pid, uid, _ = creds
    req, value = MESSAGE.unpack(data)
    if req == REGISTER:
        registry.register(pid)
    elif req == UNREGISTER:
        registry.unregister(pid)
    elif req == SHUTDOWN:
        if uid not in (0, os.geteuid()):
            log.warning("shutdown request from pid %d (uid %d) refused" % (pid, uid))
            return
    else:
        return
    if req != SHUTDOWN:
        for gone in registry.prune():
            log.info("pid %d died without unregistering: dropped" % gone)
        registry.save()
    if addr:
        try:
            sock.sendto(MESSAGE.pack(req, ~value & 0xFFFFFFFF), socket.MSG_DONTWAIT, addr)
        except OSError:
            pass  # the client gave up waiting, or its queue is full
    if req == SHUTDOWN:
        raise Stop("shutdown requested by pid %d" % pid)


def serve(sock, registry, log, interval, stop):
    """Serve datagrams until stop (daemon.StopOnSignals) or a shutdown request
    says so (daemon.Stop); dead clients are dropped every interval seconds."""
    sock.settimeout(min(interval, STOP_POLL))
    room = socket.CMSG_SPACE(linux.UCRED.size)
    next_prune = time.monotonic() + interval
    while True:
        stop.check()
        try:
            data, ancdata, _, addr = sock.recvmsg(64, room)
        except socket.timeout:
            if time.monotonic() >= next_prune:
                next_prune = time.monotonic() + interval
                dead = registry.prune()
                for gone in dead:
                    log.info("pid %d died without unregistering: dropped" % gone)
                if dead:
                    registry.save()
            continue
        handle(sock, registry, log, data, ancdata, addr)


def build_parser():
    p = argparse.ArgumentParser(prog="minicoredumper_regd",
                                description="minicoredumper registry daemon (stays in the "
                                            "foreground)")
    p.add_argument("--version", action="version", version="%(prog)s " + __version__)
    p.add_argument("--state", default=pidlist.STATE,
                   help="the PID list file (default %(default)s)")
    p.add_argument("--prune-interval", type=float, default=PRUNE_INTERVAL, metavar="SECONDS",
                   help="how often dead clients are dropped (default %(default)s)")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    log = Logger("minicoredumper_regd")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
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
    registry = PidList(args.state)
    try:
        stop = StopOnSignals()
        os.makedirs(os.path.dirname(args.state) or ".", 0o755, exist_ok=True)
        kept = registry.adopt()
        registry.save()
        log.info("started, list in %s%s" % (args.state, ", %d registered processes taken over "
                                            "from a previous daemon" % kept if kept else ""))
        serve(sock, registry, log, args.prune_interval, stop)
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
