"""A kernel core file read as the handler reads a crashed process: its head through
read_corestream (KernelCore: threads, registers, PT_LOADs) and its memory through
CoreMemory (read, read_exact as read_process.Memory), for the handler's readers run
on the kernel's own core of a crash (tests, benchmarks)."""

from minicoredumper.read_corestream import read_kernel_core
from minicoredumper.tool_corefile import CoreFile


class CoreMemory:
    """The memory a core file holds (its PT_LOADs' file data)."""

    def __init__(self, path):
        self.core = CoreFile(path)

    def read(self, addr, size):
        """Up to size bytes at addr: shorter where the core holds no more."""
        for p in self.core.loads:
            if p.vaddr <= addr < p.vaddr + p.filesz:
                return self.core.pread(p.offset + addr - p.vaddr,
                                       min(size, p.vaddr + p.filesz - addr))
        return b""

    def read_exact(self, addr, size):
        data = self.read(addr, size)
        return data if len(data) == size else None


def kernel_core(path):
    """(KernelCore, CoreMemory) of the core file at path."""
    with open(path, "rb") as f:
        return read_kernel_core(f.fileno()), CoreMemory(path)
