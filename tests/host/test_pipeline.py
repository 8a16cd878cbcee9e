"""The one error policy of the crash pipeline (crash.py): every reason a crash
gets no dump is one log line with the PID, the process is released, and
nothing half-built stays in base_dir; no traceback for what is not a bug."""

import json
import os
import subprocess
import time

import pytest

from minicoredumper.crash import Crash
from minicoredumper.cmd_handler import parse_argv
from lab.logs import ListLog


@pytest.fixture
def sleeper():
    p = subprocess.Popen(["sleep", "60"])
    yield p
    p.kill()
    p.wait()


def _run(pid, cfg, stream, stream_ready=None):
    """(status, log lines, releases) of a pipe-mode Crash of pid whose core comes on stream."""
    a = parse_argv([str(pid), "0", "0", "11", str(int(time.time())), "host", "sleep", cfg])
    released = []
    a.stream, a.release, a.hard_deadline = stream, lambda: released.append(1), False
    a.stream_ready = stream_ready
    log = ListLog()
    log.set_pid(pid)
    status = Crash(a, log).run()
    return status, log.lines, released


def _config(tmp_path):
    base = tmp_path / "base"
    base.mkdir(mode=0o700)
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"base_dir": str(base), "watch": [{"recept": ""}]}))
    return str(cfg), base


@pytest.mark.parametrize("stream_bytes,why", [
    (b"", "core stream ended early"),
    (b"\x7fELF\x02\x01\x01" + bytes(9) + b"\x04\x00>\x00", "core stream ended early"),
    (b"GARBAGE!" * 16, "not an ELF header"),
])
def test_a_broken_core_stream_is_one_line(tmp_path, sleeper, stream_bytes, why):
    cfg, base = _config(tmp_path)
    r, w = os.pipe()
    os.write(w, stream_bytes)
    os.close(w)
    try:
        status, lines, released = _run(sleeper.pid, cfg, r)
    finally:
        os.close(r)
    assert status == 1 and released == [1]
    assert lines == [("error", "pid %d: not dumped: the kernel's core stream: %s"
                      % (sleeper.pid, why))], lines
    assert os.listdir(base) == []


def test_a_refused_acknowledgement_is_one_line(tmp_path, sleeper):
    """Socket mode's request protocol: the kernel refusing our ack ends the crash
    with one line, not a traceback."""
    cfg, base = _config(tmp_path)
    r, w = os.pipe()

    def refuse():
        raise OSError("the kernel refused our coredump ack")
    try:
        status, lines, released = _run(sleeper.pid, cfg, r, refuse)
    finally:
        os.close(r)
        os.close(w)
    assert status == 1 and released == [1]
    assert lines == [("error", "pid %d: not dumped: the kernel's core stream: the kernel "
                      "refused our coredump ack" % sleeper.pid)], lines


def test_no_watch_rule_is_one_info_line(tmp_path, sleeper):
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"base_dir": str(tmp_path / "base"),
                               "watch": [{"comm": "nothing-like-this"}]}))
    r, w = os.pipe()
    try:
        status, lines, released = _run(sleeper.pid, str(cfg), r)
    finally:
        os.close(r)
        os.close(w)
    assert status == 0 and released == [1]
    assert len(lines) == 1 and lines[0][0] == "info"
    assert lines[0][1].startswith("pid %d: not dumped: no watch rule matches exe=" % sleeper.pid)
