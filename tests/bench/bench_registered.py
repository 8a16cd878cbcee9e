"""Benchmark registered data and coreinject (not part of `make test`).

    python3 tests/bench/bench_registered.py [--runs N]

- Crash to reap, and the handler's own time (its log line), for a crash with
  100 registrations against the same crash with none: median, spread, ratio.
- coreinject's peak RSS (its own VmHWM) on the kernel's full core of
  a process with 1 GiB of touched heap: 16 MiB injected in place into the
  heap's segment, and 64 MiB appended as a new segment to a compact core.
Needs root; restores core_pattern.
"""

import argparse
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# As a script (make bench): the checkout's runtime and the tests' lab package first on
# sys.path, where pytest.ini's pythonpath puts them for the tests.
sys.path[:0] = [os.path.join(ROOT, "runtime"), os.path.join(ROOT, "tests")]

from lab import ENV  # noqa: E402
from lab.crash import Crasher  # noqa: E402
from lab.programs import workspace  # noqa: E402
from bench_handler import handler_ms, stamped_crash, summary   # noqa: E402


def handler_times(c, argv, runs):
    """([crash to reap, s], [the handler's own time, ms]) over runs crashes."""
    base = c.configure({"dump_scope": 0xFFFFFFFF})
    reap, own = [], []
    c.run(argv)  # warms the config cache
    for _ in range(runs):
        t, pid = stamped_crash(c, argv)
        reap.append(t)
        own.append(handler_ms(pid))
    assert len(os.listdir(base)) == runs + 1
    return reap, own


def coreinject_rss(core, smap, dump):
    """(peak RSS in kB, output) of coreinject, as the process itself reports (VmHWM)."""
    code = ("import sys; from minicoredumper.cmd_coreinject import main; rc = main(sys.argv[1:]); "
            "print(open('/proc/self/status').read().split('VmHWM:')[1].split()[0]); "
            "sys.exit(rc)")
    p = subprocess.run([sys.executable, "-c", code, core, smap, dump],
                       env=ENV,
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    out, rss = p.stdout.strip().rsplit("\n", 1)
    return int(rss), out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    work, progs = workspace("mcd-bench.", ["benchcrash", "bigheap", "crash3"])
    c = Crasher(work)
    try:
        c.install()
        none = handler_times(c, [progs["benchcrash"], "1", "0"], args.runs)
        hundred = handler_times(c, [progs["benchcrash"], "1", "100"], args.runs)
        kcore = c.kernel_core([progs["bigheap"], "1024"])
        compact = os.path.join(c.crash([progs["crash3"]], {}), "core")
    finally:
        c.restore()
    for label, i in (("crash to reap", 0), ("handler's own time", 1)):
        scale = 1000 if i == 0 else 1
        print("%s, 0 registrations:   %s ms" % (label, summary(none[i], scale)))
        print("%s, 100 registrations: %s ms" % (label, summary(hundred[i], scale)))
        print("  ratio (medians): %.2fx" % (statistics.median(hundred[i]) /
                                            statistics.median(none[i])))

    from minicoredumper.tool_corefile import CoreFile
    cf = CoreFile(kcore)
    heap = max(cf.loads, key=lambda p: p.filesz)
    cf.close()
    dump = os.path.join(work, "heap.bin")
    with open(dump, "wb") as f:
        f.write(os.urandom(16 << 20))
    smap = os.path.join(work, "symbol.map")
    with open(smap, "w") as f:
        f.write("0 %x %x D heap.bin\n" % (heap.vaddr + (1 << 20), 16 << 20))
    size = os.path.getsize(kcore)
    rss, out = coreinject_rss(kcore, smap, dump)
    print("\ncoreinject into the kernel's core of a 1 GiB-heap process (%d MiB): %s; "
          "peak RSS %s kB" % (size >> 20, out, rss))
    os.unlink(kcore)

    # A compact core gets a new 64 MiB segment appended.
    big = os.path.join(work, "big.bin")
    with open(big, "wb") as f:
        f.write(os.urandom(64 << 20))
    with open(smap, "w") as f:
        f.write("0 %x %x D big.bin\n" % (0x10000000, 64 << 20))
    rss, out = coreinject_rss(compact, smap, big)
    print("coreinject appending 64 MiB to a compact core: %s; peak RSS %s kB" % (out, rss))

if __name__ == "__main__":
    main()
