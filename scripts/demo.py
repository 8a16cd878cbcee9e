"""make demo: crash a small C program under the handler with the embedded recept.

Builds tests/programs/crash3.c, installs the handler in core_pattern with a
config that uses conf/embedded.recept.json, crashes the program, prints the
dump directory, the artefact sizes and gdb's backtrace, and restores
core_pattern whatever happens.
"""

import os
import shutil
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

from crashlab import Crasher, workspace  # noqa: E402
from coretools import extract_core, gdb   # noqa: E402


def main():
    work, progs = workspace("mcd-demo.", ["crash3"])
    exe = progs["crash3"]
    c = Crasher(work)
    try:
        c.install()
        print("core_pattern = %s" % c.pattern)
        base = c.configure()
        recept = os.path.join(ROOT, "conf", "embedded.recept.json")
        c.configure(config={"base_dir": base, "watch": [{"recept": recept}]})
        rc, reaped, pid = c.run([exe])
        print("crash3 (pid %d) killed by signal %d, reaped after %.1f ms"
              % (pid, -rc, reaped * 1000))
    finally:
        c.restore()
    print("core_pattern restored")
    dumps = os.listdir(base)
    if len(dumps) != 1:
        print("no dump was written; see dmesg", file=sys.stderr)
        return 1
    d = os.path.join(base, dumps[0])
    print("\ndump directory: %s" % d)
    for name in sorted(os.listdir(d)):
        print("  %-20s %6d bytes" % (name, os.path.getsize(os.path.join(d, name))))
    print("\n$ cat summary.txt")
    with open(os.path.join(d, "summary.txt")) as f:
        print(f.read().rstrip())
    print("\n$ gdb -batch -ex bt %s core" % os.path.basename(exe))
    lines = [l for l in gdb(exe, extract_core(d, work), "bt").splitlines() if l.startswith("#")]
    last0 = max(i for i, l in enumerate(lines) if l.startswith("#0 "))  # gdb prints #0 twice
    print("\n".join(lines[last0:]))
    print("\n(the dump stays in %s)" % base)
    shutil.rmtree(os.path.join(work, "state"), ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
