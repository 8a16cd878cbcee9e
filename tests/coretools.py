"""Test helper: get the core out of a dump directory and ask gdb about it."""

import os
import re
import subprocess

def extract_core(dumpdir, dest):
    """Path of a plain core file taken from dumpdir's core artefact (mcd's own unpacking)."""
    from minicoredumper.tools.catalog import Dump
    from minicoredumper.tools.verbs import core_artefact, unpack_core
    d = Dump(os.path.dirname(dumpdir), os.path.basename(dumpdir))
    return unpack_core(core_artefact(d), os.path.join(dest, "core"))


def gdb(exe, core, *commands, sysroot=None, program="gdb"):
    argv = [program, "-nx", "-batch", "-ex", "set auto-load safe-path /"]
    if sysroot:
        argv += ["-ex", "set sysroot " + sysroot]
    for c in commands:
        argv += ["-ex", c]
    argv += [exe, core]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    return p.stdout + p.stderr


FRAME = re.compile(r"^#(\d+)\s+(?:0x[0-9a-f]+ in )?(\S+) \(", re.M)


def frames(text):
    """Function names of the last backtrace in gdb output (gdb also prints
    frame #0 when it loads a core, so a new #0 starts the list again)."""
    names = []
    for m in FRAME.finditer(text):
        if m.group(1) == "0":
            names = []
        names.append(m.group(2))
    return names


def backtrace(exe, core, **kw):
    """Function names of the crashing thread's frames, innermost first."""
    return frames(gdb(exe, core, "bt", **kw))


def threads_backtraces(exe, core):
    """{thread header line: [frames]} for every thread."""
    out = gdb(exe, core, "thread apply all bt")
    result = {}
    current = None
    for line in out.splitlines():
        if line.startswith("Thread "):
            current = line.strip()
            result[current] = []
        elif current and FRAME.match(line):
            result[current].append(FRAME.match(line).group(2))
    return result
