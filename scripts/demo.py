"""make demo: what minicoredumper is for, on one crash.

Builds tests/programs/crash3.c (main -> level_a -> level_b -> level_c, which
writes through a NULL pointer) and crashes it twice under the real kernel:
once with core_pattern naming a file (the kernel's own full core) and once
with the handler installed and conf/embedded.recept.json, the recept targets
use by default.  Prints both sizes (plain and xz-compressed), gdb's backtrace
from both, the dump's summary and files, then `mcd list` and `mcd info` on the
new dump.  core_pattern is restored whatever happens.

    python3 scripts/demo.py [--keep]     (as root; `make demo` runs it)
"""

import lzma
import os
import shutil
import signal
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# As a script (make demo): the checkout's runtime and the tests' lab package first on
# sys.path, where pytest.ini's pythonpath puts them for the tests.
sys.path[:0] = [os.path.join(ROOT, "runtime"), os.path.join(ROOT, "tests")]

from lab import ENV  # noqa: E402
from lab.crash import Crasher  # noqa: E402
from lab.gdb import backtrace, extract_core  # noqa: E402
from lab.logs import handler_log  # noqa: E402
from lab.programs import workspace  # noqa: E402
from minicoredumper.cmd_mcd import read_sysctl  # noqa: E402

RECEPT = os.path.join(ROOT, "conf", "embedded.recept.json")


def xz_size(path):
    """Bytes of path compressed with xz's default preset (as `xz -k` would)."""
    with open(path, "rb") as f:
        return len(lzma.compress(f.read()))


def human(n):
    return "%d B" % n if n < 10240 else "%.1f KiB" % (n / 1024.0)


def mcd(*argv):
    """Run mcd from the same installation as this interpreter; returns its output."""
    cmd = [sys.executable, "-m", "minicoredumper.cmd_mcd"] + list(argv)
    print("\n$ mcd %s" % " ".join(argv))
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=ENV)
    sys.stdout.write(p.stdout + p.stderr)
    return p


def crash_both(c, exe):
    """(kernel core path, our dump directory): the same crash, twice."""
    kcore = c.kernel_core([exe])
    print("crash3 (pid %s) with core_pattern = %s: the kernel's own core"
          % (kcore.rsplit(".", 1)[1], kcore.rsplit(".", 1)[0] + ".%p"))
    base = c.configure()
    c.configure(config={"base_dir": base, "watch": [{"recept": RECEPT}]})
    rc, reaped, pid = c.run([exe])
    print("crash3 (pid %d) with core_pattern = %s\n    killed by signal %d, reaped after "
          "%.1f ms" % (pid, c.pattern, -rc, reaped * 1000))
    dumps = os.listdir(base) if os.path.isdir(base) else []
    if len(dumps) != 1:
        print("no dump in %s (%r); the handler's log about pid %d:\n%s" % (
            base, dumps, pid, "\n".join("    " + l for l in handler_log(pid)) or "    (none)"),
            file=sys.stderr)
    return kcore, (os.path.join(base, dumps[0]) if len(dumps) == 1 else None), base


def report(exe, kcore, dump, base, work):
    """Print the comparison, the backtraces, the dump and mcd's view of it;
    returns the backtraces (kernel's, ours) as lists of function names."""
    ours = [n for n in os.listdir(dump) if n.startswith("core")][0]
    ours_path = os.path.join(dump, ours)
    dir_bytes = sum(os.path.getsize(os.path.join(dump, n)) for n in os.listdir(dump))
    print("\n%-44s %12s %12s" % ("", "size", "with xz"))
    print("%-44s %12s %12s" % ("the kernel's core (%s)" % os.path.basename(kcore),
                               human(os.path.getsize(kcore)), human(xz_size(kcore))))
    print("%-44s %12s %12s" % ("minicoredumper, embedded recept (%s)" % ours,
                               human(os.path.getsize(ours_path)), "(is xz)"))
    print("%-44s %12s" % ("minicoredumper, the whole dump directory", human(dir_bytes)))

    traces = backtrace(exe, kcore), backtrace(exe, extract_core(dump, work))
    print("\ngdb's backtrace (gdb -batch -ex bt crash3 CORE):")
    print("  from the kernel's core: %s" % " <- ".join(traces[0]))
    print("  from ours:              %s" % " <- ".join(traces[1]))

    print("\ndump directory: %s" % dump)
    for name in sorted(os.listdir(dump)):
        print("  %-16s %6d bytes" % (name, os.path.getsize(os.path.join(dump, name))))
    mcd("list", "--base-dir", base)
    mcd("info", "--base-dir", base, os.path.basename(dump))
    return traces


def main():
    keep = "--keep" in sys.argv[1:]
    work, progs = workspace("mcd-demo.", ["crash3"])
    exe = progs["crash3"]
    c = Crasher(work)
    try:
        c.install()
        kcore, dump, base = crash_both(c, exe)
    finally:
        c.restore()
    print("core_pattern restored to %r" % read_sysctl("core_pattern"))
    if dump is None or not os.path.exists(kcore):
        print("no dump was written (kernel core: %s; dumps in %s: %r)"
              % (os.path.exists(kcore), base, os.listdir(base) if os.path.isdir(base) else []),
              file=sys.stderr)
        return 1
    report(exe, kcore, dump, base, work)
    if keep:
        print("\n(everything stays in %s)" % work)
    else:
        shutil.rmtree(os.path.join(work, "state"), ignore_errors=True)
        os.unlink(kcore)
        print("\n(the dump stays in %s; the kernel's core was removed)" % base)
    return 0


if __name__ == "__main__":
    # SIGTERM and Ctrl-C end the demo through main's finally: core_pattern is restored.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; core_pattern is %r again" % read_sysctl("core_pattern"),
              file=sys.stderr)
        sys.exit(130)
