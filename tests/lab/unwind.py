"""The unwinder against gdb: the summary's frames of every thread compared with
gdb's on the kernel's own core of the same crash (assert_same_as_gdb); and the
unwinder's inputs from a kernel core file on disk (from_core): the kernel's
notes (read_corestream.KernelCore), its memory, and the mapped objects
(read_modules.Module, found through NT_FILE and the vDSO's auxv entry; their
files opened by path, as they are still on this host)."""

import json
import os
import re

from lab.gdb import threads_by_tid
from minicoredumper import elf as E
from minicoredumper.read_corestream import read_kernel_core
from minicoredumper.read_modules import MappedFile, find_modules
from minicoredumper.read_process import Mapping


class CoreMemory:
    """read / read_exact of a core file's PT_LOADs by virtual address (bytes
    past a segment's file data are not there, as in a copy)."""

    def __init__(self, path):
        self.f = open(path, "rb")
        self.loads = []

    def read(self, addr, size):
        for p in self.loads:
            if p.vaddr <= addr < p.vaddr + p.filesz:
                n = min(size, p.vaddr + p.filesz - addr)
                self.f.seek(p.offset + addr - p.vaddr)
                return self.f.read(n)
        return b""

    def read_exact(self, addr, size):
        data = self.read(addr, size)
        return data if len(data) == size else None

    def may_stall(self, addr):
        return False

    def close(self):
        self.f.close()


class _Process:
    def __init__(self, maps):
        self.maps = maps
        self.dir = "/nonexistent"  # no map_files: Module reads the files by path


def from_core(path):
    """(KernelCore, CoreMemory, [Module]) of a kernel core file."""
    fd = os.open(path, os.O_RDONLY)
    try:
        kc = read_kernel_core(fd)
    finally:
        os.close(fd)
    mem = CoreMemory(path)
    mem.loads = kc.loads
    maps = []
    for start, end, page, raw in kc.files:
        name = raw.decode("utf-8", "surrogateescape") if isinstance(raw, bytes) else raw
        st = os.stat(name) if os.path.exists(name) else None
        maps.append(Mapping(start, end, "r-xp", page * kc.file_page_size,
                            st.st_ino if st else 0, name))
    vdso = kc.auxv.get(E.AT_SYSINFO_EHDR)
    if vdso:
        p = kc.load_for(vdso)
        maps.append(Mapping(vdso, p.vaddr + p.memsz if p else vdso + 8192, "r-xp", 0, 0,
                            "[vdso]"))
    maps.sort(key=lambda m: m.start)
    modules = find_modules(_Process(maps), mem)
    for m in modules:  # no map_files here: the files by path, as they are on this host
        if m.file is None and m.path.startswith("/") and os.path.exists(m.path):
            m.file = MappedFile(os.open(m.path, os.O_RDONLY), m.path)
    return kc, mem, modules


def base_name(name):
    """A function's name without GCC's suffixes for its clones (level_c.constprop.0):
    .symtab has them, gdb names the function from the program's DWARF (without
    DWARF it shows level_c.constprop, main[cold]); the only difference allowed."""
    return re.split(r"[.\[]", name, 1)[0] if not name.startswith(".") else name


def summary_threads(d):
    """({tid: [function name]}, summary.json)."""
    with open(os.path.join(d, "summary.json")) as f:
        s = json.load(f)

    def names(frames):
        return [base_name((f["symbol"] or "??").split("+")[0]) for f in frames]
    out = {s["tid"]: names(s["frames"])}
    for t in s["thread_frames"]:
        out[t["tid"]] = names(t["frames"])
    return out, s


def symbol_values(path):
    """{name: st_value} of an ELF file's .symtab and .dynsym (pyelftools)."""
    from elftools.elf.elffile import ELFFile
    from elftools.elf.sections import SymbolTableSection
    out = {}
    with open(path, "rb") as f:
        for sec in ELFFile(f).iter_sections():
            if isinstance(sec, SymbolTableSection):
                for sym in sec.iter_symbols():
                    if sym["st_shndx"] != "SHN_UNDEF":
                        out.setdefault(sym.name.split("@")[0], sym["st_value"])
    return out


def same_function(ours, theirs, values):
    """Our (name, module) names the function gdb names from DWARF (with debug
    files: `mcd trace`): the same name, or an alias at the same address (DWARF
    says __GI_raise where the symbols' rule says raise).  Without debug files
    gdb names from the symbols as we do: assert_same_as_gdb wants the very
    name."""
    name, module = ours
    if name == theirs:
        return True
    if module is None or "??" in (name, theirs):
        return False
    if module not in values:
        values[module] = symbol_values(module)
    v = values[module]
    name = name.split("@")[0]  # a debug file's .symtab: clock_nanosleep@GLIBC_2.2.5
    return name in v and v.get(theirs) == v[name]


def assert_same_as_gdb(d, exe, sysroot=None, program="gdb", early=()):
    """Every thread's function names in dump d's summary.json are gdb's on the
    kernel's own core of the same crash (d/fatcore, the recept's dump_fat_core),
    exactly but for GCC's clone suffixes (base_name); exe and the modules'
    paths under sysroot; early: more gdb commands before the files are loaded
    (threads_by_tid); returns summary.json."""
    __tracebackhide__ = True
    ours, s = summary_threads(d)
    theirs = threads_by_tid(exe, os.path.join(d, "fatcore"), sysroot=sysroot, program=program,
                            early=early)
    # A thread gdb knows from libthread_db alone, without registers in the core
    # (a thread-group leader that exited, "(Exiting)"): no frames to compare.
    theirs = {tid: bt for tid, bt in theirs.items() if bt or tid in ours}
    assert set(ours) == set(theirs), (sorted(ours), sorted(theirs))
    for tid in ours:
        gdb_names = [base_name(n) for n in theirs[tid]]
        assert ours[tid] == gdb_names, \
            "thread %d: ours %s, gdb %s\nsummary.txt:\n%s\ngdb:\n%s" % (
                tid, ours[tid], gdb_names, _text(d),
                theirs[tid].gdb_text[-3000:])
    assert s["frames_end"] is None and all(t["end"] is None for t in s["thread_frames"]), \
        _text(d)
    return s


def _text(d):
    with open(os.path.join(d, "summary.txt"), errors="replace") as f:
        return f.read()
