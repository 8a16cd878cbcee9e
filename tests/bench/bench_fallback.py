"""The built-in minimal dump (the fallback when a recept or the main config
cannot be used): its size and what gdb gets from it (not part of `make test`).

    python3 tests/bench/bench_fallback.py [--runs N]

For crash3 (3 deep), threads8 (a crash in one of 9 threads) and Debian's
python3 (os.abort(), libpython and libc frames), each under a recept with a
type error and under a main config that is malformed JSON: the dump
directory's bytes (its files' lengths), its core artefact and its size, and
the frames gdb's bt shows (the program's own, against lab.programs.FRAMES).
Needs root; restores core_pattern (through lab.crash's lock).  A main config
that cannot be used sends the dump to the default base_dir
(/var/crash/minicoredumper); the bench removes its dumps from there.
"""

import argparse
import os
import shutil
import statistics
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path[:0] = [os.path.join(ROOT, "runtime"), os.path.join(ROOT, "tests")]

from lab.crash import Crasher  # noqa: E402
from lab.gdb import backtrace, extract_core  # noqa: E402
from lab.programs import workspace  # noqa: E402
from minicoredumper.config import DEFAULT_BASE_DIR  # noqa: E402

BROKEN_RECEPT = '{"stacks": {"max_stack_size": "big"}}'
BROKEN_MAIN = '{"base_dir": '


def dump_size(d):
    """(bytes of the dump directory's files, core artefact name or None)."""
    total, core = 0, None
    for root, _, files in os.walk(d):
        for f in files:
            total += os.path.getsize(os.path.join(root, f))
            if root == d and (f == "core" or f.startswith("core.")):
                core = f
    return total, core


def one(c, argv, broken):
    """(bytes, core name, frames) of one crash of argv with the broken input."""
    if broken == "recept":
        base = c.configure(recept_text=BROKEN_RECEPT)
        _, _, pid = c.run(argv)
        d = c.dump_of(base, pid)
    else:
        c.configure(config=BROKEN_MAIN)
        _, _, pid = c.run(argv)
        d = next(
            os.path.join(DEFAULT_BASE_DIR, n) for n in os.listdir(DEFAULT_BASE_DIR)
            if n.endswith(".%d" % pid))
    try:
        size, core = dump_size(d)
        frames = []
        if core:
            frames = list(backtrace(argv[0], extract_core(d, c.workdir)))
        return size, core, frames
    finally:
        if broken == "main":
            shutil.rmtree(d)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    work, progs = workspace("mcdfb.", ["crash3", "threads8"])
    cases = [("crash3", [progs["crash3"]]), ("threads8", [progs["threads8"]]),
             ("python3 os.abort()", ["/usr/bin/python3", "-c", "import os; os.abort()"])]
    c = Crasher(work)
    try:
        c.install()
        print("%-20s %-7s %8s %-10s %s" % ("program", "broken", "bytes", "core", "frames (gdb bt)"))
        for label, argv in cases:
            for broken in ("recept", "main"):
                runs = [one(c, argv, broken) for _ in range(args.runs)]
                size = statistics.median(r[0] for r in runs)
                _, core, frames = runs[-1]
                print("%-20s %-7s %8d %-10s %d: %s" % (label, broken, size, core or "-",
                                                      len(frames), " <- ".join(frames[:6])))
    finally:
        c.restore()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
