"""Logging for the crash path: syslog when a syslog daemon listens, else /dev/kmsg.

Every line names the crashed PID.  /dev/kmsg limits each writer to a burst of
lines, so callers keep their messages few and put details in debug.txt.
"""

import os

LOG_ERR = 3
LOG_WARNING = 4
LOG_INFO = 6
_LEVELS = {"error": LOG_ERR, "warning": LOG_WARNING, "info": LOG_INFO}


class Logger:
    def __init__(self, ident="minicoredumper", dev_log="/dev/log", kmsg="/dev/kmsg"):
        self.ident = ident
        self.prefix = ""
        self._syslog = None
        self._kmsg = -1
        if os.path.exists(dev_log):
            try:
                import syslog  # C module: no Python socket stack on the crash path
                syslog.openlog(ident, syslog.LOG_PID, syslog.LOG_DAEMON)
                self._syslog = syslog
            except ImportError:
                pass  # no syslog module in this Python: /dev/kmsg below
        if self._syslog is None:
            try:
                self._kmsg = os.open(kmsg, os.O_WRONLY | os.O_CLOEXEC)
            except OSError:
                # no /dev/kmsg either: log lines are dropped, the dump is still written
                self._kmsg = -1

    def set_pid(self, pid):
        self.prefix = "pid %s: " % pid

    def log(self, level, msg):
        prio = _LEVELS.get(level, LOG_INFO)
        text = self.prefix + msg
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

    def exception(self, msg):
        """Log msg with the current exception's traceback, one line per frame group."""
        import traceback  # only on the failure path
        self.error(msg)
        for line in traceback.format_exc().strip().splitlines()[-6:]:
            self.error("  " + line.strip())
