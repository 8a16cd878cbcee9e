"""Benchmark the crash handler on the real kernel (not part of `make test`).

    python3 tests/bench/bench_handler.py [--runs N]

Prints a table of:
- crash-to-reap latency (the program prints CLOCK_MONOTONIC right before its
  fault; we take the time wait() returns), median and spread over N runs, for
  the 3-deep crash and a process with 1 GiB of touched heap;
- the handler's peak RSS (VmHWM, which the handler logs) for both;
- artefact sizes of the 3-deep crash with the generic and the embedded recept;
- the crash path's import time (python -X importtime over the modules the
  handler really loaded, read from its debug log) and its start-up cost over a
  bare `python3 -I -S -c pass`.
Needs root; restores core_pattern.
"""

import argparse
import json
import os
import re
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
from minicoredumper.corepattern import read_sysctl, write_sysctl  # noqa: E402

CONF = os.path.join(ROOT, "conf")


def stamped_crash(c, argv):
    """Run argv with CRASH_STAMP; returns (crash-to-reap seconds, pid)."""
    env = dict(os.environ, CRASH_STAMP="1")
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    err = p.stderr.read()
    p.wait()
    reaped = time.monotonic()
    c.wait_idle()
    return reaped - float(err.split()[-1]), p.pid


def baseline(c, argv, runs):
    """Crash-to-reap with no core dump at all (RLIMIT_CORE 0, core_pattern a file)."""
    import resource
    saved = read_sysctl("core_pattern")
    write_sysctl("core_pattern", "core")
    env = dict(os.environ, CRASH_STAMP="1")
    out = []
    try:
        for _ in range(runs):
            p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                 env=env, preexec_fn=lambda: resource.setrlimit(
                                     resource.RLIMIT_CORE, (0, 0)))
            err = p.stderr.read()
            p.wait()
            out.append(time.monotonic() - float(err.split()[-1]))
    finally:
        write_sysctl("core_pattern", saved)
    return out


def handler_ms(pid):
    """The handler's own time (interpreter start-up excluded), from its log line."""
    return _logged_number(pid, r" in (\d+) ms")


def peak_rss(pid):
    """The handler's peak RSS in kB (VmHWM), from its log line."""
    return _logged_number(pid, r"peak RSS (\d+) kB")


def _logged_number(pid, pattern):
    for l in handler_log(pid):
        m = re.search(pattern, l)
        if m:
            return int(m.group(1))
    return None


def summary(values, scale=1.0, fmt="%.1f"):
    v = sorted(x * scale for x in values)
    return "%s (min %s, max %s, n=%d)" % (fmt % statistics.median(v), fmt % v[0],
                                          fmt % v[-1], len(v))


def dir_size(d):
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(d) for f in fs)


def run_case(c, argv, recept_path, runs):
    """Crash argv `runs` times under one unchanged config (as on a device, so the
    handler's parsed-config cache is warm after the first, unmeasured, crash)."""
    times, rss, sizes, own = [], [], [], []
    base = c.configure()
    c.configure(config={"base_dir": base, "watch": [{"recept": recept_path}]})
    stamped_crash(c, argv)
    for _ in range(runs):
        before = set(os.listdir(base))
        t, pid = stamped_crash(c, argv)
        times.append(t)
        rss.append(peak_rss(pid) or 0)
        own.append(handler_ms(pid) or 0)
        new = set(os.listdir(base)) - before
        sizes.append(dir_size(os.path.join(base, new.pop())) if new else 0)
    return times, rss, sizes, own


def startup(cmd, runs):
    out = []
    for _ in range(runs):
        t0 = time.monotonic()
        subprocess.run(cmd, check=True)
        out.append(time.monotonic() - t0)
    return out


def crash_path_modules(c, exe, work, recept_name):
    """The modules the handler really loaded for recept_name (from its debug log)."""
    recept = os.path.join(work, "debug-" + recept_name)
    with open(os.path.join(CONF, recept_name)) as f:
        r = json.load(f)
    r["write_debug_log"] = True
    r["max_dump_size"] = 0  # room for debug.txt (the budget code is loaded either way)
    with open(recept, "w") as f:
        json.dump(r, f)
    base = c.configure()
    c.configure(config={"base_dir": base, "watch": [{"recept": recept}]})
    c.run([exe])  # fills the parsed-config cache, as the first crash on a device does
    c.run([exe])
    d = os.path.join(base, sorted(os.listdir(base))[-1])
    text = open(os.path.join(d, "debug.txt")).read()
    return re.search(r"^modules loaded: (.*)$", text, re.M).group(1).split()


def import_cost(launcher, mods, runs):
    """(import time in ms from -X importtime, start-up with the imports, bare start-up)."""
    with open(launcher) as f:
        sitedir = re.search(r'sys.path.append\("(.*)"\)', f.read()).group(1)
    bare_mods = subprocess.run([sys.executable, "-I", "-S", "-c",
                                "import sys; print(' '.join(sys.modules))"],
                               capture_output=True, text=True, check=True).stdout.split()
    mods = [m for m in mods if m not in bare_mods and m != "__main__"]
    # os first: importing genericpath before it is a circular import.
    code = "import sys, os; sys.path.append(%r)\n" % sitedir + "\n".join(
        "import " + m for m in mods)
    bare, full = [], []
    for _ in range(runs):  # interleaved, so drift in machine load hits both alike
        bare += startup([sys.executable, "-I", "-S", "-c", "pass"], 1)
        full += startup([sys.executable, "-I", "-S", "-c", code], 1)
    p = subprocess.run([sys.executable, "-X", "importtime", "-I", "-S", "-c", code],
                       capture_output=True, text=True, check=True)
    bare_p = subprocess.run([sys.executable, "-X", "importtime", "-I", "-S", "-c", "pass"],
                            capture_output=True, text=True, check=True)

    def self_us(text):
        return sum(int(l.split("|")[0].split(":")[1]) for l in text.splitlines()
                   if l.startswith("import time:") and "self [us]" not in l)

    return (self_us(p.stderr) - self_us(bare_p.stderr)) / 1000, full, bare


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    work, progs = workspace("mcd-bench.", ["crash3", "bigheap"])
    c = Crasher(work)
    rows = []
    try:
        c.install()
        # Start the handler from the pip-installed runtime (`make bench` installs
        # it), so the optional ujson in site-packages is found as on a target.
        subprocess.run([sys.executable, "-c", "from minicoredumper.commands import mcd; "
                        "mcd.write_launcher(%r)" % os.path.dirname(c.launcher)],
                       check=True, cwd="/")
        generic = os.path.join(CONF, "generic.recept.json")
        embedded = os.path.join(CONF, "embedded.recept.json")
        cases = [("3-deep crash, generic recept", [progs["crash3"]], generic, args.runs),
                 ("3-deep crash, embedded recept", [progs["crash3"]], embedded, args.runs),
                 ("1 GiB touched heap, generic recept", [progs["bigheap"], "1024"], generic,
                  max(3, args.runs // 3))]
        for name, argv, recept, runs in cases:
            rows.append((name,) + run_case(c, argv, recept, runs) + (baseline(c, argv, runs),))
        mods = {name: crash_path_modules(c, progs["crash3"], work, name)
                for name in ("embedded.recept.json", "generic.recept.json")}
    finally:
        c.restore()

    print("\n%-36s %-34s %-28s %-26s %-32s %s" % (
        "case", "crash to reap, ms", "no dump at all, ms", "handler's own time, ms",
        "handler peak RSS, kB", "dump dir bytes"))
    for name, t, rss, size, own, base in rows:
        print("%-36s %-34s %-28s %-26s %-32s %d" % (
            name, summary(t, 1000), summary(base, 1000), summary(own, 1, "%d"),
            summary(rss, 1, "%d"), statistics.median(size)))
    own3 = statistics.median(rows[0][4])
    ownh = statistics.median(rows[2][4])
    print("handler's own time, 1 GiB heap / 3-deep (generic): %.2fx" % (ownh / own3))
    extra3 = statistics.median(rows[0][1]) - statistics.median(rows[0][5])
    extrah = statistics.median(rows[2][1]) - statistics.median(rows[2][5])
    print("crash-to-reap minus no-dump baseline, 1 GiB heap / 3-deep (generic): "
          "%.1f / %.1f ms = %.2fx" % (extrah * 1000, extra3 * 1000, extrah / extra3))
    for name, m in mods.items():
        imp, full, bare = import_cost(c.launcher, m, 60)
        print("\ncrash path, %s:" % name)
        print("  import time (-X importtime, self, beyond bare): %.1f ms" % imp)
        print("  bare python3 -I -S -c pass: %s ms" % summary(bare, 1000))
        print("  start-up plus the crash-path imports: %s ms" % summary(full, 1000))
        print("  crash path adds (median): %.1f ms" % (
            (statistics.median(full) - statistics.median(bare)) * 1000))

if __name__ == "__main__":
    main()
