"""DECIDE: fit a dump into the recept's max_dump_size, best-first.

The ladder of core contents, richest first; each step holds less than the
one before, so a larger budget never gives a worse backtrace:

  1. everything planned (buffers, registered data, maps: priority 4)
  2. all threads' stacks and registers, descriptors (priority 3)
  3. the crashing thread's whole stack, its notes only (priority 2)
  4. its top of stack (and those its signal handlers interrupted, its frame
     records), registers, module identities, so list (priority 1)
  5. as 4 with only the notes a backtrace needs
  6. as 5 with NT_FILE cut to the files that have code mapped (ELF objects)
  7-10. as 6 with the top of stack cut to 1024, 512, 256, 128 bytes
  11. no core, the stack-trace record in its place (stacktrace.py: every
      thread's frames as module + offset, the modules' build-ids; else the
      crashing thread's), written after the unwind when it fits
  12. no core, the summaries alone

Side files come around it: summary.txt always, and the room of summary.json's
smallest form (the crash's identity), both set aside before the core, which
gets what is left after them (nothing when the smallest form needs more than
is left); then the external dumps (by dump_scope, lowest first), the
stack-trace record when no core fits (before summary.json's richer forms: it
is the core's stand-in), summary.json in its richest form that fits
(write_summary.LEAVE_OUT), debug.txt and proc info while they fit.  Every file also costs its integrity record line.

Climbing the ladder (fit): the size of a compressed rung is known only by
compressing it, and a rung of a big process is big (4,000 threads' notes are
about 14 MB), so the rungs are not tried richest first.  The smallest rung is
rendered first, whatever the time, so a core is in hand early; then the
richest (a small process's whole plan fits: two renders); then the rungs
between are bisected (each holds less than the one before, so their sizes
shrink down the ladder): with the 10 steps, at most 5 renders in all, none
started after the deadline, one cut by it; the richest rung that fitted is
kept.  A render stops as soon as its compressed output passes the limit.  Steps that would hold the same as the one before them are
not rendered twice (rungs()).  The interface is the same for any artefact
that must fit a number of bytes:

    index, artefact = fit(candidates, render, limit, expired, cheap)

candidates, richest first; render(candidate, limit, cut) returns the artefact
(whatever the caller keeps: bytes, an image and its bytes ...) or raises
write_sinks.OverBudget past limit bytes, and calls cut() now and then, which
raises Expired once the deadline has passed; expired() says it has; cheap
says the richest candidate is small (a 3-deep crash: its raw core is a few
KiB), and it is then rendered first, alone when it fits.
"""

from .write_core import NOTES_ALL, NOTES_CODE_FILES, NOTES_CRASHING_THREAD, NOTES_MINIMAL

LADDER = [
    ("everything", 4, NOTES_ALL, None),
    ("all threads", 3, NOTES_ALL, None),
    ("crashing thread", 2, NOTES_CRASHING_THREAD, None),
    ("top of stack", 1, NOTES_CRASHING_THREAD, None),
    ("top of stack, minimal notes", 1, NOTES_MINIMAL, None),
    ("top of stack, minimal notes, code files", 1, NOTES_CODE_FILES, None),
] + [("%d bytes of stack, minimal notes, code files" % n, 1, NOTES_CODE_FILES, n)
     for n in (1024, 512, 256, 128)]

# Rung 11's core_content (summary.json's dump object): stacktrace.forms() in order.
STACKTRACE_RUNG = ("stack-trace record", "stack-trace record, crashing thread only")

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


class Expired(Exception):
    """The deadline passed during a trial render: that rung is given up."""


def rungs(plan, segments):
    """The LADDER's distinct steps for plan (decide_plan.Plan) and the kernel's
    segments [(start, end)]: [(label, ranges, notes)], richest first.  A step that
    would hold the same ranges and notes as the one before it is left out (the
    richer label stays: the core holds everything that step planned)."""
    out = []
    for label, prio, notes, top in LADDER:
        ranges = plan.ranges(segments, prio, top)
        if out and out[-1][1:] == (ranges, notes):
            continue
        out.append((label, ranges, notes))
    return out


def fit(candidates, render, limit, expired, cheap=False):
    """The richest candidate whose rendered artefact fits in limit bytes.

    candidates: richest first, each holding less than the one before.
    render(candidate, limit, cut): the artefact, or write_sinks.OverBudget when it
    needs more than limit bytes; it calls cut() between pieces of work, and cut()
    raises Expired once expired() is true.  The smallest candidate is rendered
    first and never cut, the richest next; the others are bisected, none started
    after expired().  cheap: the richest is small enough to render at once (a
    small process: most often it fits, and one render is all there is).
    Returns (index into candidates, artefact), or (None, None) when not even the
    smallest fits."""
    from .write_sinks import OverBudget

    def cut():
        if expired():
            raise Expired()

    def never():
        pass

    if cheap:
        try:
            return 0, render(candidates[0], limit, never)
        except OverBudget:
            pass  # the climb below, which tries it again only if it is the smallest
    good = len(candidates) - 1  # the smallest: rendered first, whatever the time
    try:
        best = render(candidates[good], limit, never)
    except OverBudget:
        return None, None
    bad = 0 if cheap else -1  # the richest did not fit, or richer than the richest
    mid = (good + bad) // 2 if cheap else 0  # else the richest next: small plans fit
    while good - bad > 1 and not expired():
        try:
            best, good = render(candidates[mid], limit, cut), mid
        except OverBudget:
            bad = mid
        except Expired:
            break  # the deadline: the best that fitted so far
        mid = (good + bad) // 2
    return good, best
