"""READ: /proc/PID of a process: its memory, maps, exe, comm and state.

ProcessMemory is the only way the runtime reads another process's memory.  It
is bounded (every read has a size cap) and never trusts an address: a failed
read returns what could be read, not an exception deep in the plan.
identity() and status_field() tell whether a PID is still the process it was
and whether it is stopped, a zombie or traced (registry and live dumps).
Process.facts() reads what the summary says about a crashed process besides
its memory (cgroup and systemd unit, rlimits, open fds; the host's boot id
and kernel release), every file bounded and none of them required.

Memory that cannot be read does not end a read of what lies after it:
ProcessMemory.read_pieces() skips unreadable pages (a file truncated under
its mapping, a device mapping) page by page after a failed read, bounded
(MAX_PROBES single-page reads per process, PROBE_RUN failures in a row give
up the rest of that mapping), and keeps what it skipped for one log line.
Memory that may never arrive is not asked for: a page fault in a mapping of
a file on FUSE or a network file system (STALLING_FS) waits for a daemon or a
server in a sleep no signal ends, so such mappings are read only where the
page is already in the process's page tables (/proc/PID/pagemap), decided
from the mapping's device and the mount table, without touching the file.
"""

import os

try:  # the C function itself: bisect.py would be one more module on the crash path
    from _bisect import bisect_right
except ImportError:  # a Python without the C accelerator
    from bisect import bisect_right

PAGE = 4096
MAX_STRING = 4096
READ_CHUNK = 64 << 10
MAX_PROBES = 4096  # single-page reads after failed reads, per process
PROBE_RUN = 16  # unreadable pages in a row after which the rest of their mapping is skipped
MAX_PAGEMAP = 1 << 20  # pagemap entries read per process (4 GiB of address space)
MAX_SKIPPED = 64  # skipped ranges kept for the log (counted beyond)
MAX_MOUNTINFO = 16 << 20
# File systems whose page faults may wait for a daemon or a server that never
# answers, in a sleep no signal ends (FUSE, network and cluster file systems);
# "fuse.SUBTYPE" too.  A device that no mount table lists is taken for one of
# them when it is an anonymous device (major 0: FUSE, NFS ... mounted in a
# namespace neither the process nor the handler sees), unless it is the one
# of shared memory (memfd, SysV shm: in no mount table either).
STALLING_FS = frozenset(("fuse", "fuseblk", "virtiofs", "nfs", "nfs4", "cifs", "smb3",
                         "smbfs", "9p", "ceph", "afs", "coda", "orangefs", "lustre", "gfs2",
                         "ocfs2", "glusterfs"))
PAGEMAP_PRESENT = 1 << 63
PAGEMAP_SWAPPED = 1 << 62
DELETED = " (deleted)"  # what d_path appends to the path of an unlinked file
SMALL_FILE = 16 << 10  # bytes read of /proc/PID/cgroup and limits
MAX_FDS = 64  # open fds the summary lists, the lowest numbers
MAX_LINK = 512  # bytes kept of one fd's link target
MAX_LIMITS = 32  # rows of /proc/PID/limits (the kernel has 16)
BOOT_ID = "/proc/sys/kernel/random/boot_id"


class Mapping:
    """One line of /proc/PID/maps."""

    __slots__ = ("start", "end", "perms", "offset", "inode", "path", "dev")

    def __init__(self, start, end, perms, offset, inode, path, dev=(0, 0)):
        self.start = start
        self.end = end
        self.perms = perms
        self.offset = offset
        self.inode = inode
        self.path = path
        self.dev = dev  # (major, minor) of the file's file system; (0, 0) for none

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
            major, minor = (int(x, 16) for x in parts[3].split(":"))
            maps.append(Mapping(start, end, parts[1], int(parts[2], 16), int(parts[4]),
                                parts[5] if len(parts) > 5 else "", (major, minor)))
        except ValueError:
            continue  # a line that is no mapping is not one
    return maps


def mount_types(text, devs):
    """{(major, minor): fstype} of a /proc/PID/mountinfo text, for the devices
    in devs only (field 3 is major:minor, the type follows the " - ")."""
    found = {}
    for line in text.splitlines():
        parts = line.split(" ", 3)
        if len(parts) < 4:
            continue
        try:
            dev = tuple(int(x) for x in parts[2].split(":"))
        except ValueError:
            continue  # not a mount line
        if dev in devs and dev not in found:
            tail = line.split(" - ", 1)
            if len(tail) == 2:
                found[dev] = tail[1].split(" ", 1)[0]
    return found


def stalls(fstype):
    """True if a page fault on a file system of this type may never end."""
    return fstype in STALLING_FS or fstype.startswith("fuse.")


_SHMEM_DEV = []


def shmem_dev():
    """(major, minor) of shared memory's internal mount (memfd, SysV shm), or None."""
    if not _SHMEM_DEV:
        try:
            fd = os.memfd_create("minicoredumper", os.MFD_CLOEXEC)
            try:
                st = os.fstat(fd)
                _SHMEM_DEV.append((os.major(st.st_dev), os.minor(st.st_dev)))
            finally:
                os.close(fd)
        except (OSError, AttributeError):
            _SHMEM_DEV.append(None)  # no memfd here: no exception for shared memory
    return _SHMEM_DEV[0]


def stalling_mappings(maps, mountinfo_texts):
    """The file mappings (Mapping list, in maps order) whose page faults may
    never end: on a STALLING_FS file system by the first mount table (texts
    of /proc/PID/mountinfo, the process's first) that lists their device, or
    on an anonymous device no table lists (but shared memory's).  Nothing is
    asked of the file systems themselves (a statfs on FUSE asks its daemon)."""
    devs = {m.dev for m in maps if m.inode}
    types = {}
    for text in mountinfo_texts:
        for dev, fstype in mount_types(text, devs - set(types)).items():
            types[dev] = fstype
    bad = set()
    for dev in devs:
        fstype = types.get(dev)
        if fstype is not None and stalls(fstype) or \
                fstype is None and dev[0] == 0 and dev != shmem_dev():
            bad.add(dev)
    return [m for m in maps if m.inode and m.dev in bad]


def exe_path(link):
    """(path, deleted) of a readlink(/proc/PID/exe): the path without the
    kernel's " (deleted)", and whether it had one (the file was deleted or
    replaced since it was started)."""
    if link.endswith(DELETED):
        return link[:-len(DELETED)], True
    return link, False


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


def other_thread(pid, proc_root="/proc"):
    """The TID of a thread of process pid other than its thread-group leader.
    A leader that has exited (pthread_exit() in main) while other threads run
    is a zombie: its /proc/PID/mem, auxv and pagemap answer ESRCH, its maps
    and fd are empty and its exe is gone, while /proc/TID of any other thread
    shows the process's memory, maps, exe, map_files and fds.  The first such
    thread the kernel lists; ProcessGone if there is none."""
    with os.scandir("%s/%d/task" % (proc_root, pid)) as entries:
        for entry in entries:
            if entry.name.isdigit() and int(entry.name) != pid:
                return int(entry.name)
    raise ProcessGone("process %d has no thread but its exited leader" % pid)


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
        self._mount_tables = None
        self._rlimits = False  # not read yet
        self.mem = None
        if not self.check_identity():
            raise ProcessGone("PID %d is not the process of pidfd %d" % (pid, pidfd))
        try:
            self.mem = (memory or ProcessMemory)(self.dir + "/mem")
        except ProcessLookupError:  # the leader has exited: a thread's view of it
            tid = other_thread(pid, proc_root)
            self.dir = "%s/%d" % (proc_root, tid)
            self.mem = (memory or ProcessMemory)(self.dir + "/mem")
            if status_field(tid, "Tgid", proc_root) != str(pid):
                self.mem.close()
                raise ProcessGone("thread %d left process %d while its mem was opened"
                                  % (tid, pid)) from None
        try:
            if not self.check_identity():
                raise ProcessGone("PID %d was reused while /proc/%d/mem was opened"
                                  % (pid, pid))
            self.guard_memory()
        except BaseException:
            self.mem.close()
            raise

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

    def guard_memory(self):
        """Read the maps again and tell self.mem which mappings may stall
        (stalling_mappings: through the process's mount table, then ours)
        and where all mappings are.  Called when the process is opened, and
        by a live dump once the process is stopped (its mappings may have
        changed since; the mount tables are not read again: a device mounted
        since is in none of them, and counts as stalling when anonymous)."""
        self._maps = None
        if self._mount_tables is None:
            self._mount_tables = []
            for path in (self.dir + "/mountinfo", "/proc/self/mountinfo"):
                raw = read_small(path, MAX_MOUNTINFO)
                if raw is not None:
                    self._mount_tables.append(raw.decode("utf-8", "replace"))
        self.mem.guard(self.maps, stalling_mappings(self.maps, self._mount_tables),
                       self.dir + "/pagemap")

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
    """Bounded reads of /proc/PID/mem; guard() tells it where the mappings
    are and which of them may stall (read only where present)."""

    def __init__(self, path):
        self.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        self.bytes_read = 0
        self.pagemap = -1
        self.spans = []  # sorted (start, end, stalls) of the process's mappings
        self.starts = []
        self.stalling = False  # some mapping may stall
        self.probes = MAX_PROBES
        self.pagemap_left = MAX_PAGEMAP
        self.skipped = []  # [start, end, why] not read by read_pieces, at most MAX_SKIPPED
        self.skipped_bytes = 0
        self.skipped_ranges = 0
        self.held_back = {}  # start of a stalling mapping -> its path, where pages were left out

    def guard(self, maps, stalling, pagemap_path):
        """maps: the process's Mappings; stalling: those read only where
        their pages are present (stalling_mappings); pagemap_path: its
        /proc/PID/pagemap (opened now, while the process is held)."""
        bad = {m.start for m in stalling}
        self.spans = sorted((m.start, m.end, m.start in bad, m.path) for m in maps)
        self.starts = [sp[0] for sp in self.spans]
        self.stalling = bool(bad)
        if self.stalling and self.pagemap < 0:
            try:
                self.pagemap = os.open(pagemap_path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                self.pagemap = -1  # no page is known to be present: none of them is read

    def may_stall(self, addr):
        """True if addr lies in a mapping whose pages may never arrive (guard())."""
        span = self._span(addr)
        return span is not None and span[2]

    def _span(self, addr):
        """The (start, end, stalls, path) of the mapping holding addr, or None."""
        i = bisect_right(self.starts, addr) - 1
        if i >= 0 and addr < self.spans[i][1]:
            return self.spans[i]
        return None

    def _present(self, addr, size):
        """How many of the size bytes at addr lie before the first page of a
        stalling mapping that is neither present nor swapped (size if none)."""
        end = addr + size
        i = max(0, bisect_right(self.starts, addr) - 1)
        while i < len(self.spans) and self.spans[i][0] < end:
            s, e, bad, path = self.spans[i]
            lo, hi = max(s, addr), min(e, end)
            i += 1
            if not bad or lo >= hi:
                continue
            first, last = lo // PAGE, (hi - 1) // PAGE
            entries = self._pagemap(first, last - first + 1)
            for k, entry in enumerate(entries):
                if not entry & (PAGEMAP_PRESENT | PAGEMAP_SWAPPED):
                    break
            else:
                if len(entries) == last - first + 1:
                    continue
                k = len(entries)
            self.held_back.setdefault(s, path)
            return max(lo, (first + k) * PAGE) - addr
        return size

    def _pagemap(self, first, count):
        """The pagemap entries (ints) of count pages from page number first;
        fewer when pagemap cannot be read or its budget is spent."""
        count = min(count, self.pagemap_left)
        if self.pagemap < 0 or count <= 0:
            return []
        self.pagemap_left -= count
        try:
            raw = os.pread(self.pagemap, count * 8, first * 8)
        except (OSError, OverflowError):
            return []  # unreadable: none of these pages is known to be present
        return memoryview(raw[:len(raw) // 8 * 8]).cast("Q").tolist()

    def read(self, addr, size):
        """Up to size bytes at addr; shorter if part of the range is unreadable
        (or a page of a stalling mapping is not present)."""
        out = []
        while size > 0:
            n = min(size, READ_CHUNK)
            if self.stalling:
                n = self._present(addr, n)
                if n <= 0:
                    break
            try:
                b = os.pread(self.fd, n, addr)
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

    def read_pieces(self, addr, size):
        """[(start, bytes)]: what can be read of the size bytes at addr, in
        address order.  After a failed read the rest is tried page by page
        (at most MAX_PROBES pages per process; PROBE_RUN failed pages in a row
        skip the rest of their mapping); pages of a stalling mapping that are
        not present are skipped without a read.  What is skipped is kept in
        self.skipped (skip_report() says it in one line)."""
        pieces = []
        end = addr + size
        while addr < end:
            data = self.read(addr, end - addr)
            if data:
                pieces.append((addr, data))
                addr += len(data)
            if addr >= end:
                break
            resume, why = self._resume(addr, end)
            self._skip(addr, resume, why)
            addr = resume
        return pieces

    def _resume(self, addr, end):
        """(address, why): where reading may go on after an unreadable addr
        (at most end), and why the memory before it was skipped."""
        span = self._span(addr)
        stop = min(end, span[1]) if span is not None else end
        page = (addr // PAGE + 1) * PAGE
        if span is not None and span[2]:  # stalling: the next present page, by pagemap
            while page < stop:
                n = min((stop - page + PAGE - 1) // PAGE, READ_CHUNK // PAGE)
                entries = self._pagemap(page // PAGE, n)
                for k, entry in enumerate(entries):
                    if entry & (PAGEMAP_PRESENT | PAGEMAP_SWAPPED):
                        return page + k * PAGE, "not in memory, on a file system that may stall"
                if len(entries) < n:
                    return stop, "not in memory, on a file system that may stall"
                page += n * PAGE
            return stop, "not in memory, on a file system that may stall"
        if span is None and self.spans:  # between mappings: go on where the next one starts
            i = bisect_right(self.starts, addr)
            nxt = self.starts[i] if i < len(self.starts) else end
            if nxt > addr:
                return min(nxt, end), "not mapped"
        run = 0
        while page < stop and self.probes > 0 and run < PROBE_RUN:
            self.probes -= 1
            try:
                ok = os.pread(self.fd, 1, page)
            except (OSError, OverflowError):
                ok = b""  # this page cannot be read either
            if ok:
                return page, "unreadable"
            run += 1
            page += PAGE
        if page >= stop:
            return stop, "unreadable"
        return stop, "unreadable (the rest of the mapping skipped after %d pages)" % run \
            if self.probes > 0 else "unreadable (page-by-page budget spent)"

    def _skip(self, start, end, why):
        if end <= start:
            return
        self.skipped_bytes += end - start
        last = self.skipped[-1] if self.skipped else None
        if last is not None and last[1] == start and last[2] == why:
            last[1] = end
            return
        self.skipped_ranges += 1
        if len(self.skipped) < MAX_SKIPPED:
            self.skipped.append([start, end, why])

    def skip_report(self):
        """One line on the memory read_pieces() skipped and the mappings whose
        pages were held back, or None when nothing was."""
        if not self.skipped_bytes and not self.held_back:
            return None
        parts = []
        if self.skipped_bytes:
            s, e, why = self.skipped[0]
            parts.append("%d bytes in %d range(s) skipped (first %#x-%#x: %s)" % (
                self.skipped_bytes, self.skipped_ranges, s, e, why))
        if self.held_back:
            paths = sorted(set(self.held_back.values()))
            parts.append("pages not in memory left out of %d mapping(s) of files on a "
                         "file system that may stall: %s" % (
                             len(self.held_back), ", ".join(paths[:3])))
        return "memory not read: " + "; ".join(parts)

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
        for name in ("fd", "pagemap"):
            fd = getattr(self, name)
            if fd >= 0:
                os.close(fd)
                setattr(self, name, -1)


class SnapshotMemory:
    """The planned ranges of the process memory, read once before the release
    (unreadable pages skipped: ProcessMemory.read_pieces); reads outside them
    go to the process (and find nothing once it is gone).  unreadable: the
    sorted (start, end) parts of the ranges that could not be read."""

    def __init__(self, mem, ranges):
        self.mem = mem
        self.blocks = []
        self.unreadable = []
        for s, e in ranges:
            pos = s
            for start, data in mem.read_pieces(s, e - s):
                if start > pos:
                    self.unreadable.append((pos, start))
                self.blocks.append((start, data))
                pos = start + len(data)
            if pos < e:
                self.unreadable.append((pos, e))
        self.starts = [s for s, _ in self.blocks]
        self.ranges = list(ranges)
        self.range_starts = [s for s, _ in self.ranges]

    @property
    def bytes_read(self):
        return self.mem.bytes_read

    def read(self, addr, size):
        i = bisect_right(self.starts, addr) - 1
        if i >= 0:
            start, data = self.blocks[i]
            if addr < start + len(data):
                return data[addr - start:addr - start + size]
        i = bisect_right(self.range_starts, addr) - 1
        if i >= 0 and addr < self.ranges[i][1]:
            return b""  # planned but unreadable: not asked again
        return self.mem.read(addr, size)

    def read_exact(self, addr, size):
        data = self.read(addr, size)
        return data if len(data) == size else None
