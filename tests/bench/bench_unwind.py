"""What unwinding every thread costs the handler (not part of `make test`).

    python3 tests/bench/bench_unwind.py [--runs N]

The 3-deep crash and the 8-thread program, generic and embedded recepts, pipe
mode: from the handler's own timeline (debug.txt, write_debug_log) the median
over N runs of
  released  ms from arrival to the crashed process's release (unwinding happens
            after it: this must not grow);
  unwind    ms the walks of all threads took (read_unwind, the "unwound" mark
            minus the one before it);
  frames    frames found over all threads.
Needs root; restores core_pattern (through lab.crash's lock).
"""

import argparse
import json
import os
import re
import statistics
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path[:0] = [os.path.join(ROOT, "runtime"), os.path.join(ROOT, "tests")]

from lab.crash import Crasher  # noqa: E402
from lab.programs import workspace  # noqa: E402

MARK = re.compile(r"([a-z][a-z ]*?) ([0-9.]+)(?:, |$)")


def timeline(d):
    """[(mark, ms)] of a dump's debug.txt."""
    with open(os.path.join(d, "debug.txt")) as f:
        line = next(l for l in f if l.startswith("timeline"))
    return [(m, float(v)) for m, v in MARK.findall(line.split(":", 1)[1].strip())]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=9)
    args = ap.parse_args()
    work, progs = workspace("mcdbu.", ["crash3", "threads8"])
    c = Crasher(work)
    c.install()
    try:
        print("%-9s %-9s %9s %9s %7s" % ("program", "recept", "released", "unwind", "frames"))
        for name in ("crash3", "threads8"):
            for recept_name in ("generic", "embedded"):
                with open(os.path.join(ROOT, "conf", recept_name + ".recept.json")) as f:
                    recept = json.load(f)
                recept.update(write_debug_log=True, live_dumper=False, max_dump_size=0)
                released, unwind, frames = [], [], []
                for _ in range(args.runs):
                    d = c.crash([progs[name]], recept)
                    marks = timeline(d)
                    names = [m for m, _ in marks]
                    released.append(dict(marks)["released"])
                    if "unwound" in names:  # (not on a checkout before read_unwind)
                        i = names.index("unwound")
                        unwind.append(marks[i][1] - marks[i - 1][1])
                    with open(os.path.join(d, "summary.json")) as f:
                        s = json.load(f)
                    frames.append(len(s["frames"]) + sum(len(t["frames"])
                                                         for t in s.get("thread_frames", ())))
                print("%-9s %-9s %9.1f %9s %7d" % (
                    name, recept_name, statistics.median(released),
                    "%.2f" % statistics.median(unwind) if unwind else "-",
                    statistics.median(frames)))
    finally:
        c.restore()


if __name__ == "__main__":
    main()
