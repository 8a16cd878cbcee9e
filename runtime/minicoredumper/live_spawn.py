"""The crash path's side of live dumps: minicoredumper_trigger as a child.

When the crashed process's recept sets live_dumper and the registry's list
(live_pidlist.py) holds other live processes, the handler starts

    minicoredumper_trigger --crashed=PID --config=CONFIG DIR SCOPE

on its half-built dump directory with os.posix_spawn (stdin on /dev/null: the
core pipe must not stay open in the child) once the crashed process is
released (started earlier, it would slow the reaping down: it competes for
the CPUs), lets it work while the handler writes its summary, and waits for
it, bounded by the handler's deadline, before publishing.  One that overruns is killed, and the kernel then detaches the
processes it traced.  The trigger belongs to the daemon package and does the
ptrace work in its own process: nothing here imports ctypes, socket or
subprocess.  It is looked for next to the handler's launcher (mcd install
writes both, the Yocto recipe installs both in sbindir), then on PATH.
"""

import os
import time

import _signal

from . import live_pidlist as pidlist

TRIGGER = "minicoredumper_trigger"
KERNEL_PATH = "/sbin:/bin:/usr/sbin:/usr/bin"  # what the kernel gives its helpers
POLL = 0.002
REAP_WAIT = 0.2  # seconds a killed trigger is waited for before it is left behind


def find_trigger(launcher, path):
    """The trigger next to launcher, else the first on path; None if missing."""
    for d in [os.path.dirname(os.path.abspath(launcher))] + path.split(":"):
        candidate = os.path.join(d or ".", TRIGGER)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def start(dirpath, scope, crashed, config, launcher, log):
    """The PID of a trigger started on dirpath, or None when there is nothing
    to live-dump or no trigger to do it (logged)."""
    try:
        others = pidlist.registered(exclude=(crashed,))
    except pidlist.StateError as e:
        # No registry daemon, so nothing registered: normal on a device without
        # one, hence a debug line (log_level "debug" shows it).
        log.debug("live_dumper: no registry list (%s), no live dump" % e)
        return None
    if not others:
        return None
    trigger = find_trigger(launcher, os.environ.get("PATH", KERNEL_PATH))
    if trigger is None:
        log.warning("live_dumper: %s is not installed (not next to %s, not on PATH): %d "
                    "registered processes not dumped" % (TRIGGER, launcher, len(others)))
        return None
    argv = [trigger, "--crashed=%d" % crashed, "--config=%s" % config, dirpath, "%d" % scope]
    try:
        return os.posix_spawn(trigger, argv, os.environ,
                              file_actions=[(os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY,
                                             0)])
    except OSError as e:
        log.error("live_dumper: cannot start %s: %s" % (trigger, e.strerror))
        return None


def wait(pid, deadline, log):
    """Wait for the trigger until deadline (time.monotonic()); kill it if it
    overruns.  Never blocks: a killed trigger still there REAP_WAIT seconds
    later (in uninterruptible sleep, or held by a tracer) is left behind, and
    the crash's own dump is published without waiting for it."""
    killed = None
    while True:
        got, status = os.waitpid(pid, os.WNOHANG)
        if got:
            if killed is not None:
                log.warning("live dump killed unfinished; processes it finished are kept")
            elif status:
                log.warning("live dump ended with status %d" % os.waitstatus_to_exitcode(status))
            return
        now = time.monotonic()
        if killed is None and now >= deadline:
            os.kill(pid, _signal.SIGKILL)
            killed = now
        elif killed is not None and now >= killed + REAP_WAIT:
            log.warning("live dump killed unfinished and still there %.1f s later: left "
                        "behind (processes it finished are kept)" % REAP_WAIT)
            return
        time.sleep(POLL)
