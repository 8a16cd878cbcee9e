"""Crashes whose stacks are not where the SP says (issue 12), and the 3-deep crash
beside them: the handler's own time (its log line), the dump directory's size and
the frames gdb gets from our core, per program and recept (not part of `make test`).

    python3 tests/bench/bench_stacks.py [--runs N] [--runtime DIR]

--runtime DIR measures another checkout's runtime (e.g. main's, for a before/after
figure) with this checkout's programs.  Then, with this checkout's runtime, what the
search for signal frames (read_stack.interrupted_contexts) costs on the kernel's own
core of the 3-deep crash and of the sigaltstack handler: the work the handler does
for every crash that it did not do before.  Needs root; restores core_pattern
(through lab.crash's lock).
"""

import argparse
import json
import os
import re
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CASES = [("3-deep crash", "crash3", []), ("overflow, main thread", "overflow", []),
         ("overflow, thread", "overflow", ["thread"]),
         ("sigaltstack handler", "altstack", []),
         ("sigaltstack handler, overflow", "altstack", ["overflow"]),
         ("handler on the stack", "altstack", ["onstack"])]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=11)
    ap.add_argument("--runtime", default=os.path.join(ROOT, "runtime"))
    args = ap.parse_args()
    # As a script: the runtime measured and the tests' lab package first on sys.path.
    sys.path[:0] = [os.path.abspath(args.runtime), os.path.join(ROOT, "tests")]
    from lab.crash import Crasher
    from lab.gdb import backtrace, extract_core
    from lab.logs import handler_log
    from lab.programs import workspace

    work, programs = workspace("mcdb.", ["crash3", "overflow", "altstack"])
    c = Crasher(work)
    c.install()
    rows = []
    try:
        for name in ("embedded", "generic"):
            with open(os.path.join(ROOT, "conf", name + ".recept.json")) as f:
                recept = json.load(f)
            recept.pop("live_dumper", None)  # the trigger's interpreter would dominate
            for label, prog, extra in CASES:
                argv = [programs[prog]] + extra
                times, sizes, frames = [], [], None
                for i in range(args.runs + 1):
                    d = c.crash(argv, recept)
                    pid = int(d.rsplit(".", 1)[1])
                    for _ in range(100):
                        m = [re.search(r" in (\d+) ms", l) for l in handler_log(pid)]
                        m = [x for x in m if x]
                        if m:
                            break
                        time.sleep(0.02)
                    if i == 0:  # a warm-up, unmeasured; gdb's frames from it
                        frames = len(backtrace(argv[0], extract_core(d, work)))
                        continue
                    times.append(int(m[-1].group(1)) if m else float("nan"))
                    sizes.append(sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d)))
                rows.append((label, name, statistics.median(times), min(times), max(times),
                             statistics.median(sizes), frames))
                print("%-30s %-9s %5.0f ms (%d-%d)  %6d B  %d frames" % rows[-1], flush=True)
    finally:
        c.restore()
    print("\n| case | recept | handler, ms: median (min-max) | dump directory | gdb frames |")
    print("|---|---|---|---|---|")
    for r in rows:
        print("| %s | %s | %.0f (%d-%d) | %d B | %d |" % r)
    print("\nruntime %s, %d runs, kernel %s, %d CPUs" % (args.runtime, args.runs,
                                                      os.uname().release, os.cpu_count()))
    search_cost(c, programs)


def search_cost(c, programs):
    """interrupted_contexts on the kernel's cores: its time, median of 200 calls."""
    sys.path.insert(0, os.path.join(ROOT, "runtime"))
    for mod in [m for m in sys.modules if m.startswith("minicoredumper")]:
        del sys.modules[mod]  # this checkout's runtime, whatever --runtime said
    from lab.cores import kernel_core
    from minicoredumper.read_stack import interrupted_contexts
    print()
    c.install()
    try:
        for label, argv in (("3-deep crash", [programs["crash3"]]),
                            ("sigaltstack handler", [programs["altstack"]])):
            path = c.kernel_core(argv)
            kc, mem = kernel_core(path)
            times = []
            for _ in range(200):
                t = time.perf_counter()
                found = interrupted_contexts(kc, mem, kc.crashing_thread)
                times.append(time.perf_counter() - t)
            print("signal frame search, %s: %.3f ms (median of 200), %d found"
                  % (label, statistics.median(times) * 1e3, len(found)))
            os.unlink(path)
    finally:
        c.restore()


if __name__ == "__main__":
    main()
