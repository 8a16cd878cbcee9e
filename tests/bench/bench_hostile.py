"""Benchmark the worst inputs of issue 17 (not part of `make test`).

    python3 tests/bench/bench_hostile.py [--runs N] [--cases PROGRAM,...]

For each input that grows the handler's work with what the crashing user controls
(tests/programs robustring.c, regflood.c and mapself.c), crashed under the pipe handler with
the default deadline (3 s) and an empty recept: crash to reap, whether a dump was
published (else the handler's last line says why), its size, and the handler's peak
RSS, sampled every 5 ms from /proc/PID/status (VmHWM) of the handler process, so
that a run lost at the hard deadline has its figure too; the handler's own time
from its "dumped ... in N ms" line, else its last line.  Median of N runs.

Run it in another checkout (e.g. main's) for the figures before a change.
Needs root; restores core_pattern.
"""

import argparse
import os
import re
import statistics
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# As a script (make bench): the checkout's runtime and the tests' lab package first on
# sys.path, where pytest.ini's pythonpath puts them for the tests.
sys.path[:0] = [os.path.join(ROOT, "runtime"), os.path.join(ROOT, "tests")]

from lab.crash import Crasher  # noqa: E402
from lab.logs import handler_log  # noqa: E402
from lab.programs import workspace  # noqa: E402
from bench_handler import dir_size  # noqa: E402

CASES = [
    ("robust lists, 33 forged thread pointers", ["robustring", "32"]),
    ("1,024 text registrations x 256 %s of 64 KiB", ["regflood", "text", "1024"]),
    ("1,024 registrations of 1 MiB with idents", ["regflood", "bin", "1024"]),
    ("1,024 registrations of 1 MiB into the core", ["regflood", "core", "1024"]),
    ("own executable mapped 10,000 times", ["mapself", "10000"]),
    ("the 3-deep crash (for scale)", ["crash3"]),
]


class PeakRss(threading.Thread):
    """The highest VmHWM (kB) of any process whose command line holds `needle`."""

    def __init__(self, needle):
        super().__init__(daemon=True)
        self.needle = needle.encode()
        self.peak = 0
        self.done = threading.Event()

    def run(self):
        while not self.done.is_set():
            for pid in os.listdir("/proc"):
                if pid.isdigit():
                    self.peak = max(self.peak, self._hwm(pid))
            time.sleep(0.005)

    def _hwm(self, pid):
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                if self.needle not in f.read():
                    return 0
            with open("/proc/%s/status" % pid) as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1])
        except OSError:
            pass  # gone meanwhile: its last sample counts
        return 0

    def stop(self):
        self.done.set()
        self.join()
        return self.peak


def run_case(c, argv, runs):
    """[(reaped s, dumped, size bytes, peak RSS kB, last log line)] over runs crashes."""
    out = []
    for _ in range(runs):
        base = c.configure({})
        sampler = PeakRss(c.launcher)
        sampler.start()
        _, reaped, pid = c.run(argv, timeout=60)
        rss = sampler.stop()
        dumps = [d for d in os.listdir(base) if not d.startswith(".")] \
            if os.path.isdir(base) else []
        lines = handler_log(pid)
        last = lines[-1].split(": ", 2)[-1] if lines else "(no log line)"
        own = re.search(r" in (\d+ ms)", last) if last.startswith("dumped ") else None
        out.append((reaped, bool(dumps), dir_size(os.path.join(base, dumps[0])) if dumps else 0,
                    rss, "dumped in " + own.group(1) if own else last))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--cases", default=",".join(sorted({argv[0] for _, argv in CASES})),
                    help="the programs whose cases run")
    args = ap.parse_args()
    names = args.cases.split(",")
    work, progs = workspace("mcd-bench.", names)
    c = Crasher(work)
    results = []
    try:
        c.install()
        for label, argv in CASES:
            if argv[0] not in names:
                continue
            results.append((label, run_case(c, [progs[argv[0]]] + argv[1:], args.runs)))
    finally:
        c.restore()
    print("%-46s %9s %7s %11s %13s  %s" % ("input (pipe mode, deadline 3 s)", "reaped s",
                                          "dumped", "size MiB", "peak RSS MB", "the handler's last line"))
    for label, runs in results:
        med = lambda i: statistics.median(r[i] for r in runs)  # noqa: E731
        print("%-46s %9.2f %4d/%-2d %11.1f %13.1f  %s" % (
            label, med(0), sum(r[1] for r in runs), len(runs), med(2) / (1 << 20),
            med(3) / 1024, runs[-1][4][:90]))


if __name__ == "__main__":
    main()
