"""DECIDE: the storage policy of the main config, applied before and after a dump.

- max_dumps, max_total_size, min_free_space: the oldest dumps are evicted
  first to make room; the dump being written is never evicted.
- rate_limit {count, interval_seconds}: at most `count` dumps of one
  executable per interval.  The history is kept in base_dir/.rate-limit
  (marshal), so it survives reboots.  Within one boot ages are measured on
  CLOCK_BOOTTIME, which wall-clock jumps do not move; an event from an
  earlier boot is taken to be at least as old as the current uptime and, by
  the wall clock, no older than it says.  A refused crash writes nothing.
"""

import marshal
import os
import time

from .read_process import boot_id


RATE_FILE = ".rate-limit"
LOCK_POLL = 0.005  # seconds between two tries of the rate-limit lock


def _boot_id():
    """This boot's id for the history ("" when there is none: events then compare
    by wall clock only)."""
    return boot_id() or ""


class StoragePolicy:
    """The main config's limits on base_dir, whose fd is base_fd (kept open by
    the caller while the policy is used); log(text) reports evictions."""

    def __init__(self, cfg, log, base_fd):
        self.base_dir = cfg.base_dir
        self.base_fd = base_fd
        self.max_dumps = cfg.max_dumps
        self.max_total = cfg.max_total_size
        self.min_free = cfg.min_free_space
        self.rate = cfg.rate_limit
        self.log = log
        self._history = None

    # --- rate limit -----------------------------------------------------------
    def _load(self):
        if self._history is None:
            try:
                fd = os.open(RATE_FILE, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC,
                             dir_fd=self.base_fd)
                try:
                    h = marshal.loads(os.read(fd, 1 << 20))
                finally:
                    os.close(fd)
                self._history = h if isinstance(h, dict) else {}
            except (OSError, ValueError, EOFError, TypeError):
                # a missing or damaged history is an empty one: this crash is admitted
                self._history = {}
        return self._history

    def _recent(self, exe):
        """This executable's events still inside the interval."""
        boot = _boot_id()
        now_boot = time.clock_gettime(time.CLOCK_BOOTTIME)
        now_wall = time.time()
        keep = []
        for ev in self._load().get(exe, []):
            try:
                ev_boot, ev_uptime, ev_wall = ev
            except (TypeError, ValueError):
                continue  # a malformed event is not counted
            if ev_boot == boot:
                age = now_boot - ev_uptime
            else:
                age = max(now_boot, now_wall - ev_wall)
            if age < self.rate["interval_seconds"]:
                keep.append(ev)
        return keep

    def admit(self, exe, deadline=None):
        """(True, "") or (False, why): may this executable dump now?  An
        admitted crash takes its place in the history at once, under a lock,
        so crashes arriving together cannot all slip through.  A refused one
        writes nothing.  The lock is waited for until deadline (time.monotonic();
        None: as long as it takes): a crash that cannot take its place in time
        is refused, so a burst of crashes queued on the lock never keeps a
        handler past its deadline."""
        if not self.rate:
            return True, ""
        try:
            fd = os.open(RATE_FILE + ".lock",
                         os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                         dir_fd=self.base_fd)
        except OSError as e:
            # the caller logs why: a dump is worth more than a rate limit
            return True, "rate limit not checked: %s" % (e.strerror or e)
        try:
            if not _lock(fd, deadline):
                return False, ("rate limit not checked before the deadline (the rate-limit "
                               "state stayed locked by other crashes)")
            self._history = None
            recent = self._recent(exe)
            if len(recent) >= self.rate["count"]:
                return False, "rate limit: %d dumps of %s within %d s" % (
                    len(recent), exe, self.rate["interval_seconds"])
            self._record(exe, recent)
            return True, ""
        finally:
            os.close(fd)  # releases the lock

    def _record(self, exe, recent):
        history = self._load()
        recent.append((_boot_id(), time.clock_gettime(time.CLOCK_BOOTTIME), time.time()))
        history[exe] = recent[-self.rate["count"]:]
        for other in list(history):
            if other != exe and not self._recent(other):
                del history[other]
        from .files import replace_file
        try:
            replace_file(RATE_FILE, marshal.dumps(history), dir_fd=self.base_fd)
        except OSError as e:
            self.log("rate-limit state not saved: %s" % (e.strerror or e))

    # --- space ---------------------------------------------------------------
    def _free(self):
        st = os.statvfs(self.base_fd)
        return st.f_bavail * st.f_frsize

    def make_room(self, incoming=0):
        """Before a dump: evict the oldest until one more dump fits the count,
        and the free space (less `incoming` bytes) stays above the minimum."""
        if not (self.max_dumps or self.min_free):
            return
        from .tool_catalog import list_dumps  # only when a limit is set
        dumps = list_dumps(self.base_dir, dir_fd=self.base_fd)
        while dumps and (
                (self.max_dumps and len(dumps) >= self.max_dumps) or
                (self.min_free and self._free() - incoming < self.min_free)):
            self._evict(dumps.pop(0))

    def enforce_total(self, keep):
        """After a dump: evict the oldest others until the total fits."""
        if not self.max_total:
            return
        from .tool_catalog import list_dumps
        dumps = list_dumps(self.base_dir, dir_fd=self.base_fd)
        total = sum(d.size for d in dumps)
        for d in dumps:
            if total <= self.max_total:
                break
            if d.path != keep:
                total -= d.size
                self._evict(d)

    def _evict(self, dump):
        from .files import remove_tree
        try:
            remove_tree(dump.name, self.base_fd)
            self.log("evicted %s (storage policy)" % dump.name)
        except OSError as e:
            self.log("could not evict %s: %s" % (dump.name, e.strerror or e))


def _lock(fd, deadline):
    """Take the POSIX lock on fd, waiting at most until deadline; True if taken."""
    if deadline is None:
        os.lockf(fd, os.F_LOCK, 0)
        return True
    while True:
        try:
            os.lockf(fd, os.F_TLOCK, 0)
            return True
        except (BlockingIOError, PermissionError):  # EAGAIN or EACCES: another holds it
            if time.monotonic() >= deadline:
                return False
            time.sleep(LOCK_POLL)
