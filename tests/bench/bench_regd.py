"""Benchmark the registry daemon under one user's flood (not part of `make test`).

    python3 tests/bench/bench_regd.py [--flood N] [--runs R]

N processes of nobody register at once (lab.regd.Flood) while 10 processes of
another user (uid 1) register as the library does, one every 100 ms (a send
that never waits, 100 ms for the reply).  Prints, per run: how long the daemon
took to work through the flood (from its start until a later request of root's
is answered), how many of the flood's registrations were answered, and how
many of the other user's 10 failed.  Needs root; the daemon and the clients
run in a private network namespace (lab.regd).
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# As a script (make bench): the checkout's runtime and the tests' lab package first on
# sys.path, where pytest.ini's pythonpath puts them for the tests.
sys.path[:0] = [os.path.join(ROOT, "runtime"), os.path.join(ROOT, "tests")]

from lab.regd import REGISTER, Client, Flood, Lab  # noqa: E402

OTHERS = 10
MARKER_WAIT = 300  # seconds: how long a daemon may take to work through the flood


def run(n):
    """(seconds to work through the flood, flood answered, others failed)."""
    work = tempfile.mkdtemp(prefix="bench-regd-")
    lab = Lab()
    try:
        lab.start(state=os.path.join(work, "regd.pids"))
        others = [Client(lab, uid=1, library=True) for _ in range(OTHERS)]
        flood = Flood(lab, n)
        failed = 0
        for c in others:
            time.sleep(0.1)
            failed += c.send(REGISTER) is None
        _, answered = flood.answered()
        marker = Client(lab)  # now: a client waits at most 60 s for its first command
        end = time.monotonic() + MARKER_WAIT
        while marker.send(REGISTER) is None and time.monotonic() < end:
            pass  # each try waits 2 s for the answer
        took = time.monotonic() - flood.t0
        flood.stop()
        for c in others + [marker]:
            c.close()
        return took, answered, failed
    finally:
        lab.close()
        shutil.rmtree(work)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--flood", type=int, default=2000)
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    print("flood of %d registrations by nobody, %d by uid 1 during it" % (args.flood, OTHERS))
    for i in range(args.runs):
        took, answered, failed = run(args.flood)
        print("  run %d: worked through in %.1f s; flood answered %d; uid 1: %d of %d failed"
              % (i + 1, took, answered, failed, OTHERS))


if __name__ == "__main__":
    main()
