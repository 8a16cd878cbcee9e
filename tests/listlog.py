"""Test helper: the handler's Logger, keeping its lines in a list instead of
writing to syslog or /dev/kmsg."""

from minicoredumper.log import Logger


class ListLog(Logger):
    def __init__(self):  # no syslog, no /dev/kmsg
        self.prefix = ""
        self.lines = []

    def log(self, level, msg):
        self.lines.append((level, self.prefix + msg))
