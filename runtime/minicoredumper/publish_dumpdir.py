"""PUBLISH: the dump directory, built hidden and published whole (docs/FORMATS.md §4).

The directory is built under a hidden temporary name in base_dir
(.<name>.part.<handler pid>), every file fsynced, the integrity record
(publish_manifest.py) written last, then renamed into place and base_dir fsynced, so
readers never see half a dump.  A later run removes what a killed handler
left behind (clean_leftovers).

base_dir is opened once per crash by open_base_dir, which refuses a path that
someone other than root could change (files.open_trusted_dir); everything
after that is relative to its fd and to the .part directory's own fd,
without following a symlink (openat, mkdirat, renameat, unlinkat), so a link
planted in base_dir, or the .part directory swapped for one, never sends a
write, a removal or an eviction outside base_dir.
"""

import os
import time

from .files import open_dir, open_trusted_dir, remove_tree
from .publish_manifest import MANIFEST, manifest_bytes

PART = ".part."  # .<name>.part.<handler pid>: a directory under construction


def safe_name(text, limit=64):
    """A name usable as one path component that is not hidden: a leading "." (a
    comm like ".hidden", or "..") gets a "_" before it, since names starting
    with "." are this directory's own (.part directories, the rate-limit state)
    and are not dumps to mcd or the storage policy."""
    out = "".join(c if c.isprintable() and c not in "/\\" else "_" for c in text[:limit])
    return "_" + out if out.startswith(".") or not out else out


def dump_name(comm, timestamp, pid):
    """<comm>.<YYYYmmdd.HHMMSS±zzzz>.<pid>: the dump directory's name (docs/FORMATS.md §4)."""
    stamp = time.strftime("%Y%m%d.%H%M%S%z", time.localtime(timestamp))
    return "%s.%s.%d" % (safe_name(comm or "unknown"), stamp, pid)


def open_base_dir(path):
    """(fd, made): base_dir opened for a crash (files.open_trusted_dir, missing
    directories created 0700; made lists them).  Untrusted (str(): why) for a
    path someone other than root could change; OSError when it cannot be
    opened or created.  The caller closes fd."""
    return open_trusted_dir(path, create=0o700)


class DumpDir:
    """A dump directory under construction: files, their integrity record, and
    the rename that publishes it whole.

    base_dir: the directory's path (for names and messages); dir_fd: its fd,
    which every operation is relative to (duplicated: the caller keeps its
    own; None: base_dir is opened here, not through a symlink).  path: the
    half-built directory's path (for a helper process such as the live
    dumper); final: the published path once publish() returned."""

    live_dumps = True  # a live dumper may write into it beside the handler
    room = 0  # no limit of its own: the recept's max_dump_size is the budget

    def __init__(self, base_dir, name, dir_fd=None):
        self.base_dir = base_dir
        self.name = name
        self.final = "%s/%s" % (base_dir, name)
        self.part = ".%s%s%d" % (name, PART, os.getpid())
        self.path = "%s/%s" % (base_dir, self.part)
        self.base_fd = open_dir(base_dir) if dir_fd is None else os.dup(dir_fd)
        self.fd = -1
        try:
            os.mkdir(self.part, 0o700, dir_fd=self.base_fd)
            self.fd = open_dir(self.part, self.base_fd)
        except BaseException:
            self.close()
            raise
        self.records = {}  # rel -> (size, crc32)
        self.made = set()  # subdirectories already there

    def file(self, rel):
        """rel, relative to the directory's fd (self.fd), its parents created (0700)."""
        parts = rel.split("/")
        d = ""
        for p in parts[:-1]:
            d += p
            if d not in self.made:
                try:
                    os.mkdir(d, 0o700, dir_fd=self.fd)
                except FileExistsError:  # made by the live dumper meanwhile
                    pass
                self.made.add(d)
            d += "/"
        return rel

    def create(self, rel):
        """A FileSink for rel, recorded in the integrity record when closed."""
        from .write_sinks import FileSink
        return FileSink(self.file(rel), lambda size, crc: self._record(rel, size, crc),
                        dir_fd=self.fd)

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
        from .write_sinks import FilterSink, TarMember, compressor_for, core_name, core_sink
        name = core_name(compression)
        comp = compression["compressor"]
        if comp and compressor_for(comp) is None:
            sink = FilterSink(self.file(name), comp, lambda n, c: self._record(name, n, c),
                              dir_fd=self.fd)
            if compression["in_tar"]:
                sink = TarMember(sink, "core", size, mtime)
            return sink, name
        return core_sink(self.create(name), compression, size, mtime), name

    def drop_unrecorded(self):
        """Remove the files not in the integrity record (half-written when the
        hard deadline stopped the handler), so that what is published verifies."""
        for root, _, files, fd in os.fwalk(".", dir_fd=self.fd):
            for f in files:
                if os.path.normpath(os.path.join(root, f)) not in self.records:
                    os.unlink(f, dir_fd=fd)

    def size(self):
        return sum(n for n, _ in self.records.values())

    def adopt(self, rel_dir, budget=None):
        """Add what another process (the live dumper) wrote in rel_dir/NAME/ to
        the integrity record, after removing what it left half-built.  A NAME
        whose files do not all fit the budget (budget.Budget) is removed.
        Returns the names removed for the budget."""
        from .write_sinks import file_size_crc
        try:
            top = open_dir(rel_dir, self.fd)
        except FileNotFoundError:
            return []  # the live dumper wrote nothing
        try:
            dropped = []
            for name in sorted(os.listdir(top)):
                if name.startswith(".") and PART in name:
                    remove_tree(name, top)
                    continue
                found = {}
                for root, _, files, fd in os.fwalk(name, dir_fd=top):
                    for f in files:
                        rel = "%s/%s/%s" % (rel_dir, root, f)
                        if rel not in self.records:
                            found[rel] = file_size_crc(f, dir_fd=fd)
                if budget is not None and not _take_all(budget, found):
                    remove_tree(name, top)
                    dropped.append(name)
                    continue
                self.records.update(found)
            return dropped
        finally:
            os.close(top)

    def publish(self, manifest=True):
        """Write the integrity record last (unless manifest is False), fsync,
        rename into place (a suffix if the name is taken), fsync base_dir.
        Returns the final path."""
        if manifest:
            self.write_file(MANIFEST, manifest_bytes(self.records))
        target = self.name
        n = 1
        while _exists(target, self.base_fd):
            target = "%s.%d" % (self.name, n)
            n += 1
        os.fsync(self.fd)
        mine = os.fstat(self.fd)
        there = os.stat(self.part, dir_fd=self.base_fd, follow_symlinks=False)
        if (there.st_dev, there.st_ino) != (mine.st_dev, mine.st_ino):
            raise OSError("%s was replaced while the dump was written" % self.part)
        os.rename(self.part, target, src_dir_fd=self.base_fd, dst_dir_fd=self.base_fd)
        os.fsync(self.base_fd)
        self.close()
        self.final = "%s/%s" % (self.base_dir, target)
        return self.final

    def discard(self):
        """Remove the half-built directory; what cannot be removed now stays
        hidden (.part) and the next run's clean_leftovers() removes it."""
        try:
            remove_tree(self.part, self.base_fd)
        except OSError:
            pass  # see above: never published, cleaned up later
        finally:
            self.close()

    def close(self):
        """Close the fds (publish and discard do)."""
        for fd in (self.fd, self.base_fd):
            if fd >= 0:
                os.close(fd)
        self.fd = self.base_fd = -1


def _exists(name, dir_fd):
    """True if name is an entry of dir_fd (a symlink counts, not followed)."""
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        return True
    except FileNotFoundError:
        return False


def _take_all(budget, files):
    """Take budget room for every file {rel: (size, crc)}, or for none (False)."""
    used = budget.used
    for rel, (n, _) in sorted(files.items()):
        if not budget.fits(rel, n):
            budget.used = used
            return False
        budget.take(rel, n)
    return True


def clean_leftovers(base_fd, log):
    """Remove directories a killed handler left half-built (its PID is gone)
    from the base_dir whose fd is base_fd; a symlink named like one is removed
    itself, never what it points to."""
    try:
        names = os.listdir(base_fd)
    except OSError:
        return  # cannot be listed: the dump's own mkdir reports why
    for name in names:
        if not name.startswith(".") or PART not in name:
            continue
        pid = name.rpartition(PART)[2]
        if pid.isdigit() and os.path.exists("/proc/%s" % pid) and int(pid) != os.getpid():
            continue  # still being written
        try:
            remove_tree(name, base_fd)
            log("removed %s, left half-written by a handler that died" % name)
        except OSError as e:
            log("%s, left half-written by a handler that died, cannot be removed: %s"
                % (name, e.strerror or e))


