"""The tests' laboratory: what the host, unit and QEMU tests, the benchmarks and the demo
share, imported as lab.<module> (pytest.ini puts tests/ on sys.path; a script run by
hand puts it there itself).

  programs  the C test programs of tests/programs: how each is built, and the frames
            gdb must show for its crash (FRAMES); doctored copies (with_strtab_size)
  crash     Crasher: core_pattern pointed at the handler (one user at a time, under a
            lock), crash a program, get its dump, restore core_pattern
  cores     a kernel core file read as the handler reads a crashed process
  gdb       the core out of a dump directory, and what gdb says about it: backtraces
            that carry gdb's own text, assert_frames()
  logs      the handler's log lines about a crashed PID (syslog or the kernel log),
            and ListLog, a Logger that keeps its lines
  regd      registry daemons and registered apps in a private network namespace

ROOT is the checkout, RUNTIME its runtime/ (package minicoredumper), ENV the
environment a child Python needs to run that runtime (python3 -m minicoredumper...).
"""

import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUNTIME = os.path.join(ROOT, "runtime")
ENV = dict(os.environ, PYTHONPATH=RUNTIME)
