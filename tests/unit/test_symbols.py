"""SymbolFile.nearest names an address as gdb does (minsyms.c's choice among
the minimal symbols elfread.c reads), on forged ELF files that hold each case
alone: aliases at one address, labels of size 0, sections, nocancel symbols
inside their function, ARM's Thumb bit and mapping symbols, .symtab over
.dynsym.  Each case is also put to gdb's `info symbol` on the same file (where
gdb is installed): the expectations are gdb's, not ours."""

import os
import re
import shutil
import subprocess

import pytest

from minicoredumper import elf as E
from minicoredumper.linux import EM_ARM, EM_X86_64
from minicoredumper import read_symbols
from minicoredumper.read_modules import MappedFile

FUNC, OBJECT, NOTYPE, IFUNC = E.STT_FUNC, E.STT_OBJECT, E.STT_NOTYPE, E.STT_GNU_IFUNC
LOCAL, GLOBAL, WEAK = E.STB_LOCAL, E.STB_GLOBAL, E.STB_WEAK
ALLOC_CODE = E.SHF_ALLOC | E.SHF_EXECINSTR
ALLOC_DATA = E.SHF_ALLOC | 0x1  # SHF_WRITE

# (name, address, size, flags) of the forged files' sections; section index = place + 1
SECTIONS = [(".init", 0x800, 0x20, ALLOC_CODE), (".text", 0xF00, 0x2100, ALLOC_CODE),
            (".data", 0x4000, 0x100, ALLOC_DATA)]
INIT, TEXT, DATA = 1, 2, 3


def forge(path, symbols, machine=EM_X86_64, elfclass=E.ELFCLASS64, dynsym=()):
    """Write an ELF file with SECTIONS (no bytes of their own), a .symtab of
    symbols [(name, value, size, type, binding, section index)] in that order
    (none: no .symtab), a .dynsym of dynsym likewise."""
    L = E.Layout(elfclass)
    shstr = b"\0"
    body = b""
    start = L.ehdr.size
    headers = [dict(name=0, type=0, flags=0, addr=0, offset=0, size=0, link=0, info=0,
                    addralign=0, entsize=0)]

    def name_of(table, name):
        return len(table), table + name + b"\0"

    def section(name, **fields):
        nonlocal shstr
        off, shstr = name_of(shstr, name)
        h = dict(name=off, type=E.SHT_PROGBITS, flags=0, addr=0, offset=0, size=0, link=0,
                 info=0, addralign=1, entsize=0)
        h.update(fields)
        headers.append(h)
        return len(headers) - 1

    for name, addr, size, flags in SECTIONS:
        section(name.encode(), type=E.SHT_NOBITS, flags=flags, addr=addr, size=size)
    for kind, syms in ((E.SHT_SYMTAB, symbols), (E.SHT_DYNSYM, dynsym)):
        if not syms:
            continue
        strtab = b"\0"
        table = L.sym.pack(dict(name=0, value=0, size=0, info=0, other=0, shndx=0))
        for name, value, size, stype, bind, shndx in syms:
            off, strtab = name_of(strtab, name.encode())
            table += L.sym.pack(dict(name=off, value=value, size=size, info=bind << 4 | stype,
                                     other=0, shndx=shndx))
        link = len(headers) + 1
        section(b".symtab" if kind == E.SHT_SYMTAB else b".dynsym", type=kind,
                offset=start + len(body), size=len(table), link=link, info=1,
                addralign=8, entsize=L.sym.size)
        body += table
        section(b".strtab" if kind == E.SHT_SYMTAB else b".dynstr", type=E.SHT_STRTAB,
                offset=start + len(body), size=len(strtab))
        body += strtab
    shstrndx = section(b".shstrtab", type=E.SHT_STRTAB, offset=0, size=0)
    headers[shstrndx].update(offset=start + len(body), size=len(shstr))
    body += shstr
    body += b"\0" * (-len(body) % 8)
    ident = E.ELFMAG + bytes([elfclass, E.ELFDATA2LSB, 1]) + b"\0" * 9
    ehdr = L.ehdr.pack(dict(ident=ident, type=E.ET_EXEC, machine=machine, version=1,
                            entry=0, phoff=0, shoff=start + len(body), flags=0,
                            ehsize=L.ehdr.size, phentsize=L.phdr.size, phnum=0,
                            shentsize=L.shdr.size, shnum=len(headers), shstrndx=shstrndx))
    with open(path, "wb") as f:
        f.write(ehdr + body + b"".join(L.shdr.pack(h) for h in headers))
    return path


def nearest(path, addrs):
    f = MappedFile(os.open(path, os.O_RDONLY), path)
    try:
        return f.symbols.nearest(addrs)
    finally:
        f.close()


INFO = re.compile(r"^(\S+?)(?: \+ (\d+))? in section")


def gdb_info_symbol(path, addrs, program="gdb"):
    """{address: (name, offset) or None}: gdb's `info symbol` on the file."""
    argv = [program, "-nx", "-batch", "-iex", "set debug-file-directory /nonexistent"]
    for a in addrs:
        argv += ["-ex", "echo @%#x\\n" % a, "-ex", "info symbol %#x" % a]
    out = subprocess.run(argv + [path], capture_output=True, text=True, timeout=120).stdout
    got, cur = {}, None
    for line in out.splitlines():
        if line.startswith("@"):
            cur = int(line[1:], 16)
            got[cur] = None
        elif cur is not None and INFO.match(line):
            m = INFO.match(line)
            got[cur] = (m.group(1), int(m.group(2) or 0))
    return got


# Each case: symbols, {address: gdb's (name, offset) or None}
CASES = {
    # glibc's raise: a local __GI_ alias, the weak gsignal and the global raise;
    # gdb takes the last by name among functions of one address and size
    "raise_gsignal": ([("__GI_raise", 0x1000, 0x40, FUNC, LOCAL, TEXT),
                       ("gsignal", 0x1000, 0x40, FUNC, WEAK, TEXT),
                       ("raise", 0x1000, 0x40, FUNC, GLOBAL, TEXT)],
                      {0x1000: ("raise", 0), 0x1023: ("raise", 0x23)}),
    # ... unless that last one is local (or an IFUNC): the global function before it
    "local_last": ([("zz_local", 0x1000, 0x40, FUNC, LOCAL, TEXT),
                    ("aa_global", 0x1000, 0x40, FUNC, GLOBAL, TEXT)],
                   {0x1010: ("aa_global", 0x10)}),
    "ifunc_last": ([("memcpy", 0x1000, 0x40, IFUNC, GLOBAL, TEXT),
                    ("__memcpy_impl", 0x1000, 0x40, FUNC, GLOBAL, TEXT)],
                   {0x1010: ("__memcpy_impl", 0x10)}),
    # of another size, the local one is its own symbol; past its end, the larger one
    "local_smaller": ([("zz_local", 0x1000, 0x10, FUNC, LOCAL, TEXT),
                       ("aa_global", 0x1000, 0x40, FUNC, GLOBAL, TEXT)],
                      {0x1008: ("zz_local", 8), 0x1020: ("aa_global", 0x20)}),
    # a nocancel variant inside its function: past the variant's end, the function
    "nocancel": ([("__libc_read", 0x2200, 0x100, FUNC, GLOBAL, TEXT),
                  ("__read_nocancel", 0x2280, 0x20, FUNC, LOCAL, TEXT)],
                 {0x2290: ("__read_nocancel", 0x10), 0x22C0: ("__libc_read", 0xC0),
                  0x2300: None}),
    # a label (size 0) far below, a function of a size between that does not
    # hold the address: nothing (gdb refuses the function and passes the label)
    "label_below_function": ([("asm_label", 0x1800, 0, NOTYPE, GLOBAL, TEXT),
                              ("func", 0x1900, 0x20, FUNC, GLOBAL, TEXT)],
                             {0x1910: ("func", 0x10), 0x1950: None, 0x1850: ("asm_label", 0x50)}),
    # a label above the function: it names everything up to the end of the section
    "label_above_function": ([("func", 0x2000, 0x10, FUNC, GLOBAL, TEXT),
                              ("tail_label", 0x2100, 0, NOTYPE, LOCAL, TEXT)],
                             {0x2F00: ("tail_label", 0xE00), 0x2008: ("func", 8)}),
    # a label inside a function: the function
    "label_inside": ([("func", 0x2000, 0x100, FUNC, GLOBAL, TEXT),
                      ("inner", 0x2040, 0, NOTYPE, LOCAL, TEXT)],
                     {0x2080: ("func", 0x80)}),
    # symbols of another section never name an address: _init's label in .init,
    # a data object, an absolute symbol below .text's first function
    "other_sections": ([("_init", 0x800, 0, FUNC, GLOBAL, INIT),
                        ("table", 0xF00, 0x10, OBJECT, GLOBAL, DATA),
                        ("abs", 0xF00, 0, NOTYPE, GLOBAL, 0xFFF1),
                        ("first", 0x1000, 0x10, FUNC, GLOBAL, TEXT)],
                       {0xF10: None, 0x808: ("_init", 8), 0x3100: None}),
    # compilers' local labels, section and file symbols are no names
    "not_names": ([("f", 0x1000, 0x100, FUNC, GLOBAL, TEXT),
                   (".L42", 0x1080, 0, NOTYPE, LOCAL, TEXT),
                   (".text", 0x1090, 0, E.STT_SECTION, LOCAL, TEXT),
                   ("f.c", 0x10A0, 0, E.STT_FILE, LOCAL, TEXT)],
                  {0x10B0: ("f", 0xB0)}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_named_as_gdb_names(tmp_path, case):
    symbols, want = CASES[case]
    path = forge(str(tmp_path / case), symbols)
    assert nearest(path, set(want)) == {a: w for a, w in want.items() if w is not None}
    if shutil.which("gdb"):
        assert gdb_info_symbol(path, sorted(want)) == want


def test_symtab_before_dynsym(tmp_path):
    """With a .symtab, gdb reads no .dynsym symbol (they are in .symtab in a
    file that was not stripped); without one, .dynsym."""
    dyn = [("dyn_only", 0x2800, 0x10, FUNC, GLOBAL, TEXT)]
    both = forge(str(tmp_path / "both"), [("f", 0x1000, 0x10, FUNC, GLOBAL, TEXT)],
                 dynsym=dyn)
    stripped = forge(str(tmp_path / "stripped"), [], dynsym=dyn)
    assert nearest(both, {0x2804}) == {}
    assert nearest(stripped, {0x2804}) == {0x2804: ("dyn_only", 4)}
    if shutil.which("gdb"):
        assert gdb_info_symbol(both, [0x2804]) == {0x2804: None}
        assert gdb_info_symbol(stripped, [0x2804]) == {0x2804: ("dyn_only", 4)}


def test_arm_thumb_bit_and_mapping_symbols(tmp_path):
    """A Thumb function's value has bit 0 set: it names its first
    instruction; ARM's mapping symbols ($t, $d: code and data in a section)
    are no names."""
    path = forge(str(tmp_path / "arm"), [("$t", 0x1000, 0, NOTYPE, LOCAL, TEXT),
                                         ("thumb_fn", 0x1001, 0x40, FUNC, GLOBAL, TEXT),
                                         ("$d", 0x1030, 0, NOTYPE, LOCAL, TEXT),
                                         ("$d.lit", 0x1100, 0, NOTYPE, LOCAL, TEXT),
                                         ("arm_fn", 0x1080, 0x10, FUNC, GLOBAL, TEXT)],
                 machine=EM_ARM, elfclass=E.ELFCLASS32)
    want = {0x1000: ("thumb_fn", 0), 0x1034: ("thumb_fn", 0x34), 0x1084: ("arm_fn", 4),
            0x1104: None}
    assert nearest(path, set(want)) == {a: w for a, w in want.items() if w}
    if shutil.which("gdb-multiarch"):
        assert gdb_info_symbol(path, sorted(want), "gdb-multiarch") == want


def test_many_aliases_and_labels_stay_bounded(tmp_path):
    """A table of 20,000 symbols at one address and 20,000 labels below an
    address: a name within the window, in bounded time and reads."""
    import time
    many = [("alias%05d" % i, 0x1000, 0x40, FUNC, GLOBAL, TEXT) for i in range(20000)]
    many += [("label%05d" % i, 0x1100 + i // 20, 0, NOTYPE, LOCAL, TEXT) for i in range(20000)]
    path = forge(str(tmp_path / "many"), many)
    t0 = time.monotonic()
    got = nearest(path, {0x1010, 0x1100 + 999 + 5})
    assert time.monotonic() - t0 < 1.0
    assert got[0x1010][0].startswith("alias") and got[0x1010][1] == 0x10
    assert got[0x1100 + 999 + 5] == ("label19999", 5)  # the last label: gdb's too
    assert read_symbols.WINDOW < 20000


def _display(name):
    """gdb's display of a GCC clone's name (its Ada-style decoding of the
    linkage name): level_c.constprop.0 -> level_c.constprop, f.cold -> f[cold]."""
    name = re.sub(r"(\.cold)?\.\d+$", r"\1", name)
    return re.sub(r"\.cold$", "[cold]", name)


@pytest.fixture(scope="module")
def real_files(tmp_path_factory):
    """Debian's own binaries (stripped: .dynsym) and static programs of each
    compiler here (.symtab: the C library's aliases, labels and clones):
    [(path, gdb program)]."""
    d = tmp_path_factory.mktemp("real")
    (d / "p.c").write_text("#include <stdio.h>\nint main(void) { puts(\"p\"); return 0; }\n")
    files = [(p, "gdb") for p in ["/lib/x86_64-linux-gnu/libc.so.6",
                                  "/lib64/ld-linux-x86-64.so.2", "/usr/bin/sleep",
                                  "/usr/bin/python3"] if os.path.exists(p)]
    for cc, gdb in (("gcc", "gdb"), ("i686-linux-gnu-gcc", "gdb"),
                    ("arm-linux-gnueabihf-gcc", "gdb-multiarch"),
                    ("aarch64-linux-gnu-gcc", "gdb-multiarch")):
        if shutil.which(cc) and shutil.which(gdb):
            out = str(d / ("p-" + cc))
            subprocess.run([cc, "-O2", "-static", "-o", out, str(d / "p.c")], check=True)
            files.append((out, gdb))
    return files


def test_real_files_named_as_gdb_names(real_files):
    """Addresses at and around every third symbol's start and end and spread
    over each code section (but PLT stubs, which gdb names from synthetic
    name@plt symbols we do not make): our names are gdb's `info symbol`."""
    import random
    from elftools.elf.elffile import ELFFile
    from elftools.elf.sections import SymbolTableSection
    if not real_files:
        pytest.skip("no gdb")
    rnd = random.Random(13)
    for path, gdb in real_files:
        addrs = set()
        with open(path, "rb") as f:
            elf = ELFFile(f)
            code = [(s["sh_addr"], s["sh_addr"] + s["sh_size"]) for s in elf.iter_sections()
                    if s["sh_flags"] & E.SHF_EXECINSTR and s["sh_size"]
                    and not s.name.startswith(".plt")]
            for lo, hi in code:
                addrs |= {lo, hi - 1} | {rnd.randrange(lo, hi) for _ in range(40)}
            for table in elf.iter_sections():
                if isinstance(table, SymbolTableSection):
                    for sym in list(table.iter_symbols())[::3]:
                        v, n = sym["st_value"] & ~1, sym["st_size"]
                        addrs |= {v, v + 1, v + n - 1, v + n, v + n + 2}
        addrs = sorted(a for a in addrs if any(lo <= a < hi for lo, hi in code))
        addrs = rnd.sample(addrs, min(len(addrs), 600))
        ours = nearest(path, set(addrs))
        theirs = gdb_info_symbol(path, addrs, gdb)
        wrong = [(hex(a), ours.get(a), theirs[a]) for a in addrs
                 if ours.get(a) != theirs[a] and (ours.get(a) is None or theirs[a] is None
                                                  or theirs[a][1] != ours[a][1]
                                                  or theirs[a][0] != _display(ours[a][0]))]
        assert not wrong, (path, len(wrong), wrong[:10])
