"""WRITE + PUBLISH: the dump directory and its side files (SPEC 4 and 6).

The directory is built under a hidden temporary name in base_dir and renamed
into place when complete, so readers never see half a dump.  Side files:
dumps/PID/IDENT and symbol.map (external dumps), proc/PID/ (write_proc_info),
debug.txt (write_debug_log).
"""

import os
import time

PROC_FILES = ("cmdline", "environ", "io", "maps", "smaps", "stack", "stat", "statm", "status")
TASK_FILES = ("io", "maps", "smaps", "stack", "stat", "statm")
PROC_FILE_LIMIT = 4 << 20
MAX_IDENT = 255


def valid_ident(ident):
    """An ident usable as the file name dumps/PID/IDENT (SPEC 7's rules, plus no
    control characters, which would also break symbol.map lines)."""
    return (bool(ident) and ident not in (".", "..") and "/" not in ident
            and len(ident) <= MAX_IDENT and ident.isprintable())


def safe_name(text, limit=64):
    """A name usable as one path component."""
    out = "".join(c if c.isprintable() and c not in "/\\" else "_" for c in text[:limit])
    return out if out.strip(".") else "_" + out


def dump_name(comm, timestamp, pid):
    stamp = time.strftime("%Y%m%d.%H%M%S%z", time.localtime(timestamp))
    return "%s.%s.%d" % (safe_name(comm or "unknown"), stamp, pid)


class DumpDir:
    """A dump directory under construction."""

    def __init__(self, base_dir, name):
        self.base_dir = base_dir
        self.name = name
        self.final = "%s/%s" % (base_dir, name)
        self.path = "%s/.%s.part" % (base_dir, name)
        os.mkdir(self.path, 0o700)
        self.files = []

    def file(self, rel):
        """Absolute path for rel inside the directory, creating parents (0700)."""
        parts = rel.split("/")
        d = self.path
        for p in parts[:-1]:
            d += "/" + p
            if not os.path.isdir(d):
                os.mkdir(d, 0o700)
        self.files.append(rel)
        return d + "/" + parts[-1]

    def write_file(self, rel, data):
        fd = os.open(self.file(rel), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)

    def publish(self):
        """Rename into place (a suffix if the name is taken); fsync base_dir."""
        target = self.final
        n = 1
        while os.path.exists(target):
            target = "%s.%d" % (self.final, n)
            n += 1
        _fsync_dir(self.path)
        os.rename(self.path, target)
        _fsync_dir(self.base_dir)
        self.final = target
        return target

    def discard(self):
        for root, dirs, files in os.walk(self.path, topdown=False):
            for f in files:
                os.unlink(os.path.join(root, f))
            for d in dirs:
                os.rmdir(os.path.join(root, d))
        os.rmdir(self.path)


def _fsync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_externals(dd, pid, externals, offset_of, word):
    """dumps/PID/IDENT files and symbol.map lines for external dumps (SPEC 6).

    offset_of(vaddr) gives the core file offset an address has in the
    kernel's layout (0 when it has none); word packs a pointer.  A file holds
    [pointer value if indirect] + [data unless NODUMP]; text registrations
    sharing an ident are appended in order.
    """
    files = {}
    lines = []
    for x in externals:
        payload = (word.pack(x.pointer) if x.pointer is not None else b"") + x.data
        files[x.ident] = files.get(x.ident, b"") + payload
        if x.kind != "T":
            lines.append("%x %x %x %s %s\n" % (offset_of(x.vaddr), x.vaddr, x.size, x.kind,
                                                x.ident))
    for ident, payload in files.items():
        dd.write_file("dumps/%d/%s" % (pid, ident), payload)
    if lines:
        dd.write_file("symbol.map", "".join(lines).encode())


def write_proc_info(dd, procdir, pid):
    """Copy /proc/PID files, per-task files, and the cwd and fd links as text."""
    def copy(src, rel):
        try:
            with open(src, "rb") as f:
                data = f.read(PROC_FILE_LIMIT)
        except OSError:
            return
        dd.write_file(rel, data)

    def links(src_dir, rel):
        try:
            lines = []
            for name in sorted(os.listdir(src_dir), key=lambda s: (len(s), s)):
                try:
                    lines.append("%s -> %s\n" % (name, os.readlink(src_dir + "/" + name)))
                except OSError:
                    continue
            dd.write_file(rel, "".join(lines).encode("utf-8", "replace"))
        except OSError:
            return

    base = "proc/%d" % pid
    for name in PROC_FILES:
        copy("%s/%s" % (procdir, name), "%s/%s" % (base, name))
    try:
        dd.write_file(base + "/cwd", (os.readlink(procdir + "/cwd") + "\n").encode())
    except OSError:
        pass
    links(procdir + "/fd", base + "/fd")
    try:
        tids = sorted(os.listdir(procdir + "/task"), key=int)
    except OSError:
        tids = []
    for tid in tids:
        for name in TASK_FILES:
            copy("%s/task/%s/%s" % (procdir, tid, name), "%s/task/%s/%s" % (base, tid, name))
