"""READ: every thread's call stack, unwound from the copied memory.

Each thread starts from its NT_PRSTATUS registers; each step finds the
caller's registers, trying in order:

  signal  the PC is a kernel signal return trampoline (linux.SIGRETURNS):
          the interrupted registers come from the sigcontext on the stack
          (linux.SigFrame)
          (also found by CFI whose CIE says "S", glibc's __restore_rt)
  cfi     the module's call-frame information (read_cfi: .eh_frame through
          .eh_frame_hdr, else .debug_frame), rules evaluated on the copy;
          on 32-bit ARM then its EHABI tables (read_exidx: .ARM.exidx),
          whose EXIDX_CANTUNWIND ends the walk but at the first frame
  lr      (the first frame only) the link register, where the arch has one
  fp      the frame-pointer record (saved fp, return address) at fp
  scan    the first word above SP that points just after a call into code

so a frame is guessed by a scan only when nothing better exists, but for the
first frame whose PC is in no code (a call through a NULL or stale function
pointer): there the scan, which finds the return address the call pushed on
top of the stack, comes before the frame record (the caller's caller's); each frame
says how it was found (the first is "pc").  On aarch64 a return address
signed by pointer authentication (-mbranch-protection, ARMv8.3 CPUs) has its
code cleared with the kernel's mask (NT_ARM_PAC_MASK) before it is used.

It runs after the release, on what was copied (read_process.SnapshotMemory):
a stack not copied ends its thread's walk.  The modules' tables are read
from the very files the process mapped (Module.file, opened before the
release, its reads bounded by the crash's ReadBudget; the vDSO's image
copied then), else from the copied memory.

Everything read is untrusted: at most MAX_FRAMES frames per thread, a scan of
SCAN_BYTES, each step's table work bounded by read_cfi; a frame whose SP goes
down the stack (but into a signal's context) or that repeats ends the
walk, and so does the deadline (the crash's, or MAX_SECONDS for all walks).
Every walk ends with its reason: None when it reached the outermost frame (a
return address of 0 or an undefined one).
"""

import time

from . import elf as E
from .linux import EM_AARCH64, EM_ARM
from .read_process import bisect_right  # the C function, imported there once
from .read_exidx import PC, PT_ARM_EXIDX, ExidxTable, execute as arm_execute
from .read_cfi import (CfiError, EXPRESSION, Image, OFFSET, REGISTER, SAME,
                       Tables, UNDEFINED, VAL_EXPRESSION, VAL_OFFSET, evaluate, file_sections,
                       row_for)

MAX_FRAMES = 1024  # a stack overflow of 16 KiB frames in 8 MiB: 512
MAX_SECONDS = 1.0  # all threads' walks together, at most (the core is written after them)
SCAN_BYTES = 1024
CODE_PEEK = 16  # bytes of code read at a PC to recognise a signal trampoline


class Walk:
    """One thread's frames: tid, frames [(pc, how)] innermost first, and the
    reason the walk ended (None: it reached the outermost frame)."""

    __slots__ = ("tid", "frames", "reason")

    def __init__(self, tid, frames, reason):
        self.tid = tid
        self.frames = frames
        self.reason = reason


def unwind_threads(kc, mem, modules, expired=lambda: False, seconds=MAX_SECONDS):
    """([Walk] for every thread of kc (read_corestream.KernelCore), crashing
    thread first; {module path: the last problem with its CFI}, a table
    that could not be read, where the walk fell back to fp or scan); mem:
    the copied memory (read / read_exact); modules: read_modules.Module
    list; expired() -> True (the crash's deadline) or `seconds` spent end
    every walk (reason "deadline")."""
    end = time.monotonic() + seconds
    u = Unwinder(kc, mem, modules, lambda: time.monotonic() > end or expired())
    try:
        return [u.walk(t) for t in kc.threads], u.problems
    finally:
        u.close()


def pac_mask(kc):
    """The instruction pointers' authentication mask of an aarch64 core
    (NT_ARM_PAC_MASK: struct user_pac_mask {u64 data_mask, insn_mask}, the
    kernel writes it where the CPU signs return addresses), else 0."""
    if kc.arch.machine != EM_AARCH64:
        return 0
    for name, ntype, desc in kc.notes:
        if ntype == E.NT_ARM_PAC_MASK and name == b"LINUX" and len(desc) >= 2 * kc.layout.wordsize:
            return kc.layout.words(2).unpack_from(desc)[1]
    return 0


class Unwinder:
    """The walks of one process: modules' tables read once (close() lets
    them go)."""

    def __init__(self, kc, mem, modules, expired):
        self.arch = kc.arch
        self.L = kc.layout
        self.mem = mem
        self.expired = expired
        self.w = self.L.wordsize
        self.mask = (1 << (8 * self.w)) - 1
        self.word = self.L.word
        code = sorted((p.vaddr, p.vaddr + p.memsz) for p in kc.loads if p.flags & E.PF_X)
        self.code = code
        self.code_starts = [s for s, _ in code]
        spans = []
        for m in modules:
            for p in m.phdrs:
                if p.type == E.PT_LOAD and p.flags & E.PF_X and p.memsz:
                    spans.append((m.bias + p.vaddr, m.bias + p.vaddr + p.memsz, m))
        spans.sort(key=lambda s: s[0])
        self.spans = spans
        self.span_starts = [s for s, _, _ in spans]
        self.images = {}  # Module -> (Image, Tables, ExidxTable), None where there is none
        self.problems = {}
        a = self.arch
        to_dwarf = {pr: n for n, pr in enumerate(a.dwarf) if pr is not None}
        self.fp_dwarf = to_dwarf.get(a.fp_index)
        self.lr_dwarf = to_dwarf.get(a.lr_index)
        sf = a.sigframe
        # the saved registers that have a DWARF number: (offset in sigcontext, number)
        self.sig_regs = [(off, to_dwarf[a.regs.index(name)]) for name, off in sf.regs.items()
                         if a.regs.index(name) in to_dwarf] if sf else []
        self.sig_size = max(sf.regs.values()) + self.w if sf else 0
        self.pac = pac_mask(kc)

    # --- what is where ---------------------------------------------------------
    def is_code(self, v):
        i = bisect_right(self.code_starts, v) - 1
        return i >= 0 and v < self.code[i][1]

    def module_for(self, pc):
        i = bisect_right(self.span_starts, pc) - 1
        if i >= 0 and pc < self.spans[i][1]:
            return self.spans[i][2]
        return None

    def image(self, m):
        """(Image, Tables or None, ExidxTable or None) of module m, made once;
        a table that cannot be read is None and its reason in self.problems."""
        got = self.images.get(m)
        if got is not None:
            return got
        pread = m.file.pread if m.file is not None else None
        if pread is not None:
            image = Image(m.layout, m.phdrs, pread=pread)
        else:
            image = Image(m.layout, m.phdrs, mem=self.mem, bias=m.bias)
        tables = exidx = None
        try:
            if pread is None:
                tables = Tables(image)
            else:
                tables = Tables(image, Image(m.layout, None, pread=pread),
                                lambda: file_sections(pread))
            for p in m.phdrs:
                if p.type == PT_ARM_EXIDX and self.arch.machine == EM_ARM:
                    exidx = ExidxTable(image, p.vaddr, p.memsz)
        except CfiError as e:
            self.problems[m.path] = str(e)
        self.images[m] = (image, tables, exidx)
        return image, tables, exidx

    def close(self):
        self.images = {}

    def code_address(self, v):
        """A return address without its pointer authentication code (aarch64:
        the bits of the kernel's instruction mask cleared from a user address,
        set in a kernel one, as gdb's aarch64_remove_top_bits does)."""
        if not self.pac or v is None:
            return v
        return v | self.pac if v >> 55 & 1 else v & ~self.pac

    def read_word(self, addr):
        raw = self.mem.read_exact(addr & self.mask, self.w)
        if raw is None:
            raise CfiError("stack word at %#x was not copied" % addr)
        return self.word.unpack(raw)[0]

    # --- one thread ---------------------------------------------------------------
    def walk(self, t):
        a = self.arch
        regs = [t.regs[i] if i is not None else None for i in a.dwarf]
        pc = t.pc
        frames = [(pc, "pc")]
        seen = {(pc, t.sp)}
        exact = True  # the PC is where execution stopped, not a return address
        reason = None
        while True:
            if len(frames) >= MAX_FRAMES:
                reason = "%d frames" % MAX_FRAMES
                break
            if self.expired():
                reason = "deadline"
                break
            sp = regs[a.dwarf_sp]
            try:
                step = self.step(regs, pc, exact, len(frames) == 1)
            except CfiError as e:
                reason = str(e)
                break
            if step is None:
                reason = "no CFI, frame record or return address above SP %#x" % sp
                break
            new_regs, new_pc, how = step
            new_pc = self.code_address(new_pc)
            if new_pc is None or new_pc == 0:
                break  # the outermost frame
            new_sp = new_regs[a.dwarf_sp]
            if new_sp is None:
                reason = "no SP after the frame at %#x" % pc
                break
            if new_sp < sp and how != "signal":  # equal: a leaf's frame (arm, aarch64)
                reason = "SP %#x goes down the stack at %#x" % (new_sp, pc)
                break
            if (new_pc, new_sp) in seen:
                reason = "loop at %#x" % new_pc
                break
            if not self.is_code(new_pc):
                reason = "return address %#x is not in code" % new_pc
                break
            seen.add((new_pc, new_sp))
            frames.append((new_pc, how))
            regs, pc, exact = new_regs, new_pc, how == "signal"
        return Walk(t.tid, frames, reason)

    def step(self, regs, pc, exact, first):
        """(caller's regs, caller's PC, how) or None; how "signal": the
        caller's registers are those a signal interrupted (its PC exact)."""
        m = self.module_for(pc)
        tables = exidx = None
        if m is not None:
            image, tables, exidx = self.image(m)
            got = self.signal_frame(image, pc - m.bias, regs)
            if got is not None:
                return got
        rel = (pc if exact else pc - 1) - m.bias if m is not None else None
        if tables is not None:
            try:
                fde = tables.find(rel)
                if fde is not None:
                    return self.cfi_step(fde, regs, rel)
            except CfiError as e:  # a bad table or a rule on memory not copied
                self.problems[m.path] = str(e)
        if exidx is not None:  # after DWARF's: an index entry holds up to the next one
            try:
                insns = exidx.lookup(rel)
                if insns:
                    new = arm_execute(insns, regs, self.read_word)
                    if new is not None:
                        return new, new[PC] & ~1, "cfi"
                if insns is not None and not first:
                    return list(regs), None, "cfi"  # EXIDX_CANTUNWIND, "refuse to unwind"
            except CfiError as e:
                self.problems[m.path] = str(e)
        if first and self.lr_dwarf is not None:
            lr = self.code_address(regs[self.lr_dwarf])
            if lr is not None and self.is_code(lr):
                return list(regs), lr, "lr"
        if first and not self.is_code(pc):
            # A call through a NULL or stale function pointer: the return
            # address it pushed is on top of the stack, and the frame record
            # at fp is its caller's (it would skip the calling function).
            got = self.scan_step(regs)
            if got is not None:
                return got
        got = self.fp_step(regs)
        if got is not None:
            return got
        return self.scan_step(regs)

    # --- the ways to the caller -----------------------------------------------------
    def signal_frame(self, image, rel_pc, regs):
        """The registers a signal interrupted, when rel_pc is a signal return
        trampoline (linux.SIGRETURNS): from the struct sigcontext of the
        rt_sigframe at SP (linux.SigFrame)."""
        a = self.arch
        if not a.sigreturn_code or a.sigframe is None:
            return None
        code = image.read(rel_pc, CODE_PEEK)
        if not any(code.startswith(c) for c in a.sigreturn_code):
            return None
        sf = a.sigframe
        base = regs[a.dwarf_sp] - a.sigreturn_popped + sf.rt_ucontext + sf.uc_mcontext
        raw = self.mem.read_exact(base, self.sig_size)
        if raw is None:
            raise CfiError("signal frame at %#x was not copied" % base)
        new = list(regs)
        for off, n in self.sig_regs:
            new[n] = self.word.unpack_from(raw, off)[0]
        pc = self.word.unpack_from(raw, sf.regs[sf.pc])[0]
        return new, pc, "signal"

    def cfi_step(self, fde, regs, rel_pc):
        """The caller by the CFI row that holds at rel_pc (link-time)."""
        row = row_for(fde, rel_pc, self.L)
        mask = self.mask

        def reg(n):
            v = regs[n] if 0 <= n < len(regs) else None
            if v is None:
                raise CfiError("CFI needs register %d, which is not known" % n)
            return v

        cfa = row.cfa
        if cfa is None:
            raise CfiError("no CFA rule at %#x" % rel_pc)
        if cfa[0] == "reg":
            cfa = (reg(cfa[1]) + cfa[2]) & mask
        else:
            cfa = evaluate(cfa[1], self.L, reg, self.read_word)
        new = list(regs)
        new[self.arch.dwarf_sp] = cfa
        ra = fde.cie.ra
        ra_value = regs[ra] if 0 <= ra < len(regs) else None
        for n, (kind, arg) in row.regs.items():
            if kind == SAME:
                continue
            if kind == UNDEFINED:
                v = None
            elif kind == OFFSET:
                v = self.read_word(cfa + arg)
            elif kind == VAL_OFFSET:
                v = (cfa + arg) & mask
            elif kind == REGISTER:
                v = reg(arg)
            elif kind == EXPRESSION:
                v = self.read_word(evaluate(arg, self.L, reg, self.read_word, cfa))
            elif kind == VAL_EXPRESSION:
                v = evaluate(arg, self.L, reg, self.read_word, cfa)
            else:
                continue
            if n == ra:
                ra_value = v
            if 0 <= n < len(new):
                new[n] = v  # other columns (vector registers ...) are not needed
        if ra_value is not None and self.arch.machine == EM_ARM:
            ra_value &= ~1  # the Thumb bit
        return new, ra_value, "signal" if fde.cie.signal else "cfi"

    def fp_step(self, regs):
        a = self.arch
        if self.fp_dwarf is None:
            return None
        fp = regs[self.fp_dwarf]
        sp = regs[a.dwarf_sp]
        if fp is None or sp is None or fp < sp or fp % self.w or fp - sp > (8 << 20):
            return None
        raw = self.mem.read_exact(fp, 2 * self.w)
        if raw is None:
            return None
        next_fp, ret = self.L.words(2).unpack(raw)
        ret = self.code_address(ret)
        if not self.is_code(ret):
            return None
        new = list(regs)
        new[self.fp_dwarf] = next_fp
        new[a.dwarf_sp] = fp + 2 * self.w
        return new, ret, "fp"

    def scan_step(self, regs):
        sp = regs[self.arch.dwarf_sp]
        if sp is None:
            return None
        raw = self.mem.read(sp, SCAN_BYTES)
        w = self.w
        for off in range(0, len(raw) - w + 1, w):
            v = self.code_address(self.word.unpack_from(raw, off)[0])
            if self.is_code(v) and self.after_call(v):
                new = list(regs)
                new[self.arch.dwarf_sp] = sp + off + w
                return new, v, "scan"
        return None

    def after_call(self, ret):
        """Whether the code just before ret looks like a call (x86: call rel32
        or call through a register or memory; aarch64: BL or BLR); True
        where that cannot be told."""
        m = self.module_for(ret)
        if m is None:
            return True  # code of no module (JIT): no way to tell
        image = self.image(m)[0]
        rel = ret - m.bias
        name = self.arch.name
        if name in ("x86_64", "i386"):
            code = image.read(rel - 7, 7)
            if len(code) < 7:
                return False
            if code[2] == 0xE8:
                return True
            return any(code[7 - n] == 0xFF and (code[8 - n] >> 3) & 7 == 2
                       for n in (2, 3, 4, 6, 7))
        if name == "aarch64":
            code = image.read(rel - 4, 4)
            if len(code) < 4:
                return False
            insn = self.L.u32.unpack(code)[0]
            return insn & 0xFC000000 == 0x94000000 or insn & 0xFFFFFC1F == 0xD63F0000
        return True
