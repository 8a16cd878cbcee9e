"""READ: the crashing thread's return addresses, from its registers and stack.

The PC first; then the link register where the architecture has one and it
points into code; then the frame-pointer chain where the architecture keeps
frame records; and when that gave fewer than three frames, a scan of the top
of the stack for words that point into executable mappings (marked "scan").
Every read is bounded: MAX_FRAMES addresses, SCAN_BYTES of stack.

Also the contexts that signal handlers interrupted (interrupted_contexts): the
struct sigcontext the kernel saved in each handler's frame, found by the
fields every one holds (linux.SigFrame), and the stack each points into.
"""

from . import elf as E

MAX_FRAMES = 16
SCAN_BYTES = 1024
# How far above a stack pointer a signal frame is looked for: the handler's own
# frames (e.g. abort(), raise()) lie between.  64 KiB per stack, MAX_SIGNAL_FRAMES
# frames (nested handlers) and as many anchor matches per stack at most.
SIGFRAME_SCAN = 64 << 10
MAX_SIGNAL_FRAMES = 4
MAX_ANCHOR_HITS = 64


def return_addresses(kc, mem):
    """[(address, how)] starting with the PC: how is "pc", "lr", "fp" or "scan"."""
    a = kc.arch
    L = kc.layout
    t = kc.crashing_thread
    out = [(t.pc, "pc")]
    is_code = kc.is_code
    if a.lr_index is not None and is_code(t.regs[a.lr_index]):
        out.append((t.regs[a.lr_index], "lr"))
    w = L.wordsize
    stack = kc.stack_for(t.sp)  # also the stack an overflow left the SP below
    if a.fp_index is not None:
        for _, ret in frame_records(kc, mem, t.sp, t.regs[a.fp_index], MAX_FRAMES - len(out)):
            out.append((ret, "fp"))
    if len(out) < 3 and stack is not None:  # no usable frame chain: scan
        low = max(t.sp, stack.vaddr)
        raw = mem.read(low, min(SCAN_BYTES, stack.vaddr + stack.memsz - low))
        for off in range(0, len(raw) - w + 1, w):
            v = L.word.unpack_from(raw, off)[0]
            if is_code(v) and len(out) < MAX_FRAMES and v not in [x for x, _ in out]:
                out.append((v, "scan"))
    return out


def frame_records(kc, mem, sp, fp, limit):
    """[(address, return address)] of the frame records (saved FP, return address)
    on the frame-pointer chain from fp, on the stack of sp (KernelCore.stack_for),
    while each return address is in code; at most limit records."""
    stack = kc.stack_for(sp)
    if stack is None:
        return []
    L = kc.layout
    w = L.wordsize
    top = stack.vaddr + stack.memsz
    out = []
    while len(out) < limit and sp <= fp < top - w and fp % w == 0:
        raw = mem.read_exact(fp, 2 * w)
        if raw is None:
            break
        next_fp, ret = L.words(2).unpack(raw)
        if not kc.is_code(ret):
            break
        out.append((fp, ret))
        if next_fp <= fp:
            break
        fp = next_fp
    return out


class Interrupted:
    """A context a signal handler interrupted: where its struct sigcontext is
    (address), and the saved registers ({name: value}, linux.SigFrame.regs),
    sp and pc among them."""

    def __init__(self, address, regs, sp, pc):
        self.address = address
        self.regs = regs
        self.sp = sp
        self.pc = pc


def interrupted_contexts(kc, mem, thread):
    """[Interrupted] of the signal handlers running on thread (read_corestream.Thread),
    innermost first: at most MAX_SIGNAL_FRAMES.

    From the thread's SP, the first SIGFRAME_SCAN bytes of its stack are searched
    for the anchor of the architecture's struct sigcontext (linux.SigFrame), and a
    match is taken only when its checks hold, the interrupted PC is in executable
    memory and the interrupted SP is on a stack (KernelCore.stack_for: the SP of an
    overflowed stack is one).  Then the same from that SP, where it is not on the
    stretch already searched (a handler on a sigaltstack interrupted code on
    another stack).  Nothing read from the process is trusted beyond that."""
    sf = kc.arch.sigframe
    if sf is None:
        return []
    L = kc.layout
    anchor = _fields(L, kc.arch, thread, sf.anchor)
    check = [(o, n, _field(L, kc.arch, thread, o, n, v)) for o, n, v in sf.check]
    if anchor is None or None in [v for _, _, v in check]:
        return []
    found, searched, todo = [], [], [thread.sp]
    while todo and len(found) < MAX_SIGNAL_FRAMES:
        sp = todo.pop(0)
        stack = kc.stack_for(sp)
        if stack is None or any(lo <= sp < hi for lo, hi in searched):
            continue
        lo = max(stack.vaddr, sp - kc.arch.red_zone)
        hi = min(stack.vaddr + stack.memsz, lo + SIGFRAME_SCAN)
        searched.append((lo, hi))
        raw = mem.read(lo, hi - lo)
        for ctx in _sigcontexts(kc, mem, raw, lo, anchor, check):
            if len(found) < MAX_SIGNAL_FRAMES and ctx.address not in [f.address for f in found]:
                found.append(ctx)
                todo.append(ctx.sp)
    return found


def _field(L, arch, thread, offset, size, value):
    """The bytes a SigFrame field holds: value, an int or a register's name."""
    if isinstance(value, str):
        value = thread.regs[arch.regs.index(value)]
    if value >> (8 * size):
        return None  # a register value that a field of this size cannot hold
    return value.to_bytes(size, "little" if L.byteorder == "<" else "big")


def _fields(L, arch, thread, fields):
    """The consecutive fields' bytes as one string, or None."""
    parts = [_field(L, arch, thread, o, n, v) for o, n, v in fields]
    return None if None in parts else b"".join(parts)


def _sigcontexts(kc, mem, raw, base, anchor, check):
    """Interrupted contexts whose anchor is in raw (memory from base), in address order."""
    sf = kc.arch.sigframe
    first = sf.anchor[0][0]
    hits = 0
    out = []
    for extra in sf.anchors:  # where an optional record may come before the anchor
        pos = raw.find(anchor)
        while pos >= 0 and hits < MAX_ANCHOR_HITS:
            hits += 1
            address = base + pos - first - extra
            if address % sf.align == 0 and address >= base:
                sc = raw[address - base:address - base + sf.size]
                if len(sc) < sf.size:
                    sc = mem.read_exact(address, sf.size)
                ctx = _context(kc, sc, address, check) if sc is not None else None
                if ctx is not None:
                    out.append(ctx)
            pos = raw.find(anchor, pos + 1)
    return sorted(out, key=lambda c: c.address)


def _context(kc, sc, address, check):
    """The Interrupted in the bytes sc of a struct sigcontext at address, or None
    when a check fails, its PC is not in executable memory or its SP on no stack."""
    sf = kc.arch.sigframe
    for o, n, want in check:
        if sc[o:o + n] != want:
            return None
    word = kc.layout.word
    regs = {name: word.unpack_from(sc, o)[0] for name, o in sf.regs.items()}
    if sf.mode is not None:
        name, mask, want = sf.mode
        if regs[name] & mask != want:
            return None
    pc, sp = regs[sf.pc], regs[sf.sp]
    if not kc.is_code(pc) or kc.stack_for(sp) is None:
        return None
    return Interrupted(address, regs, sp, pc)
