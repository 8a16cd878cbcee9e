"""READ: an ELF core file on disk (ours or the kernel's), for the tools.

Headers, program headers, sections and the dumplist note; memory reads by
virtual address that say whether the bytes are really present.  Reads are
bounded and streamed; nothing here loads the whole file.
"""

import os

from . import elf as E
from .read_corestream import CoreFormatError


class NotInCore(CoreFormatError):
    """The bytes asked for are not in the core (never dumped, or a hole)."""


class CoreFile:
    """path opened with mode; name: what messages call it (default: path).
    CoreFormatError if it is not a core this can read, or cut short."""

    def __init__(self, path, mode="rb", name=None):
        self.path = name or path  # in messages
        self.f = open(path, mode)
        self.size = os.fstat(self.f.fileno()).st_size
        try:
            self.layout, self.ehdr, self.phdrs = E.read_headers(self.pread, etype=E.ET_CORE,
                                                                min_phnum=0)
        except E.ElfFormatError as e:
            raise CoreFormatError("%s: %s" % (self.path, e)) from None
        self.loads = [p for p in self.phdrs if p.type == E.PT_LOAD]
        self.sections = self._sections()

    def pread(self, offset, size):
        self.f.seek(offset)
        data = self.f.read(size)
        if len(data) != size:
            raise CoreFormatError("%s: truncated at offset %#x" % (self.path, offset))
        return data

    def _sections(self):
        """{name: shdr} of the section header table (empty if there is none
        or it is not one we can read)."""
        try:
            shdrs = E.read_section_headers(self.pread, self.layout, self.ehdr)
            return dict(zip(E.section_names(self.pread, shdrs, self.ehdr.shstrndx), shdrs))
        except E.ElfFormatError:
            return {}  # no section headers we can read: no dumplist, every segment counts

    def dumplist_notes(self):
        """The raw notes of the dumplist section (b"" if there is none)."""
        s = self.sections.get(E.DUMPLIST_SECTION)
        return self.pread(s.offset, s.size) if s is not None else b""

    def dumplist(self):
        """(start, length) pairs of memory really present; None for a core
        without a dumplist (a kernel core: everything in the file is real)."""
        notes = self.dumplist_notes()
        if not notes:
            return None
        L = self.layout
        pair = L.words(2)
        out = []
        for name, ntype, desc in L.iter_notes(notes):
            if name == E.MCD_NOTE_OWNER and ntype == E.NT_MCD_DUMPLIST:
                out += [pair.unpack_from(desc, i) for i in range(0, len(desc) - pair.size + 1,
                                                                  pair.size)]
        return out[1:] if out and out[0][0] == 0 else out

    def file_offset(self, vaddr, size):
        """Offset of [vaddr, vaddr+size) inside one PT_LOAD's file data, or None."""
        for p in self.loads:
            if p.vaddr <= vaddr and vaddr + size <= p.vaddr + p.filesz:
                return p.offset + vaddr - p.vaddr
        return None

    def present(self, vaddr, size):
        """Whether the bytes are really in the core (not a hole or unknown)."""
        if self.file_offset(vaddr, size) is None:
            return False
        pairs = self.dumplist()
        if pairs is None:
            return True
        end = vaddr + size
        for s, n in sorted(pairs):
            if s <= vaddr < s + n:
                vaddr = s + n
                if vaddr >= end:
                    return True
        return size == 0

    def read(self, vaddr, size):
        """Bytes at vaddr; NotInCore if they are not present."""
        if not self.present(vaddr, size):
            raise NotInCore("%s: %#x+%#x is not in the core" % (self.path, vaddr, size))
        return self.pread(self.file_offset(vaddr, size), size)

    def notes(self, limit=1 << 20):
        """(name, type, desc) of the core's PT_NOTE segments (each read up to limit bytes)."""
        out = []
        for p in self.phdrs:
            if p.type == E.PT_NOTE and p.filesz:
                out += self.layout.iter_notes(self.pread(p.offset, min(p.filesz, limit)))
        return out

    def exe_build_id(self):
        """The crashed executable's build-id (hex) as the core holds it: the
        program headers auxv's AT_PHDR points at, and the GNU build-id note
        they lead to; None if the core does not hold them."""
        L = self.layout
        auxv = {}
        for name, ntype, desc in self.notes():
            if name == b"CORE" and ntype == E.NT_AUXV:
                for off in range(0, len(desc) - L.auxv.size + 1, L.auxv.size):
                    key, val = L.auxv.unpack_from(desc, off)
                    auxv.setdefault(key, val)
        phdr, phnum = auxv.get(E.AT_PHDR), auxv.get(E.AT_PHNUM)
        if not phdr or not phnum or phnum > E.MAX_HEADERS:
            return None
        try:
            phdrs = L.phdr.unpack_table(self.read(phdr, phnum * L.phdr.size), phnum)
            bias = next((phdr - p.vaddr for p in phdrs if p.type == E.PT_PHDR), 0)
            for p in phdrs:
                if p.type == E.PT_NOTE and 0 < p.filesz <= 4096:
                    found = gnu_build_id(L, self.read(bias + p.vaddr, p.filesz))
                    if found:
                        return found
        except CoreFormatError:
            return None  # not in the core (a budget's smallest steps keep less)
        return None

    def mapped_exe(self):
        """The crashed executable's path as the core's NT_FILE note names it (the
        file mapped at auxv's AT_ENTRY), for a dump without a summary (the
        original minicoredumper's); None if the core does not say."""
        from .read_corestream import KernelCore
        try:
            kc = KernelCore(b"", self.layout, self.ehdr, self.phdrs, self.notes())
        except (CoreFormatError, ValueError):
            return None  # no threads, or an architecture this has no table for
        entry = kc.auxv.get(E.AT_ENTRY)
        for start, end, _, path in kc.files:
            if entry is not None and start <= entry < end and path:
                return path.decode("utf-8", "surrogateescape")
        return None

    def close(self):
        self.f.close()


def gnu_build_id(layout, notes):
    """The hex build-id among notes (bytes of one PT_NOTE), or None."""
    for name, ntype, desc in layout.iter_notes(notes):
        if name == b"GNU" and ntype == E.NT_GNU_BUILD_ID:
            return desc.hex()
    return None


def file_build_id(path):
    """The build-id (hex) of the ELF file at path, None if it has none;
    OSError if it cannot be read, ElfFormatError if it is no ELF file."""
    with open(path, "rb") as f:
        return fd_build_id(f.fileno())


def fd_build_id(fd):
    """file_build_id() of the open file fd."""
    def pread(offset, size):
        return os.pread(fd, size, offset)
    L, _, phdrs = E.read_headers(pread)
    for p in phdrs:
        if p.type == E.PT_NOTE and 0 < p.filesz <= 1 << 16:
            found = gnu_build_id(L, pread(p.offset, p.filesz))
            if found:
                return found
    return None


def parse_symbol_map(path):
    """{ident: (core offset, vaddr, size, kind)} from a symbol.map (docs/FORMATS.md §6); ValueError
    naming the line that is not one.  Idents are str as file names are (surrogateescape)."""
    out = {}
    with open(path, errors="surrogateescape") as f:
        for n, line in enumerate(f, 1):
            parts = line.rstrip("\n").split(" ", 4)
            try:
                if len(parts) != 5 or parts[3] not in ("D", "N", "I"):
                    raise ValueError
                off, vaddr, size = (int(x, 16) for x in parts[:3])
            except ValueError:
                raise ValueError("%s:%d: not a symbol.map line: %r" % (path, n, line)) from None
            out[parts[4]] = (off, vaddr, size, parts[3])
    return out
