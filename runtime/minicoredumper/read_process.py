"""READ: /proc/PID of a process: its memory, maps, exe, comm and state.

ProcessMemory is the only way the runtime reads another process's memory.  It
is bounded (every read has a size cap) and never trusts an address: a failed
read returns what could be read, not an exception deep in the plan.
identity() and status_field() tell whether a PID is still the process it was
and whether it is stopped, a zombie or traced (registry and live dumps).
Process.facts() reads what the summary says about a crashed process besides
its memory (cgroup and systemd unit, rlimits, open fds; the host's boot id
and kernel release), every file bounded and none of them required.
"""

import os

try:  # the C function itself: bisect.py would be one more module on the crash path
    from _bisect import bisect_right
except ImportError:  # a Python without the C accelerator
    from bisect import bisect_right

PAGE = 4096
MAX_STRING = 4096
READ_CHUNK = 64 << 10
SMALL_FILE = 16 << 10  # bytes read of /proc/PID/cgroup and limits
MAX_FDS = 64  # open fds the summary lists, the lowest numbers
MAX_LINK = 512  # bytes kept of one fd's link target
MAX_LIMITS = 32  # rows of /proc/PID/limits (the kernel has 16)
BOOT_ID = "/proc/sys/kernel/random/boot_id"


class Mapping:
    """One line of /proc/PID/maps."""

    __slots__ = ("start", "end", "perms", "offset", "inode", "path")

    def __init__(self, start, end, perms, offset, inode, path):
        self.start = start
        self.end = end
        self.perms = perms
        self.offset = offset
        self.inode = inode
        self.path = path

    @property
    def readable(self):
        return self.perms[:1] == "r"


def parse_maps(text):
    """Parse /proc/PID/maps text into Mappings (malformed lines are skipped)."""
    maps = []
    for line in text.splitlines():
        parts = line.split(None, 5)
        if len(parts) < 5:
            continue
        try:
            start, end = (int(x, 16) for x in parts[0].split("-"))
            maps.append(Mapping(start, end, parts[1], int(parts[2], 16), int(parts[4]),
                                parts[5] if len(parts) > 5 else ""))
        except ValueError:
            continue  # a line that is no mapping is not one
    return maps


def identity(pid, proc_root="/proc"):
    """(state letter, start time in clock ticks after boot) of a process, from
    /proc/PID/stat, or None if there is no such process.  The start time tells
    a PID from a later process that reuses it."""
    try:
        with open("%s/%d/stat" % (proc_root, pid), "rb") as f:
            raw = f.read(4096)
    except (OSError, ValueError):
        return None  # the process is gone: no identity
    # comm (field 2) may hold spaces and parentheses: the fields after its
    # last ")" start with the state (field 3); the start time is field 22.
    fields = raw[raw.rfind(b")") + 2:].split()
    if len(fields) < 20 or not fields[19].isdigit():
        return None
    return fields[0].decode("ascii", "replace"), int(fields[19])


def status_field(pid, name, proc_root="/proc"):
    """The value of one "Name:" line of /proc/PID/status, or None."""
    try:
        with open("%s/%d/status" % (proc_root, pid), "rb") as f:
            raw = f.read(16 << 10)
    except (OSError, ValueError):
        return None  # the process is gone: no such field
    key = name.encode() + b":"
    for line in raw.splitlines():
        if line.startswith(key):
            return line[len(key):].strip().decode("utf-8", "replace")
    return None


def pidfd_pid(pidfd):
    """The PID (in our PID namespace) of the process behind pidfd, from the
    "Pid:" line of /proc/self/fdinfo/FD: -1 once it has been reaped, None if
    fd is not a pidfd (or unreadable)."""
    try:
        with open("/proc/self/fdinfo/%d" % pidfd, "rb") as f:
            raw = f.read(4096)
    except (OSError, ValueError, TypeError):
        return None  # not a pidfd we can read: the caller treats None as unknown
    for line in raw.splitlines():
        if line.startswith(b"Pid:"):
            try:
                return int(line[4:].strip())
            except ValueError:
                return None  # a malformed Pid: line: unknown
    return None


def read_small(path, limit=SMALL_FILE):
    """The first limit bytes of a small file, or None if it cannot be read."""
    try:
        with open(path, "rb") as f:
            return f.read(limit)
    except (OSError, ValueError):
        return None  # missing, unreadable or the process is gone: the caller says null


def boot_id(path=BOOT_ID):
    """This boot's random id (a UUID's 36 characters), or None."""
    raw = read_small(path, 64)
    return raw.strip().decode("ascii", "replace") or None if raw else None


def cgroup_path(raw):
    """The cgroup in a /proc/PID/cgroup text: the path of the name=systemd
    hierarchy where there is one (systemd's tree on legacy and hybrid hosts),
    else the cgroup v2 one ("0::"), else the first line's; None if no line
    has the form ID:CONTROLLERS:PATH."""
    found = {}
    for line in raw.decode("utf-8", "backslashreplace").splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3 and parts[2].startswith("/"):
            key = "systemd" if parts[1] == "name=systemd" else \
                "v2" if parts[0] == "0" and not parts[1] else "first"
            found.setdefault(key, parts[2])
            found.setdefault("first", parts[2])
    return found.get("systemd") or found.get("v2") or found.get("first")


def systemd_units(path):
    """(unit, user unit) of a cgroup path as systemd names them, each None
    where there is none: past the leading *.slice directories, the first
    one named *.service or *.scope is the unit; under a user@UID.service,
    the same rule applied below it gives the user unit.  A leading "_" (the
    escape of systemd's cgroup names) is dropped."""
    def unit_at(names):
        for i, name in enumerate(names):
            name = name[1:] if name.startswith("_") else name
            if name.endswith(".slice") and len(name) > 6:
                continue
            for suffix in (".service", ".scope"):
                if name.endswith(suffix) and len(name) > len(suffix):
                    return name, names[i + 1:]
            break
        return None, []
    if not path:
        return None, None
    unit, below = unit_at([n for n in path.split("/") if n])
    user_unit = None
    if unit is not None and unit.startswith("user@") and unit.endswith(".service"):
        user_unit, _ = unit_at(below)
    return unit, user_unit


def parse_limits(raw):
    """{name: [soft, hard]} of a /proc/PID/limits text: name as in
    linux.RLIMIT_ROWS (the kernel's row name for a row it does not list),
    each limit an int or "unlimited"."""
    from .linux import RLIMIT_ROWS  # loaded on the crash path anyway; at the top: 0.05 ms more
    out = {}
    for line in raw.decode("ascii", "replace").splitlines()[1:MAX_LIMITS + 1]:
        name = line[:25].rstrip()
        values = line[25:].split()
        if len(values) >= 2 and name:
            out[RLIMIT_ROWS.get(name, name)] = [
                int(v) if v.isdigit() else v for v in values[:2]]
    return out


class ProcessGone(Exception):
    """The PID no longer names the process its pidfd refers to."""


class Process:
    """A process seen through /proc: maps, exe, comm, and its memory (read
    through `memory`, ProcessMemory or a subclass).

    With a pidfd, the PID is checked against it before /proc/PID/mem is
    opened and again after (ProcessGone if it differs): a PID reused in
    between is never read.  A PID cannot be reused while its process exists,
    so whatever was read from /proc/PID before a check_identity() that still
    passes came from the pidfd's process.  The mem fd, once opened for the
    right process, stays bound to it."""

    def __init__(self, pid, proc_root="/proc", memory=None, pidfd=None):
        self.pid = pid
        self.pidfd = pidfd
        self.dir = "%s/%d" % (proc_root, pid)
        self._maps = None
        self._rlimits = False  # not read yet
        self.mem = None
        if not self.check_identity():
            raise ProcessGone("PID %d is not the process of pidfd %d" % (pid, pidfd))
        self.mem = (memory or ProcessMemory)(self.dir + "/mem")
        if not self.check_identity():
            self.mem.close()
            raise ProcessGone("PID %d was reused while /proc/%d/mem was opened" % (pid, pid))

    def check_identity(self):
        """True if no pidfd was given, or the pidfd's process still has our PID."""
        return self.pidfd is None or pidfd_pid(self.pidfd) == self.pid

    def read_text(self, name, limit=1 << 20):
        """A /proc file as text, at most limit bytes (read as it grows, not preallocated)."""
        with open("%s/%s" % (self.dir, name), "rb") as f:
            return f.read()[:limit].decode("utf-8", "replace")

    @property
    def maps(self):
        if self._maps is None:
            self._maps = parse_maps(self.read_text("maps", 64 << 20))
        return self._maps

    def rlimits(self):
        """The process's resource limits, parse_limits of /proc/PID/limits (read
        once), or None if it cannot be read."""
        if self._rlimits is False:
            raw = read_small(self.dir + "/limits")
            self._rlimits = parse_limits(raw) if raw else None
        return self._rlimits

    def exe(self):
        try:
            return os.readlink(self.dir + "/exe")
        except OSError:
            return ""  # gone or unreadable: the watch rules see an empty exe

    def comm(self):
        try:
            return self.read_text("comm", 64).rstrip("\n")
        except OSError:
            return ""  # the process is gone: the comm from core_pattern is used instead

    def fds(self, limit=MAX_FDS):
        """({fd as text: link target}, more): the open fds in the order the
        kernel lists them (lowest first), at most limit, each target's bytes
        cut at MAX_LINK and decoded with undecodable bytes as \\xNN; more:
        whether there are others.  ({}, False) if the directory cannot be read."""
        found = {}
        more = False
        try:
            with os.scandir(os.fsencode(self.dir + "/fd")) as entries:
                for entry in entries:
                    if len(found) == limit:
                        more = True
                        break
                    try:
                        target = os.readlink(entry.path)
                    except OSError:
                        continue  # closed while we looked: not open
                    if entry.name.isdigit():
                        found[int(entry.name)] = target[:MAX_LINK].decode(
                            "utf-8", "backslashreplace")
        except OSError:
            pass  # the process is gone or the directory unreadable: what was found
        return {str(n): found[n] for n in sorted(found)}, more

    def facts(self):
        """What the summary says besides the memory, in its key order:
        boot_id, kernel, cgroup, unit, user_unit, rlimits, fds, fds_more.
        Read before the release (and vouched for by the identity check after
        it); each one None (fds: {}) when it cannot be read."""
        cgroup = read_small(self.dir + "/cgroup")
        cgroup = cgroup_path(cgroup) if cgroup else None
        unit, user_unit = systemd_units(cgroup)
        fds, more = self.fds()
        return {"boot_id": boot_id(), "kernel": os.uname().release, "cgroup": cgroup,
                "unit": unit, "user_unit": user_unit, "rlimits": self.rlimits(),
                "fds": fds, "fds_more": more}

    def close(self):
        if self.mem is not None:
            self.mem.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class ProcessMemory:
    """Bounded reads of /proc/PID/mem."""

    def __init__(self, path):
        self.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        self.bytes_read = 0

    def read(self, addr, size):
        """Up to size bytes at addr; shorter if part of the range is unreadable."""
        out = []
        while size > 0:
            try:
                b = os.pread(self.fd, min(size, READ_CHUNK), addr)
            except (OSError, OverflowError):
                b = b""  # unmapped or unreadable memory: the caller gets the bytes before it
            if not b:
                break
            out.append(b)
            addr += len(b)
            size -= len(b)
        data = b"".join(out)
        self.bytes_read += len(data)
        return data

    def read_exact(self, addr, size):
        """Exactly size bytes at addr, or None."""
        data = self.read(addr, size)
        return data if len(data) == size else None

    def read_cstring(self, addr, limit=MAX_STRING):
        """A NUL-terminated string at addr (without the NUL), in a few page-sized reads.

        Returns None when no terminator is found within limit bytes or the
        memory is unreadable.
        """
        out = b""
        while len(out) < limit:
            chunk = min(PAGE - (addr % PAGE), limit - len(out))
            b = self.read(addr, chunk)
            nul = b.find(b"\0")
            if nul >= 0:
                return out + b[:nul]
            out += b
            if len(b) < chunk:
                return None
            addr += chunk
        return None

    def close(self):
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class SnapshotMemory:
    """The planned ranges of the process memory, read once before the release;
    reads outside them go to the process (and find nothing once it is gone)."""

    def __init__(self, mem, ranges):
        self.mem = mem
        self.blocks = [(s, mem.read(s, e - s)) for s, e in ranges]
        self.starts = [s for s, _ in self.blocks]

    @property
    def bytes_read(self):
        return self.mem.bytes_read

    def read(self, addr, size):
        i = bisect_right(self.starts, addr) - 1
        if i >= 0:
            start, data = self.blocks[i]
            if addr < start + len(data):
                return data[addr - start:addr - start + size]
        return self.mem.read(addr, size)

    def read_exact(self, addr, size):
        data = self.read(addr, size)
        return data if len(data) == size else None
