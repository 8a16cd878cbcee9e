"""log.Logger: the journal's native protocol on a test socket, the level threshold,
falling back to /dev/kmsg's format when journald does not take a line."""

import os
import socket

import pytest

from minicoredumper.log import DUMP_MESSAGE_ID, Logger, journal_field


def test_journal_field_forms():
    assert journal_field("MESSAGE", "one line") == b"MESSAGE=one line\n"
    assert journal_field("COREDUMP_PID", 42) == b"COREDUMP_PID=42\n"
    assert journal_field("COREDUMP_CMDLINE", "a\nb") == (
        b"COREDUMP_CMDLINE\n" + (3).to_bytes(8, "little") + b"a\nb\n")
    # A file name that is not UTF-8, as os gives it, goes out as its bytes.
    assert journal_field("COREDUMP_EXE", os.fsdecode(b"/x\xff")) == b"COREDUMP_EXE=/x\xff\n"
    assert len(journal_field("COREDUMP_CMDLINE", "x" * 10000)) == len("COREDUMP_CMDLINE=\n") + 4096


@pytest.fixture
def journal(tmp_path):
    path = str(tmp_path / "j.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(0)
    yield path, s
    s.close()


def received(s):
    out = []
    while True:
        try:
            out.append(s.recv(65536))
        except BlockingIOError:
            return out


def test_lines_go_to_the_journal_with_fields(journal, tmp_path):
    path, s = journal
    log = Logger("minicoredumper", dev_log=str(tmp_path / "no-log"),
                 kmsg=str(tmp_path / "no-kmsg"), journal=path)
    log.set_pid(7)
    log.log("info", "dumped x to /d", [("MESSAGE_ID", DUMP_MESSAGE_ID), ("COREDUMP_PID", 7)])
    log.debug("not shown")
    log.set_level("debug")
    log.debug("shown")
    got = received(s)
    assert len(got) == 2
    assert got[0].startswith(b"MESSAGE=pid 7: dumped x to /d\nPRIORITY=6\nSYSLOG_FACILITY=3\n"
                             b"SYSLOG_IDENTIFIER=minicoredumper\nSYSLOG_PID=%d\n" % os.getpid())
    assert got[0].endswith(b"MESSAGE_ID=%s\nCOREDUMP_PID=7\n" % DUMP_MESSAGE_ID.encode())
    assert got[1].startswith(b"MESSAGE=pid 7: shown\nPRIORITY=7\n")


def test_no_journal_or_a_dead_one_means_kmsg(journal, tmp_path):
    path, s = journal
    kmsg = tmp_path / "kmsg"
    kmsg.write_text("")
    log = Logger("minicoredumper", dev_log=str(tmp_path / "no-log"), kmsg=str(kmsg),
                 journal=path)
    log.info("to the journal")
    s.close()  # journald is gone: the socket file stays, nobody listens
    log.info("to kmsg")
    log.use_journal("")  # never the journal
    log.warning("to kmsg too")
    assert kmsg.read_text() == ("<6>minicoredumper[%d]: to kmsg\n<4>minicoredumper[%d]: "
                                "to kmsg too\n" % (os.getpid(), os.getpid()))
