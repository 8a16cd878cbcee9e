"""Benchmark live dumps on the real kernel (not part of `make test`).

    python3 tests/bench/bench_live.py [--runs N]

With 1, 3 and 10 registered processes (regloop: 3 threads each, 4
registrations), runs minicoredumper_trigger N times and prints the pause of
each live-dumped process (first PTRACE_SEIZE to last PTRACE_DETACH, as the
trigger measures and prints it), median and max, and the trigger's wall time.
Then crashes crash3 with 3 other registered processes, with and without
live_dumper, and prints the handler's own time (from its log line) and the
crash-to-reap time.  Needs root; restores core_pattern; the registry daemon
and the apps run in a private network namespace (lab.regd).
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# As a script (make bench): the checkout's runtime and the tests' lab package first on
# sys.path, where pytest.ini's pythonpath puts them for the tests.
sys.path[:0] = [os.path.join(ROOT, "runtime"), os.path.join(ROOT, "tests")]

from bench_handler import handler_ms, summary  # noqa: E402
from lab import ENV  # noqa: E402
from lab.crash import Crasher  # noqa: E402
from lab.programs import build_programs  # noqa: E402
from lab.regd import Lab  # noqa: E402

PAUSE = re.compile(r"^live dump of (\d+) .* paused ([\d.]+) ms", re.M)


def trigger_pauses(work, state, runs):
    """(pauses in ms, trigger wall times in ms) over runs triggers."""
    cfg = os.path.join(work, "all.cfg.json")
    with open(cfg, "w") as f:
        f.write('{"watch": [{}]}')
    pauses, walls = [], []
    for n in range(runs):
        out = os.path.join(work, "trigger%d" % n)
        t0 = time.monotonic()
        p = subprocess.run([sys.executable, "-m", "minicoredumper.cmd_trigger", "--state", state,
                            "--config", cfg, out, "1"], env=ENV, capture_output=True,
                           text=True, check=True)
        walls.append((time.monotonic() - t0) * 1000)
        pauses += [float(ms) for _, ms in PAUSE.findall(p.stdout)]
        shutil.rmtree(out)
    return pauses, walls


def crash_times(c, exe, live, runs):
    """(handler's own ms, crash-to-reap ms) of crashes with 3 registered processes."""
    base = c.configure({"live_dumper": live})
    own, reap = [], []
    c.run([exe])  # warms the parsed-config cache
    for _ in range(runs):
        _, reaped, pid = c.run([exe])
        own.append(handler_ms(pid) or 0)
        reap.append(reaped * 1000)
    shutil.rmtree(base)
    return own, reap


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_live.py needs root (ptrace, network namespace, core_pattern)")
    work = tempfile.mkdtemp(prefix="mcd-live.")
    progs = build_programs(work, ["regloop", "crash3"])
    rows = []
    lab = Lab()
    try:
        state = os.path.join(work, "regd.pids")
        d = lab.start(state=state)
        for n in (1, 3, 10):
            while len(lab.apps) < n:
                lab.app(progs["regloop"], "app%d" % len(lab.apps))
            d.wait_registered([a.pid for a in lab.apps])
            rows.append((n,) + trigger_pauses(work, state, args.runs))
        d.stop()
        for a in lab.apps[3:]:
            a.stop()
        del lab.apps[3:]
        c = Crasher(work)
        try:
            c.install()
            d = lab.start()  # the handler reads the default list
            for a in lab.apps:
                a.reregister()  # they told the stopped daemon only
            d.wait_registered([a.pid for a in lab.apps])
            crashes = [(live, crash_times(c, progs["crash3"], live, args.runs // 2 or 1))
                       for live in (False, True)]
        finally:
            c.restore()
    finally:
        lab.close()
        shutil.rmtree(work, ignore_errors=True)

    print("\n%-24s %-40s %-12s %s" % ("registered processes", "pause per process, ms",
                                       "max, ms", "trigger wall time, ms"))
    for n, pauses, walls in rows:
        print("%-24d %-40s %-12.2f %s" % (n, summary(pauses, 1, "%.2f"), max(pauses),
                                          summary(walls, 1, "%.0f")))
    print("\ncrash3 with 3 other registered processes:")
    for live, (own, reap) in crashes:
        print("  live_dumper %-5s handler's own time %s ms, crash to reap %s ms" % (
            str(live).lower(), summary(own, 1, "%d"), summary(reap, 1, "%.0f")))


if __name__ == "__main__":
    main()
