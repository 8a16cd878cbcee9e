"""READ: the kernel's core stream, up to the end of its notes and no further.

The kernel writes an ELF core to the handler's stdin: ELF header, program
headers, the PT_NOTE data, then memory.  We read exactly the first three and
leave the memory in the pipe (all memory comes from /proc/PID/mem).  The notes
give the threads and their registers, the auxiliary vector and the mapped
files.
"""

import os
from .read_process import bisect_right  # the C function, imported there once

from . import elf as E
from . import linux
from .linux import arch_for_machine
from .files import read_exact

MAX_NOTES_SIZE = 64 << 20
# What the stream head may hold: ELF header, program headers (65535 of 56
# bytes fit in 4 MiB) and notes.  A kernel core has nothing in between.
MAX_HEAD_SIZE = (4 << 20) + MAX_NOTES_SIZE


class CoreFormatError(Exception):
    """The stream is not a core we can parse."""


class Thread:
    """One NT_PRSTATUS: the thread id, its registers and where they are."""

    def __init__(self, tid, regs, arch):
        self.tid = tid
        self.regs = regs
        self.sp = regs[arch.sp_index]
        self.pc = regs[arch.pc_index]
        self.tp = regs[arch.tp_index] if arch.tp_index is not None else None


class KernelCore:
    """The parsed head of the kernel's core: header, phdrs, notes and what they say.

    header_bytes holds the stream's first bytes exactly as read (for fatcore).
    """

    def __init__(self, header_bytes, layout, ehdr, phdrs, notes):
        self.header_bytes = header_bytes
        self.layout = layout
        self.ehdr = ehdr
        self.phdrs = phdrs
        self.notes = notes  # [(name, type, desc)] in kernel order
        self.arch = arch_for_machine(ehdr.machine)
        self.loads = [p for p in phdrs if p.type == E.PT_LOAD]
        self._starts = self._sorted = None
        self.threads = []
        self.auxv = {}
        self.files = []  # NT_FILE entries: (start, end, page_offset, path)
        self.file_page_size = 4096
        self.compact_file_notes = {}  # NT_FILE's descs in a compact core (write_core)
        self.siginfo = None  # (signo, code, fault address or None)
        self.sender = None  # (pid, uid) of a process that sent the signal, or None
        self._decode_notes()

    def _decode_notes(self):
        L = self.layout
        K = linux.structs(L)
        a = self.arch
        nregs = len(a.regs)
        regs_struct = L.words(nregs)
        tls_words = []
        for name, ntype, desc in self.notes:
            if name == b"CORE" and ntype == E.NT_PRSTATUS:
                if len(desc) < a.prstatus_reg + regs_struct.size:
                    raise CoreFormatError("NT_PRSTATUS of %d bytes is too short" % len(desc))
                tid = L.s32.unpack_from(desc, a.prstatus_pid)[0]
                regs = regs_struct.unpack_from(desc, a.prstatus_reg)
                self.threads.append(Thread(tid, regs, a))
                tls_words.append(None)
            elif ntype == a.tp_note and name == b"LINUX" and self.threads:
                tls_words[-1] = desc
            elif name == b"CORE" and ntype == E.NT_AUXV:
                for off in range(0, len(desc) - L.auxv.size + 1, L.auxv.size):
                    key, val = L.auxv.unpack_from(desc, off)
                    if key == E.AT_NULL:
                        break
                    self.auxv.setdefault(key, val)
            elif name == b"CORE" and ntype == E.NT_FILE:
                self._decode_files(desc)
            elif ntype == E.NT_SIGINFO and len(desc) >= K.siginfo.size:
                si = K.siginfo.unpack(desc)
                # A fault address only where the kernel raised a fault signal (code > 0);
                # for a signal sent by a process the union holds its pid and uid.
                fault = si.signo in linux.FAULT_SIGNALS and 0 < si.code < 0x80
                self.siginfo = (si.signo, si.code, si.addr if fault else None)
                kill = (K.siginfo_kill.unpack(desc) if si.code in linux.SENDER_CODES
                        and len(desc) >= K.siginfo_kill.size else None)
                self.sender = (kill.pid, kill.uid) if kill else None
        if not self.threads:
            raise CoreFormatError("core has no NT_PRSTATUS note")
        if a.tp_note is not None:
            for t, desc in zip(self.threads, tls_words):
                t.tp = _thread_pointer_from_note(L, a, t, desc)

    def _decode_files(self, desc):
        L = self.layout
        w = L.wordsize
        if len(desc) < 2 * w:
            return
        count, self.file_page_size = L.words(2).unpack_from(desc, 0)
        table = 2 * w
        names = table + count * 3 * w
        if count > len(desc) // (3 * w) or names > len(desc):
            return
        entries = L.words(3)
        paths = desc[names:].split(b"\0")
        for i in range(count):
            start, end, pgoff = entries.unpack_from(desc, table + i * 3 * w)
            path = paths[i] if i < len(paths) else b""
            self.files.append((start, end, pgoff, path))

    def encode_files(self, entries):
        """An NT_FILE desc holding `entries` (same shape as self.files)."""
        L = self.layout
        out = [L.words(2).pack(len(entries), self.file_page_size)]
        triple = L.words(3)
        out += [triple.pack(s, e, o) for s, e, o, _ in entries]
        out += [p + b"\0" for _, _, _, p in entries]
        return b"".join(out)

    def _by_address(self):
        """(PT_LOADs sorted by vaddr, their vaddrs), made once."""
        if self._starts is None:
            self._sorted = sorted(self.loads, key=lambda p: p.vaddr)
            self._starts = [p.vaddr for p in self._sorted]
        return self._sorted, self._starts

    def load_for(self, addr):
        """The kernel's PT_LOAD (a VMA) containing addr, or None (a binary search:
        VMAs do not overlap and the kernel lists them in address order)."""
        loads, starts = self._by_address()
        i = bisect_right(starts, addr) - 1
        if i >= 0 and addr < loads[i].vaddr + loads[i].memsz:
            return loads[i]
        return None

    def is_code(self, addr):
        """addr is in an executable PT_LOAD."""
        p = self.load_for(addr)
        return p is not None and bool(p.flags & E.PF_X)

    def stack_for(self, sp, max_guards=2):
        """The kernel's PT_LOAD of the stack that sp belongs to, or None.

        The readable mapping holding sp (or sp less the red zone); else, for a
        stack overflow, the readable, writable mapping just above sp: sp lies in
        the guard gap the kernel keeps below a stack (linux.STACK_GUARD_GAP_PAGES,
        pages of AT_PAGESZ) or in up to max_guards inaccessible mappings below it
        (a thread stack's PROT_NONE guard), and the stack starts at most the gap
        plus those guards above sp."""
        seg = self.load_for(sp) or self.load_for(sp - self.arch.red_zone)
        if seg is not None and seg.flags & E.PF_R:
            return seg
        loads, starts = self._by_address()
        i = bisect_right(starts, sp)  # the first mapping above sp
        if seg is not None:
            i -= 1  # sp is in an inaccessible mapping: start the walk there
        reach = self.page_size * linux.STACK_GUARD_GAP_PAGES
        for p in loads[i:i + max_guards + 1]:
            if p.vaddr - sp > reach:
                return None
            if p.flags & (E.PF_R | E.PF_W) == E.PF_R | E.PF_W:
                return p
            if p.flags & (E.PF_R | E.PF_W | E.PF_X):
                return None  # something else is mapped between sp and any stack
            reach += p.memsz  # a guard mapping: the stack may begin above it
        return None

    @property
    def page_size(self):
        return self.auxv.get(E.AT_PAGESZ) or self.file_page_size or 4096

    def loads_in(self, start, end):
        """The kernel's PT_LOADs that overlap [start, end), in address order: a
        binary search, then only the overlapping ones (one per VMA a file
        mapping spans), so a check per mapping stays linear in the mappings."""
        loads, starts = self._by_address()
        i = max(0, bisect_right(starts, start) - 1)
        out = []
        while i < len(loads) and loads[i].vaddr < end:
            if start < loads[i].vaddr + loads[i].memsz:
                out.append(loads[i])
            i += 1
        return out

    @property
    def crashing_thread(self):
        return self.threads[0]


def _thread_pointer_from_note(L, arch, thread, desc):
    if not desc:
        return None
    if arch.tp_note == E.NT_386_TLS:
        # The GDT's TLS slots; %gs selects the thread's (index = selector >> 3).
        gs_index = thread.regs[arch.regs.index("gs")] >> 3
        ud = linux.structs(L).user_desc
        for off in range(0, len(desc) - ud.size + 1, ud.size):
            entry = ud.unpack(desc, off)
            if entry.entry_number == gs_index:
                return entry.base_addr
        return None
    return L.word.unpack_from(desc, 0)[0] if len(desc) >= L.wordsize else None


class StreamHead:
    """The head of a forward-only stream as pread(offset, size).

    A read beyond what was read so far reads on from the stream, exactly as
    far as asked (never more: what follows stays in the stream for the fat
    core); every byte read is kept in `data`, in stream order.  CoreFormatError
    if the stream ends first or the head would grow beyond `limit` bytes."""

    def __init__(self, fd, limit):
        self.fd = fd
        self.limit = limit
        self.data = b""

    def _read(self, n):
        return os.read(self.fd, n)

    def pread(self, offset, size):
        end = offset + size
        if end > len(self.data):
            if end > self.limit:
                raise CoreFormatError("the core's head would exceed %d bytes (up to offset %#x)"
                                      % (self.limit, end))
            try:
                self.data += read_exact(self._read, end - len(self.data))
            except EOFError:
                raise CoreFormatError("core stream ended early") from None
        return self.data[offset:end]


def read_kernel_core(fd):
    """Read the ELF header, program headers and notes from fd; nothing more."""
    stream = StreamHead(fd, MAX_HEAD_SIZE)
    try:
        L, ehdr, phdrs = E.read_headers(stream.pread, etype=E.ET_CORE)
    except E.ElfFormatError as e:
        raise CoreFormatError(str(e)) from None
    note_phdrs = [p for p in phdrs if p.type == E.PT_NOTE]
    head_size = len(stream.data)
    notes_end = max((p.offset + p.filesz for p in note_phdrs), default=head_size)
    if notes_end - head_size > MAX_NOTES_SIZE:
        raise CoreFormatError("notes of %d bytes exceed the limit" % (notes_end - head_size))
    notes = []
    for p in note_phdrs:
        notes.extend(L.iter_notes(stream.pread(p.offset, p.filesz)))
    return KernelCore(stream.data, L, ehdr, phdrs, notes)
