"""coreinject: put external dumps back into a core so a debugger shows them.

    coreinject [--data=IDENT:SIZE@FILE+OFFSET]... CORE SYMBOL.MAP [DUMPFILE]...

Bytes that fall inside a segment already in the file are written in place
(sparse cores); the rest become new PT_LOAD segments appended to the file
(compact cores).  Each run adds a dumplist note for what it injected.  It
streams: memory use does not depend on the size of the core.  An ident that
is not in symbol.map (docs/FORMATS.md §6) is an error, and nothing is changed.
"""

import argparse
import os
import sys

from . import __version__, elf as E
from .files import iter_exact
from .tool_corefile import CoreFile, parse_symbol_map
from .write_core import (_align, cover_start, dumplist_note, section_fields, tail_bytes,
                         tail_layout)
from .read_corestream import CoreFormatError

CHUNK = 64 << 10


class Source:
    """size bytes of a file starting at offset."""

    def __init__(self, path, offset, size):
        self.path = path
        self.offset = offset
        self.size = size

    def chunks(self, skip=0, size=None):
        size = self.size - skip if size is None else size
        with open(self.path, "rb") as f:
            f.seek(self.offset + skip)
            try:
                yield from iter_exact(f.read, size, CHUNK)
            except EOFError:
                raise OSError("%s: shorter than expected" % self.path) from None


def parse_data_option(text):
    """IDENT:SIZE@FILE+OFFSET -> (ident, Source)."""
    ident, sep, rest = text.rpartition(":")
    size, sep2, rest = rest.partition("@")
    path, sep3, offset = rest.rpartition("+")
    if not (sep and sep2 and sep3 and ident):
        raise ValueError("--data=%s: expected IDENT:SIZE@FILE+OFFSET" % text)
    return ident, Source(path, int(offset, 0), int(size, 0))


def plan_injections(core, symbols, sources):
    """[(vaddr, Source, skip, size, label)] for each ident; ValueError on bad input."""
    L = core.layout
    out = []
    for ident, src in sources:
        if ident not in symbols:
            raise ValueError("%s: ident %r is not in symbol.map" % (src.path, ident))
        _, vaddr, size, kind = symbols[ident]
        if kind == "N":
            out.append((None, src, 0, 0, "%s: registered NODUMP, no data to inject" % ident))
            continue
        if kind == "I":
            if src.size < L.wordsize:
                raise ValueError("%s: too short for the pointer of %r" % (src.path, ident))
            pointer = L.word.unpack(next(src.chunks(0, L.wordsize)))[0]
            n = min(size, src.size - L.wordsize)
            out.append((vaddr, src, 0, L.wordsize, None))
            out.append((pointer, src, L.wordsize, n, "injected: %s, %d bytes, indirect"
                        % (ident, n)))
        else:
            n = min(size, src.size)
            out.append((vaddr, src, 0, n, "injected: %s, %d bytes, direct" % (ident, n)))
    return out


def inject(core_path, symbols, sources, out=sys.stdout):
    core = CoreFile(core_path, "r+b")
    try:
        todo = plan_injections(core, symbols, sources)
        f = core.f
        appended = []  # (vaddr, Source, skip, size)
        injected = []
        for vaddr, src, skip, size, label in todo:
            if vaddr is not None and size:
                off = core.file_offset(vaddr, size)
                if off is None:
                    appended.append((vaddr, src, skip, size))
                else:
                    f.seek(off)
                    for b in src.chunks(skip, size):
                        f.write(b)
                injected.append((vaddr, size))
            if label:
                print(label, file=out)
        _rewrite_tail(core, appended, injected, symbols)
    finally:
        core.close()


def _rewrite_tail(core, appended, injected, symbols):
    """Append new segments and a fresh section tail with one more dumplist note."""
    L = core.layout
    f = core.f
    old_notes = core.dumplist_notes()
    dl = core.sections.get(E.DUMPLIST_SECTION)
    # Our cores (and the original's) end with the dumplist, .shstrtab and the
    # section headers: rebuild them.
    pos = dl.offset if dl is not None and dl.offset >= max(
        [p.offset + p.filesz for p in core.phdrs] + [0]) else core.size
    f.truncate(pos)
    # symbol.map sends a dump that has no place in the core to the core's end
    # (docs/FORMATS.md §6): that range is left a hole, so the original's
    # coreinject, which writes there, overwrites nothing written here.
    pos = max([off + size for off, _, size, _ in symbols.values() if off >= pos] + [pos])
    f.truncate(pos)
    f.seek(pos)
    phdrs = list(core.phdrs)
    for vaddr, src, skip, size in appended:
        phdrs.append(E.Record(type=E.PT_LOAD, flags=E.PF_R | E.PF_W, offset=pos, vaddr=vaddr,
                              paddr=0, filesz=size, memsz=size, align=1))
        for b in src.chunks(skip, size):
            f.write(b)
        pos += size
    ehdr = core.ehdr
    if appended:
        phoff, pos = _place_phdrs(core, phdrs, pos)
        ehdr = ehdr.replace(phoff=phoff, phnum=len(phdrs))
    dumplist_off = _align(pos, 4)
    notes = old_notes + dumplist_note(L, injected)
    f.seek(dumplist_off)
    _, shoff, _ = tail_layout(L, dumplist_off, len(notes))
    f.write(tail_bytes(L, cover_start(ehdr), dumplist_off, notes))
    f.seek(0)
    f.write(L.ehdr.pack(section_fields(L, ehdr, shoff)))
    f.flush()
    os.fsync(f.fileno())


def _place_phdrs(core, phdrs, end):
    """Write the grown program header table (phdrs; end: the file's end, after
    the appended data); returns (its offset, the file's new end).  It stays
    right after the ELF header when moving the notes to the end makes room
    for it there: tools that rewrite the file through libelf, the original's
    coreinject among them, zero whatever lies between the ELF header and a
    table elsewhere (docs/FORMATS.md §6).  Else it goes to the end."""
    L = core.layout
    f = core.f
    table_end = core.ehdr.ehsize + len(phdrs) * L.phdr.size
    used = sorted((p.offset, i) for i, p in enumerate(phdrs) if p.filesz)
    movable = [i for _, i in used if phdrs[i].type == E.PT_NOTE]
    if core.ehdr.phoff == core.ehdr.ehsize and all(
            off >= table_end for off, i in used if i not in movable):
        pos = end
        for i in movable:  # copied in 64 KiB chunks
            p = phdrs[i]
            if p.offset < table_end:
                pos = _align(pos, 4)
                for k in range(0, p.filesz, CHUNK):
                    data = core.pread(p.offset + k, min(CHUNK, p.filesz - k))
                    f.seek(pos + k)
                    f.write(data)
                phdrs[i] = p.replace(offset=pos)
                pos += p.filesz
        f.seek(core.ehdr.ehsize)
        f.write(b"".join(L.phdr.pack(p) for p in phdrs))
        return core.ehdr.ehsize, pos
    pos = _align(end, 8)
    f.seek(pos)
    f.write(b"".join(L.phdr.pack(p) for p in phdrs))
    return pos, pos + len(phdrs) * L.phdr.size


def main(argv=None):
    p = argparse.ArgumentParser(prog="coreinject", description=__doc__.split("\n\n")[0])
    p.add_argument("--version", action="version", version="%(prog)s " + __version__)
    p.add_argument("--data", action="append", default=[], metavar="IDENT:SIZE@FILE+OFFSET")
    p.add_argument("core")
    p.add_argument("symbol_map")
    p.add_argument("dumpfiles", nargs="*")
    args = p.parse_args(argv)
    try:
        symbols = parse_symbol_map(args.symbol_map)
        sources = [parse_data_option(d) for d in args.data]
        sources += [(os.path.basename(d), Source(d, 0, os.path.getsize(d)))
                    for d in args.dumpfiles]
        if not sources:
            raise ValueError("nothing to inject: name dump files or --data")
        inject(args.core, symbols, sources)
    except (ValueError, OSError, CoreFormatError) as e:
        print("coreinject: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
