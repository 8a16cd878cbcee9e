"""DECIDE: fit a dump into the recept's max_dump_size, best-first.

The ladder of core contents, richest first; each step holds less than the
one before, so a larger budget never gives a worse backtrace:

  1. everything planned (buffers, registered data, maps: priority 4)
  2. all threads' stacks and registers, descriptors (priority 3)
  3. the crashing thread's whole stack, its notes only (priority 2)
  4. its top of stack (and those its signal handlers interrupted, its frame
     records), registers, module identities, so list (priority 1)
  5. as 4 with only the notes a backtrace needs
  6-9. as 5 with the top of stack cut to 1024, 512, 256, 128 bytes
  10. no core

Side files come around it: summary.txt always, and the room of summary.json's
smallest form (the crash's identity), both set aside before the core, which
gets what is left after them (nothing when the smallest form needs more than
is left); then the external dumps (by dump_scope, lowest first), summary.json
in its richest form that fits (write_summary.LEAVE_OUT), debug.txt and proc
info while they fit.  Every file also costs its integrity record line.
"""

from .write_core import NOTES_ALL, NOTES_CRASHING_THREAD, NOTES_MINIMAL

LADDER = [
    ("everything", 4, NOTES_ALL, None),
    ("all threads", 3, NOTES_ALL, None),
    ("crashing thread", 2, NOTES_CRASHING_THREAD, None),
    ("top of stack", 1, NOTES_CRASHING_THREAD, None),
    ("top of stack, minimal notes", 1, NOTES_MINIMAL, None),
] + [("%d bytes of stack, minimal notes" % n, 1, NOTES_MINIMAL, n) for n in (1024, 512, 256, 128)]

RECORD_LINE = 21  # integrity record line: "%08x %d %s\n" with up to 10 size digits, less the path


class Budget:
    """Bytes left in a dump directory of at most `limit` bytes (0: unlimited)."""

    def __init__(self, limit):
        self.limit = limit
        self.used = 0

    def cost(self, rel, size):
        return size + RECORD_LINE + len(rel.encode())

    def left_for(self, rel):
        """How many bytes a file called rel may still have (None: no limit)."""
        if not self.limit:
            return None
        return max(0, self.limit - self.used - self.cost(rel, 0) - self.cost("manifest", 0))

    def fits(self, rel, size):
        left = self.left_for(rel)
        return left is None or size <= left

    def take(self, rel, size):
        self.used += self.cost(rel, size)

    def give_back(self, rel, size):
        """Return bytes reserved for rel but not used."""
        self.used -= size

    def cancel(self, rel, size):
        """Undo take(rel, size) (nothing when size is 0: nothing was taken)."""
        if size:
            self.used -= self.cost(rel, size)


def fit_core(plan, segments, render, limit):
    """The first ladder step whose rendered core fits in limit bytes.

    render(ranges, notes, limit) returns the artefact's bytes or raises
    OverBudget.  Returns (label, bytes) or (None, None) when nothing fits.
    """
    from .write_sinks import OverBudget
    for label, prio, notes, top in LADDER:
        try:
            return label, render(plan.ranges(segments, prio, top), notes, limit)
        except OverBudget:
            continue  # this rung is over the budget: try the next, smaller one
    return None, None
