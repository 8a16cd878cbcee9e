"""WRITE: external dumps, dumps/PID/IDENT files and their symbol.map lines
(docs/FORMATS.md §6), for the crashed process and for live dumps."""


def write_externals(dd, folder, externals, word, offset_of=None):
    """folder/IDENT files and symbol.map lines for external dumps.

    A file holds [pointer value if indirect] + [data unless NODUMP]; dumps
    sharing an ident (text registrations, a live dump's core-data blocks)
    are appended in order.  The first column of symbol.map is
    offset_of(vaddr, size, kind), where the core file has those bytes
    (write_core.CoreImage.symbol_map_offset); without offset_of (a live dump:
    there is no core) it is where the block starts in its own file.  word
    packs a pointer.
    """
    files = {}  # ident -> [payload, ...]: each file written once, in pieces, never joined
    sizes = {}
    lines = []
    for x in externals:
        pieces = ([word.pack(x.pointer)] if x.pointer is not None else []) + [x.data]
        start = sizes.get(x.ident, 0)
        files.setdefault(x.ident, []).extend(pieces)
        sizes[x.ident] = start + sum(len(p) for p in pieces)
        if x.kind != "T":
            offset = offset_of(x.vaddr, x.size, x.kind) if offset_of else start
            lines.append("%x %x %x %s %s\n" % (offset, x.vaddr, x.size, x.kind, x.ident))
    for ident, pieces in files.items():
        sink = dd.create(folder + ident)
        try:
            for piece in pieces:
                sink.write(piece)
        finally:
            sink.close()
    if lines:
        dd.write_file("symbol.map", "".join(lines).encode())
