"""minicoredumper_regd (docs/FORMATS.md §8): the original's wire protocol, PIDs from
SCM_CREDENTIALS only, a list without holes, dead clients pruned, one instance,
clean stop.  Real daemon, real client processes; the list in a scratch file."""

import errno
import json
import os
import random
import select
import signal
import socket
import struct
import subprocess
import sys

import pytest

from minicoredumper import live_pidlist as pidlist
from minicoredumper.cmd_regd import ADDRESS
from lab import ENV
from lab.regd import wait_for

MAGIC = 0x55555555
REGISTER, UNREGISTER, SHUTDOWN = 1, 2, 3


def client_address(pid):
    return ("\0minicoredumper.%d" % pid).encode().ljust(108, b"\0")


def exchange(sock, req, data=MAGIC, timeout=2.0):
    """Send {req, data} to the daemon; the reply (req, data) or None."""
    sock.settimeout(timeout)
    sock.sendto(struct.pack("=II", req, data), ADDRESS)
    try:
        return struct.unpack("=II", sock.recv(64))
    except socket.timeout:
        return None


class Client:
    """A forked process that talks to the daemon as the library does, on command."""

    def __init__(self, lab, bind_as=None, uid=None):
        self.cmd_r, self.cmd_w = os.pipe()
        self.res_r, self.res_w = os.pipe()
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
                reply = exchange(sock, req[0])
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


def in_netns(lab, fn):
    """fn() run in a forked process inside the lab's network namespace; its
    (JSON-able) result."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            lab.netns.enter()
            os.write(w, json.dumps(fn()).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        out = f.read()
    os.waitpid(pid, 0)
    return json.loads(out)


def send_unpadded():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        s.sendto(struct.pack("=II", REGISTER, MAGIC), b"\0minicoredumper")
        return 0
    except OSError as e:
        return e.errno


def bind_daemon_address():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        s.bind(ADDRESS)
        return True
    except OSError:
        return False
    finally:
        s.close()


@pytest.fixture
def state(tmp_path):
    return str(tmp_path / "run" / "regd.pids")


def test_wire_protocol_of_the_original(regd, state):
    d = regd.start(state=state)
    c = Client(regd)
    try:
        assert c.send(REGISTER) == (REGISTER, ~MAGIC & 0xFFFFFFFF)
        assert d.pids() == [c.pid]
        assert os.stat(state).st_mode & 0o777 == 0o644
        assert c.send(UNREGISTER) == (UNREGISTER, ~MAGIC & 0xFFFFFFFF)
        assert d.pids() == []
        assert c.send(7) is None  # unknown requests get no answer
    finally:
        c.close()
    # The unpadded name is another address: nobody listens there.
    assert in_netns(regd, send_unpadded) == errno.ECONNREFUSED


def test_an_app_linked_with_the_library_registers(regd, state, programs):
    d = regd.start(state=state)
    app = regd.app(programs["regloop"], "lib", 0)
    assert d.pids() == [app.pid]  # registered before it printed "ready"


def test_pid_comes_from_the_credentials_not_the_address(regd, state):
    d = regd.start(state=state)
    c = Client(regd, bind_as=1)  # claims to be init in its address
    try:
        assert c.send(REGISTER) is not None
        assert d.pids() == [c.pid]
    finally:
        c.close()


def test_no_holes_after_many_registrations(regd, state):
    regd.start(state=state)
    clients = [Client(regd) for _ in range(24)]
    expected = []  # registration order
    rnd = random.Random(4)
    try:
        for _ in range(300):
            c = rnd.choice(clients)
            if c.pid in expected and rnd.random() < 0.5:
                assert c.send(UNREGISTER)
                expected.remove(c.pid)
            else:
                assert c.send(REGISTER)
                if c.pid not in expected:
                    expected.append(c.pid)
            with open(state) as f:
                text = f.read()
            assert [int(line.split()[0]) for line in text.splitlines()] == expected
            assert "\n\n" not in text and not text.startswith("\n")
        assert pidlist.registered(state) == expected
    finally:
        for c in clients:
            c.close()


def test_dead_clients_are_pruned(regd, state):
    d = regd.start(state=state, prune_interval=0.2)
    a, b = Client(regd), Client(regd)
    try:
        assert a.send(REGISTER) and b.send(REGISTER)
        a.close()  # died without unregistering
        assert b.send(REGISTER)  # any change prunes
        assert d.pids() == [b.pid]
        b.close()
        wait_for(lambda: d.pids() == [], 5, "the periodic prune")
    finally:
        a.close()
        b.close()


def test_readers_skip_dead_and_reused_pids(tmp_path):
    path = str(tmp_path / "regd.pids")
    me = os.getpid()
    start = pidlist.start_time(me)
    dead = subprocess.Popen(["true"])
    dead.wait()
    pidlist.save(path, [(dead.pid, 1), (me, start + 1), (me, start)])
    assert pidlist.load(path) == [(dead.pid, 1), (me, start + 1), (me, start)]
    assert pidlist.registered(path) == [me]
    assert pidlist.registered(path, exclude=(me,)) == []
    os.chmod(path, 0o666)
    with pytest.raises(pidlist.StateError, match="not trusted"):
        pidlist.load(path)
    with pytest.raises(pidlist.StateError):
        pidlist.load(str(tmp_path / "missing"))


def test_a_second_instance_is_refused(regd, state):
    d = regd.start(state=state)
    c = Client(regd)
    try:
        c.send(REGISTER)
        p = subprocess.run(regd.netns.argv([sys.executable, "-m", "minicoredumper.cmd_regd",
                                            "--state", state + ".2"]),
                           env=ENV, capture_output=True, text=True, timeout=20)
        assert p.returncode == 1
        assert "another registry daemon is running" in p.stderr and "EADDRINUSE" in p.stderr
        assert not os.path.exists(state + ".2")
        assert d.pids() == [c.pid] and d.proc.poll() is None
    finally:
        c.close()


def test_sigterm_stops_cleanly_and_removes_the_list(regd, state):
    d = regd.start(state=state)
    c = Client(regd)
    try:
        c.send(REGISTER)
        assert d.kill(signal.SIGTERM) == 0
        assert not os.path.exists(state)
        assert not [n for n in os.listdir(os.path.dirname(state))
                    if n.startswith(os.path.basename(state) + ".tmp")]
        assert in_netns(regd, bind_daemon_address)  # the name is free again
    finally:
        c.close()


def test_shutdown_only_from_root_or_its_own_user(regd, state):
    if os.geteuid() != 0:
        pytest.skip("needs root to send as another user")
    d = regd.start(state=state)
    nobody = Client(regd, uid=65534)
    root = Client(regd)
    try:
        assert nobody.send(SHUTDOWN) is None
        assert d.proc.poll() is None
        assert root.send(SHUTDOWN) == (SHUTDOWN, ~MAGIC & 0xFFFFFFFF)
        assert d.proc.wait(timeout=10) == 0
        assert not os.path.exists(state)
    finally:
        nobody.close()
        root.close()


def test_restart_after_kill_9_keeps_the_live_entries(regd, state):
    d = regd.start(state=state)
    a, b = Client(regd), Client(regd)
    try:
        a.send(REGISTER)
        b.send(REGISTER)
        assert d.kill() == -signal.SIGKILL
        b.close()  # dies while no daemon runs
        assert pidlist.registered(state) == [a.pid]  # the list left behind still reads
        d2 = regd.start(state=state)
        assert d2.pids() == [a.pid]
        assert a.send(UNREGISTER) and d2.pids() == []
    finally:
        a.close()
        b.close()
