"""RLIMIT_CORE of the crashed process (README, "RLIMIT_CORE"; the main config's
rlimit_core): the kernel starts the pipe handler, and connects to the socket
server, whatever the limit; a process that forbade itself a core gets no dump.

Each crash is a real one under a real `ulimit` of the shell that execs the program.
"""

import os
import time

import pytest

from lab.logs import handler_log
from minicoredumper import corepattern

ULIMIT_0 = "ulimit -c 0"          # soft and hard 0
ULIMIT_SOFT_0 = "ulimit -S -c 0"  # soft 0, hard unlimited: the kernel's own default


def _crash(crasher, programs, ulimit, config=None):
    """(base_dir, pid, dumps) of crash3 run by `sh -c 'ULIMIT; exec crash3'`."""
    base = crasher.configure({})
    if config:
        cfg = {"base_dir": base, "watch": [{"recept": ""}]}
        cfg.update(config)
        crasher.configure(config=cfg)
    rc, reaped, pid = crasher.run(["sh", "-c", "%s && exec %s" % (ulimit, programs["crash3"])])
    assert rc == -11 and reaped < 5
    dumps = sorted(os.listdir(base)) if os.path.isdir(base) else []
    return base, pid, dumps


def _wait_for_log(pid, text, timeout=5):
    end = time.monotonic() + timeout
    while True:
        lines = [l for l in handler_log(pid) if text in l]
        if lines or time.monotonic() > end:
            return lines
        time.sleep(0.05)


def test_ulimit_c_0_gets_no_dump(crasher, programs):
    base, pid, dumps = _crash(crasher, programs, ULIMIT_0)
    assert dumps == []
    (line,) = _wait_for_log(pid, "not dumped")
    assert "the hard RLIMIT_CORE of %s is 0, less than a page" % programs["crash3"] in line


def test_soft_limit_alone_counts_only_with_rlimit_core_soft(crasher, programs):
    # the kernel's default (soft 0, hard unlimited), kept where no systemd raises it
    _, pid, dumps = _crash(crasher, programs, ULIMIT_SOFT_0)
    assert len(dumps) == 1 and dumps[0].endswith(".%d" % pid)
    _, pid, dumps = _crash(crasher, programs, ULIMIT_SOFT_0, {"rlimit_core": "soft"})
    assert dumps == []
    (line,) = _wait_for_log(pid, "not dumped")
    assert "the soft RLIMIT_CORE of %s is 0" % programs["crash3"] in line


def test_rlimit_core_ignore_dumps_every_crash(crasher, programs):
    base, pid, dumps = _crash(crasher, programs, ULIMIT_0, {"rlimit_core": "ignore"})
    assert len(dumps) == 1 and dumps[0].endswith(".%d" % pid)
    assert os.path.exists(os.path.join(base, dumps[0], "core"))


def test_one_page_is_enough(crasher, programs):
    # dash counts 512-byte blocks (4 KiB), bash 1024-byte blocks (8 KiB): both limits
    _, pid, dumps = _crash(crasher, programs, "ulimit -c 8")
    assert len(dumps) == 1


@pytest.mark.skipif(not corepattern.kernel_has_socket_mode(),
                    reason="coredump socket needs Linux 6.16")
def test_socket_mode_reads_the_limit_too(crasher, programs):
    crasher.start_socket_server()
    try:
        base, pid, dumps = _crash(crasher, programs, ULIMIT_0)
        (line,) = _wait_for_log(pid, "not dumped")
        assert "the hard RLIMIT_CORE" in line and "minicoredumper_sockd" in line
        assert not os.path.isdir(base) or os.listdir(base) == []
    finally:
        crasher.stop_socket_server()
