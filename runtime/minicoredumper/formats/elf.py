"""ELF struct layouts, described once per ELF class and byte order.

Every reader and writer of ELF data in the runtime (kernel core stream, mapped
objects in a crashed process, the cores we write, coreinject) takes its structs
from a `Layout` here instead of re-deriving offsets.  Byte order is one entry in
BYTE_ORDERS; a big-endian target would only need its struct prefix.
"""

import struct

ELFMAG = b"\x7fELF"
ELFCLASS32 = 1
ELFCLASS64 = 2
ELFDATA2LSB = 1
ELFDATA2MSB = 2
BYTE_ORDERS = {ELFDATA2LSB: "<", ELFDATA2MSB: ">"}

ET_EXEC = 2
ET_DYN = 3
ET_CORE = 4

PT_LOAD = 1
PT_DYNAMIC = 2
PT_NOTE = 4
PF_X = 1
PF_W = 2
PF_R = 4

SHT_STRTAB = 3
SHT_NOTE = 7
SHT_SYMTAB = 2
SHT_DYNSYM = 11
SHN_UNDEF = 0

NT_PRSTATUS = 1
NT_PRPSINFO = 3
NT_AUXV = 6
NT_GNU_BUILD_ID = 3
NT_386_TLS = 0x200
NT_ARM_TLS = 0x401
NT_SIGINFO = 0x53494749
NT_FILE = 0x46494C45
NT_MCD_DUMPLIST = 80
MCD_NOTE_OWNER = b"minicoredumper"
DUMPLIST_SECTION = b".note.minicoredumper.dumplist"

DT_NULL = 0
DT_DEBUG = 21
AT_NULL = 0
AT_PHDR = 3
AT_PHENT = 4
AT_PHNUM = 5
AT_BASE = 7
AT_ENTRY = 9
AT_SYSINFO_EHDR = 33

STT_OBJECT = 1
STT_FUNC = 2
STT_TLS = 6

EHDR_FIELDS = ("ident", "type", "machine", "version", "entry", "phoff", "shoff",
               "flags", "ehsize", "phentsize", "phnum", "shentsize", "shnum",
               "shstrndx")
PHDR64_FIELDS = ("type", "flags", "offset", "vaddr", "paddr", "filesz", "memsz", "align")
PHDR32_FIELDS = ("type", "offset", "vaddr", "paddr", "filesz", "memsz", "flags", "align")
SHDR_FIELDS = ("name", "type", "flags", "addr", "offset", "size", "link", "info",
               "addralign", "entsize")
SYM64_FIELDS = ("name", "info", "other", "shndx", "value", "size")
SYM32_FIELDS = ("name", "value", "size", "info", "other", "shndx")

# Struct formats without byte-order prefix, per ELF class.  W is the word.
_FORMATS = {
    ELFCLASS64: {
        "word": "Q", "sword": "q",
        "ehdr": "16sHHIQQQIHHHHHH", "phdr": "IIQQQQQQ", "phdr_fields": PHDR64_FIELDS,
        "shdr": "IIQQQQIIQQ", "sym": "IBBHQQ", "sym_fields": SYM64_FIELDS,
        "dyn": "qQ", "auxv": "QQ",
    },
    ELFCLASS32: {
        "word": "I", "sword": "i",
        "ehdr": "16sHHIIIIIHHHHHH", "phdr": "IIIIIIII", "phdr_fields": PHDR32_FIELDS,
        "shdr": "IIIIIIIIII", "sym": "IIIBBH", "sym_fields": SYM32_FIELDS,
        "dyn": "iI", "auxv": "II",
    },
}


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

    def unpack(self, data, offset=0):
        return Record(zip(self.fields, self.struct.unpack_from(data, offset)))

    def pack(self, rec):
        return self.struct.pack(*[rec[f] for f in self.fields])


class Layout:
    """All ELF structs of one class and byte order."""

    def __init__(self, elfclass, data=ELFDATA2LSB):
        if elfclass not in _FORMATS or data not in BYTE_ORDERS:
            raise ValueError("unsupported ELF class %r / data encoding %r" % (elfclass, data))
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


def layout_for_ident(ident):
    """The Layout for an ELF e_ident, or ValueError if it is not an ELF we handle."""
    if len(ident) < 16 or ident[:4] != ELFMAG:
        raise ValueError("not an ELF header")
    return Layout(ident[4], ident[5])


def _align4(n):
    return (n + 3) & ~3


def _pad4(b):
    return b + b"\0" * (_align4(len(b)) - len(b))
