"""What naming frames costs the handler (not part of `make test`).

    python3 tests/bench/bench_symbols.py [--runs N] [--runtime DIR]

For Debian's own libc, ld.so and python3 (stripped: .dynsym) and a static
program (.symtab of the whole C library), the milliseconds of
read_modules.SymbolFile.nearest (what write_summary.symbolize asks of each
module) for 2, 10 and 60 addresses spread over the file's .text, each time
on a freshly opened file (as in a crash): the median over N runs.
--runtime: the runtime/ directory whose read_modules is measured (another
checkout's, for a before/after figure).
"""

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

FILES = ["/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2", "/usr/bin/python3"]


def text_section(path):
    """(start, end) of the file's .text (readelf, so that any runtime can be measured)."""
    out = subprocess.run(["readelf", "-SW", path], capture_output=True, text=True).stdout
    for line in out.splitlines():
        f = line.replace("[ ", "[").split()
        if len(f) > 5 and f[1] == ".text":
            return int(f[3], 16), int(f[3], 16) + int(f[5], 16)
    raise SystemExit("%s: no .text" % path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=21)
    ap.add_argument("--runtime", default=os.path.join(ROOT, "runtime"))
    args = ap.parse_args()
    sys.path.insert(0, args.runtime)
    from minicoredumper.read_modules import MappedFile
    files = [p for p in FILES if os.path.exists(p)]
    work = tempfile.mkdtemp(prefix="mcdbs.")
    try:
        if shutil.which("gcc"):
            src = os.path.join(work, "p.c")
            with open(src, "w") as f:
                f.write("#include <stdio.h>\nint main(void) { puts(\"p\"); return 0; }\n")
            subprocess.run(["gcc", "-O2", "-static", "-o", src[:-2], src], check=True)
            files.append(src[:-2])
        print("%-36s %8s %8s %8s  (ms, median of %d)" % ("file", "2", "10", "60", args.runs))
        rnd = random.Random(1)
        for path in files:
            lo, hi = text_section(path)
            row = []
            for n in (2, 10, 60):
                addrs = {rnd.randrange(lo, hi) for _ in range(n)}
                times = []
                for _ in range(args.runs):
                    f = MappedFile(os.open(path, os.O_RDONLY), path)
                    t0 = time.perf_counter()
                    f.symbols.nearest(addrs)
                    times.append((time.perf_counter() - t0) * 1e3)
                    f.close()
                row.append(statistics.median(times))
            print("%-36s %8.2f %8.2f %8.2f" % ((os.path.basename(path),) + tuple(row)))
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
