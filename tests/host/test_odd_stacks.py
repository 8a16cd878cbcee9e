"""Stacks that are not where the stack pointer says (issue 12), real kernel, real gdb.

Each crash is compared with gdb's backtrace of the kernel's own full core of the
same program (core_pattern to a file, Crasher.kernel_core):

- a stack overflow, in the main thread (the SP in the kernel's guard gap below the
  stack) and in a thread (the SP in the thread stack's PROT_NONE guard): the SP is
  in no readable mapping, and the stack it overflowed is the mapping above;
- a SIGSEGV handler on a sigaltstack that calls abort(): the crashing thread's SP
  is on the signal stack, its interrupted frames on the main stack, found through
  the struct sigcontext the kernel saved (linux.SigFrame);
- the same handler catching a stack overflow, and on the ordinary stack (where the
  embedded recept's 2 KiB cap used to end the backtrace at the signal frame).
"""

import json
import os
import re

import pytest

from lab import ROOT
from lab.cores import kernel_core
from lab.gdb import backtrace, extract_core, gdb
from minicoredumper.read_stack import interrupted_contexts

CONF = os.path.join(ROOT, "conf")
EEPROM = 4096  # the embedded recept's max_dump_size


def recept(name):
    with open(os.path.join(CONF, name + ".recept.json")) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def kernel_bt(crasher, programs):
    """argv -> gdb's backtrace of the kernel's own core of it (made once)."""
    cache = {}

    def get(argv):
        key = tuple(argv)
        if key not in cache:
            core = crasher.kernel_core(list(argv))
            try:
                cache[key] = backtrace(argv[0], core)
            finally:
                os.unlink(core)
        return cache[key]
    return get


def ours(crasher, argv, name, tmp_path):
    """(gdb's backtrace of our core, the dump directory's size in bytes)."""
    d = crasher.crash(argv, recept(name))
    size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
    return backtrace(argv[0], extract_core(d, str(tmp_path))), size


def show(kernel, bt):
    return "kernel's core: %s\nours: %s\ngdb on ours:\n%s" % (
        " <- ".join(kernel), " <- ".join(bt), bt.gdb_text[-3000:])


# --- stack overflow ---------------------------------------------------------------
# The kernel's core shows about 64 recurse() frames (1 MiB of 16 KiB frames), then
# main, or the thread's start.  Before: one frame (the SP in no mapping, no stack).

@pytest.mark.parametrize("where", ["main", "thread"])
def test_stack_overflow_generic_recept_gives_the_kernel_cores_backtrace(
        crasher, programs, kernel_bt, tmp_path, where):
    argv = [programs["overflow"]] + (["thread"] if where == "thread" else [])
    kernel = kernel_bt(argv)
    assert len(kernel) > 60 and set(kernel[:60]) == {"recurse"}, kernel.gdb_text[-2000:]
    bt, _ = ours(crasher, argv, "generic", tmp_path)
    # The whole stack is dumped: every frame, to main (or the thread's start).
    assert list(bt) == list(kernel), show(kernel, bt)


@pytest.mark.parametrize("where", ["main", "thread"])
def test_stack_overflow_embedded_recept_keeps_frames_within_its_budget(
        crasher, programs, kernel_bt, tmp_path, where):
    """The embedded recept keeps 2 KiB of stack and 4 KiB in all: not main (64
    frames of 16 KiB each are 1 MiB away), but the frame records on the frame-pointer
    chain (16 bytes each, read_stack.frame_records): at least 8 recurse() frames,
    where gdb had one before."""
    argv = [programs["overflow"]] + (["thread"] if where == "thread" else [])
    kernel = kernel_bt(argv)
    bt, size = ours(crasher, argv, "embedded", tmp_path)
    assert len(bt) >= 8 and list(bt[:8]) == list(kernel[:8]), show(kernel, bt)
    assert size <= EEPROM


# --- a signal handler on a sigaltstack -----------------------------------------------
# abort() in the handler: the C library's frames, handler, <signal handler called>,
# then the interrupted level3, level2, level1, main.  Before: the backtrace ended at
# level3 (its caller's frames on a stack that was not dumped).

@pytest.mark.parametrize("name", ["generic", "embedded"])
@pytest.mark.parametrize("mode", ["altstack", "onstack"])
def test_signal_handler_backtrace_goes_on_into_the_interrupted_frames(
        crasher, programs, kernel_bt, tmp_path, name, mode):
    argv = [programs["altstack"]] + (["onstack"] if mode == "onstack" else [])
    kernel = kernel_bt(argv)
    assert kernel[-5:] == ["handler", "level3", "level2", "level1", "main"], kernel.gdb_text
    bt, size = ours(crasher, argv, name, tmp_path)
    assert list(bt) == list(kernel), show(kernel, bt)
    if name == "embedded":
        assert size <= EEPROM


@pytest.mark.parametrize("name", ["generic", "embedded"])
def test_signal_handler_on_a_sigaltstack_catching_a_stack_overflow(
        crasher, programs, kernel_bt, tmp_path, name):
    """Both kinds at once: the interrupted SP is in the guard gap of the main stack.
    The generic recept gives the kernel's 500-odd frames; the embedded one the
    handler's frames and at least 8 recurse() frames (frame records, as above)."""
    argv = [programs["altstack"], "overflow"]
    kernel = kernel_bt(argv)
    assert kernel[-3:] == ["level2", "level1", "main"] and "recurse" in kernel
    bt, size = ours(crasher, argv, name, tmp_path)
    if name == "generic":
        assert list(bt) == list(kernel), show(kernel, bt)
    else:
        first = kernel.index("recurse")
        assert list(bt[:first + 8]) == list(kernel[:first + 8]), show(kernel, bt)
        assert size <= EEPROM


def test_signal_handler_on_a_sigaltstack_i386(crasher, programs, kernel_bt, tmp_path):
    """An i386 process (ia32 frames under the x86_64 kernel), generic recept.  (The
    embedded recept does not dump the [vdso], whose __kernel_vsyscall is where an
    i386 abort() stops, so gdb cannot unwind out of it there: a separate matter.)"""
    if "altstack_i386" not in programs:
        pytest.skip("i686-linux-gnu-gcc missing")
    argv = [programs["altstack_i386"]]
    kernel = kernel_bt(argv)
    assert kernel[-5:] == ["handler", "level3", "level2", "level1", "main"], kernel.gdb_text
    bt, _ = ours(crasher, argv, "generic", tmp_path)
    assert list(bt) == list(kernel), show(kernel, bt)


# --- the signal frame as the kernel wrote it ----------------------------------------------

@pytest.mark.parametrize("prog", ["altstack", "altstack_i386"])
def test_the_sigcontext_found_in_the_kernels_core_is_gdbs_signal_frame(
        crasher, programs, prog):
    """read_stack.interrupted_contexts on the kernel's own core: one context, whose SP
    and PC are what gdb says of level3 (the frame the signal interrupted), in a
    struct rt_sigframe laid out as linux.SigFrame says: x86_64's pretcode (its first
    word) is the restorer, in code; i386's sig, pinfo and puc follow it and point
    into the frame."""
    if prog not in programs:
        pytest.skip("i686-linux-gnu-gcc missing")
    path = crasher.kernel_core([programs[prog]])
    try:
        kc, mem = kernel_core(path)
        found = interrupted_contexts(kc, mem, kc.crashing_thread)
        level = re.search(r"^#(\d+) .* in level3 ", gdb(programs[prog], path, "bt"), re.M)
        out = gdb(programs[prog], path, "frame %s" % level.group(1), "p/x $sp", "p/x $pc")
    finally:
        os.unlink(path)
    assert len(found) == 1
    ctx = found[0]
    sp, pc = [int(v, 16) for v in re.findall(r"^\$\d+ = (0x[0-9a-f]+)$", out, re.M)]
    assert (ctx.sp, ctx.pc) == (sp, pc), out
    sf = kc.arch.sigframe
    frame = ctx.address - sf.uc_mcontext - sf.rt_ucontext
    L = kc.layout
    words = L.words(4).unpack(mem.read_exact(frame, 4 * L.wordsize))
    assert kc.is_code(words[0])  # pretcode: the restorer, __restore_rt
    if kc.arch.name == "i386":
        assert words[1:] == (11, frame + 16, frame + sf.rt_ucontext)  # SIGSEGV, &info, &uc
