"""The raw store's size figures (README "Dumps without a file system"; not part
of `make test`).

    python3 tests/bench/bench_rawstore.py [--slots 256,384,...] [--markdown]

The 3-deep crash (crash3) with the embedded recept (max_dump_size 0: the slot
is the budget) into a plain-file raw store, once per slot size: the record's
payload bytes, the files it holds, whether gdb gives crash3's full backtrace
from the imported dump, and the handler's time from its log line.  Also the
fixed overhead of a slot (stamp + header) and of a record (the name entry),
and the smallest slot (to 16 bytes, bisected) whose record holds summary.txt
and the stack-trace record (the rung below the smallest core: `mcd trace`).
Needs root; restores core_pattern (through lab.crash's lock).
"""

import argparse
import json
import os
import re
import shutil
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path[:0] = [os.path.join(ROOT, "runtime"), os.path.join(ROOT, "tests")]

from lab.crash import Crasher  # noqa: E402
from lab.gdb import backtrace  # noqa: E402
from lab.logs import handler_log  # noqa: E402
from lab.programs import FRAMES, workspace  # noqa: E402
from minicoredumper import rawstore as R  # noqa: E402
from minicoredumper.tool_rawstore import write_dump  # noqa: E402
from minicoredumper.tool_verbs import TempDir  # noqa: E402

SLOTS = [192, 256, 320, 384, 512, 768, 1024, 1280, 1536, 2048, 4096]


def one(crasher, exe, work, slot):
    """(payload bytes, [files], full backtrace?, ms) of crash3 into one slot of slot bytes."""
    device = os.path.join(work, "store.img")
    with open(device, "wb") as f:
        f.write(bytes(slot))
    with open(os.path.join(ROOT, "conf", "embedded.recept.json")) as f:
        recept = json.load(f)
    recept["max_dump_size"] = 0
    rpath = os.path.join(work, "recept.json")
    with open(rpath, "w") as f:
        json.dump(recept, f)
    crasher.configure(config={"base_dir": os.path.join(work, "unused"),
                              "watch": [{"recept": rpath}],
                              "store": {"device": device, "slot_size": slot}})
    _, _, pid = crasher.run([exe])
    ms = None
    for line in handler_log(pid):
        m = re.search(r"dumped .* in (\d+) ms", line)
        if m:
            ms = int(m.group(1))
    with R.Store(device, slot) as s:
        recs = s.records()
    if not recs:
        return None, [], False, ms
    slot_, payload = recs[0]
    name, files = R.unpack_payload(payload)
    full = False
    if any(rel.startswith("core") for rel, _ in files):
        with TempDir("bench-rawstore.") as tmp:
            d = write_dump(tmp, name, files)
            from minicoredumper.tool_catalog import Dump
            from minicoredumper.tool_verbs import core_artefact, unpack_core
            core = unpack_core(core_artefact(Dump(tmp, os.path.basename(d))),
                               os.path.join(tmp, "core"))
            full = list(backtrace(exe, core)) == list(FRAMES["crash3"])
    return len(payload), ["%s %d" % (rel, len(data)) for rel, data in files], full, ms


def smallest_trace_slot(crasher, exe, work, low=256, high=2048):
    """(slot, its files) of the smallest slot, a multiple of 16 bytes between
    low and high, whose record holds summary.txt and the stack-trace record."""
    from minicoredumper.stacktrace import FILE

    def holds(slot):
        files = one(crasher, exe, work, slot)[1]
        names = {f.split(" ")[0] for f in files}
        return {"summary.txt", FILE} <= names, files
    best = (high, holds(high)[1])
    while high - low > 16:
        mid = (low + high) // 2 // 16 * 16
        ok, files = holds(mid)
        if ok:
            high, best = mid, (mid, files)
        else:
            low = mid
    return best[0], ", ".join(best[1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slots", default=",".join(map(str, SLOTS)))
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    work, programs = workspace("mcdbrs.", ["crash3"])
    crasher = Crasher(work)
    rows = []
    try:
        crasher.install()
        for slot in [int(x) for x in args.slots.split(",")]:
            rows.append((slot,) + one(crasher, programs["crash3"], work, slot))
        smallest = smallest_trace_slot(crasher, programs["crash3"], work)
    finally:
        crasher.restore()
        shutil.rmtree(work, ignore_errors=True)
    print("slot overhead: stamp %d + header %d = %d bytes; record: name entry %d + name "
          "(~33 bytes)" % (R.STAMP.size, R.HEADER_SIZE, R.STAMP.size + R.HEADER_SIZE,
                           R.ENTRY.size))
    print("smallest slot with summary.txt and the stack-trace record: %d bytes (%s)"
          % smallest)
    if args.markdown:
        print("| slot | payload | files (bytes) | full backtrace | handler ms |")
        print("|---|---|---|---|---|")
    for slot, size, files, full, ms in rows:
        if args.markdown:
            print("| %d | %s | %s | %s | %s |" % (slot, size, ", ".join(files) or "no record",
                                                  "yes" if full else "no", ms))
        else:
            print("%5d %5s %-5s %4s ms  %s" % (slot, size, "full" if full else "-", ms,
                                                ", ".join(files)))


if __name__ == "__main__":
    main()
