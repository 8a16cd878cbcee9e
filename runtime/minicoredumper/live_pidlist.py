"""The registry's PID list on disk: written by minicoredumper_regd, read by the
handler and minicoredumper_trigger (docs/FORMATS.md §8).

    /run/minicoredumper/regd.pids      (root, 0644, in a 0755 directory)

One registered process per line, in registration order: its PID and its start
time (field 22 of /proc/PID/stat, clock ticks after boot), decimal, separated
by one space:

    1234 5678901
    1240 5679020

The daemon rewrites the whole file on every change (a temporary file in the
same directory, then rename), so a reader always sees one complete list: no
torn lines, no holes, also after the daemon died (kill -9 leaves the last
list behind, a clean stop removes it).  The start time tells a registered
process from a later one that got its PID: readers keep only entries whose
process is still the same and alive (not a zombie), so clients that died
without unregistering never reach a live dump.  Only a root-owned file that
nobody else can write is trusted.  Needs only os: the crash path reads it.
"""

import os

from .files import replace_file
from .read_process import identity

STATE = "/run/minicoredumper/regd.pids"
MAX_STATE = 4 << 20
DEAD = ("Z", "X", "x")


class StateError(Exception):
    """The list is missing or cannot be trusted; the message says why."""


def alive(pid, start):
    """True if pid is still the process that started at `start` and has not died."""
    ident = identity(pid)
    return ident is not None and ident[1] == start and ident[0] not in DEAD


def start_time(pid):
    """The start time of a live process (None if it is gone or a zombie)."""
    ident = identity(pid)
    return ident[1] if ident is not None and ident[0] not in DEAD else None


def load(path=STATE):
    """Every (pid, start time) in the file, in order, dead or alive."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError as e:
        raise StateError("%s: %s" % (path, e.strerror)) from None
    try:
        st = os.fstat(fd)
        if st.st_uid not in (0, os.geteuid()) or st.st_mode & 0o022:
            raise StateError("%s: not trusted (owner uid %d, mode %o)"
                             % (path, st.st_uid, st.st_mode & 0o7777))
        raw = os.read(fd, MAX_STATE)
    finally:
        os.close(fd)
    entries = []
    for line in raw.split(b"\n"):
        parts = line.split(b" ")
        if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
            entries.append((int(parts[0]), int(parts[1])))
    return entries


def registered(path=STATE, exclude=()):
    """PIDs of the registered processes still alive, in registration order."""
    return [pid for pid, start in load(path) if pid not in exclude and alive(pid, start)]


def save(path, entries):
    """Replace the file with entries [(pid, start)] in one rename."""
    replace_file(path, "".join("%d %d\n" % e for e in entries).encode(), 0o644)


def remove(path):
    """Remove the list (and temporary copies killed writers may have left)."""
    directory, base = os.path.split(path)
    try:
        names = os.listdir(directory or ".")
    except FileNotFoundError:
        return  # no directory: there is no list to remove
    for name in names:
        if name == base or name.startswith(base + ".tmp."):
            try:
                os.unlink(os.path.join(directory, name))
            except FileNotFoundError:
                pass  # removed meanwhile by another writer
