"""Pipe mode against socket mode against the kernel's own core against no dump
(not part of `make test`).

    python3 tests/bench/bench_modes.py [--runs N] [--soak N] [--markdown]

For each case (the 3-deep crash; 9 threads; 1 GiB of touched heap; 100
registrations with libminicoredumper) and each mode:
  none    no core at all (RLIMIT_CORE 0, core_pattern a file name);
  kernel  the kernel's own core, core_pattern a file in the work directory;
  pipe    the handler in core_pattern ("|..."), one process per crash;
  socket  minicoredumper_sockd on the coredump socket ("@" or "@@", Linux 6.16+);
it measures crash to reap (the program prints CLOCK_MONOTONIC just before its
fault, CRASH_STAMP; we take the time wait() returns): median and spread over N
runs; the handler's peak RSS (its VmHWM from its log line: pipe, the
handler's; socket, the crash's worker's); the artefact size (dump
directory, or the kernel's core file: its length and its disk use).  All
cases use the embedded recept (the targets' default).

--soak N: then N crashes of the 3-deep crash in socket mode, and the server's
VmRSS and VmHWM after 10, N/10 and N crashes (a leak would show as growth).
Needs root; restores core_pattern (through lab.crash's lock).
"""

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# As a script (make bench): the checkout's runtime and the tests' lab package first on
# sys.path, where pytest.ini's pythonpath puts them for the tests.
sys.path[:0] = [os.path.join(ROOT, "runtime"), os.path.join(ROOT, "tests")]

from lab.crash import Crasher  # noqa: E402
from lab.logs import handler_log  # noqa: E402
from lab.programs import workspace  # noqa: E402
from minicoredumper import corepattern
from minicoredumper.cmd_mcd import write_sysctl  # noqa: E402

RECEPT = os.path.join(ROOT, "conf", "embedded.recept.json")
MODES = ["none", "kernel", "pipe", "socket"]


def stamped(argv, core_limit=resource.RLIM_INFINITY):
    """Crash argv once; (crash-to-reap seconds, pid)."""
    env = dict(os.environ, CRASH_STAMP="1")
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                         preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_CORE,
                                                               (core_limit, core_limit)))
    err = p.stderr.read()
    p.wait()
    reaped = time.monotonic()
    assert p.returncode == -11, (argv, p.returncode, err[-200:])
    return reaped - float(err.split()[-1]), p.pid


def log_rss(pid, timeout=10):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for line in handler_log(pid):
            m = re.search(r"peak RSS (\d+) kB", line)
            if m:
                return int(m.group(1))
        time.sleep(0.02)
    return None


def status_kb(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


def dir_size(d):
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(d) for f in fs)


def wait_published(base, before, timeout=20):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        new = [d for d in os.listdir(base) if not d.startswith(".") and d not in before] \
            if os.path.isdir(base) else []
        if new:
            return os.path.join(base, new[0])
        time.sleep(0.01)
    return None


class Result:
    def __init__(self):
        self.times, self.rss, self.sizes, self.disk = [], [], [], []


def run_mode(c, mode, argv, runs, work):
    r = Result()
    if mode == "none":
        write_sysctl("core_pattern", "core")
        try:
            for _ in range(runs):
                r.times.append(stamped(argv, 0)[0])
        finally:
            write_sysctl("core_pattern", c.pattern)
        return r
    if mode == "kernel":
        kdir = os.path.join(work, "kcores")
        os.makedirs(kdir, exist_ok=True)
        write_sysctl("core_pattern", os.path.join(kdir, "core.%p"))
        try:
            for _ in range(runs):
                t, pid = stamped(argv)
                r.times.append(t)
                path = os.path.join(kdir, "core.%d" % pid)
                st = os.stat(path)
                r.sizes.append(st.st_size)
                r.disk.append(st.st_blocks * 512)
                os.unlink(path)
        finally:
            write_sysctl("core_pattern", c.pattern)
        return r
    base = c.configure()
    c.configure(config={"base_dir": base, "watch": [{"recept": RECEPT}],
                        "max_dumps": 50})
    server = c.start_socket_server() if mode == "socket" else None
    try:
        stamped(argv)  # warms the config cache (pipe) / the server (socket); unmeasured
        wait_published(base, set())
        for _ in range(runs):
            before = set(os.listdir(base))
            t, pid = stamped(argv)
            r.times.append(t)
            d = wait_published(base, before)
            if mode == "pipe":
                c.wait_idle()
            r.rss.append(log_rss(pid) or 0)
            r.sizes.append(dir_size(d) if d else 0)
    finally:
        if server is not None:
            c.stop_socket_server()
    return r


def soak(c, argv, n):
    """n crashes in socket mode; [(crashes so far, VmRSS kB, VmHWM kB, median ms)]."""
    base = c.configure()
    c.configure(config={"base_dir": base, "watch": [{"recept": RECEPT}], "max_dumps": 20})
    server = c.start_socket_server()
    out, times = [], []
    checkpoints = {10, n // 10, n}
    try:
        for i in range(1, n + 1):
            before = set(os.listdir(base)) if os.path.isdir(base) else set()
            times.append(stamped(argv)[0])
            wait_published(base, before)
            if i in checkpoints:
                out.append((i, status_kb(server.pid, "VmRSS"), status_kb(server.pid, "VmHWM"),
                            statistics.median(times[-10:]) * 1000))
    finally:
        c.stop_socket_server()
    return out


def med(values, scale=1.0, fmt="%.1f"):
    if not values:
        return "-"
    v = sorted(x * scale for x in values)
    if len(v) == 1:
        return fmt % v[0]
    return "%s (%s-%s)" % (fmt % statistics.median(v), fmt % v[0], fmt % v[-1])


def size_text(mode, r):
    if not r.sizes:
        return "-"
    if mode == "kernel":
        return "%s / %s on disk" % (human(statistics.median(r.sizes)),
                                    human(statistics.median(r.disk)))
    return human(statistics.median(r.sizes))


def human(n):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return ("%d %s" if unit == "B" else "%.1f %s") % (n, unit)
        n /= 1024.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=11)
    ap.add_argument("--soak", type=int, default=1000)
    ap.add_argument("--cases", default="crash3,threads9,heap1g,regs100")
    ap.add_argument("--modes", default=",".join(MODES))
    args = ap.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    if "socket" in modes and not corepattern.kernel_has_socket_mode():
        print("no coredump socket on this kernel (Linux 6.16+): socket mode left out")
        modes.remove("socket")
    work, progs = workspace("mcdb.", ["crash3", "bigheap", "benchcrash"])
    cases = {"crash3": ("3-deep crash", [progs["crash3"]], args.runs),
             "threads9": ("9 threads", [progs["benchcrash"], "9", "0"], args.runs),
             "heap1g": ("1 GiB heap", [progs["bigheap"], "1024"], max(3, args.runs // 3)),
             "regs100": ("100 registrations", [progs["benchcrash"], "1", "100"], args.runs)}
    c = Crasher(work)
    rows, soaked = [], []
    try:
        c.install()
        for key in args.cases.split(","):
            name, argv, runs = cases[key]
            for mode in modes:
                r = run_mode(c, mode, argv, runs, work)
                rows.append((name, mode, r, runs))
                print("%-18s %-7s %s ms" % (name, mode, med(r.times, 1000)), flush=True)
        if args.soak and "socket" in modes:
            soaked = soak(c, [progs["crash3"]], args.soak)
    finally:
        c.restore()
        shutil.rmtree(work, ignore_errors=True)
    print()
    print("| case | mode | crash to reap, ms: median (min-max) | handler peak RSS | artefact "
          "size | runs |")
    print("|---|---|---|---|---|---|")
    for name, mode, r, runs in rows:
        rss = "-" if not r.rss else (med(r.rss, 1 / 1024.0, "%.1f") + " MiB")
        print("| %s | %s | %s | %s | %s | %d |" % (name, mode, med(r.times, 1000), rss,
                                                    size_text(mode, r), runs))
    if soaked:
        print()
        print("| socket server after | VmRSS | VmHWM | crash to reap, median of the last 10 |")
        print("|---|---|---|---|")
        for i, rss, hwm, ms in soaked:
            print("| %d crashes | %.1f MiB | %.1f MiB | %.1f ms |" % (i, rss / 1024.0,
                                                                      hwm / 1024.0, ms))
    print("\nkernel %s, %d CPUs, Python %s" % (os.uname().release, os.cpu_count(),
                                               sys.version.split()[0]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
