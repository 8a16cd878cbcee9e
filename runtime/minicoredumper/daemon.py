"""What the two resident programs (minicoredumper_sockd, minicoredumper_regd)
share: stopping on SIGTERM/SIGINT between two pieces of work.

The signal handler only records the signal; the main loop checks it where
stopping is safe (never in the middle of a crash or of a state file write)
and raises Stop there.  Loops wait with a short timeout (STOP_POLL) so a
stop request is seen promptly.
"""

import signal

STOP_POLL = 0.5  # seconds a daemon waits before looking at the stop flag again


class Stop(Exception):
    """The daemon is asked to stop; str() says by whom."""


class StopOnSignals:
    """Record SIGTERM and SIGINT; check() raises Stop once one arrived."""

    def __init__(self, signals=(signal.SIGTERM, signal.SIGINT)):
        self.received = []
        for sig in signals:
            signal.signal(sig, self._record)

    def _record(self, signum, frame):
        self.received.append(signum)

    def check(self):
        if self.received:
            raise Stop("signal %d" % self.received[0])
