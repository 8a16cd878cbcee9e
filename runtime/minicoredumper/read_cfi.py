"""READ: call-frame information of one mapped ELF object (DWARF CFI).

The tables that say, for any PC, where the caller's registers are: .eh_frame
(found through PT_GNU_EH_FRAME, .eh_frame_hdr's binary-search table) and
.debug_frame (through the section headers, when the file has them).  Formats:
the DWARF 4/5 standard, section 6.4 (call frame information), and the LSB's
description of .eh_frame / .eh_frame_hdr (pointer encodings DW_EH_PE_*,
augmentation strings "zR", "zPLR", "S").

Every byte comes from the crashed process's objects and is untrusted: each
read is bounded (an Image reads at most MAX_READ bytes at a time), a CIE or
FDE longer than MAX_ENTRY is refused, the instructions of one row run at most
MAX_INSNS steps, a DWARF expression MAX_EXPR_OPS operations with a stack of
MAX_EXPR_STACK values.  A malformed table raises CfiError, which the unwinder
turns into the end of one thread's walk.
"""

import struct

from . import elf as E
from .read_process import bisect_right  # the C function, imported there once

MAX_READ = 1 << 20
MAX_ENTRY = 64 << 10          # one CIE or FDE
MAX_INSNS = 4096              # CFA instructions run for one row
MAX_STATE_STACK = 64          # DW_CFA_remember_state depth
MAX_EXPR_OPS = 256
MAX_EXPR_STACK = 64
MAX_HDR_ENTRIES = 1 << 20     # .eh_frame_hdr's search table
MAX_LINEAR = 16 << 20         # a CFI section indexed by one linear pass, this many bytes at most
MAX_LINEAR_FDES = 1 << 17
PAGE = 4096
MAX_PAGES = 256               # an Image's cache of pages

PT_GNU_EH_FRAME = 0x6474E550
SHT_NOBITS = 8

# Pointer encodings (LSB: DWARF Extensions, DW_EH_PE_*): the low nibble is the
# format, the next three bits how it applies, 0x80 an indirection.
DW_EH_PE_omit = 0xFF
_PE_FORMATS = {0x02: "H", 0x03: "I", 0x04: "Q", 0x0A: "h", 0x0B: "i", 0x0C: "q"}
DW_EH_PE_absptr, DW_EH_PE_uleb128, DW_EH_PE_sleb128 = 0x00, 0x01, 0x09
DW_EH_PE_pcrel, DW_EH_PE_textrel, DW_EH_PE_datarel, DW_EH_PE_funcrel, DW_EH_PE_aligned = \
    0x10, 0x20, 0x30, 0x40, 0x50

# Register rules of a row: (kind, argument).
UNDEFINED, SAME, OFFSET, VAL_OFFSET, REGISTER, EXPRESSION, VAL_EXPRESSION = (
    "undefined", "same", "offset", "val_offset", "register", "expression", "val_expression")


class CfiError(Exception):
    """A table that cannot be read or does not make sense (untrusted input)."""


class Image:
    """Bytes of one ELF object by its link-time virtual address: read(vaddr,
    size) -> bytes (shorter where nothing is there).  pread(offset, size) reads
    the object's file (offsets through its PT_LOADs; phdrs None: the file's
    offsets themselves); or mem (a process memory with read(addr, size)) and
    bias read it where it is mapped."""

    def __init__(self, layout, phdrs, pread=None, mem=None, bias=0):
        self.L = layout
        self.phdrs = phdrs or []
        self._pread = pread
        self._mem = mem
        self.bias = bias
        self._pages = {}
        self._loads = None if phdrs is None else sorted(
            (p.vaddr, p.vaddr + p.filesz, p.offset) for p in phdrs
            if p.type == E.PT_LOAD and p.filesz)

    def _raw(self, vaddr, size):
        if self._mem is not None:
            return self._mem.read(self.bias + vaddr, size)
        if self._loads is None:
            return self._pread(vaddr, size) or b""
        for start, end, offset in self._loads:
            if start <= vaddr < end:
                return self._pread(offset + vaddr - start, min(size, end - vaddr)) or b""
        return b""

    def read(self, vaddr, size):
        """Up to size (at most MAX_READ) bytes at vaddr, through a page cache."""
        size = min(size, MAX_READ)
        if vaddr < 0 or size <= 0:
            return b""
        out = []
        while size > 0:
            page = vaddr - vaddr % PAGE
            data = self._pages.get(page)
            if data is None:
                if len(self._pages) >= MAX_PAGES:
                    self._pages.clear()
                try:
                    data = self._raw(page, PAGE)
                except (OSError, OverflowError, ValueError):
                    data = b""
                self._pages[page] = data
            chunk = data[vaddr - page:vaddr - page + size]
            if not chunk:
                break
            out.append(chunk)
            vaddr += len(chunk)
            size -= len(chunk)
            if len(data) < PAGE:
                break
        return b"".join(out)

    def exact(self, vaddr, size):
        data = self.read(vaddr, size)
        if len(data) != size:
            raise CfiError("%d bytes at %#x are not there" % (size, vaddr))
        return data


class Cursor:
    """Reads DWARF fields from bytes that sit at vaddr `base`."""

    def __init__(self, data, base, layout, pos=0):
        self.data = data
        self.base = base
        self.pos = pos
        self.bo = layout.byteorder
        self.wordsize = layout.wordsize

    def need(self, n):
        if self.pos + n > len(self.data):
            raise CfiError("entry ends inside a field")

    def fixed(self, fmt, n):
        self.need(n)
        v = struct.unpack_from(self.bo + fmt, self.data, self.pos)[0]
        self.pos += n
        return v

    def u8(self):
        self.need(1)
        self.pos += 1
        return self.data[self.pos - 1]

    def uleb(self):
        return self._leb(False)

    def sleb(self):
        return self._leb(True)

    def _leb(self, signed):
        """LEB128; bits beyond 128 are dropped (a hostile run of 0x80 bytes
        still ends at the entry's end)."""
        v = shift = 0
        while True:
            b = self.u8()
            if shift < 128:
                v |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                if signed and b & 0x40 and shift < 136:
                    v -= 1 << shift
                return v

    def block(self, n):
        self.need(n)
        self.pos += n
        return self.data[self.pos - n:self.pos]

    def cstring(self):
        end = self.data.find(b"\0", self.pos)
        if end < 0:
            raise CfiError("unterminated string")
        s = self.data[self.pos:end]
        self.pos = end + 1
        return s

    def encoded(self, enc, datarel=0, funcrel=0):
        """A pointer in encoding enc (DW_EH_PE_*), its application done (pcrel,
        datarel, funcrel; an indirect pointer is not followed: its address)."""
        if enc == DW_EH_PE_omit:
            return None
        at = self.base + self.pos
        fmt = enc & 0x0F
        if enc & 0x70 == DW_EH_PE_aligned:
            self.pos += -(self.base + self.pos) % self.wordsize
            at = self.base + self.pos
            fmt = DW_EH_PE_absptr
        if fmt == DW_EH_PE_absptr:
            v = self.fixed("Q" if self.wordsize == 8 else "I", self.wordsize)
        elif fmt == DW_EH_PE_uleb128:
            v = self.uleb()
        elif fmt == DW_EH_PE_sleb128:
            v = self.sleb()
        elif fmt in _PE_FORMATS:
            f = _PE_FORMATS[fmt]
            v = self.fixed(f, struct.calcsize(f))
        else:
            raise CfiError("pointer encoding %#x" % enc)
        app = enc & 0x70
        if app == DW_EH_PE_pcrel:
            v += at
        elif app == DW_EH_PE_datarel:
            v += datarel
        elif app == DW_EH_PE_funcrel:
            v += funcrel
        elif app not in (0, DW_EH_PE_aligned, DW_EH_PE_textrel):
            raise CfiError("pointer application %#x" % app)
        return v & ((1 << (8 * self.wordsize)) - 1)


class CIE:
    """A Common Information Entry: code/data alignment, the return address
    column, augmentation (FDE pointer encoding, LSDA encoding, signal frame)
    and its initial instructions (bytes, at vaddr insns_at)."""

    __slots__ = ("code_align", "data_align", "ra", "fde_enc", "lsda_enc", "signal",
                 "has_z", "insns", "insns_at", "version", "address_size")


class FDE:
    """A Frame Description Entry: its CIE, the code [start, end) it covers and
    its instructions (bytes, at vaddr insns_at)."""

    __slots__ = ("cie", "start", "end", "insns", "insns_at", "offset")


def file_sections(pread):
    """{name: (offset, address, size)} of .eh_frame and .debug_frame in an ELF
    file read by pread(offset, size); {} without section headers (or when
    they cannot be read)."""
    try:
        L, ehdr = E.read_ehdr(pread)
        shdrs = E.read_section_headers(pread, L, ehdr)
        names = E.section_names(pread, shdrs, ehdr.shstrndx) if shdrs else []
    except (E.ElfFormatError, OSError):
        return {}
    return {name: (s.offset, s.addr, s.size) for s, name in zip(shdrs, names)
            if name in (b".eh_frame", b".debug_frame") and s.type != SHT_NOBITS and s.size}


def _read_entry(image, at):
    """(length-prefixed entry's bytes after the length, vaddr they start at,
    is64): a DWARF initial length (32-bit, or 0xffffffff then 64-bit)."""
    L = image.L
    length = L.u32.unpack(image.exact(at, 4))[0]
    at += 4
    is64 = length == 0xFFFFFFFF
    if is64:
        length = struct.unpack(L.byteorder + "Q", image.exact(at, 8))[0]
        at += 8
    if length == 0:
        return b"", at, is64
    if length > MAX_ENTRY:
        raise CfiError("entry of %d bytes at %#x" % (length, at))
    return image.exact(at, length), at, is64


def parse_cie(image, at, eh=True):
    """The CIE whose length field is at vaddr `at` (eh: .eh_frame's form, else
    .debug_frame's)."""
    data, base, is64 = _read_entry(image, at)
    c = Cursor(data, base, image.L)
    cie_id = c.fixed("Q", 8) if is64 else c.fixed("I", 4)
    if cie_id != (0 if eh else (0xFFFFFFFFFFFFFFFF if is64 else 0xFFFFFFFF)):
        raise CfiError("no CIE at %#x" % at)
    cie = CIE()
    cie.version = c.u8()
    if cie.version not in (1, 3, 4):
        raise CfiError("CIE version %d" % cie.version)
    aug = c.cstring()
    cie.address_size = image.L.wordsize
    if cie.version == 4:
        cie.address_size = c.u8()
        c.u8()  # segment selector size
    if aug.startswith(b"eh"):
        c.block(image.L.wordsize)  # GCC 2's eh_ptr
    cie.code_align = c.uleb()
    cie.data_align = c.sleb()
    cie.ra = c.u8() if cie.version == 1 else c.uleb()
    cie.fde_enc = DW_EH_PE_absptr
    cie.lsda_enc = DW_EH_PE_omit
    cie.signal = False
    cie.has_z = aug.startswith(b"z")
    if cie.has_z:
        n = c.uleb()
        end = c.pos + n
        c.need(n)
        for ch in aug[1:]:
            if ch == ord("R"):
                cie.fde_enc = c.u8()
            elif ch == ord("L"):
                cie.lsda_enc = c.u8()
            elif ch == ord("P"):
                c.encoded(c.u8() & 0x7F)  # the personality routine: skipped
            elif ch == ord("S"):
                cie.signal = True
            elif ch in b"BG":
                pass  # aarch64 B-key, MTE-tagged frames: nothing to read
            else:
                break  # unknown: 'z' tells the length, the rest is skipped
        c.pos = end
    elif aug not in (b"", b"eh"):
        raise CfiError("augmentation %r without z" % aug)
    cie.insns = data[c.pos:]
    cie.insns_at = base + c.pos
    return cie


def parse_fde(image, at, cies, eh=True, section_start=0):
    """The FDE whose length field is at vaddr `at`, or None for a CIE or the
    terminator; cies caches CIEs by vaddr.  In .debug_frame the CIE pointer is
    an offset from section_start."""
    data, base, is64 = _read_entry(image, at)
    if not data:
        return None
    c = Cursor(data, base, image.L)
    ptr = c.fixed("Q", 8) if is64 else c.fixed("I", 4)
    if eh:
        if ptr == 0:
            return None
        cie_at = base - ptr
    else:
        if ptr == (0xFFFFFFFFFFFFFFFF if is64 else 0xFFFFFFFF):
            return None
        cie_at = section_start + ptr
    cie = cies.get(cie_at)
    if cie is None:
        if len(cies) > 4096:
            cies.clear()
        cie = cies[cie_at] = parse_cie(image, cie_at, eh)
    f = FDE()
    f.cie = cie
    f.offset = at
    enc = cie.fde_enc if eh else DW_EH_PE_absptr
    f.start = c.encoded(enc)
    rng = c.encoded(enc & 0x0F)
    if f.start is None or rng is None:
        raise CfiError("FDE at %#x without a range" % at)
    f.end = f.start + rng
    if cie.has_z:
        n = c.uleb()
        c.block(n)  # the LSDA pointer and whatever follows: not needed to unwind
    f.insns = data[c.pos:]
    f.insns_at = base + c.pos
    return f


class EhFrameHdr:
    """.eh_frame_hdr: version 1, encodings of eh_frame_ptr, fde_count and the
    table, then the sorted (initial location, FDE address) pairs."""

    def __init__(self, image, at, size):
        self.image = image
        head = image.exact(at, 4)
        if head[0] != 1:
            raise CfiError(".eh_frame_hdr version %d" % head[0])
        c = Cursor(image.read(at, 4 + 2 * 8), at, image.L, 4)
        self.eh_frame = c.encoded(head[1], datarel=at)
        self.count = c.encoded(head[2], datarel=at) if head[2] != DW_EH_PE_omit else 0
        self.enc = head[3]
        self.table_at = at + c.pos
        self.at = at
        fmt = self.enc & 0x0F
        if self.enc == DW_EH_PE_omit or fmt not in _PE_FORMATS or self.count is None:
            self.count = 0  # no table (a linear search of .eh_frame is not done)
            self.entry = 0
            return
        self.entry = 2 * struct.calcsize(_PE_FORMATS[fmt])
        if self.count > MAX_HDR_ENTRIES or self.count * self.entry > max(size, 0) + 64:
            raise CfiError(".eh_frame_hdr claims %d entries" % self.count)

    def pair(self, i):
        at = self.table_at + i * self.entry
        c = Cursor(self.image.exact(at, self.entry), at, self.image.L)
        return c.encoded(self.enc, datarel=self.at), c.encoded(self.enc, datarel=self.at)

    def lookup(self, pc):
        """The vaddr of the FDE whose initial location is the last one <= pc, or None."""
        lo, hi = 0, self.count
        while lo < hi:  # at most log2(MAX_HDR_ENTRIES) + 1 steps
            mid = (lo + hi) // 2
            if self.pair(mid)[0] <= pc:
                lo = mid + 1
            else:
                hi = mid
        return self.pair(lo - 1)[1] if lo else None


class LinearTable:
    """.debug_frame, or an .eh_frame without a search table (static
    executables), indexed once by a bounded linear pass: FDEs by start."""

    def __init__(self, image, at, size, eh):
        if size > MAX_LINEAR:
            raise CfiError("CFI section of %d bytes to index" % size)
        self.image = image
        self.eh = eh
        self.cies = {}
        index = []
        pos, end = at, at + size
        while pos < end and len(index) < MAX_LINEAR_FDES:
            data, base, _ = _read_entry(image, pos)
            if not data:
                break
            try:
                f = parse_fde(image, pos, self.cies, eh=eh, section_start=at)
            except CfiError:
                f = None  # one bad entry: the others still count
            if f is not None:
                index.append((f.start, f.end, pos))
            pos = base + len(data)
        index.sort()
        self.index = index
        self.starts = [s for s, _, _ in index]
        self.at = at

    def find(self, pc):
        i = bisect_right(self.starts, pc) - 1
        if i >= 0 and pc < self.index[i][1]:
            return parse_fde(self.image, self.index[i][2], self.cies, eh=self.eh,
                             section_start=self.at)
        return None


class Tables:
    """The CFI of one object: .eh_frame through .eh_frame_hdr (from image, by
    its PT_GNU_EH_FRAME), else through its section header, and .debug_frame;
    sections() -> file_sections() of the object's file and file_image (its
    file by offsets), asked only when the search table does not answer.
    find(pc) -> FDE or None, pc a link-time address."""

    def __init__(self, image, file_image=None, sections=None):
        self.image = image
        self.file_image = file_image
        self.sections = sections
        self.hdr = None
        self.linear = None  # [LinearTable], made when first needed
        self.cies = {}
        for p in image.phdrs:
            if p.type == PT_GNU_EH_FRAME and p.memsz:
                self.hdr = EhFrameHdr(image, p.vaddr, p.memsz)

    def find(self, pc):
        if self.hdr is not None and self.hdr.count:
            at = self.hdr.lookup(pc)
            if at is not None:
                f = parse_fde(self.image, at, self.cies)
                if f is not None and f.start <= pc < f.end:
                    return f
        if self.linear is None:
            self.linear = []
            found = self.sections() if self.sections is not None else {}
            if b".eh_frame" in found and (self.hdr is None or not self.hdr.count):
                _, addr, size = found[b".eh_frame"]
                self.linear.append(LinearTable(self.image, addr, size, True))
            if b".debug_frame" in found and self.file_image is not None:
                offset, _, size = found[b".debug_frame"]
                self.linear.append(LinearTable(self.file_image, offset, size, False))
        for t in self.linear:
            f = t.find(pc)
            if f is not None:
                return f
        return None


class Row:
    """The rule set at one PC: cfa is ("reg", regno, offset) or ("expr",
    bytes); regs maps a DWARF register number to (kind, argument)."""

    __slots__ = ("loc", "cfa", "regs")

    def __init__(self, loc, cfa, regs):
        self.loc = loc
        self.cfa = cfa
        self.regs = regs

    def copy(self, loc=None):
        return Row(self.loc if loc is None else loc, self.cfa, dict(self.regs))


def rows(fde, layout, until=None):
    """The rows of fde's table in order (each a Row, loc a link-time address),
    up to the one that holds for PC `until` (all when None).  CfiError for a
    malformed instruction or more than MAX_INSNS of them."""
    cie = fde.cie
    row = Row(fde.start, None, {})
    steps = [0]
    _run(cie.insns, cie.insns_at, cie, row, None, layout, steps, None, None)
    initial = dict(row.regs)
    out = []
    _run(fde.insns, fde.insns_at, cie, row, initial, layout, steps, out, until)
    out.append(row)
    return out


def row_for(fde, pc, layout):
    """The Row that holds at link-time pc inside fde."""
    return rows(fde, layout, pc)[-1]


def _run(insns, at, cie, row, initial, layout, steps, out, until):
    c = Cursor(insns, at, layout)
    stack = []
    ca, da = cie.code_align, cie.data_align
    while c.pos < len(insns):
        steps[0] += 1
        if steps[0] > MAX_INSNS:
            raise CfiError("more than %d CFA instructions" % MAX_INSNS)
        op = c.u8()
        hi, lo = op & 0xC0, op & 0x3F
        new_loc = None
        if hi == 0x40:
            new_loc = row.loc + lo * ca
        elif hi == 0x80:
            row.regs[lo] = (OFFSET, c.uleb() * da)
        elif hi == 0xC0:
            _restore(row, initial, lo)
        elif op == 0x00:
            pass
        elif op == 0x01:
            new_loc = c.encoded(cie.fde_enc if cie.has_z else DW_EH_PE_absptr)
        elif op == 0x02:
            new_loc = row.loc + c.u8() * ca
        elif op == 0x03:
            new_loc = row.loc + c.fixed("H", 2) * ca
        elif op == 0x04:
            new_loc = row.loc + c.fixed("I", 4) * ca
        elif op == 0x05:
            r = c.uleb()
            row.regs[r] = (OFFSET, c.uleb() * da)
        elif op == 0x06:
            _restore(row, initial, c.uleb())
        elif op == 0x07:
            row.regs[c.uleb()] = (UNDEFINED, None)
        elif op == 0x08:
            row.regs[c.uleb()] = (SAME, None)
        elif op == 0x09:
            r = c.uleb()
            row.regs[r] = (REGISTER, c.uleb())
        elif op == 0x0A:
            if len(stack) >= MAX_STATE_STACK:
                raise CfiError("DW_CFA_remember_state nested too deep")
            stack.append((row.cfa, dict(row.regs)))
        elif op == 0x0B:
            if not stack:
                raise CfiError("DW_CFA_restore_state with nothing remembered")
            cfa, regs = stack.pop()
            row.cfa, row.regs = cfa, regs  # the CFA too, as GCC and gdb do
        elif op == 0x0C:
            r = c.uleb()
            row.cfa = ("reg", r, c.uleb())
        elif op == 0x0D:
            r = c.uleb()
            row.cfa = ("reg", r, row.cfa[2] if row.cfa and row.cfa[0] == "reg" else 0)
        elif op == 0x0E:
            row.cfa = _cfa_offset(row.cfa, c.uleb())
        elif op == 0x0F:
            row.cfa = ("expr", c.block(c.uleb()))
        elif op == 0x10:
            r = c.uleb()
            row.regs[r] = (EXPRESSION, c.block(c.uleb()))
        elif op == 0x11:
            r = c.uleb()
            row.regs[r] = (OFFSET, c.sleb() * da)
        elif op == 0x12:
            r = c.uleb()
            row.cfa = ("reg", r, c.sleb() * da)
        elif op == 0x13:
            row.cfa = _cfa_offset(row.cfa, c.sleb() * da)
        elif op == 0x14:
            r = c.uleb()
            row.regs[r] = (VAL_OFFSET, c.uleb() * da)
        elif op == 0x15:
            r = c.uleb()
            row.regs[r] = (VAL_OFFSET, c.sleb() * da)
        elif op == 0x16:
            r = c.uleb()
            row.regs[r] = (VAL_EXPRESSION, c.block(c.uleb()))
        elif op == 0x2E:
            c.uleb()  # DW_CFA_GNU_args_size: nothing for unwinding
        elif op == 0x2F:
            r = c.uleb()
            row.regs[r] = (OFFSET, -c.uleb() * da)
        elif op == 0x2D:
            pass  # DW_CFA_GNU_window_save / AARCH64_negate_ra_state: no rule changes
        else:
            raise CfiError("CFA instruction %#x" % op)
        if new_loc is not None:
            if until is not None and new_loc > until:
                return
            if out is not None:
                out.append(row.copy())
            row.loc = new_loc


def _cfa_offset(cfa, off):
    if not cfa or cfa[0] != "reg":
        raise CfiError("CFA offset without a CFA register")
    return ("reg", cfa[1], off)


def _restore(row, initial, r):
    if initial is None:
        row.regs.pop(r, None)
    elif r in initial:
        row.regs[r] = initial[r]
    else:
        row.regs.pop(r, None)


# --- DWARF expressions (DWARF 5 section 2.5), as CFI uses them --------------

def evaluate(expr, layout, reg, read_word, push=None):
    """The value of a DWARF expression: reg(n) -> register value (CfiError if
    unknown), read_word(addr) -> word at addr (CfiError if unreadable); push:
    a value pushed first (the CFA, for DW_CFA_expression).  Bounded by
    MAX_EXPR_OPS operations and MAX_EXPR_STACK values."""
    mask = (1 << (8 * layout.wordsize)) - 1
    sign = 1 << (8 * layout.wordsize - 1)
    c = Cursor(expr, 0, layout)
    st = [] if push is None else [push]
    ops = 0

    def pop():
        if not st:
            raise CfiError("DWARF expression stack underflow")
        return st.pop()

    def signed(v):
        return v - (mask + 1) if v & sign else v

    while c.pos < len(expr):
        ops += 1
        if ops > MAX_EXPR_OPS or len(st) > MAX_EXPR_STACK:
            raise CfiError("DWARF expression too long")
        op = c.u8()
        if 0x30 <= op <= 0x4F:
            st.append(op - 0x30)
        elif 0x70 <= op <= 0x8F:
            st.append((reg(op - 0x70) + c.sleb()) & mask)
        elif op == 0x92:
            r = c.uleb()
            st.append((reg(r) + c.sleb()) & mask)
        elif op == 0x03:
            st.append(c.fixed("Q" if layout.wordsize == 8 else "I", layout.wordsize))
        elif op == 0x06:
            st.append(read_word(pop()))
        elif op == 0x94:
            n = c.u8()
            v = read_word(pop())
            st.append(v & ((1 << (8 * n)) - 1) if n < layout.wordsize else v)
        elif op in _CONSTS:
            f, n = _CONSTS[op]
            st.append(c.fixed(f, n) & mask)
        elif op == 0x10:
            st.append(c.uleb() & mask)
        elif op == 0x11:
            st.append(c.sleb() & mask)
        elif op == 0x12:
            v = pop()
            st += [v, v]
        elif op == 0x13:
            pop()
        elif op == 0x14:
            if len(st) < 2:
                raise CfiError("DW_OP_over on a short stack")
            st.append(st[-2])
        elif op == 0x15:
            i = c.u8()
            if i >= len(st):
                raise CfiError("DW_OP_pick beyond the stack")
            st.append(st[-1 - i])
        elif op == 0x16:
            a, b = pop(), pop()
            st += [a, b]
        elif op == 0x17:
            a, b, d = pop(), pop(), pop()
            st += [a, d, b]
        elif op == 0x19:
            st.append(abs(signed(pop())) & mask)
        elif op == 0x1F:
            st.append(-pop() & mask)
        elif op == 0x20:
            st.append(~pop() & mask)
        elif op == 0x23:
            st.append((pop() + c.uleb()) & mask)
        elif op in _BINARY:
            b, a = pop(), pop()
            st.append(_BINARY[op](a, b, signed, mask) & mask)
        elif op == 0x2F:
            n = c.fixed("h", 2)
            c.pos += n
            if not 0 <= c.pos <= len(expr):
                raise CfiError("DW_OP_skip out of the expression")
        elif op == 0x28:
            n = c.fixed("h", 2)
            if pop():
                c.pos += n
                if not 0 <= c.pos <= len(expr):
                    raise CfiError("DW_OP_bra out of the expression")
        elif op == 0x96:
            pass
        else:
            raise CfiError("DWARF operation %#x" % op)
    return pop()


_CONSTS = {0x08: ("B", 1), 0x09: ("b", 1), 0x0A: ("H", 2), 0x0B: ("h", 2), 0x0C: ("I", 4),
           0x0D: ("i", 4), 0x0E: ("Q", 8), 0x0F: ("q", 8)}


def _div(a, b, signed, mask):
    if not b:
        raise CfiError("DWARF expression divides by zero")
    q = abs(signed(a)) // abs(signed(b))
    return q if (signed(a) < 0) == (signed(b) < 0) else -q


def _mod(a, b, signed, mask):
    if not b:
        raise CfiError("DWARF expression divides by zero")
    return a % b


_BINARY = {
    0x1A: lambda a, b, s, m: a & b, 0x1B: _div, 0x1C: lambda a, b, s, m: a - b,
    0x1D: _mod, 0x1E: lambda a, b, s, m: a * b, 0x21: lambda a, b, s, m: a | b,
    0x22: lambda a, b, s, m: a + b,
    0x24: lambda a, b, s, m: a << b if b < 64 else 0,
    0x25: lambda a, b, s, m: a >> b if b < 64 else 0,
    0x26: lambda a, b, s, m: s(a) >> min(b, 64), 0x27: lambda a, b, s, m: a ^ b,
    0x29: lambda a, b, s, m: int(s(a) == s(b)), 0x2A: lambda a, b, s, m: int(s(a) >= s(b)),
    0x2B: lambda a, b, s, m: int(s(a) > s(b)), 0x2C: lambda a, b, s, m: int(s(a) <= s(b)),
    0x2D: lambda a, b, s, m: int(s(a) < s(b)), 0x2E: lambda a, b, s, m: int(s(a) != s(b)),
}
