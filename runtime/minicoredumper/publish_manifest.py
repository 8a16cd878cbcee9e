"""The integrity record of a dump directory, `manifest` (docs/FORMATS.md §4):
one line per file, "<crc32 %08x> <size> <path>", sorted by path, written
last; verify() checks a published directory against it."""

import os

MANIFEST = "manifest"


def manifest_bytes(records):
    """The record for records {path: (size, crc32)}."""
    lines = ["%08x %d %s\n" % (crc, n, rel) for rel, (n, crc) in sorted(records.items())]
    return "".join(lines).encode("utf-8", "surrogateescape")


def verify(path, only=None):
    """Problems with a published dump directory per its integrity record ([] =
    intact); only: check just these files (paths relative to the directory).
    Record lines that cannot be read come first, in the record's order, then
    the files' problems sorted by path (the same order however the record or
    the directory lists them)."""
    from .write_sinks import file_size_crc
    try:
        with open(os.path.join(path, MANIFEST), encoding="utf-8", errors="surrogateescape") as f:
            lines = f.read().splitlines()
    except OSError as e:
        return ["no integrity record (%s)" % (e.strerror or e)]  # reported as the problem
    malformed = []
    by_path = []  # (path, problem)
    listed = set()
    for line in lines:
        parts = line.split(" ", 2)
        try:
            crc, size, rel = int(parts[0], 16), int(parts[1]), parts[2]
        except (IndexError, ValueError):
            malformed.append("malformed record line %r" % line)
            continue
        listed.add(rel)
        if only is not None and rel not in only:
            continue
        try:
            got = file_size_crc(os.path.join(path, rel))
        except OSError:
            by_path.append((rel, "%s: missing" % rel))
            continue
        if got[0] != size:
            by_path.append((rel, "%s: %d bytes, the record says %d" % (rel, got[0], size)))
        elif got[1] != crc:
            by_path.append((rel, "%s: CRC32 %08x, the record says %08x" % (rel, got[1], crc)))
    if only is None:
        present = [os.path.relpath(os.path.join(root, f), path)
                   for root, _, files in os.walk(path) for f in files]
    else:
        present = [rel for rel in only if os.path.lexists(os.path.join(path, rel))]
    by_path += [(rel, "%s: not in the integrity record" % rel) for rel in present
                if rel != MANIFEST and rel not in listed]
    return malformed + [problem for _, problem in sorted(by_path)]
