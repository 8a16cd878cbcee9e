"""The handler's cost against the size of the crashed process (issue: "big processes:
the cost must not grow faster than the process"); not part of `make test`.

    python3 tests/bench/bench_scale.py [--runs N] [--series mappings,threads,rss]
                                       [--recepts generic,embedded]

Series (each a program of tests/programs crashing three calls deep in main):
  mappings  bigthreads 1 0 N FILE: N file mappings of a data file that do not merge
            (100 ... 60,000; vm.max_map_count, 65530 by default, bounds N: larger
            points are left out)
  threads   bigthreads N 0: N threads, N-1 of them blocked (10 ... 4,000)
  rss       bigthreads 80 MIB: 80 threads sharing MIB MiB of touched heap (50 ... 350)
for the generic and the embedded recept (conf/), pipe mode, the default deadline
(config.DEFAULT_DEADLINE).  For each point: the handler's own time and peak RSS, from
its "dumped ... in T ms, peak RSS R kB" log line (crash.Crash.after_publish: T from
the core's arrival to the publication, R the handler's VmHWM read from
/proc/self/status just before), median over N runs; the dump's size and whether it
has a core.  Then per series, the time per unit (ms per 1,000 mappings, threads or
100 MiB) at each point, and checks: every point dumped within the deadline; time and
RSS at most linear, i.e. growth from the smallest to the largest point no more than
SLACK times the growth of the size (a constant part makes small points dearer per
unit, never cheaper).  Exit status 1 when a check fails.

Needs root; restores core_pattern (through lab.crash's lock).
"""

import argparse
import os
import re
import shutil
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# As a script (make bench): the checkout's runtime and the tests' lab package first on
# sys.path, where pytest.ini's pythonpath puts them for the tests.
sys.path[:0] = [os.path.join(ROOT, "runtime"), os.path.join(ROOT, "tests")]

from lab.crash import Crasher  # noqa: E402
from lab.logs import handler_log  # noqa: E402
from lab.programs import workspace  # noqa: E402
from minicoredumper.config import DEFAULT_DEADLINE  # noqa: E402

RECEPTS = {"generic": os.path.join(ROOT, "conf", "generic.recept.json"),
           "embedded": os.path.join(ROOT, "conf", "embedded.recept.json")}
# series -> (program, its arguments for size n and the work directory, sizes, unit, unit size)
SERIES = {
    "mappings": ("bigthreads", lambda n, work: ["1", "0", str(n), os.path.join(work, "data")],
                 [100, 1000, 10000, 60000], "1,000 mappings", 1000),
    "threads": ("bigthreads", lambda n, work: [str(n), "0"], [10, 100, 1000, 4000],
                "1,000 threads", 1000),
    "rss": ("bigthreads", lambda n, work: ["80", str(n)], [50, 100, 350], "100 MiB", 100),
}
SLACK = 1.5  # allowed: time(largest)/time(smallest) <= SLACK * largest/smallest
DUMPED = re.compile(r"dumped \S+ to (\S+) in (\d+) ms, peak RSS (\d+) kB")


def max_map_count():
    with open("/proc/sys/vm/max_map_count") as f:
        return int(f.read())


def dumped_line(pid, timeout=30):
    """(ms, peak RSS kB, dump dir) from the handler's log line about pid, or None."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for line in handler_log(pid):
            m = DUMPED.search(line)
            if m:
                return int(m.group(2)), int(m.group(3)), m.group(1)
        time.sleep(0.05)
    return None


def dir_size(d):
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(d) for f in fs)


def crash_point(c, recept, argv, runs):
    """[(ms, kB, dump size, has core, all files)] of runs crashes; None for a crash
    without a dump (its log lines are printed)."""
    out = []
    for _ in range(runs):
        base = c.configure()
        c.configure(config={"base_dir": base, "watch": [{"recept": recept}]})
        rc, _, pid = c.run(argv, timeout=120)
        got = dumped_line(pid)
        if got is None:
            print("    no dump of pid %d (exit %s):\n      %s" % (
                pid, rc, "\n      ".join(handler_log(pid)[-5:])), flush=True)
            out.append(None)
            continue
        ms, kb, d = got
        files = sorted(os.path.relpath(os.path.join(r, f), d)
                       for r, _, fs in os.walk(d) for f in fs)
        out.append((ms, kb, dir_size(d), any(f.startswith("core") for f in files), files))
        shutil.rmtree(base, ignore_errors=True)
    return out


def check_series(name, unit_size, points):
    """Problems with one series [(n, median ms, median kB)] (empty: linear)."""
    problems = []
    pts = [p for p in points if p[1] is not None]
    if len(pts) < 2:
        return problems
    (n0, t0, r0), (n1, t1, r1) = pts[0], pts[-1]
    allowed = SLACK * n1 / n0
    if t1 / max(t0, 1) > allowed:
        problems.append("%s: time grows %.1fx for %.0fx the size" % (name, t1 / max(t0, 1),
                                                                     n1 / n0))
    if r1 / r0 > allowed:
        problems.append("%s: peak RSS grows %.1fx for %.0fx the size" % (name, r1 / r0,
                                                                         n1 / n0))
    return problems


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--series", default=",".join(SERIES))
    ap.add_argument("--recepts", default=",".join(RECEPTS))
    ap.add_argument("--sizes", default="", help="series=n,n,... overrides (e.g. threads=10,4000)")
    args = ap.parse_args()
    sizes = {k: [int(x) for x in v.split(",")] for k, v in
             (s.split("=") for s in args.sizes.split(";") if s)}
    work, progs = workspace("mcds.", ["bigthreads"])
    c = Crasher(work)
    rows, problems = [], []
    limit = max_map_count() - 1000  # the program's own mappings besides
    try:
        c.install()
        for recept in args.recepts.split(","):
            for series in args.series.split(","):
                prog, argv, ns, unit, unit_size = SERIES[series]
                points = []
                for n in sizes.get(series, ns):
                    if series == "mappings" and n > limit:
                        print("%s %s %d: left out (vm.max_map_count %d)"
                              % (recept, series, n, limit + 1))
                        continue
                    runs = crash_point(c, RECEPTS[recept], [progs[prog]] + argv(n, work), args.runs)
                    ok = [r for r in runs if r is not None]
                    ms = statistics.median(r[0] for r in ok) if ok else None
                    kb = statistics.median(r[1] for r in ok) if ok else None
                    size = statistics.median(r[2] for r in ok) if ok else 0
                    cores = sum(r[3] for r in ok)
                    late = [r[0] for r in ok if r[0] > DEFAULT_DEADLINE * 1000]
                    if len(ok) < len(runs) or late:
                        problems.append("%s %s %d: %d of %d runs dumped, %d late %s"
                                        % (recept, series, n, len(ok), len(runs), len(late),
                                           late))
                    if cores < len(runs):
                        problems.append("%s %s %d: %d of %d dumps have no core"
                                        % (recept, series, n, len(runs) - cores, len(runs)))
                    row = (recept, series, n, ms, kb, size, cores, len(runs),
                           ms / n * unit_size if ms is not None else None, unit,
                           [r[0] for r in ok])
                    rows.append(row)
                    points.append((n, ms, kb))
                    print("%-8s %-8s %6d: %s ms %s kB, %d bytes, %d/%d cores  %s" % (
                        recept, series, n, ms, kb, size, cores, len(runs),
                        ok[0][4] if ok else ""), flush=True)
                problems += check_series("%s %s" % (recept, series), unit_size, points)
    finally:
        c.restore()
        shutil.rmtree(work, ignore_errors=True)
    print()
    print("| recept | series | size | handler ms: median (runs) | per unit | handler peak RSS "
          "| dump size | cores |")
    print("|---|---|---|---|---|---|---|---|")
    for recept, series, n, ms, kb, size, cores, runs, per, unit, all_ms in rows:
        print("| %s | %s | %d | %s (%s) | %s | %s | %s | %d/%d |" % (
            recept, series, n, "-" if ms is None else "%.0f" % ms,
            " ".join(str(x) for x in all_ms),
            "-" if per is None else "%.1f ms / %s" % (per, unit),
            "-" if kb is None else "%.1f MiB" % (kb / 1024.0),
            "%.1f KiB" % (size / 1024.0), cores, runs))
    print("\nkernel %s, %d CPUs, Python %s, deadline %.1f s, vm.max_map_count %d"
          % (os.uname().release, os.cpu_count(), sys.version.split()[0], DEFAULT_DEADLINE,
             limit + 1000))
    for p in problems:
        print("PROBLEM: " + p)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
