"""Stacks that are not where the SP says, on synthetic kernel cores of the four
architectures: KernelCore.stack_for (an SP in the guard gap or a PROT_NONE guard
below a stack), read_stack.interrupted_contexts (the struct sigcontext of a signal
frame, laid out as linux.SigFrame says), and the plan they give.  The layouts
themselves are checked against the real kernel on x86_64 and i386
(tests/host/test_odd_stacks.py) and against the kernel's UAPI headers of the
cross compilers (test_sigcontext_offsets_match_the_uapi_headers)."""

import os
import shutil
import subprocess

import pytest
from elftools.elf.elffile import ELFFile

from minicoredumper import elf as E
from minicoredumper.decide_plan import PRIO_ESSENTIAL, Planner
from minicoredumper.linux import ARCHES, EM_386, EM_AARCH64, EM_ARM, EM_X86_64
from minicoredumper.read_stack import MAX_ANCHOR_HITS, interrupted_contexts
from test_elf import FakeMemory as _FakeMemory, _read_core, fake_kernel_core

RW, RX = E.PF_R | E.PF_W, E.PF_R | E.PF_X
CODE = 0x10000
STACK = 0x7ff00000          # the main stack: [STACK, STACK + 1 MiB)
ALT = 0x50000000            # a sigaltstack: [ALT, ALT + 256 KiB)
GUARDED = 0x40010000        # a thread stack above a 64 KiB PROT_NONE guard
LOADS = [(CODE, 0x1000, 0, RX), (0x40000000, 0x10000, 0, 0), (GUARDED, 0x100000, 0x100000, RW),
         (ALT, 0x40000, 0x40000, RW), (STACK, 0x100000, 0x100000, RW)]
CASES = [(EM_X86_64, E.ELFCLASS64), (EM_AARCH64, E.ELFCLASS64), (EM_386, E.ELFCLASS32),
         (EM_ARM, E.ELFCLASS32)]
# segment registers as the kernel reports them (x86_64; i386 under x86_64)
SEGMENTS = {"cs": 0x33, "ss": 0x2b, "ds": 0x2b, "es": 0x2b}


class FakeMemory(_FakeMemory):
    def read_exact(self, addr, size):
        data = self.read(addr, size)
        return data if len(data) == size else None


def core(machine, elfclass, sp, **regs):
    kc = _read_core(fake_kernel_core(machine, elfclass, LOADS, tids=(100,)))
    t = kc.threads[0]
    names = kc.arch.regs
    values = list(t.regs)
    for name, value in dict(SEGMENTS, **regs).items():
        if name in names:
            values[names.index(name)] = value
    values[kc.arch.sp_index] = sp
    t.regs = tuple(values)
    t.sp = sp
    return kc


@pytest.mark.parametrize("machine,elfclass", CASES)
def test_stack_for_finds_the_stack_an_overflow_left(machine, elfclass):
    kc = core(machine, elfclass, STACK)
    by = kc.stack_for
    assert by(STACK + 0x800).vaddr == STACK                     # on the stack
    assert by(STACK - 16).vaddr == STACK                        # in the guard gap
    assert by(STACK - (1 << 20)).vaddr == STACK                 # 256 pages below
    assert by(STACK - (1 << 20) - 8) is None                    # further: not its own
    assert by(GUARDED - 0x100).vaddr == GUARDED                 # in the PROT_NONE guard
    assert by(0x40000000 - 0x1000).vaddr == GUARDED             # below it, in the gap
    assert by(ALT - 0x100).vaddr == ALT
    assert by(CODE + 0x1000 + 0x100) is None                    # code lies between
    assert by(CODE + 0x10) is not None                          # a readable mapping holds it


class Proc:
    def __init__(self, mem):
        self.mem = mem
        self.maps = []


def plan_stacks(kc, mem, cap=0):
    recept = {"stacks": {"dump_stacks": True, "first_thread_only": True, "max_stack_size": cap}}
    p = Planner(kc, Proc(mem), [], recept)
    p.stacks()
    return p.plan


@pytest.mark.parametrize("machine,elfclass", CASES)
def test_an_overflowed_stack_is_dumped_from_its_start(machine, elfclass):
    kc = core(machine, elfclass, STACK - 0x3000)
    plan = plan_stacks(kc, FakeMemory({}), cap=2048)
    assert [(r.start, r.size, r.prio) for r in plan.regions] == [(STACK, 2048, PRIO_ESSENTIAL)]
    assert "a stack overflow" in plan.log[0][1]


def sigcontext(kc, sp, pc, mode_ok=True):
    """The bytes of a struct sigcontext the kernel would write for (sp, pc)."""
    sf = kc.arch.sigframe
    L = kc.layout
    t = kc.threads[0]
    b = bytearray(sf.size)
    for o, n, v in sf.anchor + sf.check:
        value = t.regs[kc.arch.regs.index(v)] if isinstance(v, str) else v
        b[o:o + n] = value.to_bytes(n, "little")
    L.word.pack_into(b, sf.regs[sf.sp], sp)
    L.word.pack_into(b, sf.regs[sf.pc], pc)
    if sf.mode is not None:
        name, mask, want = sf.mode
        L.word.pack_into(b, sf.regs[name], want if mode_ok else mask)
    return bytes(b)


@pytest.mark.parametrize("machine,elfclass", CASES)
def test_a_handler_on_a_sigaltstack_dumps_the_interrupted_stack(machine, elfclass):
    """The crashing SP on the sigaltstack, a sigcontext 1 KiB above it whose SP is on
    the main stack: that stack's top is planned too, as essential."""
    sp = ALT + 0x3f000
    kc = core(machine, elfclass, sp)
    where = sp + 0x400
    stack = bytearray(0x1000)  # from SP less the red zone
    sc = sigcontext(kc, STACK + 0x800, CODE + 0x10)
    at = where - sp + kc.arch.red_zone
    stack[at:at + len(sc)] = sc
    mem = FakeMemory({sp - kc.arch.red_zone: bytes(stack)})
    found = interrupted_contexts(kc, mem, kc.threads[0])
    assert [(c.address, c.sp, c.pc) for c in found] == [(where, STACK + 0x800, CODE + 0x10)]
    starts = [r.start for r in plan_stacks(kc, mem, cap=2048).regions if r.prio == PRIO_ESSENTIAL]
    assert STACK + 0x800 - kc.arch.red_zone in starts


@pytest.mark.parametrize("machine,elfclass", CASES)
def test_implausible_sigcontexts_are_not_taken(machine, elfclass):
    sp = ALT + 0x3f000
    kc = core(machine, elfclass, sp)
    good = sigcontext(kc, STACK + 0x800, CODE + 0x10)
    bad = [sigcontext(kc, STACK + 0x800, 0x1234),            # PC in no code
           sigcontext(kc, 0x1000, CODE + 0x10),              # SP on no stack
           good[:-8]]                                        # cut off by unreadable memory
    if kc.arch.sigframe.mode is not None:
        bad.append(sigcontext(kc, STACK + 0x800, CODE + 0x10, mode_ok=False))  # kernel mode
    # the anchor alone, over and over: the search stops after MAX_ANCHOR_HITS
    sf = kc.arch.sigframe
    first = sf.anchor[0][0]
    anchor = good[first:first + sum(n for _, n, _ in sf.anchor)]
    bad.append(bytes(first) + anchor * (MAX_ANCHOR_HITS * 4))
    low = sp - kc.arch.red_zone
    for stack in bad:
        assert interrupted_contexts(kc, FakeMemory({low: stack}), kc.threads[0]) == []
    assert len(interrupted_contexts(kc, FakeMemory({low: good}), kc.threads[0])) == 1


# --- the layouts against the kernel's UAPI headers and glibc's ucontext_t ---------------
# (SigFrame field, C member) per architecture: each compiler's own headers give
# the offsets (<signal.h>'s struct sigcontext: the kernel's <asm/sigcontext.h> on
# arm and aarch64, glibc's copy of it on x86; <sys/ucontext.h>); rt_ucontext is
# sizeof(siginfo_t) where struct rt_sigframe starts with the siginfo (arm, aarch64).
HEADERS = {
    EM_X86_64: ("gcc", "struct sigcontext", {
        "rsp": "rsp", "rip": "rip", "rbp": "rbp", "r8": "r8", "eflags": "eflags"},
        {144: "cs", 146: "gs", 148: "fs", 150: "__pad0"}, None),  # glibc's name of ss
    EM_386: ("i686-linux-gnu-gcc", "struct sigcontext", {
        "esp": "esp", "eip": "eip", "ebp": "ebp", "edi": "edi", "eflags": "eflags"},
        {8: "es", 12: "ds", 60: "cs", 72: "ss"}, None),
    EM_AARCH64: ("aarch64-linux-gnu-gcc", "struct sigcontext", {
        "sp": "sp", "pc": "pc", "pstate": "pstate", "x29": "regs[29]", "x0": "regs[0]"},
        {288: "__reserved"}, "siginfo_t"),
    EM_ARM: ("arm-linux-gnueabihf-gcc", "struct sigcontext", {
        "sp": "arm_sp", "pc": "arm_pc", "cpsr": "arm_cpsr", "r11": "arm_fp", "r12": "arm_ip",
        "r0": "arm_r0"},
        {}, "siginfo_t"),
}


@pytest.mark.parametrize("machine", sorted(HEADERS))
def test_sigcontext_offsets_match_the_uapi_headers(machine, tmp_path):
    cc, struct, regs, anchor, siginfo = HEADERS[machine]
    if shutil.which(cc) is None:
        pytest.skip("%s missing" % cc)
    sf = ARCHES[machine].sigframe
    exprs = ["offsetof(%s, %s)" % (struct, m) for m in regs.values()]
    exprs += ["offsetof(%s, %s)" % (struct, m) for m in anchor.values()]
    exprs += ["offsetof(ucontext_t, uc_mcontext)"]
    if machine == EM_ARM:
        exprs += ["offsetof(ucontext_t, uc_regspace) - offsetof(ucontext_t, uc_mcontext)"]
    if siginfo:
        exprs += ["sizeof(%s)" % siginfo]
    src = tmp_path / "o.c"
    src.write_text("#include <stddef.h>\n#include <signal.h>\n#include <sys/ucontext.h>\n"
                   "const unsigned int offsets[] = {%s};\n"
                   % ", ".join(exprs))
    obj = str(tmp_path / "o.o")
    subprocess.run([cc, "-c", "-o", obj, str(src)], check=True)
    with open(obj, "rb") as f:
        elf = ELFFile(f)
        sym = elf.get_section_by_name(".symtab").get_symbol_by_name("offsets")[0]
        data = elf.get_section(sym["st_shndx"]).data()[sym["st_value"]:][:4 * len(exprs)]
    got = [int.from_bytes(data[i:i + 4], "little") for i in range(0, len(data), 4)]
    want = [sf.regs[name] for name in regs] + list(anchor) + [sf.uc_mcontext]
    if machine == EM_ARM:
        want += [sf.anchor[0][0]]  # struct vfp_sigframe first in uc_regspace
    if siginfo:
        want += [sf.rt_ucontext]
    assert got == want, list(zip(exprs, got, want))
