"""Socket mode's crash to reap, and what its workers cost (in `make bench`, not
`make test`).

    python3 tests/bench/bench_sockd.py [--runs N] [--fresh N] [--burst N]

Against minicoredumper_sockd on the coredump socket (Linux 6.16+), the 3-deep
crash with the embedded recept (as bench_modes.py):
  sequential  N crashes one after the other (after one unmeasured crash);
  fresh       the first crash of a server just started, N servers (the spare
              worker it starts at once takes it; nothing of the crash path
              has run in that process yet);
  burst       N crashes started at once, each crash's own time.
For each: crash to reap (the program prints CLOCK_MONOTONIC just before its
fault, CRASH_STAMP; we take the time wait() returns), median and spread;
the workers' minor page faults per crash (their copies of the server's
pages after fork among them): the server's cminflt (workers reaped) plus
its children's minflt, before and after each crash, from /proc; and after
the first and the last sequential crash the server's and its workers' PSS
and RSS (smaps_rollup).  Needs root; restores core_pattern (through lab.crash's lock).
"""

import argparse
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path[:0] = [os.path.join(ROOT, "runtime"), os.path.join(ROOT, "tests"),
                os.path.dirname(os.path.abspath(__file__))]

from bench_modes import RECEPT, med, stamped, wait_published  # noqa: E402
from lab.crash import Crasher  # noqa: E402
from lab.programs import workspace  # noqa: E402
from minicoredumper import corepattern  # noqa: E402

IDLE_WAIT = 0.05  # seconds after a dump is published before its worker is counted done


def children(pid):
    with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
        return [int(c) for c in f.read().split()]


def stat_fields(pid):
    """/proc/PID/stat after the command's name: [state, ppid, ...]."""
    with open("/proc/%d/stat" % pid) as f:
        return f.read().rsplit(")", 1)[1].split()


def worker_faults(server):
    """Minor faults of the server's workers so far: reaped ones (the server's
    cminflt) and running ones (their minflt)."""
    total = int(stat_fields(server)[8])  # cminflt
    for c in children(server):
        try:
            total += int(stat_fields(c)[7])  # minflt
        except OSError:
            pass  # gone meanwhile: counted in cminflt once reaped
    return total


def memory_kb(pids, keys=("Pss", "Rss")):
    """[{key: kB}] from smaps_rollup of those of pids still there."""
    found = []
    for pid in pids:
        out = dict.fromkeys(keys, 0)
        try:
            with open("/proc/%d/smaps_rollup" % pid) as f:
                for line in f:
                    name = line.split(":")[0]
                    if name in out:
                        out[name] = int(line.split()[1])
        except OSError:
            continue  # a worker that ended meanwhile
        found.append(out)
    return found


def configure(c):
    base = c.configure()
    c.configure(config={"base_dir": base, "watch": [{"recept": RECEPT}], "max_dumps": 200})
    return base


def one(c, server, argv, base):
    """One crash: (crash to reap seconds, the workers' minor faults)."""
    before_dirs = set(os.listdir(base)) if os.path.isdir(base) else set()
    f0 = worker_faults(server.pid)
    t, _ = stamped(argv)
    wait_published(base, before_dirs)
    time.sleep(IDLE_WAIT)
    return t, worker_faults(server.pid) - f0


def sequential(c, argv, runs):
    base = configure(c)
    server = c.start_socket_server()
    try:
        one(c, server, argv, base)  # unmeasured: the config cache, the first crash
        first = memory_kb([server.pid] + children(server.pid))
        times, faults = [], []
        for _ in range(runs):
            t, f = one(c, server, argv, base)
            times.append(t)
            faults.append(f)
        mem = memory_kb([server.pid] + children(server.pid))
    finally:
        c.stop_socket_server()
    return times, faults, first, mem


def fresh(c, argv, runs):
    times, faults = [], []
    for _ in range(runs):
        base = configure(c)
        server = c.start_socket_server()
        try:
            time.sleep(0.3)  # the spare started and warmed up, as a server idle a while
            t, f = one(c, server, argv, base)
            times.append(t)
            faults.append(f)
        finally:
            c.stop_socket_server()
    return times, faults


def burst(c, argv, n):
    base = configure(c)
    server = c.start_socket_server()
    try:
        one(c, server, argv, base)
        env = dict(os.environ, CRASH_STAMP="1")
        procs = [subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  env=env) for _ in range(n)]
        times = []
        pending = list(procs)
        while pending:  # each one's reap as soon as it happens
            for p in list(pending):
                if p.poll() is not None:
                    times.append(time.monotonic() - float(p.stderr.read().split()[-1]))
                    pending.remove(p)
            time.sleep(0.0002)
    finally:
        c.stop_socket_server()
    return times


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=21)
    ap.add_argument("--fresh", type=int, default=7)
    ap.add_argument("--burst", type=int, default=4)
    args = ap.parse_args()
    if not corepattern.kernel_has_socket_mode():
        print("no coredump socket on this kernel (Linux 6.16+): nothing to measure")
        return 0
    work, progs = workspace("mcdsb.", ["crash3"])
    argv = [progs["crash3"]]
    c = Crasher(work)
    try:
        c.install()
        rows = []
        times, faults, first, mem = sequential(c, argv, args.runs)
        rows.append(("sequential", times, faults, args.runs))
        if args.fresh:
            t, f = fresh(c, argv, args.fresh)
            rows.append(("fresh server", t, f, args.fresh))
        if args.burst:
            rows.append(("burst of %d" % args.burst, burst(c, argv, args.burst), [],
                         args.burst))
    finally:
        c.restore()
        shutil.rmtree(work, ignore_errors=True)
    print("| socket mode, 3-deep crash | crash to reap, ms: median (min-max) | workers' "
          "minor faults per crash: median (min-max) | crashes |")
    print("|---|---|---|---|")
    for name, t, f, n in rows:
        print("| %s | %s | %s | %d |" % (name, med(t, 1000, "%.2f"), med(f, 1, "%d"), n))
    print()
    for when, m in (("after 1 crash", first), ("after %d crashes" % (args.runs + 1), mem)):
        print("%s: server PSS %.1f MiB (RSS %.1f MiB), %d worker(s) PSS %.1f MiB (RSS %.1f "
              "MiB)" % (when, m[0]["Pss"] / 1024.0, m[0]["Rss"] / 1024.0, len(m) - 1,
                        sum(x["Pss"] for x in m[1:]) / 1024.0,
                        sum(x["Rss"] for x in m[1:]) / 1024.0))
    print("kernel %s, %d CPUs, Python %s, load %s" % (
        os.uname().release, os.cpu_count(), sys.version.split()[0],
        " ".join("%.2f" % x for x in os.getloadavg())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
