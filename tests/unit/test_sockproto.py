"""The socket server's side of the kernel's coredump request/ack protocol,
against a fake kernel on a socketpair (no core_pattern needed)."""

import json
import os
import socket
import struct
import threading

from lab.logs import ListLog
from minicoredumper import cmd_sockd as sockd
from minicoredumper import config


def _recv(s, n):
    out = b""
    while len(out) < n:
        b = s.recv(n - len(out))
        if not b:
            break
        out += b
    return out


def test_unwatched_crash_is_rejected_before_the_kernel_writes(tmp_path):
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"base_dir": str(tmp_path / "base"),
                               "watch": [{"exe": "/nothing/matches/this"}]}))
    server, kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    got = {}

    def fake_kernel():
        mask = (sockd.COREDUMP_KERNEL | sockd.COREDUMP_USERSPACE |
                sockd.COREDUMP_REJECT | sockd.COREDUMP_WAIT)
        kernel.sendall(struct.pack("=IIQ", 16, 16, mask))
        got["ack"] = struct.unpack("=IIQ", _recv(kernel, 16))
        kernel.sendall(struct.pack("=I", sockd.MARK_REQACK))
        got["eof"] = _recv(kernel, 1) == b""

    t = threading.Thread(target=fake_kernel)
    t.start()
    log = ListLog()
    cache = config.JsonCache(str(tmp_path / "cache"))
    rc = sockd.handle(server, str(cfg), cache, True, log)
    t.join(10)
    kernel.close()
    assert rc == 0, log.lines
    assert got["ack"] == (16, 0, sockd.COREDUMP_REJECT | sockd.COREDUMP_WAIT)
    assert got["eof"]
    assert any("no watch rule matches" in m and "pid %d: " % os.getpid() in m
               for _, m in log.lines), log.lines
    assert not (tmp_path / "base").exists()
