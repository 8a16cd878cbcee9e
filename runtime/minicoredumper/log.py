"""Logging for the crash path: journald's native protocol when journald runs,
else syslog when a syslog daemon listens, else /dev/kmsg.

Every line names the crashed PID.  /dev/kmsg limits each writer to a burst of
lines, so callers keep their messages few and put details in debug.txt.

journald (docs/FORMATS.md §11): when its native socket exists (JOURNAL_SOCKET,
or the main config's journal_socket) every line is one datagram of KEY=VALUE
fields, with PRIORITY and SYSLOG_IDENTIFIER as syslog would give them, and a
line may carry more fields (the one line per dump carries MESSAGE_ID
DUMP_MESSAGE_ID and the COREDUMP_ fields).  The datagram goes out through the
`_socket` C module (no Python socket stack on the crash path), non-blocking:
a journald that cannot take it gets the line through syslog or /dev/kmsg.

Levels: error, warning, info, debug.  Lines below the threshold (set_level,
the main config's log_level; default info) are dropped, so debug lines cost
nothing unless asked for.
"""

import os

LOG_ERR = 3
LOG_WARNING = 4
LOG_INFO = 6
LOG_DEBUG = 7
LOG_DAEMON = 3  # syslog's facility of the handler's lines (LOG_DAEMON >> 3)
_LEVELS = {"error": LOG_ERR, "warning": LOG_WARNING, "info": LOG_INFO, "debug": LOG_DEBUG}
JOURNAL_SOCKET = "/run/systemd/journal/socket"
# MESSAGE_ID of the journal entry of each published dump (journalctl MESSAGE_ID=...).
DUMP_MESSAGE_ID = "02e3e89331694192a0ae924acdf493af"
FIELD_MAX = 4096  # bytes of one journal field's value; longer values are cut


def journal_field(name, value):
    """One field of a native journal datagram: NAME=value\\n, or for a value with a
    newline the binary form NAME\\n, its length as 64-bit little endian, value, \\n."""
    if not isinstance(value, bytes):
        value = str(value)
        try:
            value = value.encode("utf-8", "surrogateescape")  # os's bytes back as they were
        except UnicodeEncodeError:
            value = value.encode("utf-8", "replace")
    value = value[:FIELD_MAX]
    key = name.encode("ascii")
    if b"\n" in value:
        return key + b"\n" + len(value).to_bytes(8, "little") + value + b"\n"
    return key + b"=" + value + b"\n"


class Logger:
    def __init__(self, ident="minicoredumper", dev_log="/dev/log", kmsg="/dev/kmsg",
                 journal=JOURNAL_SOCKET):
        self.ident = ident
        self.prefix = ""
        self.threshold = LOG_INFO
        self._dev_log, self._kmsg_path = dev_log, kmsg
        self._open(journal)

    def _open(self, journal):
        self._syslog = None
        self._kmsg = -1
        self._fallback_open = False
        self._journal = None
        self.journal_path = None
        self.use_journal(journal)
        if self._journal is None:
            self._open_fallback()

    def _open_fallback(self):
        """syslog when dev_log exists, else /dev/kmsg (once)."""
        if self._fallback_open:
            return
        self._fallback_open = True
        if os.path.exists(self._dev_log):
            try:
                import syslog  # C module: no Python socket stack on the crash path
                syslog.openlog(self.ident, syslog.LOG_PID, syslog.LOG_DAEMON)
                self._syslog = syslog
            except ImportError:
                pass  # no syslog module in this Python: /dev/kmsg below
        if self._syslog is None:
            try:
                self._kmsg = os.open(self._kmsg_path, os.O_WRONLY | os.O_CLOEXEC)
            except OSError:
                # no /dev/kmsg either: log lines are dropped, the dump is still written
                self._kmsg = -1

    def use_journal(self, path):
        """Send lines to journald's native socket at path ("" or None: never);
        where there is none (or no _socket module) lines go to syslog or /dev/kmsg."""
        if path == self.journal_path:
            return
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        self.journal_path = path
        if path and os.path.exists(path):
            try:
                import _socket  # C module; in oe-core's python3-io: optional
                s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_DGRAM
                                   | _socket.SOCK_CLOEXEC | _socket.SOCK_NONBLOCK)
                try:
                    s.connect(path)
                except OSError:
                    s.close()
                    raise
                self._journal = s
            except (ImportError, OSError, AttributeError):
                self._journal = None  # a stale socket, no journald: syslog or /dev/kmsg
        if self._journal is None:
            self._open_fallback()

    def _reconnect(self):
        """Connect to the journal's socket again; True if that worked."""
        path, self.journal_path = self.journal_path, None
        self.use_journal(path)
        return self._journal is not None

    def set_level(self, name):
        """The lowest level logged: "error", "warning", "info" or "debug"."""
        self.threshold = _LEVELS.get(name, LOG_INFO)

    def close(self):
        """Close what the logger writes to (reopen() opens it again)."""
        if self._journal is not None:
            self._journal.close()
        if self._syslog is not None:
            self._syslog.closelog()
        if self._kmsg >= 0:
            try:
                os.close(self._kmsg)
            except OSError:
                pass  # already closed: nothing leaks
        self._journal, self._syslog, self._kmsg = None, None, -1

    def reopen(self):
        self.close()
        self._open(self.journal_path)

    def set_pid(self, pid):
        self.prefix = "pid %s: " % pid

    def log(self, level, msg, fields=()):
        """One line at level; fields: more (NAME, value) pairs for the journal."""
        prio = _LEVELS.get(level, LOG_INFO)
        if prio > self.threshold:
            return
        text = self.prefix + msg
        if self._journal is not None:
            data = b"".join([journal_field("MESSAGE", text), b"PRIORITY=%d\n" % prio,
                             b"SYSLOG_FACILITY=%d\n" % LOG_DAEMON,
                             journal_field("SYSLOG_IDENTIFIER", self.ident),
                             b"SYSLOG_PID=%d\n" % os.getpid()]
                            + [journal_field(k, v) for k, v in fields])
            for again in (False, True):
                try:
                    self._journal.send(data)
                    return
                except OSError:
                    # journald restarted (a stale connection): connect once more;
                    # busy or gone: this line goes the old way
                    if again or not self._reconnect():
                        break
            self._open_fallback()
        if self._syslog is not None:
            self._syslog.syslog(prio, text)
        elif self._kmsg >= 0:
            line = "<%d>%s[%d]: %s\n" % (prio, self.ident, os.getpid(), text)
            try:
                os.write(self._kmsg, line.encode("utf-8", "replace")[:1000])
            except OSError:
                pass  # the kernel's ring buffer refused the line (rate limit): the dump goes on

    def error(self, msg):
        self.log("error", msg)

    def warning(self, msg):
        self.log("warning", msg)

    def info(self, msg):
        self.log("info", msg)

    def debug(self, msg):
        self.log("debug", msg)

    def exception(self, msg):
        """Log msg with the current exception's traceback, one line per frame group."""
        import traceback  # only on the failure path
        self.error(msg)
        for line in traceback.format_exc().strip().splitlines()[-6:]:
            self.error("  " + line.strip())
