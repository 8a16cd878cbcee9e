"""The journal entry of each dump (journald's native protocol) and the on_dump hook.

The journal entry is read back twice: from a datagram socket of the test that
speaks journald's native protocol (the main config's journal_socket points the
handler at it), and, where systemd-journald can run (its binary is there and a
private mount namespace can be made), from a real journald started for the test
in a mount namespace of its own, reached through /proc/JOURNALD/root, read with
journalctl -o json.  The hooks are shell scripts that leave a marker per run.
"""

import json
import os
import resource
import shutil
import socket
import subprocess
import time

import pytest

from lab.logs import handler_log
from minicoredumper import corepattern
from minicoredumper import publish_manifest as manifest
from minicoredumper.live_pidlist import STATE
from minicoredumper.log import DUMP_MESSAGE_ID

JOURNALD = "/lib/systemd/systemd-journald"
REAP_MAX = 1.5  # seconds from start to reap of crash3 however slow its hook
HOOK_SLEEP = 3  # seconds the slow hooks sleep (> 2 * REAP_MAX)


def parse_native(data):
    """{NAME: [values]} of one native journal datagram (both field forms)."""
    fields = {}
    i = 0
    while i < len(data):
        nl = data.index(b"\n", i)
        line = data[i:nl]
        if b"=" in line:
            name, _, value = line.partition(b"=")
            i = nl + 1
        else:  # NAME\n, 64-bit little-endian length, value, \n
            name = line
            n = int.from_bytes(data[nl + 1:nl + 9], "little")
            value = data[nl + 9:nl + 9 + n]
            assert data[nl + 9 + n:nl + 10 + n] == b"\n", data
            i = nl + 10 + n
        name = name.decode("ascii")
        assert name and name[0] != "_" and all(c.isupper() or c.isdigit() or c == "_"
                                               for c in name), name
        fields.setdefault(name, []).append(value.decode("utf-8", "surrogateescape"))
    return fields


def configure(crasher, **main):
    """base_dir of a config whose one rule dumps every crash (the built-in recept),
    with main's keys added."""
    base = crasher.configure()
    crasher.configure(config=dict({"base_dir": base, "watch": [{}]}, **main))
    return base


def assert_dump_fields(f, pid, exe, d, argv, t0, t1):
    """The entry's fields describe the crashed process and its dump d."""
    assert f["MESSAGE_ID"] == [DUMP_MESSAGE_ID]
    assert f["MESSAGE"][0].startswith("pid %d: dumped crash3 to %s in " % (pid, d))
    assert f["PRIORITY"] == ["6"]
    assert f["SYSLOG_IDENTIFIER"] == ["minicoredumper"]
    assert f["COREDUMP_PID"] == [str(pid)]
    assert f["COREDUMP_UID"] == ["0"] and f["COREDUMP_GID"] == ["0"]
    assert f["COREDUMP_SIGNAL"] == ["11"] and f["COREDUMP_SIGNAL_NAME"] == ["SIGSEGV"]
    assert f["COREDUMP_EXE"] == [os.path.realpath(exe)]
    assert f["COREDUMP_COMM"] == ["crash3"]
    assert f["COREDUMP_CMDLINE"] == [" ".join(argv)]
    assert int(t0) * 10**6 <= int(f["COREDUMP_TIMESTAMP"][0]) <= int(t1 + 1) * 10**6
    assert f["COREDUMP_HOSTNAME"] == [os.uname().nodename]
    assert f["MINICOREDUMPER_DIRECTORY"] == [d]


# --- the journal entry ------------------------------------------------------------

class FakeJournal:
    """A datagram socket at path that takes what journald would; entries(): the
    datagrams received so far, parsed."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0)

    def entries(self):
        out = []
        while True:
            try:
                out.append(parse_native(self.sock.recv(1 << 16)))
            except BlockingIOError:
                return out


@pytest.fixture
def test_journal(crasher):
    j = FakeJournal(os.path.join(crasher.workdir, "journal.sock"))
    try:
        yield j
    finally:
        j.sock.close()
        os.unlink(j.path)


def test_journal_entry_on_a_native_protocol_socket(crasher, programs, test_journal):
    base = configure(crasher, journal_socket=test_journal.path)
    # A newline in the command line: the field goes in the binary form.
    argv = [programs["crash3"], "two\nlines", "x"]
    t0 = time.time()
    _, _, pid = crasher.run(argv)
    t1 = time.time()
    d = crasher.dump_of(base, pid)
    entries = test_journal.entries()
    dumps = [f for f in entries if "MESSAGE_ID" in f]
    assert len(dumps) == 1, entries
    assert_dump_fields(dumps[0], pid, programs["crash3"], d, argv, t0, t1)
    assert all(f["SYSLOG_PID"] != [str(pid)] for f in entries)  # the handler's own
    # Every line went to the journal, none also to the kernel's log.
    assert not any("pid %d: " % pid in l for l in handler_log()), handler_log(pid)


@pytest.mark.skipif(os.path.exists(STATE), reason="a registry daemon's list exists")
@pytest.mark.parametrize("level", ["info", "debug"])
def test_no_registry_list_is_a_debug_line(crasher, programs, test_journal, level):
    base = crasher.configure({"live_dumper": True})
    recept = os.path.join(crasher.workdir, "recept%d.json" % crasher.n)  # just written
    crasher.configure(config={"base_dir": base, "log_level": level,
                              "journal_socket": test_journal.path,
                              "watch": [{"recept": recept}]})
    _, _, pid = crasher.run([programs["crash3"]])
    crasher.dump_of(base, pid)
    quiet = [f for f in test_journal.entries() if "no registry list" in f["MESSAGE"][0]]
    if level == "info":
        assert quiet == []
    else:
        assert len(quiet) == 1 and quiet[0]["PRIORITY"] == ["7"], quiet


@pytest.fixture
def journald(tmp_path):
    """A systemd-journald of the test's own in a private mount namespace (its
    /run/systemd, /run/log and /var/log/journal on tmpfs): (its pid, the path of
    its native socket as seen from here).  Skips where it cannot run."""
    if not os.access(JOURNALD, os.X_OK) or not shutil.which("unshare") \
            or not shutil.which("nsenter") or not shutil.which("journalctl"):
        pytest.skip("no systemd-journald, unshare, nsenter or journalctl here")
    script = ("set -e; mount -t tmpfs tmpfs /run/systemd; mkdir /run/systemd/journal; "
              "mkdir -p /run/log; mount -t tmpfs tmpfs /run/log; "
              "if [ -d /var/log/journal ]; then mount -t tmpfs tmpfs /var/log/journal; fi; "
              "exec %s" % JOURNALD)
    err = open(str(tmp_path / "journald.err"), "w+")
    p = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                         stdout=err, stderr=err)
    sock = "/proc/%d/root/run/systemd/journal/socket" % p.pid
    try:
        end = time.monotonic() + 10
        while not os.path.exists(sock):
            if p.poll() is not None or time.monotonic() > end:
                err.seek(0)
                pytest.skip("systemd-journald cannot run here: %s" % err.read()[-500:])
            time.sleep(0.02)
        yield p.pid, sock
    finally:
        p.terminate()
        p.wait(10)
        err.close()


def test_journal_entry_in_a_real_journald(crasher, programs, journald):
    jpid, sock = journald
    base = configure(crasher, journal_socket=sock)
    argv = [programs["crash3"], "two\nlines"]
    t0 = time.time()
    _, _, pid = crasher.run(argv)
    t1 = time.time()
    d = crasher.dump_of(base, pid)
    query = ["nsenter", "-m", "-t", str(jpid), "journalctl", "-q", "--no-pager", "-o", "json",
             "MESSAGE_ID=" + DUMP_MESSAGE_ID, "COREDUMP_PID=%d" % pid]
    end = time.monotonic() + 10
    while True:
        out = subprocess.run(query, capture_output=True, text=True).stdout
        if out.strip() or time.monotonic() > end:
            break
        time.sleep(0.1)
    entries = [json.loads(l) for l in out.splitlines()]
    assert len(entries) == 1, out
    e = entries[0]
    # journalctl -o json gives a field with a newline as a list of byte values.
    f = {k: [bytes(v).decode() if isinstance(v, list) else v] for k, v in e.items()}
    assert_dump_fields(f, pid, programs["crash3"], d, argv, t0, t1)
    # journald's own fields are the sender's: the handler, not the crashed process.
    assert e["_TRANSPORT"] == "journal" and e["_PID"] != str(pid)
    assert e["_COMM"] != "crash3"


# --- the on_dump hook ---------------------------------------------------------

HOOK = """#!/bin/sh
# one line per run: its pid, session, stdin, core limit, environment mark, arguments
sid=$(cut -d' ' -f6 /proc/$$/stat)
core=$(grep 'Max core file size' /proc/$$/limits | tr -s ' ' | cut -d' ' -f5,6)
echo "$$ sid=$sid stdin=$(readlink /proc/$$/fd/0) core=$core env=$MINICOREDUMPER_ON_DUMP \
args=$*" >> %(marker)s
%(body)s
"""


def hook(crasher, name, body):
    """A hook script that appends a line to its marker file per run, then runs body;
    (its path, its marker file)."""
    path = os.path.join(crasher.workdir, name)
    marker = path + ".runs"
    if os.path.exists(marker):
        os.unlink(marker)
    with open(path, "w") as f:
        f.write(HOOK % {"marker": marker, "body": body})
    os.chmod(path, 0o755)
    return path, marker


def runs(marker):
    """The marker's lines as dicts (pid, sid, stdin, core, env, args)."""
    if not os.path.exists(marker):
        return []
    out = []
    for line in open(marker).read().splitlines():
        pid, sid, stdin, core, rest = line.split(" ", 4)
        env, _, args = rest.split(" ", 1)[1].partition(" args=")
        out.append({"pid": pid, "sid": sid.split("=")[1], "stdin": stdin.split("=")[1],
                    "core": core.split("=")[1] + " " + rest.split(" ", 1)[0],
                    "env": env.split("=", 1)[1], "args": args})
    return out


def wait_log(pid, text, timeout=HOOK_SLEEP + 10):
    """The handler's log lines about pid once one contains text."""
    end = time.monotonic() + timeout
    while True:
        lines = handler_log(pid)
        if any(text in l for l in lines) or time.monotonic() > end:
            return lines
        time.sleep(0.1)


def handler_comms(crasher):
    """The comm of every process running the handler's launcher: the handler
    ("minicoredumper") and the hooks' watchers, its forks ("mcd-on_dump")."""
    comms = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                if crasher.launcher.encode() not in f.read():
                    continue
            with open("/proc/%s/comm" % pid) as f:
                comms.append(f.read().strip())
        except OSError:
            continue  # gone meanwhile
    return comms


def test_hook_runs_once_on_the_published_dump(crasher, programs):
    path, marker = hook(crasher, "upload.sh", 'echo "uploading $2"\nsleep %d\necho uploaded\n'
                        'touch %s.done' % (HOOK_SLEEP, os.path.join(crasher.workdir,
                                                                    "upload.sh.runs")))
    base = configure(crasher, on_dump=[path, "--to=server"])
    t0 = time.monotonic()
    p = subprocess.Popen([programs["crash3"]], preexec_fn=lambda: resource.setrlimit(
        resource.RLIMIT_CORE, (resource.RLIM_INFINITY,) * 2))
    rc = p.wait(20)
    reaped = time.monotonic() - t0
    pid = p.pid
    assert rc == -11
    assert reaped < REAP_MAX, "reaped after %.2f s: waited for the hook?" % reaped
    # The handler exits without waiting for the hook; its watcher waits.
    while "minicoredumper" in handler_comms(crasher) and time.monotonic() - t0 < REAP_MAX:
        time.sleep(0.02)
    comms = handler_comms(crasher)
    assert comms == ["mcd-on_dump"], comms
    assert not os.path.exists(marker + ".done")
    crasher.wait_idle()
    assert os.path.exists(marker + ".done")  # the watcher was there until the hook ended
    d = crasher.dump_of(base, pid)
    lines = wait_log(pid, "on_dump %s on %s: done in" % (path, d))
    assert any("on_dump %s on %s: done in 3." % (path, d) in l for l in lines), lines
    assert any(l.endswith("on_dump output: uploading " + d) for l in lines), lines
    assert any(l.endswith("on_dump output: uploaded") for l in lines), lines
    r = runs(marker)
    assert len(r) == 1, r
    assert r[0]["args"] == "--to=server " + d
    assert r[0]["env"] == d
    assert r[0]["sid"] == r[0]["pid"]  # a session of its own
    assert r[0]["stdin"] == "/dev/null"
    # The kernel's guard of pipe handlers, inherited: a crash of the hook is not dumped.
    assert r[0]["core"] == "1 1"
    assert manifest.verify(d) == []
    assert os.listdir(base) == [os.path.basename(d)]


def test_hook_that_hangs_is_cut_off(crasher, programs):
    # It ignores SIGTERM (so does its sleep, which inherits that): SIGKILL ends it.
    path, marker = hook(crasher, "hang.sh", "trap '' TERM\necho started\n"
                        "sleep 60 &\necho $! > %s.sleep\nwait\nwait" % os.path.join(
                            crasher.workdir, "hang.sh"))
    base = configure(crasher, on_dump=path, on_dump_timeout_seconds=1)
    t0 = time.monotonic()
    rc, reaped, pid = crasher.run([programs["crash3"]])
    assert rc == -11 and reaped < REAP_MAX, reaped
    d = crasher.dump_of(base, pid)
    lines = wait_log(pid, "cut off")
    assert any("on_dump %s on %s: cut off at the time limit (on_dump_timeout_seconds 1): "
               "killed" % (path, d) in l for l in lines), lines
    assert any(l.endswith("on_dump output: started") for l in lines), lines
    assert time.monotonic() - t0 < 1 + 1 + 5  # the limit, the grace, slack
    assert len(runs(marker)) == 1
    sleeper = int(open(os.path.join(crasher.workdir, "hang.sh.sleep")).read())
    end = time.monotonic() + 5  # the whole session got the SIGKILL
    while os.path.exists("/proc/%d" % sleeper) and time.monotonic() < end:
        with open("/proc/%d/stat" % sleeper) as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                break  # killed, waiting for init to collect it
        time.sleep(0.05)
    else:
        assert not os.path.exists("/proc/%d" % sleeper)
    assert manifest.verify(d) == []


@pytest.mark.parametrize("case", ["exit3", "crash", "missing"])
def test_failing_hook_is_logged_and_costs_no_dump(crasher, programs, case):
    path, marker = hook(crasher, "fail.sh", {
        "exit3": 'echo "no network" >&2\nexit 3',
        "crash": "echo about to crash\nkill -SEGV $$",
        "missing": ""}[case])
    if case == "missing":
        path = os.path.join(crasher.workdir, "no-such-hook")
    base = configure(crasher, on_dump=path)
    rc, reaped, pid = crasher.run([programs["crash3"]])
    assert rc == -11 and reaped < REAP_MAX, reaped
    d = crasher.dump_of(base, pid)
    expect = {"exit3": "on_dump %s on %s: exited with status 3 after " % (path, d),
              "crash": "on_dump %s on %s: killed by signal 11 (SIGSEGV) after " % (path, d),
              "missing": "on_dump: cannot run %s: No such file or directory" % path}[case]
    lines = wait_log(pid, expect)
    assert any(expect in l for l in lines), lines
    if case == "exit3":
        assert any(l.endswith("on_dump output: no network") for l in lines), lines
    if case == "crash":
        assert any(l.endswith("on_dump output: about to crash") for l in lines), lines
    assert len(runs(marker)) == (0 if case == "missing" else 1)
    assert manifest.verify(d) == []
    crasher.wait_idle()
    assert os.listdir(base) == [os.path.basename(d)]  # the hook's crash: no dump of it


@pytest.mark.skipif(not corepattern.kernel_has_socket_mode(),
                    reason="coredump socket needs Linux 6.16")
def test_hook_in_socket_mode_does_not_block_the_server(crasher, programs):
    path, marker = hook(crasher, "upload.sh", "sleep %d\necho uploaded" % HOOK_SLEEP)
    crash_path, crash_marker = hook(crasher, "crash.sh", "kill -SEGV $$")
    base = configure(crasher, on_dump=path)
    server = crasher.start_socket_server()
    try:
        reaps, pids = [], []
        for _ in range(2):  # the second crash is handled while the first hook sleeps
            rc, reaped, pid = crasher.run([programs["crash3"]])
            assert rc == -11
            reaps.append(reaped)
            pids.append(pid)
        assert max(reaps) < REAP_MAX, reaps
        for pid in pids:
            lines = wait_log(pid, "done in")
            assert any("done in 3." in l for l in lines), lines
        assert len(runs(marker)) == 2
        dumps = sorted(os.listdir(base))
        assert len(dumps) == 2 and all(manifest.verify(os.path.join(base, d)) == []
                                       for d in dumps)
        # No zombie of a hook or watcher is left with the server: its children are its
        # idle workers, alive, with the server's own name (a watcher calls itself
        # mcd-on_dump).
        children = open("/proc/%d/task/%d/children" % (server.pid, server.pid)).read().split()
        comm = open("/proc/%d/comm" % server.pid).read()
        for child in children:
            assert open("/proc/%s/comm" % child).read() == comm
            stat = open("/proc/%s/stat" % child).read()
            assert stat.rsplit(")", 1)[1].split()[0] != "Z", stat
        # A crashing hook: its crash is dumped (the kernel does not stop socket dumps
        # at RLIMIT_CORE 1 as it stops pipe dumps), but runs no hook, which would
        # crash again, and again.
        base = configure(crasher, on_dump=crash_path)
        _, _, pid = crasher.run([programs["crash3"]])
        lines = wait_log(pid, "killed by signal 11")
        assert any("killed by signal 11 (SIGSEGV)" in l for l in lines), lines
        r = runs(crash_marker)
        assert len(r) == 1
        hook_pid = int(r[0]["pid"])
        lines = wait_log(hook_pid, "on_dump not run")
        assert any("on_dump not run: the crashed process was started by an on_dump hook "
                   "(MINICOREDUMPER_ON_DUMP in its environment)" in l for l in lines), lines
        time.sleep(1)
        assert len(os.listdir(base)) == 2 and len(runs(crash_marker)) == 1
    finally:
        crasher.stop_socket_server()
