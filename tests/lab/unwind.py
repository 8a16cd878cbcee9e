"""The unwinder's inputs from a kernel core file on disk, for tests and tools:
the kernel's notes (read_corestream.KernelCore), its memory, and the mapped
objects (read_modules.Module, found through NT_FILE and the vDSO's auxv entry;
their files read by path, as they are still on this host)."""

import os

from minicoredumper import elf as E
from minicoredumper.read_corestream import read_kernel_core
from minicoredumper.read_modules import find_modules
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
    return kc, mem, find_modules(_Process(maps), mem)
