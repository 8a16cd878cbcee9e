"""READ: the name gdb gives an address of an ELF file (a frame's function), from
the file's own symbols: SymbolFile.nearest's work, imported after the release
only (write_summary names the frames then).

gdb's rule (minsyms.c lookup_minimal_symbol_by_pc_section over the minimal
symbols elfread.c reads): the symbols of .symtab (of .dynsym in a stripped
file) in the section that holds the address, by value then name; from the
last one at or below the address backwards, a local, IFUNC or data symbol
gives way to a global function just before it of the same value and size (an
alias: raise over __GI_raise, and over gsignal by name); a symbol of size 0 (a
label) is kept in reserve while one with a size is looked for, and that one is
refused unless it holds the address (or the one before it, larger, does: a
nocancel variant inside its function); then the reserve, else nothing.  So a
label names addresses up to the end of its section.  Symbols gdb does not
keep: no name, section and file symbols, a compiler's local labels (.L, $L),
ARM's and AArch64's mapping symbols ($a $t $d $x); a Thumb function's value
has bit 0 cleared.  Not done: gdb's PLT stubs (name@plt), and its display of a
name (demangled; a GCC clone's .N suffix dropped).

One pass over the table, CHUNK bytes at a time, each sorted in C; memory
bounded by the chunk and the symbols kept per address: the WINDOW last at or
below it and the WINDOW_SIZED last of a size (gdb's walk goes further only
past that many aliases, or to a label below more than WINDOW others).  Names
are read only for the symbols the walk reaches.
"""

from _operator import itemgetter
from bisect import bisect_right

from . import elf as E
from .linux import EM_AARCH64, EM_ARM

# Bindings whose symbols gdb keeps (BFD's BSF_LOCAL, GLOBAL, WEAK, GNU_UNIQUE)
BINDINGS = (E.STB_LOCAL, E.STB_GLOBAL, E.STB_WEAK, E.STB_GNU_UNIQUE)
WINDOW = 64  # symbols at or below an address its name is chosen from,
WINDOW_SIZED = 16  # and symbols of a size (past a run of labels: a jump table's)
MAX_NAME = 4096
CHUNK = 8 << 10  # bytes of the table sorted at a time: 340 64-bit symbols


def nearest(symbols, addrs, limit):
    """{addr: (name, offset)} for file-relative (link-time) addresses of
    symbols' file (read_modules.SymbolFile): the symbol gdb names each one
    by, offset = addr - its value; none for an address gdb names by none, or
    in a table of more than `limit` symbols (said once)."""
    symbols.load()
    # gdb names addresses from .symtab, and from .dynsym only in a file
    # without one (a stripped file): elfread.c's elf_symtab_read.
    naming = next((t for t in symbols.tables if t[1].type == E.SHT_SYMTAB
                   and t[1].size >= 2 * t[0].sym.size), None) or next(
        (t for t in symbols.tables if t[1].type == E.SHT_DYNSYM), None)
    if naming is None:
        return {}
    L, symtab, strtab = naming
    size = L.sym.size
    count = symtab.size // size
    if count > limit:
        symbols.file.warn("a symbol table of %d symbols" % count,
                          "more than %d: not searched for frame names" % limit)
        return {}
    # (start, end, index, code) of the sections that take addresses (.tbss
    # takes none of its own: its addresses are another section's)
    sections = sorted((s.addr, s.addr + s.size, i, bool(s.flags & E.SHF_EXECINSTR))
                      for i, s in enumerate(symbols.shdrs) if s.flags & E.SHF_ALLOC and s.size
                      and not (s.flags & E.SHF_TLS and s.type == E.SHT_NOBITS))
    starts = [s[0] for s in sections]
    where = {}  # address -> its section
    for a in addrs:
        i = bisect_right(starts, a) - 1
        if i >= 0 and a < sections[i][1]:
            where[a] = sections[i]
    if not where:
        return {}
    value_of = itemgetter(L.sym.index["value"])
    size_of = itemgetter(L.sym.index["size"])
    thumb = symbols.machine == EM_ARM  # a Thumb function's value has bit 0 set
    near = {a: ([], []) for a in where}  # address -> the last symbols at or below it
    per = CHUNK // size
    pread = symbols.file.pread
    for first in range(0, count, per):
        raw = pread(symtab.offset + first * size, min(per, count - first) * size)
        raw = raw[:len(raw) // size * size]
        if not raw:
            break  # the budget is spent
        syms = sorted(L.sym.struct.iter_unpack(raw), key=value_of)
        values = list(map(value_of, syms))
        sized = list(filter(size_of, syms))
        sized_values = list(map(value_of, sized))
        for a, (last, last_sized) in near.items():
            k = bisect_right(values, a + thumb)
            last += syms[max(0, k - WINDOW):k]
            k = bisect_right(sized_values, a + thumb)
            last_sized += sized[max(0, k - WINDOW_SIZED):k]
            if len(last) > 4 * WINDOW:  # the window so far: the last of each chunk's
                last.sort(key=value_of)
                del last[:-WINDOW]
            if len(last_sized) > 4 * WINDOW_SIZED:
                last_sized.sort(key=value_of)
                del last_sized[:-WINDOW_SIZED]
    names = _Names(pread, strtab, symbols.machine, L)
    found = {}
    for a, (last, last_sized) in near.items():
        last.sort(key=value_of)
        last_sized.sort(key=value_of)
        window = sorted(set(last[-WINDOW:] + last_sized[-WINDOW_SIZED:]), key=value_of)
        hit = _gdb_choice(a, where[a], window, names, thumb)
        if hit is not None:
            found[a] = (hit[0].decode("utf-8", "replace"), a - hit[1])
    return found


class _Names:
    """Symbol names of one string table, read once each; kept(): whether
    gdb keeps a symbol (elfread.c: a named function or object of a section,
    not a compiler's local label .L or $L; on ARM and AArch64 no mapping
    symbol $a $t $d $x, BFD's target-special symbols)."""

    def __init__(self, pread, strtab, machine, layout):
        self.pread = pread
        self.strtab = strtab
        self.mapping = machine in (EM_ARM, EM_AARCH64)
        self.index = [layout.sym.index[k] for k in ("name", "value", "size", "info", "shndx")]
        self.cache = {}

    def get(self, off):
        name = self.cache.get(off)
        if name is None:
            left = self.strtab.size - off
            raw = self.pread(self.strtab.offset + off, min(256, left)) if left > 0 else b""
            if b"\0" not in raw and len(raw) < min(MAX_NAME, left):
                raw = self.pread(self.strtab.offset + off, min(MAX_NAME, left))
            name = self.cache[off] = raw.split(b"\0", 1)[0]
        return name

    def kept(self, sym, section, thumb):
        """(name, value, size, global function) of a symbol (a table's
        tuple) of section (start, end, index, code) as gdb keeps it, or None."""
        i_name, i_value, i_size, i_info, i_shndx = self.index
        bind, stype = sym[i_info] >> 4, sym[i_info] & 0xF
        if sym[i_shndx] != section[2] or not sym[i_name] or bind not in BINDINGS \
                or stype in (E.STT_SECTION, E.STT_FILE):
            return None
        code = section[3]
        name = self.get(sym[i_name])
        local = bind == E.STB_LOCAL
        if not name or code and local and name[:2] in (b".L", b"$L") or (
                self.mapping and name[:1] == b"$" and name[1:2] in b"atdx"
                and name[2:3] in (b"", b".")):
            return None
        value = sym[i_value] & ~1 if thumb and code else sym[i_value]
        return name, value, sym[i_size], code and not local and stype != E.STT_GNU_IFUNC


def _gdb_choice(pc, section, window, names, thumb):
    """The symbol (name, value, size, global function) gdb names pc of
    section by, from window (the last symbols of the table at or below pc,
    by value), or None.  Only what the walk reaches is read: the symbols
    of the last value at or below pc, of the last with a size and of the
    one before that (between them: labels gdb passes over)."""
    groups = {}  # value -> {name: kept symbol}: one per name, a global function first
    sized = None  # the last value with a symbol of a size
    for sym in reversed(window):
        got = names.kept(sym, section, thumb)
        if got is None or got[1] > pc:
            continue
        name, value = got[0], got[1]
        if value not in groups:
            if sized is not None and any(v < sized for v in groups):
                break  # and the value before it: the walk ends there
            groups[value] = {}
        if name not in groups[value] or got[3]:
            groups[value][name] = got
        if got[2] and sized is None:
            sized = value
    syms = [groups[v][n] for v in sorted(groups) for n in sorted(groups[v])]
    return _walk(pc, syms)


def _walk(pc, syms):
    """lookup_minimal_symbol_by_pc_section's choice among syms (by value
    and name, all at or below pc): see SymbolFile.nearest."""
    hi = len(syms) - 1
    zero = -1
    while hi >= 0:
        name, value, size, text = syms[hi]
        before = syms[hi - 1] if hi > 0 else None
        if before is not None and not text and before[3] and before[2] == size \
                and before[1] == value:
            hi -= 1  # an alias: the global function
            continue
        if not size:
            if zero < 0:
                zero = hi  # a label: kept in reserve
            hi -= 1
            continue
        if before is not None and value + size <= pc < before[1] + before[2]:
            hi -= 1  # inside the larger symbol before it
            continue
        break
    if zero >= 0 and (hi < 0 or not syms[hi][2]):
        hi = zero
    if hi >= 0 and syms[hi][2] and pc >= syms[hi][1] + syms[hi][2]:
        hi = zero  # beyond its end: the label, or nothing
    return syms[hi] if hi >= 0 else None
