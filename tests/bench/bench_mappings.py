"""The core writer's cost against the number of file mappings (issue: "thousands of
mappings"): NT_FILE keeps only mappings whose memory cannot differ from their file,
which asks, per mapping, which PT_LOADs it overlaps.  A synthetic kernel core with N
file mappings (one PT_LOAD each) is read and one compact CoreImage built, as every rung
of the budget ladder does; the time of that is printed per N.  Linear is the target.

    python3 tests/bench/bench_mappings.py [N ...]      (default 500 1000 2000 4000 8000)
"""

import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The runtime and the unit tests' fake kernel core, run as a script here: one path setup,
# where pytest.ini's pythonpath puts them for the tests.
sys.path[:0] = [os.path.join(ROOT, "runtime"), os.path.join(ROOT, "tests", "unit")]

from minicoredumper import elf as E  # noqa: E402
from minicoredumper.linux import EM_X86_64  # noqa: E402
from minicoredumper.read_corestream import read_kernel_core  # noqa: E402
from minicoredumper.write_core import CoreImage  # noqa: E402
from test_elf import fake_kernel_core  # noqa: E402


def main():
    counts = [int(a) for a in sys.argv[1:]] or [500, 1000, 2000, 4000, 8000]
    for n in counts:
        base = 0x10000000
        loads = [(base + i * 0x3000, 0x2000, 0x1000, E.PF_R) for i in range(n)]
        files = [(base + i * 0x3000, base + i * 0x3000 + 0x2000, 0, b"/usr/lib/lib%d.so" % i)
                 for i in range(n)]
        with tempfile.TemporaryFile() as f:
            f.write(fake_kernel_core(EM_X86_64, E.ELFCLASS64, loads, files=files))
            f.seek(0)
            kc = read_kernel_core(f.fileno())
        runs = []
        for _ in range(5):
            t = time.perf_counter()
            CoreImage(kc, [], "compact")
            runs.append(time.perf_counter() - t)
        print("%6d file mappings: one compact core image in %.1f ms (median of 5)"
              % (n, sorted(runs)[2] * 1000))


if __name__ == "__main__":
    main()
