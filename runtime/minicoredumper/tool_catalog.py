"""READ: the published dumps in a base_dir, for the storage policy and mcd.

A dump directory is named <comm>.<YYYYmmdd.HHMMSS±zzzz>.<pid>[.<n>]; hidden
entries (half-built dumps, the rate-limit state) are not dumps, nor is anything
that is not a directory itself (a symlink named like a dump is not followed).
Names are looked at relative to base_dir's fd, so the storage policy (which
evicts what is listed here) never leaves base_dir.

Every mcd verb reads a dump's files through one rule, Dump.integrity(): the
files are checked against the dump's integrity record (manifest, docs/FORMATS.md
§4) when it has one; a dump without one (the original minicoredumper writes
none; a directory copied by hand without it) is read as it is, and verify
says there is nothing to verify against.
"""

import os
import stat

from .files import DIR_FLAGS


def parse_name(name):
    """(comm, stamp, pid) of a dump directory's name; (name, "", None) if it is
    not one of ours.  From the right: the first YYYYmmdd followed by
    HHMMSS±zzzz (comm may hold dots; a ".n" suffix follows the pid when the
    name was taken)."""
    parts = name.split(".")
    for i in range(len(parts) - 3, 0, -1):
        day, clock = parts[i], parts[i + 1]
        if (len(day) == 8 and day.isdigit() and len(clock) == 11 and clock[6] in "+-"
                and clock[:6].isdigit() and clock[7:].isdigit() and parts[i + 2].isdigit()):
            return ".".join(parts[:i]), day + "." + clock, int(parts[i + 2])
    return name, "", None


# What a directory given by path holds when it is a dump (docs/FORMATS.md §4; the
# original's dumps have no manifest or summary, a core only when one was written).
DUMP_FILES = ("manifest", "summary.txt", "summary.json", "symbol.map", "fatcore", "dumps")
INTACT, DAMAGED, NO_MANIFEST = "intact", "damaged", "no manifest"  # Dump.integrity()


def is_dump_dir(path):
    """Whether the directory path is a dump: its name is one of ours (parse_name),
    or it holds a dump's files (DUMP_FILES, a core: core, core.EXT, core.tar.EXT)."""
    if not os.path.isdir(path):
        return False
    if parse_name(os.path.basename(os.path.normpath(path)))[2] is not None:
        return True
    try:
        names = os.listdir(path)
    except OSError:
        return False  # unreadable: not recognisable as a dump
    return any(n in DUMP_FILES or n == "core" or n.startswith("core.") for n in names)


def stamp_time(stamp):
    """Seconds since the epoch of a name's YYYYmmdd.HHMMSS±zzzz (the crash's %t)."""
    from .tool_select import days_from_civil
    day, clock = stamp.split(".")
    offset = (int(clock[7:9]) * 3600 + int(clock[9:11]) * 60) * (-1 if clock[6] == "-" else 1)
    return (days_from_civil(int(day[:4]), int(day[4:6]), int(day[6:8])) * 86400
            + int(clock[0:2]) * 3600 + int(clock[2:4]) * 60 + int(clock[4:6]) - offset)


class Dump:
    """A published dump: name, path, comm, stamp, pid, mtime; size on demand.
    dir_fd: base_dir's fd, which name is resolved against without following a
    symlink (None: the path, as mcd is given it); ValueError if it is no
    directory."""

    def __init__(self, base_dir, name, dir_fd=None):
        self.name = name
        self.path = os.path.join(base_dir, name)
        self.comm, self.stamp, self.pid = parse_name(name)
        self.dir_fd = dir_fd
        st = os.stat(self.path) if dir_fd is None else \
            os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if not stat.S_ISDIR(st.st_mode):
            raise ValueError("%s is not a directory" % self.path)
        self.mtime = st.st_mtime
        self._size = None

    @property
    def time(self):
        """When it crashed (seconds since the epoch): the name's stamp, else
        the directory's mtime."""
        return stamp_time(self.stamp) if self.stamp else int(self.mtime)

    @property
    def size(self):
        """Bytes on disk of its files (st_blocks), symlinks not followed."""
        if self._size is None:
            total = 0
            top = self.name if self.dir_fd is not None else self.path
            for _, _, files, fd in os.fwalk(top, dir_fd=self.dir_fd):
                for f in files:
                    try:
                        total += os.stat(f, dir_fd=fd, follow_symlinks=False).st_blocks * 512
                    except OSError:
                        pass  # removed meanwhile: it takes no room
            self._size = total
        return self._size

    def integrity(self, only=None):
        """(state, problems) of the dump's files against its integrity record,
        the rule every mcd verb follows: INTACT (problems []), DAMAGED (problems:
        what differs, as publish_manifest.verify says it, by path), or
        NO_MANIFEST (problems []): no record to check against, the files are
        read as they are.  only: just these files (paths in the dump)."""
        from .publish_manifest import MANIFEST, verify
        if not os.path.lexists(os.path.join(self.path, MANIFEST)):
            return NO_MANIFEST, []
        problems = verify(self.path, only)
        return (DAMAGED if problems else INTACT), problems

    def access_error(self):
        """None if the directory can be read, else why not (an OSError)."""
        try:
            os.listdir(self.path)
        except OSError as e:
            return e  # returned: the caller reports it
        return None


def list_dumps(base_dir, strict=False, dir_fd=None):
    """Published dumps, oldest first (Dump list).  dir_fd: base_dir's fd (the
    handler's, opened without following links); None: base_dir is opened here
    (mcd), following a symlink to it as a reader may.  A base_dir that cannot
    be listed holds none, or with strict raises its OSError
    (FileNotFoundError if missing)."""
    out = []
    try:
        fd = os.open(base_dir, DIR_FLAGS & ~os.O_NOFOLLOW) if dir_fd is None else dir_fd
    except OSError:
        if strict:
            raise
        return out
    try:
        for name in os.listdir(fd):
            if name.startswith("."):
                continue
            try:
                if not stat.S_ISDIR(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode):
                    continue  # a file, or a symlink named like a dump: not one
                out.append(Dump(base_dir, name, fd if dir_fd is not None else None))
            except (OSError, ValueError):
                continue  # removed meanwhile or not a dump directory: not listed
    finally:
        if dir_fd is None:
            os.close(fd)
    out.sort(key=lambda d: (d.mtime, d.name))
    return out
