"""Run the registry daemon and registered apps, for the tests and the benchmarks.

The abstract socket name "\0minicoredumper" exists once per network
namespace: a Netns keeps a private one alive, and its daemons and apps run
in it (nsenter), so a test never meets a daemon of the machine or of another
test run, and one it leaves behind disturbs nobody.  The registry's list is a
file, shared as usual: the handler and the trigger read it from outside.
Apps are tests/programs/regloop.c instances (see there); a Client talks the
protocol by hand, on command; a Flood is one user's registrations by the
thousand.  Needs root.
"""

import ctypes
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import time

from lab import ENV
from minicoredumper import live_pidlist as pidlist
from minicoredumper.cmd_regd import ADDRESS

MAGIC = 0x55555555  # what the library sends as data
REGISTER, UNREGISTER, SHUTDOWN = 1, 2, 3
LIBRARY_TIMEOUT = 0.1  # the library's wait for a reply (libminicoredumper.c, regd_send)
NOBODY = 65534

CLONE_NEWNET = 0x40000000


class Netns:
    """A private network namespace, alive until close() (or until we die)."""

    def __init__(self):
        self.holder = subprocess.Popen(["unshare", "--net", "cat"], stdin=subprocess.PIPE,
                                       stdout=subprocess.DEVNULL)
        self.path = "/proc/%d/ns/net" % self.holder.pid
        mine = os.readlink("/proc/self/ns/net")
        wait_for(lambda: _readlink(self.path) not in (None, mine), 10, "unshare --net")

    def argv(self, argv):
        return ["nsenter", "--net=" + self.path, "--"] + list(argv)

    def enter(self):
        """Move the calling (forked) process into the namespace."""
        fd = os.open(self.path, os.O_RDONLY)
        if ctypes.CDLL(None, use_errno=True).setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns")
        os.close(fd)

    def close(self):
        self.holder.stdin.close()
        self.holder.wait()


def _readlink(path):
    try:
        return os.readlink(path)
    except OSError:
        return None


def wait_for(check, timeout=10, what="condition"):
    end = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError("timed out waiting for %s" % what)
        time.sleep(0.01)


class Daemon:
    """minicoredumper_regd of this checkout, as a child process."""

    def __init__(self, netns, state=pidlist.STATE, prune_interval=None):
        self.netns = netns
        self.state = state
        self.prune_interval = prune_interval
        self.proc = None

    def argv(self):
        argv = [sys.executable, "-m", "minicoredumper.cmd_regd", "--state", self.state]
        if self.prune_interval is not None:
            argv += ["--prune-interval", str(self.prune_interval)]
        return self.netns.argv(argv)

    def start(self):
        """Start it and wait until it has (re)written its list."""
        before = _inode(self.state)
        self.proc = subprocess.Popen(self.argv(), env=ENV, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        end = time.monotonic() + 10
        while _inode(self.state) in (None, before):
            if self.proc.poll() is not None or time.monotonic() > end:
                out, err = self.proc.communicate(timeout=5)
                raise RuntimeError("minicoredumper_regd did not start (%s): %s"
                                   % (self.proc.returncode, err.strip()))
            time.sleep(0.01)
        return self

    def kill(self, sig=signal.SIGKILL):
        """Send sig; returns the exit status."""
        self.proc.send_signal(sig)
        rc = self.proc.wait(timeout=10)
        self.proc.stdout.close()
        self.proc.stderr.close()
        return rc

    def stop(self):
        """Stop it if it runs (SIGTERM, then SIGKILL)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None:
            self.proc.stdout.close()
            self.proc.stderr.close()
        self.proc = None

    def pids(self):
        try:
            return [pid for pid, _ in pidlist.load(self.state)]
        except pidlist.StateError:
            return []

    def wait_registered(self, pids, timeout=10):
        wait_for(lambda: set(pids) <= set(self.pids()), timeout,
                 "%s in %s" % (sorted(pids), self.state))


def _inode(path):
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


class App:
    """A running regloop: registered data, a counter that keeps going."""

    def __init__(self, netns, exe, name, threads=2):
        self.name = name
        self.proc = subprocess.Popen(netns.argv([exe, name, str(threads)]),
                                     stdout=subprocess.PIPE)
        self.pid = self.proc.pid
        try:
            line = self.readline()
            assert line.startswith(b"ready 0x"), line
        except BaseException:
            self.stop()
            raise
        self.counter_at = int(line.split()[1], 16)

    def readline(self, timeout=10):
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        assert ready, "%s printed nothing" % self.name
        return self.proc.stdout.readline()

    def counter(self):
        fd = os.open("/proc/%d/mem" % self.pid, os.O_RDONLY)
        try:
            return int.from_bytes(os.pread(fd, 8, self.counter_at), sys.byteorder)
        finally:
            os.close(fd)

    def states(self):
        """{tid: (state letter, TracerPid)} of every thread."""
        out = {}
        for tid in os.listdir("/proc/%d/task" % self.pid):
            fields = {}
            with open("/proc/%d/task/%s/status" % (self.pid, tid)) as f:
                for line in f:
                    key, _, value = line.partition(":")
                    fields[key] = value.strip()
            out[int(tid)] = (fields["State"][0], int(fields["TracerPid"]))
        return out

    def reregister(self):
        """Unregister everything and register again (SIGUSR1)."""
        self.proc.send_signal(signal.SIGUSR1)
        assert self.readline() == b"again\n"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()


def client_address(pid):
    return ("\0minicoredumper.%d" % pid).encode().ljust(108, b"\0")


def exchange(sock, req, data=MAGIC, timeout=2.0, flags=0):
    """Send {req, data} to the daemon; the reply (req, data) or None (also when
    the send fails: with MSG_DONTWAIT, a full queue)."""
    sock.settimeout(timeout)
    try:
        sock.sendto(struct.pack("=II", req, data), flags, ADDRESS)
        return struct.unpack("=II", sock.recv(64))
    except OSError:  # socket.timeout, BlockingIOError (EAGAIN) and the like
        return None


class Client:
    """A forked process that talks to the daemon on command, as uid (None: ours).
    library: as libminicoredumper does (a send that never blocks, LIBRARY_TIMEOUT
    for the reply); else a blocking send and 2 s."""

    def __init__(self, lab, bind_as=None, uid=None, library=False):
        self.cmd_r, self.cmd_w = os.pipe()
        self.res_r, self.res_w = os.pipe()
        self.library = library
        self.pid = os.fork()
        if self.pid == 0:
            self._child(lab.netns, bind_as, uid)
        os.close(self.cmd_r)
        os.close(self.res_w)

    def _child(self, netns, bind_as, uid):
        code = 0
        try:
            # Only our own pipe ends: a brother's command pipe held open here
            # would never see its end of file.
            for fd in map(int, os.listdir("/proc/self/fd")):
                if fd > 2 and fd not in (self.cmd_r, self.res_w):
                    try:
                        os.close(fd)
                    except OSError:
                        pass
            netns.enter()
            if uid is not None:
                os.setuid(uid)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.bind(client_address(bind_as or os.getpid()))
            while select.select([self.cmd_r], [], [], 60)[0]:  # never hang a test run
                req = os.read(self.cmd_r, 1)
                if not req:
                    break
                reply = exchange(sock, req[0], timeout=LIBRARY_TIMEOUT, flags=socket.MSG_DONTWAIT) \
                    if self.library else exchange(sock, req[0])
                os.write(self.res_w, b"-" if reply is None else struct.pack("=II", *reply))
        except BaseException:
            code = 1
        os._exit(code)

    def send(self, req):
        """The daemon's reply (req, data), or None when it did not answer."""
        os.write(self.cmd_w, bytes([req]))
        out = os.read(self.res_r, 8)
        return None if out == b"-" else struct.unpack("=II", out)

    def close(self):
        """Exit without unregistering (again: nothing)."""
        if self.cmd_w is not None:
            os.close(self.cmd_w)
            os.close(self.res_r)
            os.waitpid(self.pid, 0)
            self.cmd_w = None


# One user's flood, run as that user: argv[1] processes, each registering once (a
# blocking send: it waits for room in the daemon's queue) and staying alive until the
# flood ends.  Prints "forked" once all are started, then how many got a reply within
# the library's wait, then waits for its stdin to close.
FLOOD = r"""
import os, socket, struct, sys
n, timeout = int(sys.argv[1]), float(sys.argv[2])
daemon = b"\0minicoredumper".ljust(108, b"\0")
hold_r, hold_w = os.pipe()
res_r, res_w = os.pipe()
for _ in range(n):
    if os.fork() == 0:
        os.close(hold_w)
        os.close(res_r)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.bind(("\0minicoredumper.%d" % os.getpid()).encode().ljust(108, b"\0"))
        s.sendto(struct.pack("=II", 1, 0x55555555), daemon)
        s.settimeout(timeout)
        try:
            ok = len(s.recv(64)) == 8
        except OSError:
            ok = False
        os.write(res_w, b"+" if ok else b"-")
        os.read(hold_r, 1)
        os._exit(0)
os.close(res_w)
print("forked", flush=True)
got = b""
while len(got) < n:
    got += os.read(res_r, n)
print(got.count(b"+"), flush=True)
sys.stdin.read()
"""


class Flood:
    """n processes of uid registering at once (FLOOD), in the lab's namespace."""

    def __init__(self, lab, n, uid=NOBODY, timeout=LIBRARY_TIMEOUT):
        argv = ["setpriv", "--reuid=%d" % uid, "--regid=%d" % uid, "--clear-groups",
                sys.executable, "-c", FLOOD, str(n), str(timeout)]
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(lab.netns.argv(argv), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)

    def answered(self):
        """(seconds until all were forked, how many got a reply in time); waits for both."""
        assert self.proc.stdout.readline() == "forked\n"
        forked = time.monotonic() - self.t0
        return forked, int(self.proc.stdout.readline())

    def stop(self):
        """End the flood: its processes exit (without unregistering)."""
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=60)
        self.proc.stdout.close()


class Lab:
    """The daemons and apps of one test, in their own network namespace."""

    def __init__(self):
        self.netns = Netns()
        self.daemons = []
        self.apps = []

    def start(self, **kw):
        """A started Daemon (kw: state, prune_interval)."""
        self.daemons.append(Daemon(self.netns, **kw))
        return self.daemons[-1].start()

    def app(self, exe, name, threads=2):
        self.apps.append(App(self.netns, exe, name, threads))
        return self.apps[-1]

    def close(self):
        for a in self.apps:
            a.stop()
        for d in self.daemons:
            d.stop()
        self.netns.close()
