"""mcd's selection of dumps, as coredumpctl selects core dumps: matches (PID,
COMM, EXE, FIELD=VALUE, and mcd's own dump names and paths), a time range
(--since, --until, in the forms of systemd's time specifications that people
type), and which of the selected dumps (-1, -n N, -r).

Matches of one kind are alternatives (two PIDs: either), matches of different
kinds must all hold, as journalctl's matches on fields.  Only python3-core
modules here (a target's mcd has no datetime or shlex).
"""

import os
import re
import time

from .tool_catalog import is_dump_dir

# FIELD=VALUE: a summary.json key (as coredumpctl's COREDUMP_* fields, whose
# names are accepted too: COREDUMP_PID=42 is pid=42).
FIELD_WORD = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", re.S)
SCALAR_FIELDS = ("pid", "tid", "uid", "gid", "exe", "comm", "cmdline", "arch", "signal",
                 "signal_name", "code", "fault_address", "threads")
# Field names of coredumpctl's journal entries that differ from ours.
JOURNAL_FIELDS = {"coredump_pid": "pid", "coredump_uid": "uid", "coredump_gid": "gid",
                  "coredump_signal": "signal", "coredump_signal_name": "signal_name",
                  "coredump_exe": "exe", "coredump_comm": "comm",
                  "coredump_cmdline": "cmdline"}


class SelectionError(ValueError):
    """A match or a time the user typed that mcd cannot read; the message says why."""


class Match:
    """One word of a selection.  kind: "pid", "comm" (a comm or a dump's
    directory name), "path" (a dump directory), "exe" (a path or a glob), or
    a summary.json field; group: the kind whose matches are alternatives."""

    def __init__(self, word):
        self.word = word
        m = FIELD_WORD.match(word)
        if m and "/" not in m.group(1):
            field = m.group(1).lower()
            field = JOURNAL_FIELDS.get(field, field)
            if field not in SCALAR_FIELDS:
                raise SelectionError("%s: no such field; FIELD=VALUE takes one of %s"
                                     % (m.group(1), ", ".join(SCALAR_FIELDS)))
            self.kind, self.value = field, m.group(2)
        elif word.isdigit():
            self.kind, self.value = "pid", word
        elif "/" in word and is_dump_dir(word):  # an executable is never a directory
            self.kind, self.value = "path", os.path.realpath(word)
        elif "/" in word:
            self.kind = "exe"
            self.value = word if "*" in word else os.path.abspath(word)
        else:
            self.kind, self.value = "comm", word
        self.group = "dump" if self.kind in ("path", "comm") else self.kind

    def matches(self, dump, summary):
        """Whether dump (a tool_catalog.Dump) with summary (its summary.json
        as a dict, {} if unknown) matches."""
        from .config import glob_match
        v = self.value
        if self.kind == "path":
            return os.path.realpath(dump.path) == v
        if self.kind == "comm" and (dump.name == v or dump.comm == v):
            return True
        if self.kind == "pid" and dump.pid is not None and str(dump.pid) == v.strip():
            return True
        got = summary.get(self.kind)
        if self.kind == "exe":
            exe = got or ""
            return any(glob_match(v, e) if "*" in v else e == v
                       for e in (exe, strip_deleted(exe)) if e)
        if got is None:
            return v == ""
        if isinstance(got, bool) or not isinstance(got, int):
            return str(got) == v
        try:
            return got == int(v, 0)
        except ValueError:
            return False


def strip_deleted(exe):
    """The executable's path without the " (deleted)" the kernel appends to a
    file that was removed while it ran."""
    return exe[:-len(" (deleted)")] if exe.endswith(" (deleted)") else exe


class Selection:
    """What the user asked for: matches (words), since/until (seconds since
    the epoch or None), newest (None: all; n: the n newest), reverse."""

    def __init__(self, words=(), since=None, until=None, newest=None, reverse=False):
        self.matches = [Match(w) for w in words]
        self.since, self.until, self.newest, self.reverse = since, until, newest, reverse

    @property
    def paths_only(self):
        """Whether only dump paths were given (no base_dir needed)."""
        return bool(self.matches) and all(m.kind == "path" for m in self.matches)

    @property
    def narrowed(self):
        """Whether anything but the order was asked for."""
        return bool(self.matches) or self.since is not None or self.until is not None \
            or self.newest is not None

    def needs_summary(self):
        return any(m.kind not in ("path", "comm", "pid") for m in self.matches)

    def accepts(self, dump, summary):
        groups = {}
        for m in self.matches:
            groups.setdefault(m.group, []).append(m)
        if not all(any(m.matches(dump, summary) for m in ms) for ms in groups.values()):
            return False
        t = dump.time
        return (self.since is None or t >= self.since) and \
            (self.until is None or t <= self.until)

    def pick(self, dumps):
        """dumps (already accepted), oldest first, cut to the newest n and ordered."""
        dumps = sorted(dumps, key=lambda d: (d.time, d.mtime, d.name))
        if self.newest is not None:
            dumps = dumps[-self.newest:] if self.newest else []
        return dumps[::-1] if self.reverse else dumps

    def describe(self):
        """The selection as typed, for "no dump matches ..."."""
        out = [m.word for m in self.matches]
        for opt, t in (("--since", self.since), ("--until", self.until)):
            if t is not None:
                out.append("%s %s" % (opt, time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))))
        return " ".join(out)


# --- times ---------------------------------------------------------------------------

UNITS = {}
for _secs, _names in ((1, "s sec secs second seconds"), (60, "m min mins minute minutes"),
                      (3600, "h hr hrs hour hours"), (86400, "d day days"),
                      (7 * 86400, "w week weeks"), (2629800, "M month months"),
                      (31557600, "y year years")):
    for _n in _names.split():
        UNITS[_n] = _secs
SPAN = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)")
DATE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?$")
CLOCK = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")
TIME_FORMS = ('"2026-11-30 12:00[:00]", "2026-11-30", "12:00" (today), "now", "today", '
              '"yesterday", "tomorrow", "-1h", "-2d 3h", "+30min", "1 hour ago", "@EPOCH", '
              'each with " UTC" for UTC instead of local time')


def parse_span(text):
    """Seconds of "1h 30min", "2d", "90" (seconds); None if it is not a span."""
    total, pos = 0.0, 0
    text = text.strip()
    if not text:
        return None
    while pos < len(text):
        m = SPAN.match(text, pos)
        if not m or m.end() == pos:
            return None
        unit = m.group(2) or "s"
        if unit not in UNITS and unit.lower() not in UNITS:
            return None
        total += float(m.group(1)) * UNITS.get(unit, UNITS.get(unit.lower()))
        pos = m.end()
        while pos < len(text) and text[pos] == " ":
            pos += 1
    return total


def parse_time(text, now=None):
    """Seconds since the epoch for a time as people type it to coredumpctl or
    journalctl (TIME_FORMS); SelectionError if it is none of them."""
    now = time.time() if now is None else now
    t = text.strip()
    utc = t.endswith(" UTC")
    if utc:
        t = t[:-4].strip()
    to_epoch = _utc_epoch if utc else _local_epoch
    today = (time.gmtime if utc else time.localtime)(now)[:3]
    words = {"today": 0, "yesterday": -1, "tomorrow": 1}
    if t == "now":
        return now
    if t in words:
        y, mo, d = today
        return to_epoch(y, mo, d + words[t], 0, 0, 0)
    if t.startswith("@"):
        try:
            return float(t[1:])
        except ValueError:
            pass  # not a number after @: the error below lists the forms
    m = DATE.match(t)
    if m:
        y, mo, d, hh, mm, ss = (int(g) if g else 0 for g in m.groups())
        if 1 <= mo <= 12 and 1 <= d <= 31 and hh < 24 and mm < 60 and ss < 61:
            return to_epoch(y, mo, d, hh, mm, ss)
    m = CLOCK.match(t)
    if m:
        hh, mm, ss = (int(g) if g else 0 for g in m.groups())
        if hh < 24 and mm < 60 and ss < 61:
            return to_epoch(*today, hh, mm, ss)
    if t.endswith(" ago"):
        span = parse_span(t[:-4])
        if span is not None:
            return now - span
    if t[:1] in "+-":
        span = parse_span(t[1:])
        if span is not None:
            return now + span if t[0] == "+" else now - span
    raise SelectionError("%r is not a time mcd knows; it takes %s" % (text, TIME_FORMS))


def _local_epoch(y, mo, d, hh, mm, ss):
    """Local time to seconds since the epoch (days beyond the month roll over)."""
    return time.mktime((y, mo, d, hh, mm, ss, 0, 0, -1))


def _utc_epoch(y, mo, d, hh, mm, ss):
    return days_from_civil(y, mo, 1) * 86400 + (d - 1) * 86400 + hh * 3600 + mm * 60 + ss


def days_from_civil(y, m, d):
    """Days since 1970-01-01 of a proleptic Gregorian date (calendar.timegm's
    arithmetic; calendar is not in python3-core)."""
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def split_words(text):
    """A debugger's arguments from one string, as a POSIX shell splits words:
    blanks separate, '...' keeps everything, "..." keeps all but \\" \\\\ \\$ \\`,
    and \\ quotes the next character.  SelectionError for an open quote."""
    words, cur, have, i = [], [], False, 0
    while i < len(text):
        c = text[i]
        if c in " \t\n":
            if have:
                words.append("".join(cur))
            cur, have = [], False
        elif c == "'":
            end = text.find("'", i + 1)
            if end < 0:
                raise SelectionError("unmatched ' in %r" % text)
            cur.append(text[i + 1:end])
            have, i = True, end
        elif c == '"':
            i += 1
            while i < len(text) and text[i] != '"':
                if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in '"\\$`':
                    i += 1
                cur.append(text[i])
                i += 1
            if i >= len(text):
                raise SelectionError('unmatched " in %r' % text)
            have = True
        elif c == "\\" and i + 1 < len(text):
            i += 1
            cur.append(text[i])
            have = True
        else:
            cur.append(c)
            have = True
        i += 1
    if have:
        words.append("".join(cur))
    return words
