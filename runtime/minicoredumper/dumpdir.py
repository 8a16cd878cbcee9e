"""WRITE + PUBLISH: the dump directory and its side files (SPEC 4 and 6).

The directory is built under a hidden temporary name in base_dir
(.<name>.part.<handler pid>), every file fsynced, an integrity record
(`manifest`: CRC32, size and path per file) written last, then renamed into
place and base_dir fsynced, so readers never see half a dump.  A later run
removes what a killed handler left behind.  Side files: dumps/PID/IDENT and
symbol.map (external dumps), proc/PID/ (write_proc_info), debug.txt
(write_debug_log).
"""

import os
import time

PROC_FILES = ("cmdline", "environ", "io", "maps", "smaps", "stack", "stat", "statm", "status")
TASK_FILES = ("io", "maps", "smaps", "stack", "stat", "statm")
PROC_FILE_LIMIT = 4 << 20
PART = ".part."  # .<name>.part.<handler pid>: a directory under construction
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


MANIFEST = "manifest"


class DumpDir:
    """A dump directory under construction: files, their integrity record, and
    the rename that publishes it whole."""

    def __init__(self, base_dir, name):
        self.base_dir = base_dir
        self.name = name
        self.final = "%s/%s" % (base_dir, name)
        self.path = "%s/.%s%s%d" % (base_dir, name, PART, os.getpid())
        os.mkdir(self.path, 0o700)
        self.records = {}  # rel -> (size, crc32)
        self.made = set()  # subdirectories already there

    def file(self, rel):
        """Absolute path for rel inside the directory, creating parents (0700)."""
        parts = rel.split("/")
        d = self.path
        for p in parts[:-1]:
            d += "/" + p
            if d in self.made:
                continue
            try:
                os.mkdir(d, 0o700)
            except FileExistsError:  # made by the live dumper meanwhile
                pass
            self.made.add(d)
        return d + "/" + parts[-1]

    def create(self, rel):
        """A FileSink for rel, recorded in the integrity record when closed."""
        from .artefacts import FileSink
        return FileSink(self.file(rel), lambda size, crc: self._record(rel, size, crc))

    def _record(self, rel, size, crc):
        self.records[rel] = (size, crc)

    def write_file(self, rel, data):
        sink = self.create(rel)
        try:
            sink.write(data)
        finally:
            sink.close()

    def core_sink(self, compression, size, mtime):
        """(sink, file name) for the core artefact written into the directory."""
        from .artefacts import FilterSink, TarMember, compressor_for, core_name, core_sink
        name = core_name(compression)
        comp = compression["compressor"]
        if comp and compressor_for(comp) is None:
            sink = FilterSink(self.file(name), comp, lambda n, c: self._record(name, n, c))
            if compression["in_tar"]:
                sink = TarMember(sink, "core", size, mtime)
            return sink, name
        return core_sink(self.create(name), compression, size, mtime), name

    def size(self):
        return sum(n for n, _ in self.records.values())

    def adopt(self, rel_dir, budget=None):
        """Add what another process (the live dumper) wrote in rel_dir/NAME/ to
        the integrity record, after removing what it left half-built.  A NAME
        whose files do not all fit the budget (budget.Budget) is removed.
        Returns the names removed for the budget."""
        from .artefacts import file_size_crc
        top = "%s/%s" % (self.path, rel_dir)
        try:
            names = sorted(os.listdir(top))
        except FileNotFoundError:
            return []
        dropped = []
        for name in names:
            sub = "%s/%s" % (top, name)
            if name.startswith(".") and PART in name:
                remove_tree(sub)
                continue
            found = {}
            for root, _, files in os.walk(sub):
                for f in files:
                    rel = os.path.relpath(os.path.join(root, f), self.path)
                    if rel not in self.records:
                        found[rel] = file_size_crc(os.path.join(root, f))
            if budget is not None and not _take_all(budget, found):
                remove_tree(sub)
                dropped.append(name)
                continue
            self.records.update(found)
        return dropped

    def publish(self, manifest=True):
        """Write the integrity record last (unless manifest is False), fsync,
        rename into place (a suffix if the name is taken), fsync base_dir.
        Returns the final path."""
        if manifest:
            lines = ["%08x %d %s\n" % (crc, n, rel)
                     for rel, (n, crc) in sorted(self.records.items())]
            self.write_file(MANIFEST, "".join(lines).encode("utf-8", "surrogateescape"))
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
        """Remove the half-built directory; what cannot be removed now stays
        hidden (.part) and the next run's clean_leftovers() removes it."""
        try:
            remove_tree(self.path)
        except OSError:
            pass  # see above: never published, cleaned up later


def _take_all(budget, files):
    """Take budget room for every file {rel: (size, crc)}, or for none (False)."""
    used = budget.used
    for rel, (n, _) in sorted(files.items()):
        if not budget.fits(rel, n):
            budget.used = used
            return False
        budget.take(rel, n)
    return True


def remove_tree(path):
    for root, dirs, files in os.walk(path, topdown=False):
        for f in files:
            os.unlink(os.path.join(root, f))
        for d in dirs:
            os.rmdir(os.path.join(root, d))
    os.rmdir(path)


def clean_leftovers(base_dir, log):
    """Remove directories a killed handler left half-built (its PID is gone)."""
    try:
        names = os.listdir(base_dir)
    except OSError:
        return
    for name in names:
        if not name.startswith(".") or PART not in name:
            continue
        pid = name.rpartition(PART)[2]
        if pid.isdigit() and os.path.exists("/proc/%s" % pid) and int(pid) != os.getpid():
            continue  # still being written
        try:
            remove_tree("%s/%s" % (base_dir, name))
            log("removed %s, left half-written by a handler that died" % name)
        except OSError:
            pass


def verify(path, only=None):
    """Problems with a published dump directory per its integrity record ([] =
    intact); only: check just these files (paths relative to the directory)."""
    from .artefacts import file_size_crc
    try:
        with open(os.path.join(path, MANIFEST), encoding="utf-8", errors="surrogateescape") as f:
            lines = f.read().splitlines()
    except OSError as e:
        return ["no integrity record (%s)" % (e.strerror or e)]
    problems = []
    listed = set()
    for line in lines:
        parts = line.split(" ", 2)
        try:
            crc, size, rel = int(parts[0], 16), int(parts[1]), parts[2]
        except (IndexError, ValueError):
            problems.append("malformed record line %r" % line)
            continue
        listed.add(rel)
        if only is not None and rel not in only:
            continue
        try:
            got = file_size_crc(os.path.join(path, rel))
        except OSError:
            problems.append("%s: missing" % rel)
            continue
        if got[0] != size:
            problems.append("%s: %d bytes, the record says %d" % (rel, got[0], size))
        elif got[1] != crc:
            problems.append("%s: CRC32 %08x, the record says %08x" % (rel, got[1], crc))
    if only is None:
        present = [os.path.relpath(os.path.join(root, f), path)
                   for root, _, files in os.walk(path) for f in files]
    else:
        present = [rel for rel in only if os.path.lexists(os.path.join(path, rel))]
    problems += ["%s: not in the integrity record" % rel for rel in present
                 if rel != MANIFEST and rel not in listed]
    return problems


def replace_file(path, data, mode=0o600):
    """Replace path with data (bytes, or a file object read to its end) in one
    rename: written to path.tmp.<pid> (never through a symlink), fsynced,
    renamed over path.  Readers see the old file or the new one, never a mix;
    whatever fails (writing, or reading data) leaves path as it was and no
    temporary file."""
    tmp = "%s.tmp.%d" % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW,
                 mode)
    try:
        try:
            os.fchmod(fd, mode)  # whatever the umask
            chunks = iter(lambda: data.read(1 << 20), b"") if hasattr(data, "read") else (data,)
            for chunk in chunks:
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _fsync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_externals(dd, folder, externals, word, offset_of=None):
    """folder/IDENT files and symbol.map lines for external dumps (SPEC 6).

    A file holds [pointer value if indirect] + [data unless NODUMP]; dumps
    sharing an ident (text registrations, a live dump's core-data blocks)
    are appended in order.  The first column of symbol.map is
    offset_of(vaddr), the core file offset an address has in the kernel's
    layout (0 when it has none); without offset_of (a live dump: there is no
    core) it is where the block starts in its own file.  word packs a pointer.
    """
    files = {}
    lines = []
    for x in externals:
        payload = (word.pack(x.pointer) if x.pointer is not None else b"") + x.data
        start = len(files.get(x.ident, b""))
        files[x.ident] = files.get(x.ident, b"") + payload
        if x.kind != "T":
            offset = offset_of(x.vaddr) if offset_of else start
            lines.append("%x %x %x %s %s\n" % (offset, x.vaddr, x.size, x.kind, x.ident))
    for ident, payload in files.items():
        dd.write_file(folder + ident, payload)
    if lines:
        dd.write_file("symbol.map", "".join(lines).encode())


def write_proc_info(dd, procdir, pid, omit_environ=False):
    """Copy /proc/PID files, per-task files, and the cwd and fd links as text
    (environ left out when the recept keeps the environment private)."""
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
        if omit_environ and name == "environ":
            continue
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
