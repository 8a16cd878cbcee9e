"""The handler's log: its lines about a crashed PID, read back where it wrote them, and
ListLog, its Logger keeping the lines in a list instead.

The handler and its helpers (minicoredumper_trigger, _sockd, _regd) log through
runtime/minicoredumper/log.py: to journald when its socket exists, else to syslog when
/dev/log exists, else to /dev/kmsg, as "IDENT[OWN PID]: pid CRASHED PID: message" once
the crashed PID is known.
"""

import errno
import os
import re
import shutil
import subprocess

from minicoredumper.log import JOURNAL_SOCKET, LOG_DEBUG, Logger

IDENTS = ["minicoredumper", "minicoredumper_trigger", "minicoredumper_sockd",
          "minicoredumper_regd"]
_OURS = re.compile(r"\bminicoredumper(?:_\w+)?\[\d+\]: ")
SYSLOG_FILES = ["/var/log/syslog", "/var/log/messages", "/var/log/daemon.log"]


def handler_log(pid=None):
    """The handler's log lines naming the crashed pid ("pid N: "), oldest first; with
    pid None every line of the handler and its helpers. Read from the journal (else
    the syslog files) when journald's socket or /dev/log exists, as the handler logs
    there then, else from the kernel's log."""
    lines = _syslog_lines() if os.path.exists("/dev/log") or os.path.exists(JOURNAL_SOCKET) \
        else _kernel_lines()
    lines = [l for l in lines if _OURS.search(l)]
    if pid is not None:
        lines = [l for l in lines if "pid %d: " % pid in l]
    return lines


def _kernel_lines():
    """The kernel's log buffer (/dev/kmsg), one string per record."""
    fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
    lines = []
    try:
        while True:
            try:
                record = os.read(fd, 8192)
            except OSError as e:
                if e.errno == errno.EPIPE:  # overwritten while we read: go on
                    continue
                if e.errno == errno.EAGAIN:  # the end
                    break
                raise
            # "PRIO,SEQ,USEC,FLAGS;text\n" and " KEY=value" continuation lines
            text = record.decode("utf-8", "replace").split("\n", 1)[0]
            lines.append(text.partition(";")[2])
    finally:
        os.close(fd)
    return lines


def _syslog_lines():
    if shutil.which("journalctl"):
        # What journald has received is in the journal once --sync returns.
        subprocess.run(["journalctl", "--sync"], capture_output=True)
        argv = ["journalctl", "-q", "--no-pager", "-o", "short"]
        for ident in IDENTS:
            argv += ["-t", ident]
        p = subprocess.run(argv, capture_output=True, text=True, errors="replace")
        if p.returncode == 0 and p.stdout:
            return p.stdout.splitlines()
    for path in SYSLOG_FILES:  # the first there is (they overlap)
        try:
            with open(path, errors="replace") as f:
                return f.read().splitlines()
        except OSError:
            continue
    return []


class ListLog(Logger):
    """The handler's Logger, keeping (level, line) in .lines (debug lines too) instead
    of writing to journald, syslog or /dev/kmsg; the journal fields of lines that
    have them in .fields as (line, {name: value})."""

    def __init__(self):
        self.prefix = ""
        self.threshold = LOG_DEBUG
        self.lines = []
        self.fields = []

    def use_journal(self, path):
        pass  # nothing is sent anywhere

    def set_level(self, name):
        pass  # every line is kept

    def log(self, level, msg, fields=()):
        self.lines.append((level, self.prefix + msg))
        if fields:
            self.fields.append((self.prefix + msg, dict(fields)))
