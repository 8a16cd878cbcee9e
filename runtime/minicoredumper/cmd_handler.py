"""minicoredumper: the core_pattern pipe handler (the kernel starts it per crash).

    |/usr/sbin/minicoredumper %P %u %g %s %t %h %e [--dump-mode=%d] [--pidfd=%F] [CONFIG]

The kernel starts us with only fd 0 (the core stream).  fds 1 and 2 go to
/dev/null before anything else is opened.  The crashed process stays in the
kernel until fd 0 is closed (core_pipe_limit != 0).  This module turns the
command line into an Arrival and runs the crash pipeline (crash.py); a
SIGALRM bounds the whole run: at the deadline the dump is finished with
what has been read, one second later what is complete is published
(crash.Crash.publish_at_hard_deadline) and the process exits.
"""

import os
import time

T0 = time.monotonic()


def _redirect_stdio():
    """fds 1 and 2 to /dev/null: the kernel starts the handler with fd 0 only,
    and the first file opened must not take the number a stray print writes to
    (tests/host/test_hygiene.py proves it through a real crash)."""
    try:
        null = os.open("/dev/null", os.O_RDWR)
    except OSError:
        return  # no /dev/null: nothing to point them at, and nothing prints
    for fd in (1, 2):
        if null != fd:
            os.dup2(null, fd)
    if null > 2:
        os.close(null)


def parse_argv(argv, t0=None):
    """The Arrival (crash.Arrival) of a pipe-mode crash from the handler's
    arguments: %P %u %g %s %t %h %e [CONFIG] (docs/FORMATS.md §1), with
    --key=value options anywhere (--pidfd=%F, --dump-mode=%d: accepted,
    never required).  ValueError if they do not fit."""
    from .crash import Arrival
    options = {}
    pos = []
    for a in argv:
        if a.startswith("--") and "=" in a:
            k, _, v = a[2:].partition("=")
            options[k] = v
        else:
            pos.append(a)
    if len(pos) < 7:
        raise ValueError("expected %%P %%u %%g %%s %%t %%h %%e [CONFIG], got %d arguments"
                         % len(pos))
    return Arrival(pid=int(pos[0]), uid=int(pos[1]), gid=int(pos[2]), signal=int(pos[3]),
                   time=int(pos[4]), time_given=pos[4], hostname=pos[5], comm=pos[6],
                   config=pos[7] if len(pos) > 7 else None,
                   pidfd=_int_option(options.get("pidfd")),
                   dump_mode=_int_option(options.get("dump-mode")), stream=0,
                   t0=T0 if t0 is None else t0, hard_deadline=True)


def _int_option(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None  # absent or not a number: the option is not used


def main(argv=None):
    import sys
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["--version"]:  # a person asking: the kernel passes 7 or more arguments
        from . import __version__
        print("minicoredumper " + __version__)
        return 0
    _redirect_stdio()
    from .log import Logger
    log = Logger()
    try:
        arrival = parse_argv(argv)
    except ValueError as e:
        log.error("bad invocation: %s" % e)
        return 2
    log.set_pid(arrival.pid)
    from .crash import Crash
    crash = Crash(arrival, log)
    try:
        return crash.run()
    except BaseException:
        log.exception("handler failed")  # a bug of ours: the traceback says where
        return 1
    finally:
        crash.release()


if __name__ == "__main__":
    raise SystemExit(main())
