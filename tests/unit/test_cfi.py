"""The CFI table parsers (read_cfi) and the unwinder (read_unwind) without a crash:
pyelftools' own CFI decoder as the oracle on real binaries (Debian's libc, ld.so,
python3, sleep, the i386 and arm64 C libraries, our test programs, one with only
.debug_frame), DWARF expressions, and fuzzing: corrupted tables and stacks end in
CfiError or a walk's reason, within the bounds, never another exception."""

import os
import random
import shutil
import struct
import subprocess
import time

import pytest

from minicoredumper import elf as E
from minicoredumper import read_cfi as C
from minicoredumper.linux import ARCHES, EM_X86_64
from minicoredumper.read_modules import MappedFile, Module
from minicoredumper.read_unwind import MAX_FRAMES, unwind_threads

BINARIES = ["/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2", "/usr/bin/python3",
            "/usr/bin/sleep", "/usr/i686-linux-gnu/lib/libc.so.6",
            "/usr/aarch64-linux-gnu/lib/libc.so.6"]
ORACLE_FDES = 2500  # FDEs compared per binary (evenly spread over its table)


def _open(path):
    fd = os.open(path, os.O_RDONLY)

    def pread(offset, size):
        return os.pread(fd, size, offset)
    L, ehdr, phdrs = E.read_headers(pread)
    tables = C.Tables(C.Image(L, phdrs, pread=pread), C.Image(L, None, pread=pread),
                      lambda: C.file_sections(pread))
    return fd, L, tables


def _agree(row, theirs):
    """Our Row against one row of pyelftools' decoded table: the CFA rule and
    every register rule."""
    cfa = theirs["cfa"]
    if cfa.expr is not None:
        ok = row.cfa[0] == "expr"
    else:
        ok = row.cfa == ("reg", cfa.reg, cfa.offset)
    kinds = {"OFFSET": C.OFFSET, "VAL_OFFSET": C.VAL_OFFSET, "REGISTER": C.REGISTER,
             "UNDEFINED": C.UNDEFINED, "SAME_VALUE": C.SAME, "EXPRESSION": C.EXPRESSION,
             "VAL_EXPRESSION": C.VAL_EXPRESSION}
    for reg, rule in theirs.items():
        if reg in ("pc", "cfa"):
            continue
        mine = row.regs.get(reg)
        if mine is None or mine[0] != kinds[rule.type]:
            return False
        if rule.type in ("OFFSET", "VAL_OFFSET", "REGISTER") and mine[1] != rule.arg:
            return False
    return ok


def check_against_pyelftools(path, debug_frame=False):
    """(FDEs compared, rows compared); AssertionError at the first disagreement."""
    from elftools.dwarf.callframe import FDE
    from elftools.elf.elffile import ELFFile
    fd, L, tables = _open(path)
    try:
        with open(path, "rb") as f:
            dw = ELFFile(f).get_dwarf_info()
            entries = dw.CFI_entries() if debug_frame else dw.EH_CFI_entries()
            fdes = [e for e in entries if isinstance(e, FDE)]
            step = max(1, len(fdes) // ORACLE_FDES)
            n_fdes = n_rows = 0
            for e in fdes[::step]:
                try:
                    decoded = e.get_decoded().table
                except Exception:  # pyelftools 0.33 knows no DW_CFA_GNU_args_size ...
                    continue
                start = e["initial_location"]
                ours = tables.find(start)
                assert ours is not None and (ours.start, ours.end) == (
                    start, start + e["address_range"]), (path, hex(start))
                for theirs in decoded:
                    row = C.row_for(ours, theirs["pc"], L)
                    assert _agree(row, theirs), (path, hex(start), hex(theirs["pc"]), theirs,
                                                 row.cfa, row.regs)
                    n_rows += 1
                n_fdes += 1
    finally:
        os.close(fd)
    return n_fdes, n_rows


@pytest.mark.parametrize("path", BINARIES)
def test_tables_agree_with_pyelftools_on_debian_binaries(path):
    if not os.path.exists(path):
        pytest.skip("%s is not installed" % path)
    n_fdes, n_rows = check_against_pyelftools(path)
    assert n_fdes > 50 and n_rows > n_fdes


@pytest.mark.parametrize("name", ["crash3", "threads8", "crash3_static", "crash3_i386"])
def test_tables_agree_with_pyelftools_on_our_programs(programs, name):
    if name not in programs:
        pytest.skip("no compiler for %s" % name)
    n_fdes, _ = check_against_pyelftools(programs[name])
    assert n_fdes >= 4  # main, level_a, level_b, level_c at least


def test_debug_frame_only(tmp_path):
    """A program built without .eh_frame: its CFI is in .debug_frame only."""
    src = os.path.join(os.path.dirname(__file__), "..", "programs", "crash3.c")
    out = str(tmp_path / "crash3_df")
    subprocess.run(["gcc", "-g", "-O0", "-fno-asynchronous-unwind-tables", "-fno-unwind-tables",
                    "-I", os.path.dirname(src), src, "-o", out], check=True)
    n_fdes, _ = check_against_pyelftools(out, debug_frame=True)
    assert n_fdes >= 4


# --- DWARF expressions -------------------------------------------------------------

L64 = E.Layout(E.ELFCLASS64)


def _eval(expr, regs=None, mem=None, push=None):
    regs = regs or {}
    mem = mem or {}

    def reg(n):
        if n not in regs:
            raise C.CfiError("no register %d" % n)
        return regs[n]

    def word(a):
        if a not in mem:
            raise C.CfiError("no memory at %#x" % a)
        return mem[a]
    return C.evaluate(bytes(expr), L64, reg, word, push)


def test_plt_cfa_expression_of_x86_64():
    """The CFA of a lazy-binding PLT entry (binutils' x86-64 PLT CFI):
    rsp + 8 + ((rip & 15) >= 11 ? 8 : 0)."""
    expr = [0x77, 8, 0x80, 0, 0x3F, 0x1A, 0x3B, 0x2A, 0x33, 0x24, 0x22]
    assert _eval(expr, {7: 0x1000, 16: 0x5000}) == 0x1008
    assert _eval(expr, {7: 0x1000, 16: 0x500B}) == 0x1010


def test_signal_frame_cfa_expression_of_glibc():
    """glibc's __restore_rt: CFA = *(rsp + 160) (the sigcontext's rsp)."""
    assert _eval([0x77, 0xA0, 0x01, 0x06], {7: 0x2000}, {0x20A0: 0x7777}) == 0x7777


@pytest.mark.parametrize("expr", [
    [0x2F, 0xFD, 0xFF],            # DW_OP_skip -3: to itself, forever
    [0x30] * 100,                  # a stack deeper than MAX_EXPR_STACK
    [0x06],                        # deref of nothing
    [0x31, 0x30, 0x1B],            # divide by zero
    [0x15, 9],                     # pick beyond the stack
    [0xFF],                        # no such operation
    [0x0E, 1, 2],                  # const8u cut short
    [0x28, 0x10, 0x00],            # bra of nothing
    [0x72, 0x08],                  # breg2: no such register
])
def test_bad_expressions_raise_cfi_error(expr):
    with pytest.raises(C.CfiError):
        _eval(expr)


# --- fuzzing -------------------------------------------------------------------------

class CorruptedImage(C.Image):
    """An object's bytes with random bytes changed (in the CFI sections)."""

    def __init__(self, data, layout, phdrs, rng, spans, n):
        buf = bytearray(data)
        for _ in range(n):
            start, end = rng.choice(spans)
            buf[rng.randrange(start, end)] = rng.randrange(256)
        self.buf = bytes(buf)
        super().__init__(layout, phdrs, pread=lambda o, s: self.buf[o:o + s])


def test_corrupted_tables_end_in_cfi_error_within_bounds():
    path = "/lib/x86_64-linux-gnu/libc.so.6"
    with open(path, "rb") as f:
        data = f.read()

    def pread(o, s):
        return data[o:o + s]
    L, ehdr, phdrs = E.read_headers(pread)
    secs = C.file_sections(pread)
    hdr = next(p for p in phdrs if p.type == C.PT_GNU_EH_FRAME)
    eh_off = secs[b".eh_frame"][0]
    spans = [(hdr.offset, hdr.offset + min(hdr.filesz, 64)),
             (hdr.offset, hdr.offset + hdr.filesz),
             (eh_off, eh_off + secs[b".eh_frame"][2])]
    text = next(p for p in phdrs if p.type == E.PT_LOAD and p.flags & E.PF_X)
    rng = random.Random(13)
    outcomes = {"ok": 0, "error": 0}
    t0 = time.monotonic()
    for round_ in range(60):
        image = CorruptedImage(data, L, phdrs, rng, spans, rng.choice((1, 8, 64, 512)))
        try:
            tables = C.Tables(image, C.Image(L, None, pread=lambda o, s: image.buf[o:o + s]),
                              lambda: C.file_sections(lambda o, s: image.buf[o:o + s]))
        except C.CfiError:
            outcomes["error"] += 1
            continue
        for _ in range(40):
            pc = rng.randrange(text.vaddr, text.vaddr + text.memsz)
            try:
                fde = tables.find(pc)
                if fde is not None:
                    C.rows(fde, L)
                    C.row_for(fde, pc, L)
                outcomes["ok"] += 1
            except C.CfiError:
                outcomes["error"] += 1
    assert outcomes["ok"] and outcomes["error"], outcomes
    assert time.monotonic() - t0 < 60


def test_instruction_and_state_bounds():
    """CFA instructions beyond MAX_INSNS, remember_state beyond MAX_STATE_STACK,
    restore_state of nothing: CfiError."""
    cie = C.CIE()
    cie.code_align, cie.data_align, cie.ra, cie.fde_enc, cie.has_z, cie.signal = \
        1, -8, 16, 0, False, False
    cie.insns, cie.insns_at = b"\x0c\x07\x08", 0
    for insns in (b"\x00" * (C.MAX_INSNS + 1), b"\x0a" * (C.MAX_STATE_STACK + 1), b"\x0b",
                  b"\x0e"[:1]):
        fde = C.FDE()
        fde.cie, fde.start, fde.end, fde.insns, fde.insns_at = cie, 0, 100, insns, 0
        with pytest.raises(C.CfiError):
            C.rows(fde, L64)


class _Load:
    def __init__(self, vaddr, memsz, flags):
        self.vaddr, self.memsz, self.flags, self.type = vaddr, memsz, flags, E.PT_LOAD


class _Thread:
    def __init__(self, tid, regs, arch):
        self.tid, self.regs = tid, regs
        self.sp, self.pc = regs[arch.sp_index], regs[arch.pc_index]


class _Core:
    def __init__(self, loads, threads):
        self.arch = ARCHES[EM_X86_64]
        self.layout = L64
        self.loads = loads
        self.threads = threads


class _Memory:
    def __init__(self, base, data):
        self.base, self.data = base, data

    def read(self, addr, size):
        if self.base <= addr < self.base + len(self.data):
            return self.data[addr - self.base:addr - self.base + size]
        return b""

    def read_exact(self, addr, size):
        b = self.read(addr, size)
        return b if len(b) == size else None


def _module(path, base):
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    L, ehdr, phdrs = E.read_headers(lambda o, s: head[o:o + s])
    return Module(path, base, L, ehdr, phdrs, MappedFile(os.open(path, os.O_RDONLY), path)), \
        phdrs


def test_walks_on_hostile_stacks_end_within_bounds():
    """Random stacks sprinkled with code addresses, frame records that point at
    themselves, registers anywhere: every walk ends (reason or outermost) within
    MAX_FRAMES, no exception escapes."""
    libc, phdrs = _module("/lib/x86_64-linux-gnu/libc.so.6", 0x7F0000000000)
    text = next(p for p in phdrs if p.type == E.PT_LOAD and p.flags & E.PF_X)
    code = (libc.bias + text.vaddr, libc.bias + text.vaddr + text.memsz)
    stack_base, stack_size = 0x7FFF00000000, 64 << 10
    loads = [_Load(code[0], code[1] - code[0], E.PF_X | E.PF_R),
             _Load(stack_base, stack_size, E.PF_R | E.PF_W)]
    arch = ARCHES[EM_X86_64]
    rng = random.Random(5)
    t0 = time.monotonic()
    depth = {}
    for round_ in range(40):
        words = []
        dense = rng.choice((0.3, 0.9, 0.98))  # the share of words that point into code
        for i in range(stack_size // 8):
            r = rng.random()
            if r < dense:
                words.append(rng.randrange(*code))
            elif r < dense + 0.01:
                words.append(stack_base + rng.randrange(stack_size))
            elif r < dense + 0.015:
                words.append(stack_base + i * 8)  # points at itself: a loop
            else:
                words.append(rng.getrandbits(64))
        mem = _Memory(stack_base, struct.pack("<%dQ" % len(words), *words))
        threads = []
        for tid in range(4):
            regs = [rng.getrandbits(64) for _ in arch.regs]
            regs[arch.sp_index] = stack_base + rng.randrange(0, stack_size, 8)
            regs[arch.pc_index] = rng.randrange(*code)
            regs[arch.regs.index("rbp")] = stack_base + rng.randrange(0, stack_size, 8)
            threads.append(_Thread(tid, regs, arch))
        walks, _ = unwind_threads(_Core(loads, threads), mem, [libc])
        assert len(walks) == 4
        for w in walks:
            assert 1 <= len(w.frames) <= MAX_FRAMES
            assert w.reason is None or isinstance(w.reason, str)
            depth[len(w.frames)] = w.reason
    assert max(depth) > 10  # the walks went deep, not only one step
    assert time.monotonic() - t0 < 60


def test_deadline_ends_every_walk():
    libc, phdrs = _module("/lib/x86_64-linux-gnu/libc.so.6", 0x7F0000000000)
    text = next(p for p in phdrs if p.type == E.PT_LOAD and p.flags & E.PF_X)
    pc = libc.bias + text.vaddr + 0x100
    arch = ARCHES[EM_X86_64]
    regs = [0] * len(arch.regs)
    regs[arch.sp_index], regs[arch.pc_index] = 0x1000, pc
    walks, _ = unwind_threads(_Core([_Load(pc, 16, E.PF_X)], [_Thread(1, regs, arch)]),
                           _Memory(0, b""), [libc], expired=lambda: True)
    assert walks[0].reason == "deadline" and len(walks[0].frames) == 1


# --- 32-bit ARM: EHABI (.ARM.exidx / .ARM.extab) ----------------------------------------

ARMHF_LIBC = "/usr/arm-linux-gnueabihf/lib/libc.so.6"


def test_exidx_agrees_with_pyelftools_on_the_armhf_c_library():
    """For every index entry of Debian's armhf libc, the instructions our lookup
    gives at the function's start are those pyelftools' EHABI decoder reads
    (compact models 0, 1, 2; generic personalities' data is ours alone)."""
    from elftools.elf.elffile import ELFFile
    from minicoredumper.read_exidx import PT_ARM_EXIDX, ExidxTable
    if not os.path.exists(ARMHF_LIBC):
        pytest.skip("no armhf C library")
    fd = os.open(ARMHF_LIBC, os.O_RDONLY)
    try:
        def pread(offset, size):
            return os.pread(fd, size, offset)
        L, ehdr, phdrs = E.read_headers(pread)
        text = next(p for p in phdrs if p.type == E.PT_LOAD and p.flags & E.PF_X)
        assert text.vaddr == text.offset  # pyelftools' offsets are our addresses
        ex = next(p for p in phdrs if p.type == PT_ARM_EXIDX)
        table = ExidxTable(C.Image(L, phdrs, pread=pread), ex.vaddr, ex.memsz)
        compared = cant = 0
        with open(ARMHF_LIBC, "rb") as f:
            for info in ELFFile(f).get_ehabi_infos():
                for i in range(info.num_entry()):
                    e = info.get_entry(i)
                    ours = table.lookup(e.function_offset)
                    if not e.unwindable:
                        assert ours == b"", hex(e.function_offset)
                        cant += 1
                    elif e.bytecode_array is not None:
                        assert list(ours) == e.bytecode_array, hex(e.function_offset)
                        compared += 1
        assert compared > 500 and cant
    finally:
        os.close(fd)


def test_arm_unwind_instructions():
    from minicoredumper.read_exidx import execute
    mem = {0x1000: 4, 0x1004: 5, 0x1008: 0x4001, 0x100C: 0x99}

    def word(a):
        if a not in mem:
            raise C.CfiError("no memory at %#x" % a)
        return mem[a]
    regs = [None] * 16
    regs[13], regs[14] = 0x1000, 0x7777
    # pop {r4, r5, lr}; finish
    r = execute(bytes([0xA9, 0xB0]), regs, word)
    assert (r[4], r[5], r[13], r[15]) == (4, 5, 0x100C, 0x4001)
    # vsp += 12; pop {r4} under mask: 0x80 0x01
    r = execute(bytes([0x02, 0x80, 0x01]), regs, word)
    assert (r[4], r[13], r[15]) == (0x99, 0x1010, 0x7777)  # no pc popped: pc = lr
    assert execute(bytes([0x80, 0x00]), regs, word) is None  # refuse to unwind
    for bad in ([0xB4], [0xB1, 0x00], [0x9D], [0x80], [0xB2], [0xFF], [0x01, 0x80, 0xFF]):
        with pytest.raises(C.CfiError):
            execute(bytes(bad), regs, word)


def test_corrupted_exidx_tables_end_in_cfi_error():
    from minicoredumper.read_exidx import PT_ARM_EXIDX, ExidxTable, execute
    if not os.path.exists(ARMHF_LIBC):
        pytest.skip("no armhf C library")
    with open(ARMHF_LIBC, "rb") as f:
        data = f.read()
    L, ehdr, phdrs = E.read_headers(lambda o, s: data[o:o + s])
    ex = next(p for p in phdrs if p.type == PT_ARM_EXIDX)
    text = next(p for p in phdrs if p.type == E.PT_LOAD and p.flags & E.PF_X)
    rng = random.Random(3)
    regs = [rng.getrandbits(32) for _ in range(16)]
    seen = {"ok": 0, "error": 0}
    for _ in range(40):
        image = CorruptedImage(data, L, phdrs, rng, [(ex.offset, ex.offset + ex.filesz)], 64)
        table = ExidxTable(image, ex.vaddr, ex.memsz)
        for _ in range(50):
            try:
                insns = table.lookup(rng.randrange(text.vaddr, text.vaddr + text.memsz))
                if insns:
                    execute(insns, regs, lambda a: rng.getrandbits(32))
                seen["ok"] += 1
            except C.CfiError:
                seen["error"] += 1
    assert seen["ok"] and seen["error"], seen


def test_the_vdso_tables_are_read_from_its_image_copied_while_held():
    """The crashed process's vDSO has no file: find_modules copies its image
    while the process is held, and the unwinder reads its .eh_frame_hdr from
    that copy, with nothing of it in the copied memory (the embedded recept
    dumps only its identity)."""
    from minicoredumper.read_modules import find_modules
    from minicoredumper.read_process import Process
    from minicoredumper.read_unwind import Unwinder
    with Process(os.getpid()) as proc:
        modules = find_modules(proc, proc.mem)
    vdso = [m for m in modules if m.path == "[vdso]"]
    if not vdso:
        pytest.skip("no vDSO")
    m = vdso[0]
    u = Unwinder(_Core([], []), _Memory(0, b""), [m], lambda: False)
    try:
        _, tables, _ = u.image(m)
        assert tables is not None and tables.hdr is not None and tables.hdr.count > 0
        text = next(p for p in m.phdrs if p.type == E.PT_LOAD)
        assert any(tables.find(pc) for pc in range(text.vaddr, text.vaddr + text.memsz, 16))
    finally:
        u.close()
        modules.close()


def test_every_saved_signal_register_is_one_of_the_arch_registers():
    """The sigframe's register names are the arch's own (the armhf guest's handler
    failed with ValueError when arm's sigcontext said fp/ip for r11/r12)."""
    from minicoredumper import linux
    for a in linux.ARCHES.values():
        if a.sigframe:
            assert set(a.sigframe.regs) <= set(a.regs), a.regs


# --- aarch64: return addresses signed by pointer authentication ------------------------

PAC_C = """
__attribute__((noinline)) int g(int x) { asm volatile("" ::: "memory"); return x * 3; }
__attribute__((noinline)) int f(int x) { return g(x) + 1; }
int main(int argc, char **argv) { (void)argv; return f(argc) ^ 7; }
"""


class _Note:
    """An aarch64 core's head for unwind_threads: its arch, layout, loads,
    threads and notes."""

    def __init__(self, loads, threads, notes):
        from minicoredumper.linux import EM_AARCH64
        self.arch, self.layout = ARCHES[EM_AARCH64], L64
        self.loads, self.threads, self.notes = loads, threads, notes


@pytest.mark.parametrize("masked", [True, False])
def test_aarch64_signed_return_address_is_stripped_with_the_cores_mask(tmp_path, masked):
    """f, built with -mbranch-protection=standard, saved its signed LR
    (paciasp) on the stack and calls g: the return address into main read by
    f's CFI carries a pointer authentication code in bits 54:48 and 63:56.
    With the kernel's NT_ARM_PAC_MASK note it is cleared and the walk goes on
    into main, as gdb's does; without the note (a CPU without PAC) the value
    is no code address and the walk ends there."""
    from elftools.elf.elffile import ELFFile
    from minicoredumper.linux import EM_AARCH64
    if not shutil.which("aarch64-linux-gnu-gcc"):
        pytest.skip("no aarch64-linux-gnu-gcc")
    (tmp_path / "pac.c").write_text(PAC_C)
    exe = str(tmp_path / "pac")
    subprocess.run(["aarch64-linux-gnu-gcc", "-O2", "-static", "-mbranch-protection=standard",
                    "-o", exe, str(tmp_path / "pac.c")], check=True)
    with open(exe, "rb") as fh:
        elf = ELFFile(fh)
        syms = {s.name: s["st_value"] for s in elf.get_section_by_name(".symtab").iter_symbols()
                if s.name in ("f", "main")}
        text = elf.get_section_by_name(".text")
        code, code_at = text.data(), text["sh_addr"]

    def bl_in(func, target=None):
        """The address of the first BL in func (to target, when given)."""
        for a in range(func, func + 64, 4):
            insn = struct.unpack_from("<I", code, a - code_at)[0]
            off = (insn & 0x3FFFFFF) - ((insn & 0x2000000) << 1)
            if insn & 0xFC000000 == 0x94000000 and (target is None or a + 4 * off == target):
                return a
        raise AssertionError("no bl in %#x" % func)

    pc = bl_in(syms["f"])  # f has signed and saved its LR, and calls g
    ret = bl_in(syms["main"], syms["f"]) + 4
    insn_mask = 0xFF7F000000000000  # 48-bit VA: PAC in 63:56 and 54:48
    signed = ret | 0x5B00000000000000 | 0x0023000000000000
    arch = ARCHES[EM_AARCH64]
    sp = 0x7FFFF000
    regs = [0] * len(arch.regs)
    regs[arch.sp_index], regs[arch.pc_index] = sp, pc
    regs[arch.regs.index("x29")], regs[arch.regs.index("x30")] = sp, signed
    # f's frame record (x29, x30) at sp; main's above it, its LR 0: the outermost
    stack = struct.pack("<4Q", sp + 16, signed, 0, 0) + bytes(64)
    notes = [(b"LINUX", E.NT_ARM_PAC_MASK, struct.pack("<2Q", 0x007F000000000000,
                                                          insn_mask))] if masked else []
    exe_module, phdrs = _module(exe, 0)
    loads = [_Load(p.vaddr, p.memsz, p.flags) for p in phdrs if p.type == E.PT_LOAD]
    walks, _ = unwind_threads(_Note(loads, [_Thread(1, regs, arch)], notes),
                              _Memory(sp, stack), [exe_module])
    frames = walks[0].frames
    if masked:
        assert frames == [(pc, "pc"), (ret, "cfi")] and walks[0].reason is None, walks[0].reason
    else:
        assert frames == [(pc, "pc")] and "not in code" in walks[0].reason
