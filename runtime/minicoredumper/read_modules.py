"""READ: ELF objects mapped into the crashed process, and their symbols.

A Module is an ELF image found in the process's address space (the executable,
shared libraries, the vDSO): where it is loaded, its program headers as read
from memory, the ranges that hold its identity (ELF header, program headers,
notes: the build-id, the FDO package note) and its PT_DYNAMIC.  Symbols are
looked up in the mapped file on disk (.symtab, then .dynsym), defined symbols
only.
"""

import os

from . import elf as E

# Program headers read from a crashed process's memory, which it may have
# forged: real objects have about a dozen, and the crash path reads every mapping's.
MAX_PHNUM_IN_MEMORY = 256
CHUNK = 64 << 10
E_PAGE = 4096


class Module:
    """One ELF image mapped in the process."""

    def __init__(self, path, base, layout, ehdr, phdrs, file_path, inode=0):
        self.path = path  # as shown in maps ("[vdso]" for the vDSO)
        self.base = base  # address of the ELF header in memory
        self.layout = layout
        self.ehdr = ehdr
        self.phdrs = phdrs
        self.file_path = file_path  # where to read symbols from, or None
        self.inode = inode
        loads = [p for p in phdrs if p.type == E.PT_LOAD]
        first = min((p.vaddr for p in loads), default=0) & ~(E_PAGE - 1)
        self.bias = base - first if ehdr.type == E.ET_DYN else 0
        self.build_id = None
        self.package = None  # the .note.package desc (bytes), where there is one
        self._symbols = None

    def identity_ranges(self):
        """(start, size) ranges offline symbolisation needs: ELF header, phdrs, notes."""
        ranges = [(self.base, self.ehdr.ehsize),
                  (self.base + self.ehdr.phoff, self.ehdr.phnum * self.ehdr.phentsize)]
        for p in self.phdrs:
            if p.type == E.PT_NOTE and 0 < p.filesz <= 4096:
                ranges.append((self.bias + p.vaddr, p.filesz))
        return ranges

    def symbol_source(self):
        """The file to read symbols from: /proc/PID/map_files while the
        process exists, afterwards the mapped path if it is still the same
        file (same inode), else None."""
        if self.file_path is None:
            return None
        if os.path.exists(self.file_path):
            return self.file_path
        try:
            if os.stat(self.path).st_ino == self.inode:
                return self.path
        except OSError:
            pass  # the path no longer names the mapped file: no symbols from it
        return None

    def lookup(self, name):
        """(address, size) of the defined symbol `name`, or None."""
        source = self.symbol_source()
        if source is None:
            return None
        if self._symbols is None:
            self._symbols = SymbolFile(source)
        found = self._symbols.lookup(name.encode() if isinstance(name, str) else name)
        if found is None:
            return None
        value, size, stype = found
        if stype == E.STT_TLS:
            return None
        return self.bias + value, size



def find_symbol(modules, name):
    """(address, size) of the first module's defined symbol `name`, or None."""
    for m in modules:
        found = m.lookup(name)
        if found:
            return found
    return None


def find_modules(process, mem):
    """Every ELF image the process has mapped, in address order."""
    modules = []
    seen = set()
    for m in process.maps:
        if m.offset != 0 or not m.readable or m.start in seen:
            continue
        if not (m.path.startswith("/") or m.path == "[vdso]"):
            continue
        mod = read_module(mem, m.start, m.path, process.dir, m)
        if mod is not None:
            seen.add(m.start)
            modules.append(mod)
    return modules


def read_module(mem, base, path, procdir, mapping):
    """Parse the ELF header and phdrs at base in memory; None if it is no ELF."""
    span = mapping.end - mapping.start

    def pread(offset, size):
        if offset + size > span:  # only within the mapping that holds the header
            raise E.ElfFormatError("beyond the mapping")
        return mem.read_exact(base + offset, size) or b""

    try:
        L, ehdr, phdrs = E.read_headers(pread, max_phnum=MAX_PHNUM_IN_MEMORY)
    except E.ElfFormatError:
        return None  # not an ELF image we can use: no module at this mapping
    file_path = None
    if path.startswith("/"):
        file_path = "%s/map_files/%x-%x" % (procdir, mapping.start, mapping.end)
        if not os.path.exists(file_path):
            file_path = path
    mod = Module(path, base, L, ehdr, phdrs, file_path, mapping.inode)
    _identity_notes(mem, mod)
    return mod


def _identity_notes(mem, mod):
    """mod.build_id (hex) and mod.package (the FDO packaging metadata note's
    desc, raw bytes: write_summary.parse_package reads it) from the notes
    in the module's PT_NOTE segments, read from memory (each at most 4096
    bytes, as identity_ranges() dumps them)."""
    for p in mod.phdrs:
        if p.type != E.PT_NOTE or not 0 < p.filesz <= 4096:
            continue
        data = mem.read_exact(mod.bias + p.vaddr, p.filesz)
        if data is None:
            continue
        for name, ntype, desc in mod.layout.iter_notes(data):
            if name == b"GNU" and ntype == E.NT_GNU_BUILD_ID and mod.build_id is None:
                mod.build_id = desc.hex()
            elif name == b"FDO" and ntype == E.NT_FDO_PACKAGING_METADATA \
                    and mod.package is None:
                mod.package = desc


class SymbolFile:
    """Symbol lookup in an ELF file on disk (.symtab first, then .dynsym)."""

    def __init__(self, path):
        self.path = path
        self.tables = None

    def load(self):
        """Find the symbol tables (.symtab before .dynsym) once."""
        if self.tables is not None:
            return
        self.tables = []
        try:
            f = open(self.path, "rb")
        except OSError:
            return  # no file: no symbol tables (lookups find nothing)
        with f:
            def pread(offset, size):
                f.seek(offset)
                return f.read(size)
            try:
                L, ehdr = E.read_ehdr(pread)
                shdrs = E.read_section_headers(pread, L, ehdr)
            except (E.ElfFormatError, OSError):
                return  # no section headers we can read: no symbol tables
            for want in (E.SHT_SYMTAB, E.SHT_DYNSYM):
                for s in shdrs:
                    if s.type == want and s.link < len(shdrs):
                        self.tables.append((L, s, shdrs[s.link]))

    def lookup(self, name):
        """(st_value, st_size, st_type) of the first defined symbol called name."""
        self.load()
        for L, symtab, strtab in self.tables:
            found = self._scan(L, symtab, strtab, name)
            if found is not None:
                return found
        return None

    def _scan(self, L, symtab, strtab, name):
        """Chunked search: first the string offsets that read as `name`, then
        the symbols whose st_name is one of them.  Memory stays bounded by
        CHUNK whatever the table sizes; the byte searches run in C."""
        try:
            f = open(self.path, "rb")
        except OSError:
            return None  # no file: the symbol is not found
        with f:
            want = _find_all(f, strtab.offset, strtab.size, name + b"\0")
            if not want:
                return None
            size = L.sym.size
            for off in want:
                pat = L.u32.pack(off)
                for pos in _find_all(f, symtab.offset, symtab.size - symtab.size % size, pat):
                    if pos % size:  # st_name is the first field of a symbol
                        continue
                    f.seek(symtab.offset + pos)
                    sym = L.sym.unpack(f.read(size))
                    if sym.shndx != E.SHN_UNDEF:
                        return sym.value, sym.size, sym.info & 0xF
        return None


def _find_all(f, offset, size, needle):
    """Offsets (relative to offset) of every occurrence of needle in a file range."""
    found = []
    overlap = len(needle) - 1
    pos = 0
    while pos < size:
        f.seek(offset + pos)
        chunk = f.read(min(CHUNK, size - pos))
        if not chunk:
            break
        i = chunk.find(needle)
        while i >= 0:
            found.append(pos + i)
            i = chunk.find(needle, i + 1)
        if len(chunk) <= overlap or pos + len(chunk) >= size:
            break
        pos += len(chunk) - overlap
    return sorted(set(found))


def nearest_symbols(path, addrs, limit=200000):
    """{addr: (name, offset)} for file-relative addresses: the defined function
    or object symbol containing (or nearest below) each one, from .symtab
    then .dynsym.  One chunked pass per table; tables beyond `limit`
    symbols are skipped (the crash path stays bounded)."""
    sf = SymbolFile(path)
    sf.load()
    best = {}
    try:
        f = open(path, "rb")
    except OSError:
        return {}  # the file is gone: no symbol names, the summary keeps module+offset
    with f:
        for L, symtab, strtab in sf.tables:
            size = L.sym.size
            count = symtab.size // size
            if count > limit:
                continue
            found = {}
            # Every symbol in one C-level unpack; fields by their place in the layout.
            i_name, i_value, i_size, i_info, i_shndx = (
                L.sym.index[k] for k in ("name", "value", "size", "info", "shndx"))
            for first in range(0, count, CHUNK // size):
                f.seek(symtab.offset + first * size)
                raw = f.read(min(CHUNK // size, count - first) * size)
                for sym in L.sym.struct.iter_unpack(raw):
                    value = sym[i_value]
                    if not value:
                        continue
                    ssize = sym[i_size]
                    for a in addrs:
                        off = a - value
                        if 0 <= off and (off < ssize or not ssize) and (
                                a not in found or off < found[a][1]):
                            if sym[i_info] & 0xF in (E.STT_FUNC, E.STT_OBJECT) and (
                                    sym[i_shndx] != E.SHN_UNDEF):
                                found[a] = (sym[i_name], off)
            for a, (name_off, off) in found.items():
                if a not in best:
                    f.seek(strtab.offset + name_off)
                    name = f.read(256).split(b"\0", 1)[0].decode("utf-8", "replace")
                    best[a] = (name, off)
    return best
