"""WRITE: render a plan's ranges into an ELF core, compact or sparse.

Compact (the default): ELF header, one PT_NOTE, one PT_LOAD per dumped range,
the kernel's notes with NT_FILE reduced to mappings that are not writable, the
data back to back, then the dumplist note section and the section headers.
Undumped memory has no PT_LOAD, so gdb says "Cannot access memory".

Sparse (the original's): the kernel's program headers and file offsets; dumped
bytes at their kernel offsets, the rest holes; the dumplist section after the
last segment's file range.

Both end with the same section tail: the dumplist notes, .shstrtab and the
section headers, among them one section that covers the notes and data.
Tools that rewrite an ELF file through its sections (libelf's elf_update, as
the original's coreinject does) keep only what sections cover and fill the
rest with zeros; that section keeps the core whole under them.

The size of the whole file is known before the first byte is written, so a tar
header can precede it in a stream.  Data is streamed from process memory in
chunks; a range that turns out unreadable (or is cut by the deadline) is padded
with zeros and the dumplist note records only what was really read.
"""

from . import elf as E
from .read_process import bisect_right  # the C function, imported there once

CHUNK = 64 << 10
# Which notes a compact core keeps: all, the crashing thread's, or only what
# a backtrace needs (its registers, process info, signal, auxv, mapped files);
# the last also with NT_FILE cut to the files that have code mapped (the ELF
# objects: data files, fonts and caches, thousands in a big process, left out).
NOTES_ALL, NOTES_CRASHING_THREAD, NOTES_MINIMAL = "all", "crashing thread", "minimal"
NOTES_CODE_FILES = "minimal, code files"
MINIMAL_NOTES = (E.NT_PRSTATUS, E.NT_PRPSINFO, E.NT_SIGINFO, E.NT_AUXV, E.NT_FILE)
# Floating-point and vector registers: library string and memory functions
# leave copies of data in them, so privacy leaves them out.
PRIVATE_NOTES = (E.NT_PRFPREG, E.NT_X86_XSTATE, E.NT_ARM_VFP, E.NT_ARM_SVE, E.NT_PRXFPREG)
# Sections: [0] null, [1] the dumplist notes, [2] .shstrtab, [3] the cover
# (docs/FORMATS.md §5).
SHSTRTAB = (b"\0.shstrtab\0" + E.DUMPLIST_SECTION + b"\0" + E.COVER_SECTION + b"\0")
SH_NAME_SHSTRTAB = 1
SH_NAME_DUMPLIST = SH_NAME_SHSTRTAB + len(b".shstrtab\0")
SH_NAME_COVER = SH_NAME_DUMPLIST + len(E.DUMPLIST_SECTION) + 1
SHNUM, SHSTRNDX = 4, 2


def _align(n, a):
    return (n + a - 1) & ~(a - 1)


def cover_start(ehdr):
    """Where the cover section starts: after the ELF header, and after the
    program header table too when that follows the ELF header directly."""
    if ehdr.phoff == ehdr.ehsize:
        return ehdr.ehsize + ehdr.phnum * ehdr.phentsize
    return ehdr.ehsize


def tail_layout(L, dumplist_off, dumplist_size):
    """(shstrtab offset, section header offset, end of file) of the section
    tail that starts with the dumplist at dumplist_off."""
    shstrtab_off = dumplist_off + dumplist_size
    shoff = _align(shstrtab_off + len(SHSTRTAB), L.wordsize)
    return shstrtab_off, shoff, shoff + SHNUM * L.shdr.size


def tail_bytes(L, cover_off, dumplist_off, dumplist):
    """The section tail: dumplist notes, .shstrtab, padding, section headers.
    The cover section spans [cover_off, dumplist_off): everything between the
    headers and the tail."""
    shstrtab_off, shoff, _ = tail_layout(L, dumplist_off, len(dumplist))
    null = E.Record(name=0, type=0, flags=0, addr=0, offset=0, size=0, link=0, info=0,
                    addralign=0, entsize=0)
    dl = null.replace(name=SH_NAME_DUMPLIST, type=E.SHT_NOTE, offset=dumplist_off,
                      size=len(dumplist), addralign=4)
    st = null.replace(name=SH_NAME_SHSTRTAB, type=E.SHT_STRTAB, offset=shstrtab_off,
                      size=len(SHSTRTAB), addralign=1)
    cv = null.replace(name=SH_NAME_COVER, type=E.SHT_PROGBITS, offset=cover_off,
                      size=dumplist_off - cover_off, addralign=1)
    pad = bytes(shoff - shstrtab_off - len(SHSTRTAB))
    return dumplist + SHSTRTAB + pad + b"".join(L.shdr.pack(h) for h in (null, dl, st, cv))


def section_fields(L, ehdr, shoff):
    """ehdr with the section header fields of a core that ends with our tail."""
    return ehdr.replace(shoff=shoff, shentsize=L.shdr.size, shnum=SHNUM, shstrndx=SHSTRNDX)


def dumplist_note(L, pairs):
    """One dumplist note holding (start, length) pairs."""
    pair = L.words(2)
    return L.note(E.MCD_NOTE_OWNER, E.NT_MCD_DUMPLIST, b"".join(pair.pack(s, n) for s, n in pairs))



def _code_runs(kc):
    """Starts of the NT_FILE mappings (kc.files, in address order) that lie in a
    run of one file's address-contiguous mappings holding an executable one:
    a loaded ELF object's mappings, not the same file mapped again only to be
    read (a program that maps its own executable 10,000 times)."""
    keep = set()
    run = []
    for f in list(kc.files) + [None]:
        if run and (f is None or f[3] != run[-1][3] or f[0] != run[-1][1]):
            if any(p.flags & E.PF_X for g in run for p in kc.loads_in(g[0], g[1])):
                keep.update(g[0] for g in run)
            run = []
        if f is not None:
            run.append(f)
    return keep

class CoreImage:
    """The file layout of one core; `write` streams it into a sink."""

    def __init__(self, kcore, ranges, layout="compact", notes=NOTES_ALL, private=False):
        self.kc = kcore
        self.L = kcore.layout
        self.compact = layout == "compact"
        self.notes = notes
        self.private = private
        L = self.L
        notes = self._select_notes()
        if self.compact:
            self.ranges = list(ranges)
            phnum = 1 + len(self.ranges)
            notes_off = L.ehdr.size + phnum * L.phdr.size
            self.header_size = notes_off + len(notes)
            off = self.header_size
            self.placement = []  # (file offset, start, end)
            for s, e in self.ranges:
                self.placement.append((off, s, e))
                off += e - s
            data_end = off
            self._head = self._compact_phdrs(notes_off, len(notes)) + notes
        else:
            self.ranges, self.placement = self._sparse_placement(ranges)
            self.header_size = len(kcore.header_bytes)
            data_end = max([p.offset + p.filesz for p in kcore.phdrs] + [self.header_size])
            self._head = self._sparse_head(notes)
        dumplist_size = len(self._dumplist([0] * len(self.ranges)))
        self.dumplist_off = _align(data_end, 4)
        _, self.shoff, self.size = tail_layout(L, self.dumplist_off, dumplist_size)
        self.present = []
        self._starts = None  # the placement's start addresses, for symbol_map_offset

    def _select_notes(self):
        """The kernel's notes, less what the note level and privacy leave out.

        In the compact layout NT_FILE lists only mappings that cannot differ
        from their files."""
        kc = self.kc
        L = self.L
        out = []
        threads = 0
        for name, ntype, desc in kc.notes:
            if name == b"CORE" and ntype == E.NT_PRSTATUS:
                threads += 1
            if threads > 1 and self.notes != NOTES_ALL:
                break  # the kernel writes the crashing thread's notes first
            if self.notes in (NOTES_MINIMAL, NOTES_CODE_FILES) and ntype not in MINIMAL_NOTES:
                continue
            if self.private and ntype in PRIVATE_NOTES:
                continue
            if self.compact and name == b"CORE" and ntype == E.NT_FILE:
                desc = self._file_note()
            out.append(L.note(name, ntype, desc))
        return b"".join(out)

    def _sparse_head(self, notes):
        """The kernel's program headers and notes, at the kernel's offsets; a
        smaller note selection leaves a hole where the rest was."""
        L = self.L
        kc = self.kc
        head = kc.header_bytes[L.ehdr.size:]
        if notes == b"".join(L.note(*n) for n in kc.notes):
            return head
        note_phdrs = [p for p in kc.phdrs if p.type == E.PT_NOTE]
        off = note_phdrs[0].offset
        phdrs = b"".join(L.phdr.pack(p.replace(filesz=len(notes)) if p is note_phdrs[0] else
                                     p.replace(filesz=0) if p.type == E.PT_NOTE else p)
                         for p in kc.phdrs)
        head = bytearray(head)
        head[kc.ehdr.phoff - L.ehdr.size:kc.ehdr.phoff - L.ehdr.size + len(phdrs)] = phdrs
        start = off - L.ehdr.size
        head[start:] = notes + bytes(len(head) - start - len(notes))
        return bytes(head)

    # --- compact pieces -------------------------------------------------------
    def _file_note(self):
        """NT_FILE's desc in a compact core: the mappings whose memory cannot
        differ from their files; at NOTES_CODE_FILES only those of files with a
        mapping that is executable, and of those file only the mappings next to
        one (_code_runs).  Made once per crash for each (kept on the
        kernel core): every rung of a budget's ladder has one of the two."""
        kc = self.kc
        code_only = self.notes == NOTES_CODE_FILES
        if code_only not in kc.compact_file_notes:
            files = [f for f in kc.files if not self._written(f)]
            if code_only:
                code = _code_runs(kc)
                files = [f for f in files if f[0] in code]
            kc.compact_file_notes[code_only] = kc.encode_files(files)
        return kc.compact_file_notes[code_only]

    def _written(self, entry):
        """Whether a file mapping's memory may differ from the file.

        Writable now, or written before (RELRO): the kernel dumps a private
        file mapping whole once it has anonymous (copied) pages, so
        filesz == memsz tells, except for the single ELF-header page it
        dumps of every ELF mapping at file offset 0.
        """
        start, end, pgoff = entry[0], entry[1], entry[2]
        for p in self.kc.loads_in(start, end):
            if p.flags & E.PF_W:
                return True
            if p.filesz and p.filesz == p.memsz and not (
                    pgoff == 0 and p.filesz == self.kc.file_page_size):
                return True
        return False

    def _compact_phdrs(self, notes_off, notes_size):
        L = self.L
        out = [L.phdr.pack(E.Record(type=E.PT_NOTE, flags=0, offset=notes_off, vaddr=0,
                                    paddr=0, filesz=notes_size, memsz=0, align=4))]
        for off, s, e in self.placement:
            seg = self.kc.load_for(s)
            flags = seg.flags if seg is not None else E.PF_R
            out.append(L.phdr.pack(E.Record(type=E.PT_LOAD, flags=flags, offset=off, vaddr=s,
                                            paddr=0, filesz=e - s, memsz=e - s, align=1)))
        return b"".join(out)

    # --- sparse pieces --------------------------------------------------------
    def _sparse_placement(self, ranges):
        """Ranges within the kernel's file ranges, in file-offset order (the
        order a stream is written in)."""
        segs = [(p.vaddr, p.vaddr + p.filesz, p.offset) for p in self.kc.loads if p.filesz]
        placement = []
        for s, e in ranges:
            for vs, ve, off in segs:
                lo, hi = max(s, vs), min(e, ve)
                if lo < hi:
                    placement.append((off + lo - vs, lo, hi))
        placement.sort()
        return [(lo, hi) for _, lo, hi in placement], placement

    # --- shared ---------------------------------------------------------------
    def symbol_map_offset(self, vaddr, size, kind):
        """Column 1 of an external dump's symbol.map line (docs/FORMATS.md §6).

        The file offset of [vaddr, vaddr + size) when one PT_LOAD's file data
        in this core holds all of it, else the end of the file (self.size).
        A tool that writes the dump file's bytes at that offset (the
        original's coreinject) then puts them in the right place, or past the
        section headers where its rewrite of the section tail drops them,
        never over other data.  An indirect ("I") line's file holds the
        pointer and then the data, which have no one place: the end.
        """
        if kind != "I":
            if self.compact:  # placement is in address order
                if self._starts is None:
                    self._starts = [s for _, s, _ in self.placement]
                i = bisect_right(self._starts, vaddr) - 1
                if i >= 0:
                    off, s, e = self.placement[i]
                    if vaddr + size <= e:
                        return off + vaddr - s
            else:
                p = self.kc.load_for(vaddr)
                if p is not None and vaddr + size <= p.vaddr + p.filesz:
                    return p.offset + vaddr - p.vaddr
        return self.size

    def _dumplist(self, lengths):
        return dumplist_note(self.L, [(0, self.header_size)] + [
            (s, n) for (s, _), n in zip(self.ranges, lengths)])

    def _ehdr(self):
        L = self.L
        kh = self.kc.ehdr
        phnum = (1 + len(self.ranges)) if self.compact else kh.phnum
        return section_fields(L, kh.replace(phoff=L.ehdr.size if self.compact else kh.phoff,
                                            phnum=phnum, phentsize=L.phdr.size), self.shoff)

    def write(self, sink, mem, expired):
        """Stream the core into sink.  expired() says the deadline has passed.

        Returns the list of (start, length) really read from memory.
        """
        L = self.L
        ehdr = self._ehdr()
        head = L.ehdr.pack(ehdr) + self._head
        view = memoryview(head)
        for off in range(0, len(head), CHUNK):  # a compressor's output comes per piece:
            sink.write(view[off:off + CHUNK])   # a budget's sink can stop an oversize core early
        pos = len(head)
        lengths = []
        for off, s, e in self.placement:
            if off > pos:
                sink.skip(off - pos)
                pos = off
            got = 0
            addr = s
            while addr < e:
                n = min(CHUNK, e - addr)
                data = b"" if expired() else mem.read(addr, n)
                if len(data) < n:
                    sink.write(data)
                    sink.skip(e - addr - len(data))
                    got += len(data)
                    break
                sink.write(data)
                got += n
                addr += n
            pos = off + (e - s)
            lengths.append(got)
        sink.skip(self.dumplist_off - pos)
        sink.write(tail_bytes(L, cover_start(ehdr), self.dumplist_off, self._dumplist(lengths)))
        self.present = [(s, n) for (s, _), n in zip(self.ranges, lengths)]
        return self.present
