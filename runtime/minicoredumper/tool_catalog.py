"""READ: the published dumps in a base_dir, for the storage policy and mcd.

A dump directory is named <comm>.<YYYYmmdd.HHMMSS±zzzz>.<pid>[.<n>]; hidden
entries (half-built dumps, the rate-limit state) are not dumps.
"""

import os


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


def stamp_time(stamp):
    """Seconds since the epoch of a name's YYYYmmdd.HHMMSS±zzzz (the crash's %t)."""
    from .tool_select import days_from_civil
    day, clock = stamp.split(".")
    offset = (int(clock[7:9]) * 3600 + int(clock[9:11]) * 60) * (-1 if clock[6] == "-" else 1)
    return (days_from_civil(int(day[:4]), int(day[4:6]), int(day[6:8])) * 86400
            + int(clock[0:2]) * 3600 + int(clock[2:4]) * 60 + int(clock[4:6]) - offset)


class Dump:
    def __init__(self, base_dir, name):
        self.name = name
        self.path = os.path.join(base_dir, name)
        self.comm, self.stamp, self.pid = parse_name(name)
        st = os.stat(self.path)
        self.mtime = st.st_mtime
        self._size = None

    @property
    def time(self):
        """When it crashed (seconds since the epoch): the name's stamp, else
        the directory's mtime."""
        return stamp_time(self.stamp) if self.stamp else int(self.mtime)

    @property
    def size(self):
        if self._size is None:
            total = 0
            for root, _, files in os.walk(self.path):
                for f in files:
                    try:
                        total += os.lstat(os.path.join(root, f)).st_blocks * 512
                    except OSError:
                        pass  # removed meanwhile: it takes no room
            self._size = total
        return self._size

    def access_error(self):
        """None if the directory can be read, else why not (an OSError)."""
        try:
            os.listdir(self.path)
        except OSError as e:
            return e  # returned: the caller reports it
        return None


def list_dumps(base_dir, strict=False):
    """Published dumps, oldest first.  A base_dir that cannot be listed holds
    none, or with strict raises its OSError (FileNotFoundError if missing)."""
    out = []
    try:
        names = os.listdir(base_dir)
    except OSError:
        if strict:
            raise
        return out
    for name in names:
        if name.startswith(".") or not os.path.isdir(os.path.join(base_dir, name)):
            continue
        try:
            out.append(Dump(base_dir, name))
        except (OSError, ValueError):
            continue  # removed meanwhile or not a dump directory: not listed
    out.sort(key=lambda d: (d.mtime, d.name))
    return out
