"""Test helper: get the core out of a dump directory and ask gdb about it."""

import bz2
import gzip
import lzma
import os
import re
import subprocess
import tarfile

OPENERS = {".gz": gzip.open, ".xz": lzma.open, ".bz2": bz2.open}


def extract_core(dumpdir, dest):
    """Path of a plain core file taken from dumpdir's core artefact."""
    names = [n for n in os.listdir(dumpdir) if n == "core" or n.startswith("core.")]
    assert len(names) == 1, names
    name = names[0]
    src = os.path.join(dumpdir, name)
    if name == "core":
        return src
    out = os.path.join(dest, "core")
    ext = os.path.splitext(name)[1]
    if ".tar." in name:
        with tarfile.open(src) as t:
            member = t.getmember("core")
            with t.extractfile(member) as f, open(out, "wb") as o:
                o.write(f.read())
    else:
        with OPENERS[ext](src) as f, open(out, "wb") as o:
            o.write(f.read())
    return out


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
