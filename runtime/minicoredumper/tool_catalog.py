"""READ: the published dumps in a base_dir, for the storage policy and mcd.

A dump directory is named <comm>.<YYYYmmdd.HHMMSS±zzzz>.<pid>[.<n>]; hidden
entries (half-built dumps, the rate-limit state) are not dumps.
"""

import os


class Dump:
    def __init__(self, base_dir, name):
        self.name = name
        self.path = os.path.join(base_dir, name)
        parts = name.split(".")
        self.pid = None
        self.stamp = ""
        self.comm = name
        # From the right: the first YYYYmmdd followed by HHMMSS±zzzz (comm may
        # hold dots; a ".n" suffix follows the pid when the name was taken).
        for i in range(len(parts) - 3, 0, -1):
            day, clock = parts[i], parts[i + 1]
            if (len(day) == 8 and day.isdigit() and len(clock) == 11 and clock[6] in "+-"
                    and parts[i + 2].isdigit()):
                self.comm = ".".join(parts[:i])
                self.stamp = day + "." + clock
                self.pid = int(parts[i + 2])
                break
        st = os.stat(self.path)
        self.mtime = st.st_mtime
        self._size = None

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
