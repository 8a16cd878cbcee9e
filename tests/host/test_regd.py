"""minicoredumper_regd (docs/FORMATS.md §8): the original's wire protocol, PIDs from
SCM_CREDENTIALS only, a list without holes, dead clients pruned, one instance,
clean stop.  Real daemon, real client processes; the list in a scratch file."""

import errno
import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import time

import pytest

from minicoredumper import live_pidlist as pidlist
from minicoredumper.cmd_regd import ADDRESS
from lab import ENV
from lab.regd import (MAGIC, REGISTER, SHUTDOWN, UNREGISTER, Client, Flood,
                      wait_for)

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


FLOOD_N = 2000


def test_a_flood_of_one_user_denies_nobody_else(regd, state):
    """2,000 processes of nobody register at once; meanwhile 10 processes of another
    user register as the library does (a send that never blocks, 100 ms for the
    reply): every one is answered in time, the flood is worked through in seconds,
    and nobody holds more than the per-user limit of the list."""
    from minicoredumper.cmd_regd import MAX_PER_USER
    d = regd.start(state=state)
    others = [Client(regd, uid=1, library=True) for _ in range(10)]
    marker = None
    flood = Flood(regd, FLOOD_N)
    try:
        failed, slowest = 0, 0
        for c in others:
            time.sleep(0.1)
            t = time.monotonic()
            failed += c.send(REGISTER) is None  # not answered within LIBRARY_TIMEOUT
            slowest = max(slowest, time.monotonic() - t)  # and our pipes' round trip
        forked, answered = flood.answered()
        marker = Client(regd)
        assert marker.send(REGISTER) is not None  # after every flood request
        worked_through = time.monotonic() - flood.t0
        assert failed == 0, failed
        assert worked_through < 15, worked_through  # forking 2,000 processes takes some
        pids = d.pids()
        assert {c.pid for c in others} | {marker.pid} <= set(pids)
        assert len(pids) - len(others) - 1 <= MAX_PER_USER
        assert answered <= MAX_PER_USER
        print("flood of %d: forked in %.1f s, worked through in %.1f s, %d answered; "
              "the other user's 10: slowest %.0f ms" % (FLOOD_N, forked, worked_through,
                                                        answered, slowest * 1000))
    finally:
        flood.stop()
        for c in [c for c in others + [marker] if c is not None]:
            c.close()
