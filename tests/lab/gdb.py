"""The core out of a dump directory, and what gdb says about it.

Backtraces read from gdb's output keep that output (.gdb_text), and assert_frames()
shows it when the frames are not the expected ones: a mismatch reads as gdb's own
words (a missing symbol file, "Cannot access memory", a truncated stack ...).
"""

import os
import re
import subprocess


def extract_core(publish_dumpdir, dest):
    """Path of a plain core file taken from publish_dumpdir's core artefact (mcd's own unpacking)."""
    from minicoredumper.tool_catalog import Dump
    from minicoredumper.tool_verbs import core_artefact, unpack_core
    d = Dump(os.path.dirname(publish_dumpdir), os.path.basename(publish_dumpdir))
    return unpack_core(core_artefact(d), os.path.join(dest, "core"))


def gdb(exe, core, *commands, sysroot=None, program="gdb", early=()):
    """gdb's output (stdout and stderr) of `gdb -batch` running commands on exe and
    core; early: commands run before exe and core are loaded (-iex)."""
    argv = [program, "-nx", "-batch", "-ex", "set auto-load safe-path /"]
    for c in early:
        argv += ["-iex", c]
    if sysroot:
        argv += ["-ex", "set sysroot " + sysroot]
    for c in commands:
        argv += ["-ex", c]
    argv += [exe, core]
    # errors: gdb prints the process's comm and paths as they are, bytes that
    # are not UTF-8 included
    p = subprocess.run(argv, capture_output=True, text=True, errors="replace", timeout=120)
    return p.stdout + p.stderr


FRAME = re.compile(r"^#(\d+)\s+(?:0x[0-9a-f]+ in )?(\S+) \(", re.M)


class Backtrace(list):
    """Function names of a backtrace, innermost first; .gdb_text is the gdb output
    they were read from."""

    def __init__(self, names, gdb_text):
        super().__init__(names)
        self.gdb_text = gdb_text


class Threads(dict):
    """{thread header line: [frames]}; .gdb_text is the gdb output they were read from."""

    def __init__(self, items, gdb_text):
        super().__init__(items)
        self.gdb_text = gdb_text


def frames(text):
    """The Backtrace of the last backtrace in gdb output (gdb also prints frame #0
    when it loads a core, so a new #0 starts the list again)."""
    names = []
    for m in FRAME.finditer(text):
        if m.group(1) == "0":
            names = []
        names.append(m.group(2))
    return Backtrace(names, text)


def backtrace(exe, core, **kw):
    """The crashing thread's Backtrace (gdb's "bt"); kw: sysroot, program, early."""
    return frames(gdb(exe, core, "bt", **kw))


def threads_backtraces(exe, core):
    """Threads: the frames of every thread (gdb's "thread apply all bt")."""
    out = gdb(exe, core, "thread apply all bt")
    result = {}
    current = None
    for line in out.splitlines():
        if line.startswith("Thread "):
            current = line.strip()
            result[current] = []
        elif current and FRAME.match(line):
            result[current].append(FRAME.match(line).group(2))
    return Threads(result, out)


LWP = re.compile(r"^Thread \d+ \(.*LWP (\d+)\)")
SIGNAL_FRAME = re.compile(r"^#\d+\s+(<signal handler called>)")


def threads_by_tid(exe, core, debug_files=False, early=(), **kw):
    """{tid: Backtrace} of every thread ("thread apply all bt"), past main, as a
    device without debug files shows them: gdb reads no separate debug files
    (the crash path only has the mapped binaries' own symbols), but with
    debug_files (this host's, as `mcd trace` reads them); early: more commands
    before the files are loaded; kw: sysroot, program."""
    early = ("set backtrace past-main on",) + tuple(early)
    if not debug_files:
        early = ("set debug-file-directory /nonexistent",) + early
    out = gdb(exe, core, "thread apply all bt", early=early, **kw)
    result = {}
    names = None
    for line in out.splitlines():
        m = LWP.match(line)
        if m:
            names = result[int(m.group(1))] = Backtrace([], out)
        elif names is not None and (FRAME.match(line) or SIGNAL_FRAME.match(line)):
            m = FRAME.match(line)
            names.append(m.group(2) if m else "<signal handler called>")
    return result


def assert_frames(expected, bt, whole=True, tail=4000):
    """bt (a Backtrace, e.g. backtrace(exe, core)) is expected, innermost first: the
    whole backtrace, or with whole False its innermost frames (a thread's own
    functions, before the C library's). The failure shows gdb's own output (its last
    tail characters)."""
    __tracebackhide__ = True  # pytest: the failure is the caller's line
    got = list(bt) if whole else list(bt[:len(expected)])
    if got != list(expected):
        text = bt.gdb_text.rstrip()
        raise AssertionError("backtrace %s, expected %s%s; gdb said:\n%s" % (
            " <- ".join(bt) or "(no frames)", " <- ".join(expected),
            "" if whole else " (innermost frames)",
            "\n".join("    " + l for l in text[-tail:].splitlines()) or "    (nothing)"))
    return bt
