"""PUBLISH: the dump directory, built hidden and published whole (docs/FORMATS.md §4).

The directory is built under a hidden temporary name in base_dir
(.<name>.part.<handler pid>), every file fsynced, the integrity record
(publish_manifest.py) written last, then renamed into place and base_dir fsynced, so
readers never see half a dump.  A later run removes what a killed handler
left behind (clean_leftovers).
"""

import os
import time

from .files import fsync_dir, remove_tree
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


class DumpDir:
    """A dump directory under construction: files, their integrity record, and
    the rename that publishes it whole."""

    live_dumps = True  # a live dumper may write into it beside the handler
    room = 0  # no limit of its own: the recept's max_dump_size is the budget

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
        from .write_sinks import FileSink
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
        from .write_sinks import FilterSink, TarMember, compressor_for, core_name, core_sink
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
        from .write_sinks import file_size_crc
        top = "%s/%s" % (self.path, rel_dir)
        try:
            names = sorted(os.listdir(top))
        except FileNotFoundError:
            return []  # the live dumper wrote nothing
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
            self.write_file(MANIFEST, manifest_bytes(self.records))
        target = self.final
        n = 1
        while os.path.exists(target):
            target = "%s.%d" % (self.final, n)
            n += 1
        fsync_dir(self.path)
        os.rename(self.path, target)
        fsync_dir(self.base_dir)
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


def clean_leftovers(base_dir, log):
    """Remove directories a killed handler left half-built (its PID is gone)."""
    try:
        names = os.listdir(base_dir)
    except OSError:
        return  # no base_dir to clean: the caller creates it or reports why it cannot
    for name in names:
        if not name.startswith(".") or PART not in name:
            continue
        pid = name.rpartition(PART)[2]
        if pid.isdigit() and os.path.exists("/proc/%s" % pid) and int(pid) != os.getpid():
            continue  # still being written
        try:
            remove_tree("%s/%s" % (base_dir, name))
            log("removed %s, left half-written by a handler that died" % name)
        except OSError as e:
            log("%s, left half-written by a handler that died, cannot be removed: %s"
                % (name, e.strerror or e))


