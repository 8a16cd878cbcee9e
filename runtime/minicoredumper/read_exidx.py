"""READ: 32-bit ARM's unwind tables, .ARM.exidx and .ARM.extab (EHABI).

The ARM "Exception Handling ABI for the Arm Architecture" (IHI 0038),
sections 6 (the index table, found through PT_ARM_EXIDX), 7 (the compact
model) and 10 (the frame unwinding instructions).  Each index entry is two
words: a prel31 offset to the function's start, then EXIDX_CANTUNWIND, the
compact-model instructions themselves (bit 31 set) or a prel31 offset to the
.ARM.extab entry that holds them (personality 0, 1 or 2, or a generic
personality routine such as __gxx_personality_v0 followed by the same
layout as 1 and 2).

The tables are untrusted: an entry names at most MAX_EXTAB_WORDS words of
instructions, the index at most MAX_ENTRIES entries; what cannot be read or
does not make sense raises read_cfi.CfiError.
"""

from .read_cfi import CfiError

PT_ARM_EXIDX = 0x70000001
EXIDX_CANTUNWIND = 1
MAX_ENTRIES = 1 << 20
MAX_EXTAB_WORDS = 64
SP, LR, PC = 13, 14, 15


def _prel31(word, at):
    off = word & 0x7FFFFFFF
    if off & 0x40000000:
        off -= 0x80000000
    return (at + off) & 0xFFFFFFFF


class ExidxTable:
    """The index of one object, read through a read_cfi.Image (link-time
    addresses): lookup(pc) -> the unwind instructions (bytes) of the function
    holding pc, b"" for EXIDX_CANTUNWIND (the outermost frame), None for no
    entry."""

    def __init__(self, image, at, size):
        if size % 8 or size // 8 > MAX_ENTRIES:
            raise CfiError(".ARM.exidx of %d bytes" % size)
        self.image = image
        self.at = at
        self.count = size // 8
        self.u32 = image.L.u32

    def _word(self, at):
        return self.u32.unpack(self.image.exact(at, 4))[0]

    def lookup(self, pc):
        lo, hi = 0, self.count
        while lo < hi:
            mid = (lo + hi) // 2
            at = self.at + 8 * mid
            if _prel31(self._word(at), at) <= pc:
                lo = mid + 1
            else:
                hi = mid
        if not lo:
            return None
        at = self.at + 8 * (lo - 1)
        second = self._word(at + 4)
        if second == EXIDX_CANTUNWIND:
            return b""
        if second & 0x80000000:
            return self._compact(second, at + 4)
        return self._extab(_prel31(second, at + 4))

    def _compact(self, word, at):
        """The instruction bytes of a compact-model word (personality 0, 1, 2)
        and, for 1 and 2, the words that follow it at `at`."""
        if word >> 28 != 8:
            raise CfiError("compact model word %#x" % word)
        index = (word >> 24) & 0xF
        if index == 0:
            return word.to_bytes(4, "big")[1:]
        if index not in (1, 2):
            raise CfiError("personality routine %d" % index)
        return self._words(word, at, 2)

    def _words(self, word, at, skip):
        """The bytes of word (its first `skip` bytes left out: the header and
        the count of more words) and of the count words after it."""
        n = (word >> 16) & 0xFF if skip == 2 else word >> 24
        if n > MAX_EXTAB_WORDS:
            raise CfiError(".ARM.extab entry of %d words" % n)
        out = word.to_bytes(4, "big")[skip:]
        for i in range(n):
            out += self._word(at + 4 + 4 * i).to_bytes(4, "big")
        return out

    def _extab(self, at):
        word = self._word(at)
        if word & 0x80000000:
            return self._compact(word, at)
        # A generic personality routine (prel31), then its data in the
        # layout of personalities 1 and 2 with the count in the top byte.
        return self._words(self._word(at + 4), at + 4, 1)


def execute(insns, regs, read_word):
    """The caller's registers after running the unwind instructions on regs
    (a list, index = ARM register number, r0-r15; values or None):
    read_word(addr) -> the word (CfiError if it cannot be read).  The caller's
    PC is r15 if the instructions popped it, else r14; None for "refuse to
    unwind".  At most len(insns) steps (each consumes a byte)."""
    r = list(regs)
    vsp = r[SP]
    if vsp is None:
        raise CfiError("no SP")
    pc_set = False
    i = 0
    n = len(insns)

    def byte():
        nonlocal i
        if i >= n:
            raise CfiError("unwind instruction cut short")
        i += 1
        return insns[i - 1]

    def mask4(op):
        m = byte()
        if not m or m & 0xF0:
            raise CfiError("spare unwind instruction %02x %02x" % (op, m))
        return m

    def pop(mask, first):
        nonlocal vsp, pc_set
        for bit in range(16):
            if mask >> bit & 1:
                r[first + bit] = read_word(vsp)
                vsp = (vsp + 4) & 0xFFFFFFFF
                if first + bit == PC:
                    pc_set = True

    while i < n:
        op = insns[i]
        i += 1
        if op & 0xC0 == 0x00:
            vsp = (vsp + ((op & 0x3F) << 2) + 4) & 0xFFFFFFFF
        elif op & 0xC0 == 0x40:
            vsp = (vsp - ((op & 0x3F) << 2) - 4) & 0xFFFFFFFF
        elif op & 0xF0 == 0x80:
            mask = ((op & 0x0F) << 8) | byte()
            if not mask:
                return None  # refuse to unwind
            sp_popped = mask >> 9 & 1
            pop(mask, 4)
            if sp_popped:
                vsp = r[SP]
        elif op & 0xF0 == 0x90:
            reg = op & 0x0F
            if reg in (SP, PC):
                raise CfiError("reserved unwind instruction %#x" % op)
            if r[reg] is None:
                raise CfiError("vsp from an unknown register")
            vsp = r[reg]
        elif op & 0xF8 == 0xA0:
            pop((1 << ((op & 7) + 1)) - 1, 4)
        elif op & 0xF8 == 0xA8:
            pop((1 << ((op & 7) + 1)) - 1, 4)
            pop(1, LR)
        elif op == 0xB0:
            break
        elif op == 0xB1:
            pop(mask4(op), 0)
        elif op == 0xB2:
            v = shift = 0
            while True:
                b = byte()
                if shift < 32:
                    v |= (b & 0x7F) << shift
                shift += 7
                if b < 0x80:
                    break
            vsp = (vsp + 0x204 + (v << 2)) & 0xFFFFFFFF
        elif op in (0xB3, 0xC8, 0xC9, 0xC6):
            count = (byte() & 0x0F) + 1
            vsp = (vsp + 8 * count + (4 if op == 0xB3 else 0)) & 0xFFFFFFFF
        elif op & 0xF8 == 0xB8:
            vsp = (vsp + 8 * ((op & 7) + 1) + 4) & 0xFFFFFFFF
        elif op & 0xF8 == 0xD0 or (op & 0xF8 == 0xC0 and op & 7 < 6):
            vsp = (vsp + 8 * ((op & 7) + 1)) & 0xFFFFFFFF
        elif op == 0xC7:
            vsp = (vsp + 4 * bin(mask4(op)).count("1")) & 0xFFFFFFFF
        else:
            raise CfiError("spare unwind instruction %#x" % op)
    if not pc_set:
        r[PC] = r[LR]
    r[SP] = vsp
    return r
