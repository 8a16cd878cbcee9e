"""WRITE: every artefact of one crash into its dump directory, in budget order.

Split around the release of the crashed process.  before_release() takes
what still needs the process: the planned memory is copied (at most
SNAPSHOT_MAX bytes: read_process.SnapshotMemory), the stack walked
(read_stack), the command line and the summary's facts (cgroup, rlimits,
fds ...) read; a plan too big to copy has its core written now, while the
process waits, and so have proc info and the fat core.  after_release()
writes the rest (the core from the copy, external dump files, summary,
debug log; every thread's stack unwound from the copy: read_unwind) and
leaves publishing to the caller.  With a max_dump_size,
files are added best-first while they fit (decide_budget.py); where not even
the smallest core fits, the stack-trace record (stacktrace.py) stands in.
"""

from . import decide_budget as B
from .write_sinks import MemorySink, core_name, core_sink
from .write_core import CoreImage
from .read_process import SnapshotMemory
from .read_stack import return_addresses
from .write_summary import NO_CORE, build as build_summary, forms as summary_forms, no_core, \
    smallest_form, text as summary_text

SUMMARY_TXT_MAX = 640  # under a max_dump_size
SUMMARY_TXT_UNLIMITED = 64 << 10  # without one: all threads' frames, bounded
SNAPSHOT_MAX = 16 << 20  # planned memory copied before the release, at most
# A core of at most this many bytes before compression (its memory and at most the
# kernel's headers and notes) is cheap to render: under a budget it is tried first.
CHEAP_CORE = 256 << 10


class DumpWriter:
    """The artefacts of one crash: crash (crash.Crash: arrival, marks, deadline,
    log), its recept, the kernel's notes kc, the dump directory dd, the plan
    (decide_plan.Plan) and the process's modules (read_modules.Module)."""

    def __init__(self, crash, recept, kc, dd, exe, comm, plan, modules):
        self.crash = crash
        self.args = crash.arrival
        self.recept = recept
        self.proc = None
        self.kc = kc
        self.dd = dd
        self.exe = exe
        self.comm = comm
        self.plan = plan
        self.modules = modules
        # the recept's max_dump_size, or the room of a raw store's slot when less
        self.budget = B.Budget(min([n for n in (recept["max_dump_size"], dd.room) if n] or [0]))
        self.dumped = {}
        self.image = None
        self.externals = []
        self.snapshot = None
        self.cmdline = ""  # before_release() reads it
        self.walks = None  # every thread's frames, after the release (finish)

    # --- while the process is still there -----------------------------------
    def before_release(self, proc):
        """Everything that needs proc (read_process.Process) still there."""
        c, kc = self.crash, self.kc
        self.proc = proc
        self.addresses = return_addresses(kc, proc.mem)
        self.cmdline = self._proc_text("cmdline").replace("\0", " ").strip()
        self.facts = proc.facts()
        # summary.txt is reserved first: the smallest budget still gets it.
        left = self.budget.left_for("summary.txt")
        self.summary_room = SUMMARY_TXT_UNLIMITED if left is None else min(SUMMARY_TXT_MAX, left)
        self.budget.take("summary.txt", self.summary_room)
        # Then the room of summary.json's smallest form, the crash's identity,
        # also when it is more than is left: a core never comes without it,
        # and a larger budget never gives a worse core (docs/FORMATS.md §9).
        self.json_room = 0
        self.json_smallest = None  # that form's bytes, the last resort after the core
        if self.budget.limit:
            self.json_smallest = smallest_form(self._summary(symbols=False))
            self.json_room = len(self.json_smallest)
            self.budget.take("summary.json", self.json_room)
        # Then the data the application registered to be kept apart (dumps/PID/),
        # read with the plan: it asked for it by name, so it comes before the core.
        self.choose_externals()
        # The planned memory is copied now (when it is small) so that the core is
        # rendered and compressed after the release, not while the process waits.
        self.snapshot = self._snapshot()
        c.mark("snapshot" if self.snapshot is not None else "no snapshot")
        if self.snapshot is None:
            self.write_core()
            c.mark("core")
        self.write_process_files()

    def after_release(self, warnings):
        """What needs no more of the process: the core from the snapshot, the
        plan's warnings in the log, then finish() (which unwinds every thread
        first)."""
        if self.snapshot is not None:
            self.write_core()
            self.crash.mark("core")
        log = self.crash.log
        problems = [m for lvl, m in self.plan.log if lvl == "warning"]
        for m in problems[:3]:
            log.warning(m)
        if len(problems) > 3:
            log.warning("%d more warnings (write_debug_log shows all)" % (len(problems) - 3))
        self.finish(warnings)

    def _snapshot(self):
        segments = [(p.vaddr, p.vaddr + p.memsz) for p in self.kc.loads if p.memsz]
        ranges = self.plan.ranges(segments)
        if sum(e - s for s, e in ranges) > SNAPSHOT_MAX:
            return None
        snapshot = SnapshotMemory(self.proc.mem, ranges)
        self.plan.unreadable = snapshot.unreadable  # no core claims to hold them
        return snapshot

    def _summary(self, symbols):
        """The summary (write_summary.build); symbols False: without symbol
        lookups and what the dump holds, for the size of its smallest form."""
        return build_summary(self.kc, self.addresses, self.modules, self.args, self.exe,
                             self.comm, self.cmdline, self.facts,
                             self.dumped if symbols else None, symbols, self.walks)

    def unwind(self):
        """Every thread's frames from the copied memory (read_unwind), after
        the release; none without a copy (the summary keeps read_stack's)."""
        if self.snapshot is None:
            return
        from .read_unwind import unwind_threads
        self.walks, problems = unwind_threads(self.kc, self.snapshot, self.modules,
                                              self.crash.expired)
        first = self.walks[0]
        if first.reason is not None and len(first.frames) < len(self.addresses):
            # cut short (a stack not copied): what was read before the release
            first.frames = self.addresses
            first.reason += "; frames read before the release instead"
        self.crash.mark("unwound")
        ends = ["thread %d: %s" % (w.tid, w.reason) for w in self.walks if w.reason]
        ends += ["CFI of %s: %s" % item for item in sorted(problems.items())]
        if ends:
            self.crash.log.debug("unwinding: " + "; ".join(ends[:8]))

    def _proc_text(self, name):
        try:
            return self.proc.read_text(name, 4096)
        except OSError:
            return ""  # the process is gone: the summary has no command line

    def memory(self):
        """The process memory as the core should see it (stacks sanitised if asked)."""
        raw = self.snapshot if self.snapshot is not None else self.proc.mem
        if not self.recept["sanitize_stack"]:
            return raw
        from .decide_sanitize import SanitizingMemory
        stacks = [(r.start, r.start + r.size) for r in self.plan.regions
                  if r.why.startswith("stack of thread")]
        mapped = [(p.vaddr, p.vaddr + p.memsz) for p in self.kc.loads if p.memsz]
        return SanitizingMemory(raw, self.kc.layout, stacks, mapped)

    def write_core(self):
        r, kc = self.recept, self.kc
        segments = [(p.vaddr, p.vaddr + p.memsz) for p in kc.loads if p.memsz]
        mem = self.memory()
        name = core_name(r["compression"])
        left = self.budget.left_for(name)
        if left is None:
            self.image = CoreImage(kc, self.plan.ranges(segments), r["core_layout"],
                                   private=bool(r["sanitize_stack"]))
            sink, name = self.dd.core_sink(r["compression"], self.image.size, self.args.time)
            self.image.write(sink, mem, self.crash.expired)
            sink.close()
            label = "everything"
        else:
            ladder = B.rungs(self.plan, segments)
            richest = sum(e - s for s, e in ladder[0][1]) + len(kc.header_bytes)
            i, done = B.fit(ladder, self._render(mem), left, self.crash.expired,
                            cheap=richest <= CHEAP_CORE)
            self.crash.mark("ladder: %d of %d rungs rendered" % (self.renders, len(ladder)))
            if done is None:
                self.dumped["core"] = (NO_CORE + "not even the smallest core fits %d bytes (what "
                                       "a budget of %d bytes leaves after the summaries)"
                                       % (left, self.budget.limit))
                return
            label, (self.image, data) = ladder[i][0], done
            self.dd.write_file(name, data)
            self.budget.take(name, len(data))
        self.dumped.update(core=name, core_bytes=self.dd.records[name][0], core_content=label,
                           core_ranges=len(self.image.present),
                           core_memory_bytes=sum(n for _, n in self.image.present))

    def _render(self, mem):
        """render(rung, limit, cut) for decide_budget.fit: (CoreImage, its artefact's
        bytes) of one rung (label, ranges, notes), compressed as the recept says."""
        self.renders = 0

        def render(rung, limit, cut):
            _, ranges, notes = rung
            self.renders += 1
            image = CoreImage(self.kc, ranges, self.recept["core_layout"], notes,
                              private=bool(self.recept["sanitize_stack"]))
            out = MemorySink(limit)
            sink = core_sink(out, self.recept["compression"], image.size, self.args.time)
            try:
                image.write(sink, mem, cut)
                sink.close()
            except BaseException:  # over budget, or the deadline: a program is stopped
                if sink is not out:
                    sink.abort()
                raise
            return image, out.getvalue()
        return render

    def choose_externals(self):
        args = self.args
        # Chosen by scope (the lowest, dumped most widely, first), written in
        # registration order (text sharing an ident is appended in order).
        chosen = {id(x) for x in sorted(self.plan.externals, key=lambda x: x.scope)
                  if self.budget.fits("dumps/%d/%s" % (args.pid, x.ident), len(x.data) + 8)
                  and not self.budget.take("dumps/%d/%s" % (args.pid, x.ident), len(x.data) + 8)}
        externals = [x for x in self.plan.externals if id(x) in chosen]
        if len(externals) < len(self.plan.externals):
            self.dumped["externals_dropped"] = len(self.plan.externals) - len(externals)
        self.externals = externals  # already read: written after the release

    def write_process_files(self):
        """proc info and the fat core: from the process and the kernel's stream
        (only without a budget, so their place in budget order does not matter)."""
        r, args, kc = self.recept, self.args, self.kc
        if r["write_proc_info"] and not self.budget.limit:
            from .write_procinfo import write_proc_info
            write_proc_info(self.dd, self.proc.dir, args.pid, omit_environ=r["omit_environ"])
        if r["dump_fat_core"] and not self.budget.limit:
            self.crash.fat_core(self.dd.create("fatcore"), kc.header_bytes)

    # --- after the release ----------------------------------------------------
    def finish(self, warnings):
        """After the core: the external dumps chosen before it, summary.txt (the
        room set aside for it given back but what it needs), the stack-trace
        record when no core fits, summary.json in the richest form that fits (its
        smallest form was set aside before the core), debug.txt."""
        args, dd = self.args, self.dd
        self.unwind()
        s = self._summary(symbols=True)  # s["dump"] is self.dumped: filled in below
        txt = summary_text(s, self.summary_room)
        dd.write_file("summary.txt", txt)
        self.budget.give_back("summary.txt", self.summary_room - len(txt))
        self.budget.cancel("summary.json", self.json_room)
        if no_core(self.dumped.get("core")) is not None:
            self.write_stacktrace(s)
        if self.externals:
            from .write_externals import write_externals
            # Column 1 of symbol.map: where the core written has the bytes (0: no core).
            written = self.image if "core_bytes" in self.dumped else None
            write_externals(dd, "dumps/%d/" % args.pid, self.externals, self.kc.layout.word,
                            written.symbol_map_offset if written else lambda *_: 0)
        # The richest form that fits, now that the room set aside is free again;
        # the walks may have found more frames than read_stack before the
        # release: then the form set aside (read_stack's frames) still fits.
        for js in list(summary_forms(s)) + ([self.json_smallest] if self.json_smallest else []):
            if self.budget.fits("summary.json", len(js)):
                dd.write_file("summary.json", js)
                self.budget.take("summary.json", len(js))
                break
        if self.recept["write_debug_log"]:
            debug = _debug_text(args, self.exe, self.comm, self.kc, self.plan, self.image,
                                warnings, self.crash.marks).encode("utf-8", "replace")
            if self.budget.fits("debug.txt", len(debug)):
                dd.write_file("debug.txt", debug)


    def write_stacktrace(self, s):
        """The stack-trace record (stacktrace.py), the core's stand-in when not
        even the smallest core fits: every thread's frames of summary s, else
        the crashing thread's, if it fits after summary.txt and summary.json's
        smallest form (its room held while the record is fitted, when it fits at
        all); before summary.json's richer forms."""
        from .stacktrace import FILE, forms
        held = self.json_room if self.budget.fits("summary.json", self.json_room) else 0
        self.budget.take("summary.json", held)
        try:
            for n, record in enumerate(forms(s)):
                if self.budget.fits(FILE, len(record)):
                    self.dd.write_file(FILE, record)
                    self.budget.take(FILE, len(record))
                    self.dumped.update(core_content=B.STACKTRACE_RUNG[n], stacktrace=FILE,
                                       stacktrace_bytes=len(record))
                    return
        finally:
            self.budget.cancel("summary.json", held)

    def salvage_summary(self):
        """summary.txt at the hard deadline, when finish() has not written it:
        from what before_release() read, no symbol lookups.  False when
        before_release() had not read the summary's facts yet."""
        if not hasattr(self, "facts"):
            return False
        self.dd.write_file("summary.txt", summary_text(
            self._summary(symbols=False), getattr(self, "summary_room", SUMMARY_TXT_MAX)))
        return True


def _debug_text(args, exe, comm, kc, plan, image, warnings, marks):
    out = ["minicoredumper debug log",
           "pid %d uid %d gid %d signal %d time %d host %s" % (
               args.pid, args.uid, args.gid, args.signal, args.time, args.hostname),
           "pidfd %s dump_mode %s" % (getattr(args, "pidfd", None),
                                      getattr(args, "dump_mode", None)),
           "exe %s comm %s arch %s class %d threads %s" % (
               exe, comm, kc.arch.name, 64 if kc.layout.is64 else 32,
               " ".join(str(t.tid) for t in kc.threads)),
           "", "planned regions (start size priority why):"]
    for r in sorted(plan.regions, key=lambda r: r.start):
        out.append("  %#x %#x %d %s" % (r.start, r.size, r.prio, r.why))
    out += ["", "core ranges present (start length):"]
    out += ["  %#x %#x" % (s, n) for s, n in (image.present if image else [])]
    out += ["", "external dumps:"]
    out += ["  %s %s %#x %#x" % (x.ident, x.kind, x.vaddr, len(x.data)) for x in plan.externals]
    import sys
    out += ["", "timeline (ms since start): " + ", ".join("%s %.1f" % m for m in marks)]
    out += ["", "modules loaded: " + " ".join(sorted(sys.modules))]
    out += ["", "messages:"]
    out += ["  " + w for w in warnings] + ["  %s: %s" % m for m in plan.log]
    return "\n".join(out) + "\n"

