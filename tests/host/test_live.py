"""Live dumps (docs/FORMATS.md §8): registered apps stopped, dumped and let go, on a crash
(live_dumper) and on demand (minicoredumper_trigger).  Real kernel, real
registry daemon, apps linked with our libminicoredumper (regloop.c)."""

import os
import signal
import subprocess
import sys
import time

from minicoredumper import publish_manifest as manifest
from minicoredumper import live_pidlist as pidlist
from lab import ENV
from lab.logs import handler_log
from lab.regd import wait_for

FIRST_LINE = b"name=%s count="


def run_trigger(directory, scope, state):
    """(exit status, output) of minicoredumper_trigger with a config that watches all."""
    cfg = os.path.join(os.path.dirname(state), "all.cfg.json")
    with open(cfg, "w") as f:
        f.write('{"watch": [{}]}')
    p = subprocess.run([sys.executable, "-m", "minicoredumper.cmd_trigger", "--state", state,
                        "--config", cfg, str(directory), str(scope)],
                       env=ENV, capture_output=True, text=True, timeout=30)
    return p.returncode, p.stdout + p.stderr


def trigger(directory, scope, state):
    rc, out = run_trigger(directory, scope, state)
    assert rc == 0, out
    return out


def files(d):
    return sorted(os.path.relpath(os.path.join(r, f), d) for r, _, fs in os.walk(d) for f in fs)


def check_live_dump(d, app):
    """dumps/PID/ of a live-dumped regloop: its files and a consistent snapshot."""
    pd = os.path.join(d, "dumps", str(app.pid))
    assert files(pd) == ["core-data", "counter.bin", "secret.bin", "status.txt",
                         "symbol.map"]
    count = int.from_bytes(open(pd + "/counter.bin", "rb").read(), sys.byteorder)
    # status.txt was formatted from the same stopped process: the same count.
    assert open(pd + "/status.txt", "rb").read() == FIRST_LINE % app.name.encode() + \
        b"%d\n" % count
    assert open(pd + "/core-data", "rb").read() == (0xc0ffee).to_bytes(4, sys.byteorder)
    lines = [line.split() for line in open(pd + "/symbol.map").read().splitlines()]
    assert [(l[0], l[2], l[3], l[4]) for l in lines] == [
        ("0", "8", "D", "counter.bin"), ("0", "a", "D", "secret.bin"),
        ("0", "4", "D", "core-data")]
    assert int(lines[0][1], 16) == app.counter_at
    return count


def assert_running(app, since):
    """Not stopped, not traced, and its counter moves on from `since`."""
    for tid, (state, tracer) in app.states().items():
        assert state not in "Tt" and tracer == 0, (app.name, tid, state, tracer)
    wait_for(lambda: app.counter() > since, 5, "%s to make progress" % app.name)


def test_a_crash_live_dumps_the_other_registered_apps(crasher, regd, programs):
    regd.start()
    a, b, c = (regd.app(programs["regloop"], n) for n in "abc")
    regd.daemons[0].wait_registered([a.pid, b.pid, c.pid])
    base = crasher.configure({"live_dumper": True})
    c.proc.send_signal(signal.SIGSEGV)
    c.proc.wait(timeout=20)
    crasher.wait_idle()
    d = crasher.dump_of(base, c.pid)
    counts = {app: check_live_dump(d, app) for app in (a, b)}
    # The crashed one's own data, by the crash path: its unnamed data is in the core.
    assert files(os.path.join(d, "dumps", str(c.pid))) == ["counter.bin", "secret.bin",
                                                          "status.txt"]
    assert open(os.path.join(d, "dumps", str(c.pid), "status.txt"), "rb").read().startswith(
        FIRST_LINE % b"c")
    assert manifest.verify(d) == []  # the live dumps are in the integrity record
    for app in (a, b):
        assert_running(app, counts[app])
    log = handler_log(c.pid)
    assert any("pid %d: live dump of %d (regloop): 5 files" % (c.pid, a.pid) in l
               for l in log), log


def test_killed_daemon_restarted(regd, programs, tmp_path):
    state = str(tmp_path / "regd.pids")
    d = regd.start(state=state)
    old = regd.app(programs["regloop"], "old")
    again = regd.app(programs["regloop"], "again")
    d.wait_registered([old.pid, again.pid])
    d.kill()
    # With the daemon dead its last list still reads, and the trigger uses it.
    assert "live dump of %d" % old.pid in trigger(tmp_path / "x", 10, state=state)
    d2 = regd.start(state=state)
    assert d2.pids() == [old.pid, again.pid]  # taken over from the killed daemon
    new = regd.app(programs["regloop"], "new")
    again.reregister()  # unregisters and registers again, with the new daemon
    d2.wait_registered([new.pid])
    assert d2.pids() == [old.pid, new.pid, again.pid]
    out = tmp_path / "y"
    trigger(out, 10, state=state)
    for app in (old, again, new):
        assert_running(app, check_live_dump_scope(out, app, 10))


def check_live_dump_scope(d, app, scope):
    pd = os.path.join(d, "dumps", str(app.pid))
    expect = ["core-data", "counter.bin", "status.txt", "symbol.map"]
    if scope >= 100:
        expect.append("secret.bin")
    assert files(pd) == sorted(expect)
    return int.from_bytes(open(pd + "/counter.bin", "rb").read(), sys.byteorder)


def test_trigger_on_demand_with_scope(regd, programs, tmp_path):
    state = str(tmp_path / "regd.pids")
    d = regd.start(state=state)
    apps = [regd.app(programs["regloop"], n, threads=4) for n in ("x", "y")]
    d.wait_registered([a.pid for a in apps])
    low, high = tmp_path / "new" / "low", tmp_path / "high"  # low's parent is missing
    out = trigger(low, 10, state=state)
    trigger(high, "0x64", state=state)
    for app in apps:
        assert "live dump of %d (regloop): 4 files" % app.pid in out
        check_live_dump_scope(low, app, 10)
        assert_running(app, check_live_dump_scope(high, app, 100))
    assert os.stat(low).st_mode & 0o777 == 0o700
    rc, out = run_trigger(tmp_path / "z", 1, state + ".none")
    assert rc == 1 and "is minicoredumper_regd running?" in out


def test_traced_or_stopped_apps_are_skipped_not_hung(regd, programs, tmp_path):
    state = str(tmp_path / "regd.pids")
    d = regd.start(state=state)
    app = regd.app(programs["regloop"], "t")
    d.wait_registered([app.pid])
    # gdb attached: the app sits stopped under its tracer until we let gdb go.
    flag = tmp_path / "flag"
    gdb = subprocess.Popen(["gdb", "-q", "-nx", "-batch", "-p", str(app.pid), "-ex",
                            "shell while [ ! -e %s ]; do sleep 0.02; done" % flag],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: all(t for _, t in app.states().values()), 30, "gdb to attach")
        t0 = time.monotonic()
        out = trigger(tmp_path / "g", 10, state=state)
        assert time.monotonic() - t0 < 10
        assert "live dump of %d skipped: " % app.pid in out, out
        assert not os.path.exists(tmp_path / "g" / "dumps")
    finally:
        flag.touch()
        gdb.wait(timeout=30)
    assert_running(app, app.counter())
    # A tracer that keeps it running (PTRACE_SEIZE): skipped as already traced.
    seizer = subprocess.Popen([sys.executable, "-c", SEIZER, str(app.pid)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert seizer.stdout.readline() == b"seized\n"
        out = trigger(tmp_path / "s", 10, state=state)
        assert "live dump of %d skipped: already traced by pid %d" % (app.pid, seizer.pid) \
            in out, out
    finally:
        seizer.stdin.close()
        seizer.wait(timeout=10)
        seizer.stdout.close()
    assert_running(app, app.counter())
    # Stopped by SIGSTOP: left alone, and still stopped afterwards.
    app.proc.send_signal(signal.SIGSTOP)
    try:
        wait_for(lambda: app.states()[app.pid][0] == "T", 10, "SIGSTOP")
        out = trigger(tmp_path / "t", 10, state=state)
        assert "live dump of %d skipped: it is stopped" % app.pid in out, out
        assert app.states()[app.pid][0] == "T"
    finally:
        app.proc.send_signal(signal.SIGCONT)
    assert_running(app, app.counter())
    assert pidlist.registered(state) == [app.pid]


# PTRACE_SEIZE the main thread (no stop), say so, hold it until stdin closes.
SEIZER = """
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
assert libc.ptrace(0x4206, int(sys.argv[1]), None, None) == 0, ctypes.get_errno()
print("seized", flush=True)
sys.stdin.read()
"""


def test_a_thread_that_cannot_stop_in_time_costs_nothing(regd, programs, tmp_path):
    """The main thread waits in vfork (uninterruptible): the stop is not reached
    within --max-pause, the app is not dumped, and no thread stays stopped."""
    state = str(tmp_path / "regd.pids")
    d = regd.start(state=state)
    app = regd.app(programs["regloop"], "v")
    d.wait_registered([app.pid])
    app.proc.send_signal(signal.SIGUSR2)
    assert app.readline() == b"vfork\n"
    cfg = tmp_path / "all.cfg.json"
    cfg.write_text('{"watch": [{}]}')
    p = subprocess.run([sys.executable, "-m", "minicoredumper.cmd_trigger", "--state", state,
                        "--config", str(cfg), "--max-pause=50", str(tmp_path / "v"), "1"],
                       env=ENV, capture_output=True, text=True, timeout=30)
    assert "live dump of %d skipped: thread %d did not stop within 50 ms" % (
        app.pid, app.pid) in p.stdout, p.stdout + p.stderr
    assert not os.path.exists(tmp_path / "v" / "dumps")
    time.sleep(1.2)  # the vfork child is gone: the main thread runs again
    assert_running(app, app.counter())
