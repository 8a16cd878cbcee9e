"""The stack-trace record's figures (docs/FORMATS.md §13; not part of `make test`).

    python3 tests/bench/bench_stacktrace.py [--budget 1536]

Under a max_dump_size too small for any core (the generic recept, all
threads' stacks copied and unwound): the record's bytes and threads for the
3-deep crash (crash3), the 8-thread program (threads8), Debian's sleep killed
with SIGSEGV and xz -T4 killed with SIGABRT; then for crash3 and threads8 the
smallest max_dump_size (to 8 bytes, bisected) whose dump holds the record
(of every thread, and of the crashing thread alone); and `python3 -X
importtime` of the handler's modules: the crash path's imports with and
without stacktrace.  Needs root; restores core_pattern (through lab.crash's
lock).
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path[:0] = [os.path.join(ROOT, "runtime"), os.path.join(ROOT, "tests")]

from lab.crash import Crasher  # noqa: E402
from lab.programs import workspace  # noqa: E402
from minicoredumper import stacktrace as T  # noqa: E402


def recept(budget):
    with open(os.path.join(ROOT, "conf", "generic.recept.json")) as f:
        r = json.load(f)
    r.update(live_dumper=False, max_dump_size=budget)
    return r


def crash(crasher, argv, budget, killed=None, after=0.5):
    """The dump directory of argv crashed (or killed with signal killed) under budget."""
    base = crasher.configure(recept(budget))
    if killed is None:
        _, _, pid = crasher.run(argv)
    else:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        time.sleep(after)
        p.send_signal(killed)
        p.wait(timeout=30)
        crasher.wait_idle()
        pid = p.pid
    return crasher.dump_of(base, pid)


def record_of(d):
    """(bytes, threads, frames) of d's stack-trace record, or None."""
    path = os.path.join(d, T.FILE)
    if not os.path.exists(path):
        return None
    t = T.read(path)
    return os.path.getsize(path), len(t.threads), sum(len(f) for _, f, _ in t.threads)


def smallest(crasher, exe, threads, low=256, high=4096):
    """The smallest max_dump_size (to 8 bytes) whose dump of exe holds a record
    of at least `threads` threads, and that record's (bytes, threads, frames)."""
    best = None
    while high - low > 8:
        mid = (low + high) // 2 // 8 * 8
        got = record_of(crash(crasher, [exe], mid))
        if got and got[1] >= threads:
            high, best = mid, got
        else:
            low = mid
    return high, best


def import_time(modules):
    """Milliseconds (cumulative, -X importtime) of importing modules under -I -S."""
    code = "import sys; sys.path.insert(0, %r); %s" % (
        os.path.join(ROOT, "runtime"), "; ".join("import " + m for m in modules))
    runs = []
    for _ in range(15):
        err = subprocess.run([sys.executable, "-I", "-S", "-X", "importtime", "-c", code],
                             capture_output=True, text=True).stderr
        total = sum(int(line.split("|")[1]) for line in err.splitlines()
                    if line.startswith("import time:") and line.split("|")[2].strip()
                    in modules)
        runs.append(total / 1000)
    runs.sort()
    return runs[len(runs) // 2]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=int, default=1536)
    args = ap.parse_args()
    work, programs = workspace("mcdbst.", ["crash3", "threads8"])
    crasher = Crasher(work)
    data = os.path.join(work, "data")
    with open(data, "wb") as f:
        f.write(os.urandom(64 << 20))
    try:
        crasher.install()
        print("max_dump_size %d, generic recept: record bytes, threads, frames" % args.budget)
        for label, argv, killed, after in (
                ("crash3", [programs["crash3"]], None, 0),
                ("threads8", [programs["threads8"]], None, 0),
                ("sleep (SIGSEGV)", ["/usr/bin/sleep", "100"], signal.SIGSEGV, 0.5),
                ("xz -T4 (SIGABRT)", ["xz", "-T4", "-1", "-k", "-c", data], signal.SIGABRT,
                 1.0)):
            d = crash(crasher, argv, args.budget, killed, after)
            print("  %-18s %s" % (label, record_of(d) or "no record: %s" % os.listdir(d)))
        for name, threads in (("crash3", 1), ("threads8", 1), ("threads8", 8)):
            size, got = smallest(crasher, programs[name], threads)
            print("smallest max_dump_size with the record of %s (%d thread%s or more): %d "
                  "bytes (%s)" % (name, threads, "s" if threads > 1 else "", size, got))
    finally:
        crasher.restore()
        shutil.rmtree(work, ignore_errors=True)
    path = ["minicoredumper.crash", "minicoredumper.write_artefacts"]
    print("import time, median of 15 (-X importtime, python3 -I -S): crash path %.2f ms; "
          "stacktrace alone %.2f ms" % (import_time(path),
                                        import_time(["minicoredumper.stacktrace"])))


if __name__ == "__main__":
    main()
