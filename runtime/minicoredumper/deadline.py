"""The crash's deadline: one clock that every stage and every loop over the
crashed process's data asks.

crash.Crash starts it when the crash arrives (start()), sets its length
from the config (deadline_seconds) and stops it when the crash is over
(stop()); until then, after it, and in programs that never start it,
nothing expires.  A loop asks expired() between two pieces of
work and, when it says True, stops with what it has and a log line: at the
deadline the dump is finished with what was read (README, "deadline_seconds").
expired(share) asks whether that share of the time has gone: planning what
to read (decide_plan, read_registrations) stops at PLAN_SHARE, so that
reading and writing what is planned still has the rest.

One clock per process: the pipe handler handles one crash, and a socket
server's worker one crash at a time (cmd_sockd), each started afresh.
"""

import time

PLAN_SHARE = 0.5  # planning stops once this share of the deadline has gone

_clock = [0.0, float("inf")]  # [t0, end] in time.monotonic() seconds


def start(t0, seconds):
    """The deadline of the crash that arrived at t0 (time.monotonic()): seconds later."""
    _clock[0], _clock[1] = t0, t0 + seconds


def stop():
    """No deadline any more (the crash is over): nothing expires until the next start()."""
    _clock[0], _clock[1] = 0.0, float("inf")


def end():
    """The deadline in time.monotonic() seconds (inf: none started)."""
    return _clock[1]


def expired(share=1.0):
    """True once share (0 < share <= 1) of the time from arrival to the deadline has gone."""
    t0, t_end = _clock
    return time.monotonic() > t0 + (t_end - t0) * share


def left():
    """Seconds until the deadline (negative once it has passed; inf: none started)."""
    return _clock[1] - time.monotonic()
