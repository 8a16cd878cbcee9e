"""DECIDE/WRITE: privacy filters for what leaves the process.

sanitize_stack level 1: in dumped stack memory, every word that is neither a
pointer into mapped memory nor a small integer is zeroed, so strings and
other data (passwords on the stack, environment strings at its top) do not
reach the dump, while saved registers, return addresses and frame pointers
stay and the backtrace is kept.
"""

SMALL = 1 << 16


class SanitizingMemory:
    """A memory reader that filters the words of the stack ranges it is given."""

    def __init__(self, mem, layout, stacks, mapped):
        self.mem = mem
        self.L = layout
        self.stacks = stacks  # [(start, end)]
        self.mapped = sorted(mapped)  # [(start, end)] of the process's mappings

    def read(self, addr, size):
        data = self.mem.read(addr, size)
        for s, e in self.stacks:
            lo, hi = max(s, addr), min(e, addr + len(data))
            if lo < hi:
                data = data[:lo - addr] + self._filter(lo, data[lo - addr:hi - addr]) + \
                    data[hi - addr:]
        return data

    def _keep(self, v):
        if v < SMALL or v > self.L.word_max - SMALL:  # small, or small negative
            return True
        return any(s <= v < e for s, e in self.mapped)

    def _filter(self, addr, chunk):
        w = self.L.wordsize
        head = -addr % w
        out = bytearray(chunk)
        for off in range(head, len(chunk) - w + 1, w):
            if not self._keep(self.L.word.unpack_from(chunk, off)[0]):
                out[off:off + w] = bytes(w)
        # partial words at the edges carry no pointer: zero them
        out[:head] = bytes(min(head, len(out)))
        tail = (len(chunk) - head) % w
        if tail:
            out[len(out) - tail:] = bytes(tail)
        return bytes(out)
