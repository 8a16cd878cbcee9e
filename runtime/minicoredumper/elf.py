"""ELF struct layouts, described once per ELF class and byte order.

Every reader and writer of ELF data in the runtime (kernel core stream, mapped
objects in a crashed process, the cores we write, coreinject) takes its structs
from a `Layout` here instead of re-deriving offsets, and reads ELF, program and
section headers with read_headers() and read_section_headers(), whatever it
reads them from.  Byte order is one entry in BYTE_ORDERS; a big-endian target
would only need its struct prefix.  Constants and layouts are those of glibc's
<elf.h> (and <link.h> for r_debug and link_map).
"""

import struct

ELFMAG = b"\x7fELF"
EI_NIDENT = 16
ELFCLASS32 = 1
ELFCLASS64 = 2
ELFDATA2LSB = 1
ELFDATA2MSB = 2
BYTE_ORDERS = {ELFDATA2LSB: "<", ELFDATA2MSB: ">"}

ET_REL = 1
ET_EXEC = 2
ET_DYN = 3
ET_CORE = 4
ET_NAMES = {ET_REL: "ET_REL", ET_EXEC: "ET_EXEC", ET_DYN: "ET_DYN", ET_CORE: "ET_CORE"}

PT_LOAD = 1
PT_DYNAMIC = 2
PT_NOTE = 4
PT_PHDR = 6
PF_X = 1
PF_W = 2
PF_R = 4

SHT_PROGBITS = 1
SHT_STRTAB = 3
SHT_NOTE = 7
SHT_SYMTAB = 2
SHT_NOBITS = 8
SHT_DYNSYM = 11
SHF_ALLOC = 0x2
SHF_EXECINSTR = 0x4
SHF_TLS = 0x400
SHN_UNDEF = 0

NT_PRSTATUS = 1
NT_PRFPREG = 2         # floating-point registers (NT_FPREGSET)
NT_PRPSINFO = 3
NT_AUXV = 6
NT_GNU_BUILD_ID = 3    # owner "GNU"
# owner "FDO": the packaging metadata note (.note.package), a NUL-terminated
# JSON object (uapi-group.org "Package Metadata for Executable Files")
NT_FDO_PACKAGING_METADATA = 0xCAFE1A7E
NT_386_TLS = 0x200     # i386 TLS slots: struct user_desc entries (linux.py)
NT_X86_XSTATE = 0x202  # x86 extended state (AVX, AVX-512 registers)
NT_ARM_VFP = 0x400     # ARM VFP/NEON registers
NT_ARM_TLS = 0x401     # ARM and AArch64 TLS register
NT_ARM_SVE = 0x405     # AArch64 SVE registers
NT_ARM_PAC_MASK = 0x406  # AArch64 pointer authentication: data and instruction masks
NT_PRXFPREG = 0x46E62B7F  # i386 SSE registers (user_fxsr_struct)
NT_SIGINFO = 0x53494749
NT_FILE = 0x46494C45
NT_MCD_DUMPLIST = 80
MCD_NOTE_OWNER = b"minicoredumper"
DUMPLIST_SECTION = b".note.minicoredumper.dumplist"
# Our cores' SHT_PROGBITS section over the notes and memory data (docs/FORMATS.md §5).
COVER_SECTION = b".minicoredumper.data"

DT_NULL = 0
DT_DEBUG = 21
AT_NULL = 0
AT_PHDR = 3
AT_PHENT = 4
AT_PHNUM = 5
AT_PAGESZ = 6
AT_BASE = 7
AT_ENTRY = 9
AT_SYSINFO_EHDR = 33

STT_NOTYPE = 0
STT_OBJECT = 1
STT_FUNC = 2
STT_SECTION = 3
STT_FILE = 4
STT_TLS = 6
STT_GNU_IFUNC = 10
STB_LOCAL = 0
STB_GLOBAL = 1
STB_WEAK = 2
STB_GNU_UNIQUE = 10

EHDR_FIELDS = ("ident", "type", "machine", "version", "entry", "phoff", "shoff",
               "flags", "ehsize", "phentsize", "phnum", "shentsize", "shnum",
               "shstrndx")
PHDR64_FIELDS = ("type", "flags", "offset", "vaddr", "paddr", "filesz", "memsz", "align")
PHDR32_FIELDS = ("type", "offset", "vaddr", "paddr", "filesz", "memsz", "flags", "align")
SHDR_FIELDS = ("name", "type", "flags", "addr", "offset", "size", "link", "info",
               "addralign", "entsize")
SYM64_FIELDS = ("name", "info", "other", "shndx", "value", "size")
SYM32_FIELDS = ("name", "value", "size", "info", "other", "shndx")
# glibc <link.h>: struct r_debug {int r_version; struct link_map *r_map;
# ElfW(Addr) r_brk; enum {...} r_state; ElfW(Addr) r_ldbase;}, and since glibc
# 2.35 struct r_debug_extended {struct r_debug base; r_debug_extended *r_next;}
# (r_version 2).  struct link_map, the part debuggers read: {ElfW(Addr) l_addr;
# char *l_name; ElfW(Dyn) *l_ld; struct link_map *l_next, *l_prev;}.
R_DEBUG_FIELDS = ("version", "map", "brk", "state", "ldbase")
R_DEBUG_EXTENDED_FIELDS = R_DEBUG_FIELDS + ("next",)
LINK_MAP_FIELDS = ("addr", "name", "ld", "next", "prev")

# e_phnum and e_shnum are 16 bits.  The extensions for more (PN_XNUM: e_phnum
# 0xffff, the count in section header 0's sh_info; e_shnum 0 with the count in
# its sh_size) are not supported: such a program header table is read as its
# first 65535 entries, such a section header table as none.
MAX_HEADERS = 0xFFFF
# Section names (.shstrtab) read for a table: names further in read as b"".
MAX_SHSTRTAB = 64 << 10

# Struct formats without byte-order prefix, per ELF class.  W is the word.
_FORMATS = {
    ELFCLASS64: {
        "word": "Q", "sword": "q",
        "ehdr": "16sHHIQQQIHHHHHH", "phdr": "IIQQQQQQ", "phdr_fields": PHDR64_FIELDS,
        "shdr": "IIQQQQIIQQ", "sym": "IBBHQQ", "sym_fields": SYM64_FIELDS,
        "dyn": "qQ", "auxv": "QQ",
        # int r_version and enum r_state are padded to the 8-byte words after them
        "r_debug": "i4xQQi4xQ", "link_map": "QQQQQ",
    },
    ELFCLASS32: {
        "word": "I", "sword": "i",
        "ehdr": "16sHHIIIIIHHHHHH", "phdr": "IIIIIIII", "phdr_fields": PHDR32_FIELDS,
        "shdr": "IIIIIIIIII", "sym": "IIIBBH", "sym_fields": SYM32_FIELDS,
        "dyn": "iI", "auxv": "II",
        "r_debug": "iIIiI", "link_map": "IIIII",
    },
}


class ElfFormatError(ValueError):
    """Not an ELF image we can read: bad identification, header or table."""


class Record(dict):
    """A decoded struct: fields by attribute, and a copy with changes."""

    __getattr__ = dict.__getitem__

    def replace(self, **changes):
        new = Record(self)
        new.update(changes)
        return new


class StructType:
    """One struct layout with named fields."""

    def __init__(self, fmt, fields):
        self.struct = struct.Struct(fmt)
        self.size = self.struct.size
        self.fields = fields
        self.index = {f: i for i, f in enumerate(fields)}  # position in a raw tuple
        if len(fields) != len(self.struct.unpack(bytes(self.size))):
            raise ValueError("%s: %d fields for format %r" % (fields, len(fields), fmt))

    def unpack(self, data, offset=0):
        return Record(zip(self.fields, self.struct.unpack_from(data, offset)))

    def pack(self, rec):
        return self.struct.pack(*[rec[f] for f in self.fields])

    def unpack_table(self, data, count):
        """`count` consecutive structs at the start of data."""
        size = self.size
        return [self.unpack(data, i * size) for i in range(count)]


class Layout:
    """All ELF structs of one class and byte order."""

    def __init__(self, elfclass, data=ELFDATA2LSB):
        if elfclass not in _FORMATS or data not in BYTE_ORDERS:
            raise ElfFormatError("unsupported ELF class %r / data encoding %r" % (elfclass, data))
        f = _FORMATS[elfclass]
        bo = BYTE_ORDERS[data]
        self.elfclass = elfclass
        self.data = data
        self.byteorder = bo
        self.is64 = elfclass == ELFCLASS64
        self.ehdr = StructType(bo + f["ehdr"], EHDR_FIELDS)
        self.phdr = StructType(bo + f["phdr"], f["phdr_fields"])
        self.shdr = StructType(bo + f["shdr"], SHDR_FIELDS)
        self.sym = StructType(bo + f["sym"], f["sym_fields"])
        self.r_debug = StructType(bo + f["r_debug"], R_DEBUG_FIELDS)
        self.r_debug_extended = StructType(bo + f["r_debug"] + f["word"],
                                           R_DEBUG_EXTENDED_FIELDS)
        self.link_map = StructType(bo + f["link_map"], LINK_MAP_FIELDS)
        self.dyn = struct.Struct(bo + f["dyn"])
        self.auxv = struct.Struct(bo + f["auxv"])
        self.word = struct.Struct(bo + f["word"])
        self.sword = struct.Struct(bo + f["sword"])
        self.wordsize = self.word.size
        self.nhdr = struct.Struct(bo + "III")
        self.u32 = struct.Struct(bo + "I")
        self.s32 = struct.Struct(bo + "i")
        self.u16 = struct.Struct(bo + "H")
        self.word_max = (1 << (8 * self.wordsize)) - 1

    def words(self, count):
        """A struct of `count` consecutive words."""
        return struct.Struct(self.byteorder + self.word.format[-1] * count)

    def u32s(self, count):
        """A struct of `count` consecutive 32-bit unsigned integers."""
        return struct.Struct(self.byteorder + "I" * count)

    # --- notes -----------------------------------------------------------
    def note(self, name, ntype, desc):
        """Serialise one ELF note (4-byte aligned name and desc)."""
        name0 = name + b"\0"
        return (self.nhdr.pack(len(name0), len(desc), ntype) + _pad4(name0) + _pad4(desc))

    def iter_notes(self, data):
        """Yield (name, type, desc) for each well-formed note in `data`."""
        off = 0
        end = len(data)
        while off + 12 <= end:
            namesz, descsz, ntype = self.nhdr.unpack_from(data, off)
            off += 12
            name_end = off + namesz
            desc_off = off + _align4(namesz)
            desc_end = desc_off + descsz
            if desc_end > end or name_end > end:
                return
            yield data[off:name_end].rstrip(b"\0"), ntype, data[desc_off:desc_end]
            off = desc_off + _align4(descsz)


_layouts = {}


def layout_for_ident(ident):
    """The Layout for an ELF e_ident (one shared instance per class and byte
    order), or ElfFormatError if it is not an ELF we handle."""
    if len(ident) < EI_NIDENT or ident[:4] != ELFMAG:
        raise ElfFormatError("not an ELF header")
    key = ident[4], ident[5]
    L = _layouts.get(key)
    if L is None:
        L = _layouts[key] = Layout(*key)
    return L


# --- reading headers ------------------------------------------------------------
# Every reader below takes pread(offset, size) -> bytes: exactly size bytes
# at offset of the image (a file, process memory, a stream's head), or an
# exception of its own; a shorter result raises ElfFormatError.


def _pread(pread, offset, size, what):
    try:
        data = pread(offset, size)
    except OverflowError:  # an offset no file or address space has
        data = b""
    if len(data) != size:
        raise ElfFormatError("%s at offset %#x: %d of %d bytes" % (what, offset, len(data), size))
    return data


def read_ehdr(pread):
    """(Layout, ehdr) of the image; ElfFormatError if e_ident is not an ELF we handle."""
    ident = _pread(pread, 0, EI_NIDENT, "ELF identification")
    L = layout_for_ident(ident)
    return L, L.ehdr.unpack(ident + _pread(pread, EI_NIDENT, L.ehdr.size - EI_NIDENT,
                                           "ELF header"))


def read_headers(pread, etype=None, max_phnum=MAX_HEADERS, min_phnum=1):
    """(Layout, ehdr, phdrs) of the image.

    ElfFormatError if the identification or e_type (when etype is given) is
    not what we handle, or the program header table has entries of another
    size, fewer than min_phnum or more than max_phnum of them, overlaps the
    ELF header or is cut short."""
    L, ehdr = read_ehdr(pread)
    if etype is not None and ehdr.type != etype:
        raise ElfFormatError("ELF type %s is not %s" % (ET_NAMES.get(ehdr.type, ehdr.type),
                                                        ET_NAMES.get(etype, etype)))
    n = ehdr.phnum
    if ehdr.phentsize != L.phdr.size or not min_phnum <= n <= max_phnum:
        raise ElfFormatError("bad program header table (%d x %d bytes)" % (n, ehdr.phentsize))
    if n and ehdr.phoff < L.ehdr.size:
        raise ElfFormatError("program headers overlap the ELF header")
    raw = _pread(pread, ehdr.phoff, n * L.phdr.size, "program headers") if n else b""
    return L, ehdr, L.phdr.unpack_table(raw, n)


def read_section_headers(pread, layout, ehdr, max_shnum=MAX_HEADERS):
    """The section headers ([] when there is no table); ElfFormatError if
    their size is not the layout's, there are more than max_shnum, or the
    table is cut short."""
    n = ehdr.shnum
    if not ehdr.shoff or not n:
        return []
    if ehdr.shentsize != layout.shdr.size or n > max_shnum:
        raise ElfFormatError("bad section header table (%d x %d bytes)" % (n, ehdr.shentsize))
    return layout.shdr.unpack_table(
        _pread(pread, ehdr.shoff, n * layout.shdr.size, "section headers"), n)


def section_names(pread, shdrs, shstrndx, limit=MAX_SHSTRTAB):
    """The name of each section (bytes), from the first `limit` bytes of the
    section name table; ElfFormatError if shstrndx names no section."""
    if shstrndx >= len(shdrs):
        raise ElfFormatError("no section name table (e_shstrndx %d of %d sections)"
                             % (shstrndx, len(shdrs)))
    strtab = shdrs[shstrndx]
    size = min(strtab.size, limit)
    names = _pread(pread, strtab.offset, size, "section names") if size else b""
    out = []
    for s in shdrs:
        end = names.find(b"\0", s.name)
        out.append(names[s.name:end if end >= 0 else None])
    return out


def _align4(n):
    return (n + 3) & ~3


def _pad4(b):
    return b + b"\0" * (_align4(len(b)) - len(b))
