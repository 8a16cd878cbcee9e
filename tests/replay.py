"""Test helper: replay the handler's READ/DECIDE stages on a kernel core file.

A kernel core written with core_pattern set to a file holds the memory a live
process would have; ReplayProcess serves it like /proc/PID, so the planner and
writer can be exercised and bisected without crashing anything.
"""

import os

from minicoredumper.formats import elf as E
from minicoredumper.read.corestream import read_kernel_core
from minicoredumper.read.process import Mapping


class CoreMemory:
    def __init__(self, fd, kc):
        self.fd = fd
        self.kc = kc
        self.bytes_read = 0

    def read(self, addr, size):
        out = b""
        while size > 0:
            p = next((p for p in self.kc.loads if p.vaddr <= addr < p.vaddr + p.filesz), None)
            if p is None:
                break
            n = min(size, p.vaddr + p.filesz - addr)
            b = os.pread(self.fd, n, p.offset + addr - p.vaddr)
            out += b
            if len(b) < n:
                break
            addr += n
            size -= n
        return out

    def read_exact(self, addr, size):
        b = self.read(addr, size)
        return b if len(b) == size else None

    def read_cstring(self, addr, limit=4096):
        b = self.read(addr, limit)
        nul = b.find(b"\0")
        return b[:nul] if nul >= 0 else None

    def close(self):
        pass


class ReplayProcess:
    """A crashed process reconstructed from a full kernel core."""

    def __init__(self, core_path):
        self.fd = os.open(core_path, os.O_RDONLY)
        self.kc = read_kernel_core(self.fd)
        self.mem = CoreMemory(self.fd, self.kc)
        self.dir = "/nonexistent"
        files = {s: (p, o) for s, e, o, p in self.kc.files}
        self.maps = []
        for p in self.kc.loads:
            path, pgoff = files.get(p.vaddr, (b"", 0))
            perms = ("r" if p.flags & E.PF_R else "-") + ("w" if p.flags & E.PF_W else "-") + (
                "x" if p.flags & E.PF_X else "-") + "p"
            self.maps.append(Mapping(p.vaddr, p.vaddr + p.memsz, perms,
                                     pgoff * self.kc.file_page_size, 1 if path else 0,
                                     path.decode()))

    def mapping_for(self, addr):
        return next((m for m in self.maps if m.start <= addr < m.end), None)

    def close(self):
        os.close(self.fd)
