"""Benchmark the worst inputs of the crashed process's files and memory (not
part of `make test`), in pipe mode:

    python3 tests/bench/bench_process_files.py [--runs N]

- an executable whose .strtab claims 64 GiB of a sparse file;
- a mapping of a file on FUSE whose daemon stops answering (dumped by name);
  the daemon is aborted after ABORT_AFTER seconds if the handler still waits;
- a file truncated under its 16-page mapping, with every mapping dumped;
- crash3 with every mapping dumped, for comparison.

For each: crash to reap (s), and the handler's own time (ms) and peak RSS (kB)
from its "dumped ... in N ms, peak RSS K kB" log line, or the line that says
why there is no dump.  Needs root; restores core_pattern.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path[:0] = [os.path.join(ROOT, "runtime"), os.path.join(ROOT, "tests")]

from lab import fuse  # noqa: E402
from lab.crash import Crasher  # noqa: E402
from lab.logs import handler_log  # noqa: E402
from lab.programs import with_strtab_size, workspace  # noqa: E402
from bench_handler import handler_ms, peak_rss  # noqa: E402

ABORT_AFTER = 15.0


def crash(c, argv, recept, before_crash=None, abort=None):
    """(crash to reap in s, handler ms or None, peak RSS kB or None, last log line)."""
    c.configure(recept)
    p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL)
    if before_crash:
        p.stdout.readline()
        before_crash()
    timer = threading.Timer(ABORT_AFTER, abort) if abort else None
    if timer:
        timer.start()
    t0 = time.monotonic()
    try:
        p.stdin.write(b"x")
        p.stdin.close()
    except BrokenPipeError:
        pass  # it crashed without waiting
    p.wait()
    reaped = time.monotonic() - t0
    c.wait_idle(60)
    if timer:
        timer.cancel()
    lines = handler_log(p.pid)
    return reaped, handler_ms(p.pid), peak_rss(p.pid), (lines[-1] if lines else "(no log)")


def report(label, results):
    reaped = statistics.median(r[0] for r in results)
    own = [r[1] for r in results if r[1] is not None]
    rss = [r[2] for r in results if r[2] is not None]
    print("%-44s reaped %6.2f s  handler %s  peak RSS %s  (%d/%d dumped)" % (
        label, reaped, "%6.0f ms" % statistics.median(own) if own else "      - ",
        "%6d kB" % max(rss) if rss else "      - ", len(own), len(results)))
    if len(own) < len(results):
        print("    %s" % next(r[3] for r in results if r[1] is None)[-160:])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    work, progs = workspace("mcd-bench.", ["procfiles", "crash3"])
    os.chmod(work, 0o755)
    # its .strtab header claims 64 GiB, the file sparse to that size
    big = with_strtab_size(progs["procfiles"], os.path.join(work, "bin", "sparse"), 64 << 30)
    every = {"maps": {"dump_by_name": ["*"]}}
    c = Crasher(work)
    try:
        c.install()
        c.configure()
        c.run([progs["crash3"]])  # warms the page cache
        report("crash3, every mapping dumped",
               [crash(c, [progs["procfiles"], "wait"], every) for _ in range(args.runs)])
        report("a file truncated under its mapping, every one",
               [crash(c, [progs["procfiles"], "truncated", os.path.join(work, "t")], every)
                for _ in range(args.runs)])
        report(".strtab of 64 GiB (sparse file)",
               [crash(c, [big, "wait"], {}) for _ in range(args.runs)])
        if fuse.available():
            results = []
            for _ in range(args.runs):
                mnt = tempfile.mkdtemp(dir=work)
                m = fuse.FuseMount(mnt)
                try:
                    recept = {"maps": {"dump_by_name": [mnt + "/*"]}}
                    results.append(crash(c, [progs["procfiles"], "map", m.path], recept,
                                         before_crash=m.freeze, abort=m.close))
                finally:
                    m.close()
            report("FUSE mapping, daemon stopped answering", results)
    finally:
        c.restore()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
