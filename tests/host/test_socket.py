"""Socket mode: minicoredumper_sockd on the kernel's coredump socket (Linux 6.16+).

The kernel connects to the server's socket and writes the core there; the
server handles it with the pipe handler's code.  core_pattern goes through
the Crasher (and its lock); the pipe pattern is put back after each test.
"""

import json
import os
import re
import signal
import shutil
import subprocess
import tempfile
import threading
import time

import pytest

from lab.gdb import assert_frames, backtrace, extract_core
from lab.logs import handler_log
from lab.programs import FRAMES
from minicoredumper import corepattern
from minicoredumper import cmd_mcd as mcd
from minicoredumper.cmd_sockd import IDLE_RETIRE, MAX_WORKERS, TAKE_TIMEOUT

pytestmark = pytest.mark.skipif(not corepattern.kernel_has_socket_mode(),
                                reason="coredump socket needs Linux 6.16")

PROTOCOLS = ["plain"] + (["request"] if corepattern.kernel_has_request_protocol() else [])


def published(base, n=1, timeout=10):
    """The published dump directories of base once there are n (the crashed
    process is released before the dump is published)."""
    end = time.monotonic() + timeout
    while True:
        dumps = sorted(d for d in os.listdir(base) if not d.startswith(".")) \
            if os.path.isdir(base) else []
        if len(dumps) >= n or time.monotonic() > end:
            return [os.path.join(base, d) for d in dumps]
        time.sleep(0.02)


def workers(server):
    """The PIDs of the server's worker processes (its children)."""
    with open("/proc/%d/task/%d/children" % (server.pid, server.pid)) as f:
        return [int(pid) for pid in f.read().split()]


def resume(pids):
    """SIGCONT to the processes a test stopped, those still there (the server kills
    a stuck worker: as it should)."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass  # killed by the server


def handled_by(pid, timeout=10):
    """The PID of the process that logged the dump of crashed pid ("dumped ...")."""
    end = time.monotonic() + timeout
    while True:
        for line in handler_log(pid):
            m = re.search(r"minicoredumper_sockd\[(\d+)\]: pid %d: dumped " % pid, line)
            if m:
                return int(m.group(1))
        assert time.monotonic() < end, handler_log(pid)
        time.sleep(0.05)


@pytest.fixture
def server(crasher):
    started = []

    def start(*a, **kw):
        p = crasher.start_socket_server(*a, **kw)
        started.append(p)
        return p
    try:
        yield start
    finally:
        crasher.stop_socket_server()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_socket_mode_backtrace(crasher, programs, server, tmp_path, protocol):
    p = server(protocol)
    for i in range(2):  # the second crash: a warm server, a changed config re-read
        base = crasher.configure({"write_debug_log": True})
        rc, _, pid = crasher.run([programs["crash3"]])
        assert rc == -11
        dumps = published(base)
        assert len(dumps) == 1, (dumps, handler_log(pid))
        d = dumps[0]
        assert d.endswith(".%d" % pid)
        with open(os.path.join(d, "debug.txt")) as f:
            head = f.read(400)
        assert "pid %d " % pid in head and "signal 11 " in head
        assert "pidfd None" not in head  # SO_PEERPIDFD
        out = tmp_path / str(i)
        out.mkdir()
        core = extract_core(d, str(out))
        assert_frames(FRAMES["crash3"], backtrace(programs["crash3"], core))
    assert p.poll() is None


@pytest.mark.skipif(not corepattern.kernel_has_request_protocol(),
                    reason="the request protocol needs Linux 6.17")
def test_request_protocol_rejects_rate_limited(crasher, programs, server):
    server("request")
    base = crasher.configure({})
    cfg = {"base_dir": base, "watch": [{"recept": ""}],
           "rate_limit": {"count": 1, "interval_seconds": 3600}}
    with open(crasher.cfg, "w") as f:
        json.dump(cfg, f)
    pids = []
    for _ in range(3):
        rc, _, pid = crasher.run([programs["crash3"]])
        assert rc == -11
        pids.append(pid)
    dumps = published(base, 1)
    time.sleep(0.3)
    dumps = published(base, 1)
    assert len(dumps) == 1 and dumps[0].endswith(".%d" % pids[0])


def test_server_stopped_falls_back_to_pipe(crasher, programs, server):
    """The server installs "@PATH" itself and puts the pipe pattern back on SIGTERM:
    crashes after that go to the pipe handler."""
    p = server(install=True)
    assert corepattern.read_sysctl("core_pattern").startswith("@")
    base = crasher.configure({})
    crasher.run([programs["crash3"]])
    assert len(published(base)) == 1
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=10) == 0
    assert corepattern.read_sysctl("core_pattern") == crasher.pattern
    base = crasher.configure({})
    rc, _, pid = crasher.run([programs["crash3"]])
    dumps = published(base)
    assert rc == -11 and len(dumps) == 1 and dumps[0].endswith(".%d" % pid)


def test_server_killed_means_no_dump(crasher, programs, server):
    """Documented: a server killed -9 cannot restore the pattern; the kernel cannot
    connect, writes no dump, and the process dies as without a handler."""
    p = server(install=True)
    p.kill()
    p.wait()
    assert corepattern.read_sysctl("core_pattern").startswith("@")
    base = crasher.configure({})
    rc, reaped, _ = crasher.run([programs["crash3"]])
    assert rc == -11 and reaped < 5
    assert published(base, timeout=0.5) == []
    # A restarted server takes over, and restores the pipe pattern when stopped.
    p = server(install=True)
    base = crasher.configure({})
    crasher.run([programs["crash3"]])
    assert len(published(base)) == 1
    p.terminate()
    p.wait(timeout=10)
    assert corepattern.read_sysctl("core_pattern") == crasher.pattern


def test_mcd_install_socket_mode(crasher, programs, tmp_path, monkeypatch, capsys):
    """mcd install --mode socket starts the server; uninstall stops it and restores.
    On a kernel without the socket it installs pipe mode and says so.  mcd runs
    in this process, which holds the core_pattern lock (crasher)."""
    state = tempfile.mkdtemp(prefix="mcdi.")  # short: core_pattern holds 127 characters
    env = {"MCD_STATE_DIR": state}
    before = corepattern.read_sysctl("core_pattern")
    cfg = crasher.cfg
    try:
        p = crasher.mcd("install", "--mode", "socket", "--config", cfg, env=env)
        assert p.returncode == 0, p.stderr
        assert corepattern.read_sysctl("core_pattern").startswith("@") and "sockd" in p.stdout
        base = crasher.configure({})
        crasher.run([programs["crash3"]])
        assert len(published(base)) == 1
    finally:
        p = crasher.mcd("uninstall", env=env)
    assert p.returncode == 0, p.stderr
    assert corepattern.read_sysctl("core_pattern") == before
    assert not os.path.exists(corepattern.SOCKET)
    # An older kernel: pipe mode, with a message.
    monkeypatch.setattr(mcd, "kernel_has_socket_mode", lambda version=None: False)
    monkeypatch.setenv("MCD_STATE_DIR", state + "/2")
    try:
        assert mcd.main(["install", "--mode", "socket", "--config", cfg]) == 0
        assert corepattern.read_sysctl("core_pattern").startswith("|")
        assert "pipe mode instead" in capsys.readouterr().err
    finally:
        assert mcd.main(["uninstall"]) == 0
    assert corepattern.read_sysctl("core_pattern") == before
    shutil.rmtree(state, ignore_errors=True)


def test_setuid_under_suid_dumpable_2(crasher, programs, server, suid_crash3, suid_dumpable,
                                      tmp_path):
    """The dump mode comes from the pidfd (PIDFD_GET_INFO): root-only artefacts."""
    import stat
    suid_dumpable(2)
    server()
    base = crasher.configure({"write_debug_log": True})
    rc, _, pid = crasher.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                              suid_crash3])
    assert rc == -11
    dumps = published(base)
    assert len(dumps) == 1, (dumps, handler_log(pid))
    with open(os.path.join(dumps[0], "debug.txt")) as f:
        assert "dump_mode 2" in f.read(400)
    for top, dirs, files in os.walk(dumps[0]):
        for name in [""] + dirs + files:
            st = os.lstat(os.path.join(top, name))
            assert st.st_uid == 0 and not stat.S_IMODE(st.st_mode) & 0o077
    core = extract_core(dumps[0], str(tmp_path))
    assert_frames(FRAMES["crash3"], backtrace(suid_crash3, core))


def test_dump_mode_of_an_ordinary_crash(crasher, programs, server):
    server()
    base = crasher.configure({"write_debug_log": True})
    crasher.run([programs["crash3"]])
    with open(os.path.join(published(base)[0], "debug.txt")) as f:
        assert "dump_mode 1" in f.read(400)


def test_a_worker_takes_crash_after_crash(crasher, programs, server):
    """Crashes one after the other go to the same worker, warm from the crashes before
    (nothing of the crash path is copied or run cold again: crash to reap as with no
    worker at all; tests/bench/bench_sockd.py).  Before: a new worker forked per crash."""
    p = server()
    base = crasher.configure({})
    pids = []
    for i in range(3):
        rc, _, pid = crasher.run([programs["crash3"]])
        assert rc == -11
        pids.append(pid)
        assert len(published(base, i + 1)) == i + 1
    by = {handled_by(pid) for pid in pids}
    assert len(by) == 1 and by <= set(workers(p)) and p.pid not in by, (by, workers(p))


def test_workers_of_a_burst_go_but_one(crasher, programs, server):
    """Four crashes at once take more than one worker; IDLE_RETIRE after their last
    crash all but the warmest are gone (a burst leaves no lasting cost), and it
    takes the next crash.  Before: a worker per crash, gone after it."""
    p = server()
    base = crasher.configure({})
    crashes = [subprocess.Popen([programs["crash3"]], stdout=subprocess.DEVNULL)
               for _ in range(4)]
    assert [c.wait(timeout=10) for c in crashes] == [-11] * 4
    assert len(published(base, 4)) == 4
    after_burst = workers(p)
    assert len(after_burst) >= 2, after_burst
    time.sleep(IDLE_RETIRE + 1.5)
    left = workers(p)
    assert len(left) == 1 and left[0] in after_burst, (after_burst, left)
    rc, _, pid = crasher.run([programs["crash3"]])
    assert rc == -11 and len(published(base, 5)) == 5
    assert handled_by(pid) == left[0]


def test_stopped_idle_worker_does_not_hold_the_next_crash(crasher, programs, server, tmp_path):
    """A crash handed to a worker that does not take it (stopped here while idle) goes
    to another worker TAKE_TIMEOUT later: dumped, its process reaped well within the
    deadline; the stopped worker is killed."""
    p = server()
    base = crasher.configure({}, settings={"deadline_seconds": 2})
    end = time.monotonic() + 10
    while not workers(p) and time.monotonic() < end:  # the spare, started at once
        time.sleep(0.02)
    idle = workers(p)
    assert idle
    try:
        for pid in idle:
            os.kill(pid, signal.SIGSTOP)
        rc, reaped, pid = crasher.run([programs["crash3"]])
        assert rc == -11 and reaped < 2, reaped
        dumps = published(base)
        assert len(dumps) == 1 and dumps[0].endswith(".%d" % pid), handler_log(pid)
        assert handled_by(pid) not in idle
        core = extract_core(dumps[0], str(tmp_path))
        assert_frames(FRAMES["crash3"], backtrace(programs["crash3"], core))
        assert not set(idle) & set(workers(p))  # killed and reaped
        lines = handler_log()
        assert any("worker %d did not take a crash within %.2f s" % (idle[0], TAKE_TIMEOUT)
                   in l for l in lines)
    finally:
        resume(idle)


def test_at_most_max_workers_and_every_crash_released(crasher, programs, server, tmp_path):
    """Ten crashes at once, every worker stopped as soon as it appears: never more
    than MAX_WORKERS workers, every crashed process released by its hard deadline
    (deadline 1 s + 1 s after the server took it; the last two wait for a place), the
    server goes on and dumps the next crash."""
    p = server()
    base = crasher.configure({}, settings={"deadline_seconds": 1})
    seen, most, done = set(), [0], threading.Event()

    def stop_every_worker():
        while not done.is_set():
            try:
                now = workers(p)
            except OSError:
                return  # the server is gone: the assertions below say so
            most[0] = max(most[0], len(now))
            for pid in set(now) - seen:
                seen.add(pid)
                try:
                    os.kill(pid, signal.SIGSTOP)
                except ProcessLookupError:
                    pass  # gone already
            time.sleep(0.001)
    stopper = threading.Thread(target=stop_every_worker)
    stopper.start()
    try:
        t0 = time.monotonic()
        crashes = [subprocess.Popen([programs["crash3"]], stdout=subprocess.DEVNULL)
                   for _ in range(10)]
        rcs = [c.wait(timeout=15) for c in crashes]
        took = time.monotonic() - t0
    finally:
        done.set()
        stopper.join()
        resume(seen)
    assert rcs == [-11] * 10
    assert most[0] <= MAX_WORKERS, most
    # 8 held to their hard deadline (2 s, and the kill 0.25 s later), then the last two
    assert took < 2 * (1 + 1 + 0.25) + 2 * TAKE_TIMEOUT + 1, took
    assert p.poll() is None
    base = crasher.configure({})
    rc, _, pid = crasher.run([programs["crash3"]])
    dumps = published(base)
    assert rc == -11 and len(dumps) == 1 and dumps[0].endswith(".%d" % pid)
