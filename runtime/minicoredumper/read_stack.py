"""READ: the crashing thread's return addresses, from its registers and stack.

The PC first; then the link register where the architecture has one and it
points into code; then the frame-pointer chain where the architecture keeps
frame records; and when that gave fewer than three frames, a scan of the top
of the stack for words that point into executable mappings (marked "scan").
Every read is bounded: MAX_FRAMES addresses, SCAN_BYTES of stack.
"""

from . import elf as E

MAX_FRAMES = 16
SCAN_BYTES = 1024


def return_addresses(kc, mem):
    """[(address, how)] starting with the PC: how is "pc", "lr", "fp" or "scan"."""
    a = kc.arch
    L = kc.layout
    t = kc.crashing_thread
    out = [(t.pc, "pc")]
    code = [(p.vaddr, p.vaddr + p.memsz) for p in kc.loads if p.flags & E.PF_X]

    def is_code(v):
        return any(s <= v < e for s, e in code)

    if a.lr_index is not None and is_code(t.regs[a.lr_index]):
        out.append((t.regs[a.lr_index], "lr"))
    w = L.wordsize
    stack = kc.load_for(t.sp)
    if a.fp_index is not None and stack is not None:
        fp = t.regs[a.fp_index]
        top = stack.vaddr + stack.memsz
        while len(out) < MAX_FRAMES and t.sp <= fp < top - w and fp % w == 0:
            raw = mem.read_exact(fp, 2 * w)
            if raw is None:
                break
            next_fp, ret = L.words(2).unpack(raw)
            if not is_code(ret):
                break
            out.append((ret, "fp"))
            if next_fp <= fp:
                break
            fp = next_fp
    if len(out) < 3 and stack is not None:  # no usable frame chain: scan
        raw = mem.read(t.sp, min(SCAN_BYTES, stack.vaddr + stack.memsz - t.sp))
        for off in range(0, len(raw) - w + 1, w):
            v = L.word.unpack_from(raw, off)[0]
            if is_code(v) and len(out) < MAX_FRAMES and v not in [x for x, _ in out]:
                out.append((v, "scan"))
    return out
