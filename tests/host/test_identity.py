"""Identity and races: the pidfd (%F) and dump mode (%d) in pipe mode.

A PID reused while the handler works must never be read: with a pidfd the
handler reads /proc/PID only while the pidfd's process still has that PID.
"""

import json
import os
import subprocess
import time

import pytest

from minicoredumper import corepattern
from minicoredumper import read_process as process
from minicoredumper.crash import Crash
from minicoredumper.cmd_handler import parse_argv
from lab.logs import ListLog

NEW_KERNEL = corepattern.kernel_version() >= (6, 16)


def _sleeper():
    return subprocess.Popen(["sleep", "60"])


def _stale_pidfd():
    """A pidfd whose process has died and been reaped."""
    p = _sleeper()
    fd = os.pidfd_open(p.pid)
    p.kill()
    p.wait()
    return fd


def test_kernel_version_and_options():
    assert corepattern.kernel_version("6.1.0-28-amd64") == (6, 1)
    assert corepattern.kernel_version("6.18.44-fc-v657") == (6, 18)
    assert corepattern.identity_options((6, 1)) == "--dump-mode=%d"
    assert corepattern.identity_options((6, 16)) == "--dump-mode=%d --pidfd=%F"
    assert "%F" not in corepattern.core_pattern("/h", None, corepattern.identity_options((6, 1)))
    a = parse_argv(["1", "0", "0", "11", "5", "h", "c", "--pidfd=3", "--dump-mode=2", "/c.json"])
    assert (a.pidfd, a.dump_mode, a.config) == (3, 2, "/c.json")
    a = parse_argv(["1", "0", "0", "11", "5", "h", "c"])
    assert (a.pidfd, a.dump_mode) == (None, None)  # never required


def test_pidfd_pid():
    p = _sleeper()
    fd = os.pidfd_open(p.pid)
    try:
        assert process.pidfd_pid(fd) == p.pid
        process.Process(p.pid, pidfd=fd).close()
        p.kill()
        p.wait()
        assert process.pidfd_pid(fd) == -1
    finally:
        os.close(fd)
    assert process.pidfd_pid(0) is None or process.pidfd_pid(0) != 1


def test_stale_or_foreign_pidfd_opens_nothing(monkeypatch):
    """The PID names a live process, the pidfd another (or a dead) one: the
    process's memory is never opened."""
    victim = _sleeper()
    other = _sleeper()
    opened = []
    real = process.ProcessMemory.__init__

    def spy(self, path):
        opened.append(path)
        real(self, path)

    monkeypatch.setattr(process.ProcessMemory, "__init__", spy)
    stale = _stale_pidfd()
    foreign = os.pidfd_open(other.pid)
    try:
        for fd in (stale, foreign):
            with pytest.raises(process.ProcessGone):
                process.Process(victim.pid, pidfd=fd)
        assert opened == []
    finally:
        os.close(stale)
        os.close(foreign)
        for p in (victim, other):
            p.kill()
            p.wait()


def _crash(pid, pidfd, cfg, log, stream, release):
    """A pipe-mode Crash of pid whose core comes on stream, without the SIGALRM."""
    a = parse_argv([str(pid), "0", "0", "11", str(int(time.time())), "host", "sleep",
                    "--pidfd=%d" % pidfd, "--dump-mode=1", cfg])
    a.stream, a.release, a.hard_deadline = stream, release, False
    return Crash(a, log)


def _config(tmp_path):
    base = tmp_path / "base"
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"base_dir": str(base), "watch": [{"recept": ""}]}))
    return str(cfg), base


def test_handler_skips_a_reused_pid(tmp_path):
    """The handler given a stale pidfd and a PID now held by another process
    writes nothing and reads nothing of it."""
    cfg, base = _config(tmp_path)
    victim = _sleeper()
    stale = _stale_pidfd()
    r, w = os.pipe()
    log = ListLog()
    released = []
    try:
        c = _crash(victim.pid, stale, cfg, log, r, lambda: released.append(1))
        assert c.run() == 1
        c.release()
    finally:
        os.close(stale)
        os.close(r)
        os.close(w)
        victim.kill()
        victim.wait()
    assert released == [1]
    assert not base.exists() or not [d for d in os.listdir(base) if not d.startswith(".")]
    assert any("not the process of pidfd" in m for _, m in log.lines), log.lines


def test_pid_reused_during_the_dump_is_discarded(tmp_path, monkeypatch, crasher, programs):
    """The process dies and its PID is reused between the handler's start and
    the end of its reads: the dump is discarded (simulated: the kernel's real
    core of crash3 as the stream, a sleep process as the crashed one, killed
    and reaped while the memory is read)."""
    from minicoredumper import write_artefacts as artefacts
    kcore = crasher.kernel_core([programs["crash3"]])
    cfg, base = _config(tmp_path)
    victim = _sleeper()
    fd = os.pidfd_open(victim.pid)

    def before_release(self, proc):
        victim.kill()
        victim.wait()

    monkeypatch.setattr(artefacts.DumpWriter, "before_release", before_release)
    stream = os.open(kcore, os.O_RDONLY)
    log = ListLog()
    try:
        c = _crash(victim.pid, fd, cfg, log, stream, lambda: None)
        assert c.run() == 1
    finally:
        os.close(stream)
        os.close(fd)
        os.unlink(kcore)
        if victim.poll() is None:
            victim.kill()
            victim.wait()
    assert any("no longer the crashed process" in m for _, m in log.lines), log.lines
    assert not [d for d in os.listdir(base) if not d.startswith(".")]


@pytest.mark.skipif(not NEW_KERNEL, reason="%F needs Linux 6.16")
def test_kernel_hands_pidfd_and_dump_mode(crasher, programs):
    assert "--pidfd=%F" in crasher.pattern and "--dump-mode=%d" in crasher.pattern
    d = crasher.crash([programs["crash3"]], {"write_debug_log": True})
    with open(os.path.join(d, "debug.txt")) as f:
        text = f.read()
    assert "pidfd 3 dump_mode 1" in text, text[:400]
