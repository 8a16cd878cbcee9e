"""DECIDE: turn a recept and a crash into a plan of memory ranges and side files.

Nothing here writes a byte.  The plan lists every range with the reason it is
dumped and a priority (1 = needed for the crashing thread's backtrace, larger
numbers are less essential), plus the external dumps that go to dumps/PID/.
Everything read from the crashed process is bounded and checked: every walk
has a cap on its own and on its work in total (over all threads), and the
steps after the essential ones stop once deadline.PLAN_SHARE of the deadline
has gone (a warning says which were left out).
"""

from . import deadline
from . import elf as E
from . import linux
from .config import glob_match
from .config import valid_ident
from .read_modules import MAX_PHNUM_IN_MEMORY, find_symbol
from .read_stack import frame_records, interrupted_contexts

PRIO_ESSENTIAL = 1     # crashing thread's top of stack, module identity, so list
PRIO_CRASH_STACK = 2   # the rest of the crashing thread's stack
PRIO_THREADS = 3       # other threads
PRIO_DATA = 4          # buffers, maps, registered data

TOP_OF_STACK = 2048
MAX_FRAME_RECORDS = 8
MAX_LINK_MAPS = 1024
MAX_ROBUST = 1024
# Robust list nodes read in all, over every thread and every candidate head: a
# forged thread pointer makes each descriptor word a candidate (issue 17: 32
# threads, 4 s); a real process holds few robust mutexes per thread.
MAX_ROBUST_WORK = 8192
PTHREAD_DESC_SIZE = 4096
MAX_BUFFER = 64 << 20
MUTEX_SIZE = {True: 40, False: 24}  # pthread_mutex_t, LP64 and ILP32
# Ranges closer than this are dumped as one: a PT_LOAD header and a dumplist
# entry cost more than the bytes in between.
MERGE_GAP = 72


class Region:
    __slots__ = ("start", "size", "why", "prio", "stack_top")

    def __init__(self, start, size, why, prio, stack_top=False):
        self.start = start
        self.size = size
        self.why = why
        self.prio = prio
        self.stack_top = stack_top  # the crashing thread's top of stack (shrinkable)


class External:
    """Data that goes to dumps/PID/IDENT instead of the core (docs/FORMATS.md §6).

    kind: "D" data at vaddr, "I" indirect (vaddr is the pointer variable,
    pointer its value), "N" registered NODUMP (size recorded, no data),
    "T" text (appended to the ident's file, not in symbol.map).
    """

    def __init__(self, ident, kind, vaddr, data, pointer=None, size=None, scope=0):
        self.ident = ident
        self.kind = kind
        self.vaddr = vaddr
        self.data = data
        self.pointer = pointer
        self.size = len(data) if size is None else size
        self.scope = scope  # a budget fills external dumps in ascending scope


class Plan:
    def __init__(self):
        self.regions = []
        self.externals = Externals()
        self.log = []  # (level, message)
        self.unreadable = []  # sorted (start, end) found unreadable when read: left out

    def add(self, start, size, why, prio, stack_top=False):
        if size > 0 and start >= 0:
            self.regions.append(Region(start, size, why, prio, stack_top))

    def note(self, msg):
        self.log.append(("info", msg))

    def warn(self, msg):
        self.log.append(("warning", msg))

    def ranges(self, segments, max_prio=None, stack_top=None):
        """Merged (start, end) ranges, clipped to `segments` [(start, end)], sorted.

        Only regions up to max_prio; the crashing thread's top of stack cut to
        stack_top bytes.  Ranges closer than MERGE_GAP bytes become one; what
        was found unreadable (self.unreadable) is cut out of them."""
        spans = sorted((r.start, r.start + (min(r.size, stack_top) if r.stack_top and stack_top
                                            is not None else r.size))
                       for r in self.regions if max_prio is None or r.prio <= max_prio)
        merged = []
        for s, e in spans:
            if merged and s <= merged[-1][1] + MERGE_GAP:
                if e > merged[-1][1]:
                    merged[-1][1] = e
            else:
                merged.append([s, e])
        return clip(clip(merged, segments), self.unreadable, outside=True)


def clip(ranges, segments, outside=False):
    """Intersect sorted ranges with sorted, non-overlapping segments (outside:
    with what lies outside the segments)."""
    if outside:
        gaps, pos = [], 0
        for s, e in sorted(segments):
            if s > pos:
                gaps.append((pos, s))
            pos = max(pos, e)
        segments = gaps + [(pos, 1 << 64)]
    out = []
    i = 0
    segs = sorted(segments)
    for s, e in ranges:
        while i < len(segs) and segs[i][1] <= s:
            i += 1
        j = i
        while j < len(segs) and segs[j][0] < e:
            lo, hi = max(s, segs[j][0]), min(e, segs[j][1])
            if lo < hi:
                if out and out[-1][1] == lo:
                    out[-1] = (out[-1][0], hi)
                else:
                    out.append((lo, hi))
            j += 1
    return out


class Planner:
    """Builds a Plan from the crash (kernel notes + /proc) and a recept."""

    def __init__(self, kcore, process, modules, recept):
        self.kc = kcore
        self.L = kcore.layout
        self.arch = kcore.arch
        self.proc = process
        self.mem = process.mem
        self.modules = modules
        self.recept = recept
        self.plan = Plan()
        self._desc_size = None
        self._robust_offset = None
        self._robust_work = MAX_ROBUST_WORK  # node reads left (robust_lists)

    def build(self):
        r = self.recept
        self.module_identities()
        if r["stacks"]["dump_stacks"]:
            self.stacks()
        if r["dump_auxv_so_list"]:
            self.so_list()
        # What the backtrace does not need stops at the planning share of the deadline.
        for wanted, step in ((r["dump_pthread_list"], self.pthread_list),
                             (r["dump_robust_mutex_list"], self.robust_lists),
                             (r["maps"]["dump_by_name"], self.maps_by_name),
                             (r["buffers"], self.buffers),
                             (True, self.registered_data)):
            if wanted and self.out_of_time(step.__name__):
                break
            if wanted:
                step()
        return self.plan

    def out_of_time(self, what):
        """True (and a warning) once planning has used its share of the deadline."""
        if not deadline.expired(deadline.PLAN_SHARE):
            return False
        self.plan.warn("deadline: planning stopped at %s (%.0f%% of the deadline gone)"
                       % (what, deadline.PLAN_SHARE * 100))
        return True

    def threads(self):
        t = self.kc.threads
        return t[:1] if self.recept["stacks"]["first_thread_only"] else t

    # --- always --------------------------------------------------------------
    def module_identities(self):
        for m in self.modules:
            for start, size in m.identity_ranges():
                self.plan.add(start, size, "ELF header/phdrs/notes of %s" % m.path, PRIO_ESSENTIAL)

    # --- stacks --------------------------------------------------------------
    def stacks(self):
        """Each thread's stack from its SP; for the crashing thread also the stacks
        of the contexts its signal handlers interrupted (read_stack.interrupted_contexts:
        a handler on a sigaltstack), with the same priorities."""
        for n, t in enumerate(self.threads()):
            why = "stack of thread %d (SP %#x)" % (t.tid, t.sp)
            fp = t.regs[self.arch.fp_index] if self.arch.fp_index is not None else None
            if not self.stack(t.tid, t.sp, why, crashing=n == 0, fp=fp):
                continue
            if n == 0:
                fp_name = self.arch.regs[self.arch.fp_index] if fp is not None else None
                for ctx in interrupted_contexts(self.kc, self.mem, t):
                    self.plan.note("thread %d: a signal handler interrupted SP %#x PC %#x "
                                   "(sigcontext at %#x)" % (t.tid, ctx.sp, ctx.pc, ctx.address))
                    self.stack(t.tid, ctx.sp, "stack of thread %d interrupted by a signal "
                               "(SP %#x)" % (t.tid, ctx.sp), crashing=True,
                               fp=ctx.regs.get(fp_name))

    def stack(self, tid, sp, why, crashing, fp=None):
        """Plan the stack from sp (less the red zone) to the end of its mapping, at
        most max_stack_size bytes; for an SP below its stack (an overflow:
        KernelCore.stack_for) from the mapping's start.  The crashing thread's
        first TOP_OF_STACK bytes are essential, and so are the frame records on
        its frame-pointer chain from fp beyond them (at most MAX_FRAME_RECORDS:
        a backtrace through frames larger than the top of stack).  False when sp
        is on no stack."""
        seg = self.kc.stack_for(sp)
        if seg is None:
            self.plan.warn("thread %d: SP %#x is in no mapping" % (tid, sp))
            return False
        if sp < seg.vaddr:
            self.plan.note("thread %d: SP %#x is %d bytes below its stack at %#x: a stack "
                           "overflow" % (tid, sp, seg.vaddr - sp, seg.vaddr))
        base = max(sp, seg.vaddr)
        start = max(seg.vaddr, sp - self.arch.red_zone)
        end = seg.vaddr + seg.memsz
        cap = self.recept["stacks"]["max_stack_size"]
        if cap:
            end = min(end, base + cap)
        if crashing:
            top = min(end, base + TOP_OF_STACK)
            self.plan.add(start, top - start, why + ", top", PRIO_ESSENTIAL, stack_top=True)
            self.plan.add(top, end - top, why, PRIO_CRASH_STACK)
            if fp is not None:
                w = self.L.wordsize
                for rec, _ in frame_records(self.kc, self.mem, sp, fp, MAX_FRAME_RECORDS):
                    if rec + 2 * w > top:
                        self.plan.add(rec, 2 * w, why + ", frame record", PRIO_ESSENTIAL)
        else:
            self.plan.add(start, end - start, why, PRIO_THREADS)
        return True

    # --- shared object list (what gdb reads to find PIE and libraries) -------
    def so_list(self):
        L = self.L
        aux = self.kc.auxv
        phdr, phnum, phent = aux.get(E.AT_PHDR), aux.get(E.AT_PHNUM), aux.get(E.AT_PHENT)
        if not phdr or not phnum or phent != L.phdr.size or phnum > MAX_PHNUM_IN_MEMORY:
            self.plan.warn("auxv has no usable AT_PHDR; shared object list not dumped")
            return
        self.plan.add(phdr, phnum * phent, "program headers of the executable (AT_PHDR)", PRIO_ESSENTIAL)
        raw = self.mem.read_exact(phdr, phnum * phent)
        if raw is None:
            return
        phdrs = L.phdr.unpack_table(raw, phnum)
        bias = None
        for p in phdrs:
            if p.type == E.PT_PHDR:
                bias = phdr - p.vaddr
        if bias is None:
            bias = 0
        dyn = [p for p in phdrs if p.type == E.PT_DYNAMIC]
        if not dyn:
            self.plan.note("executable has no PT_DYNAMIC (static)")
            return
        dyn_addr, dyn_size = bias + dyn[0].vaddr, min(dyn[0].memsz, 64 << 10)
        self.plan.add(dyn_addr, dyn_size, "dynamic section of the executable", PRIO_ESSENTIAL)
        raw = self.mem.read(dyn_addr, dyn_size)
        r_debug = 0
        for off in range(0, len(raw) - L.dyn.size + 1, L.dyn.size):
            tag, val = L.dyn.unpack_from(raw, off)
            if tag == E.DT_NULL:
                break
            if tag == E.DT_DEBUG:
                r_debug = val
        if not r_debug:
            self.plan.note("DT_DEBUG is not set: no shared object list")
            return
        # r_debug, or r_debug_extended (r_version 2: one more field, r_next)
        head = self.mem.read_exact(r_debug, L.r_debug_extended.size)
        if head is None:
            self.plan.warn("r_debug at %#x is unreadable" % r_debug)
            return
        rd = L.r_debug_extended.unpack(head)
        self.plan.add(r_debug, (L.r_debug_extended if rd.version >= 2 else L.r_debug).size,
                      "r_debug", PRIO_ESSENTIAL)
        lm = rd.map
        seen = set()
        lm_struct = L.link_map
        while lm and lm not in seen and len(seen) < MAX_LINK_MAPS:
            seen.add(lm)
            raw = self.mem.read_exact(lm, lm_struct.size)
            if raw is None:
                self.plan.warn("link_map at %#x is unreadable" % lm)
                break
            entry = lm_struct.unpack(raw)
            self.plan.add(lm, lm_struct.size, "link_map", PRIO_ESSENTIAL)
            if entry.name:
                name = self.mem.read_cstring(entry.name)
                if name is not None:
                    self.plan.add(entry.name, len(name) + 1, "link_map name", PRIO_ESSENTIAL)
            lm = entry.next
        if lm and lm in seen:
            self.plan.warn("link_map chain has a cycle at %#x" % lm)

    # --- threads as a debugger lists them ------------------------------------
    def descriptor(self, t):
        """(start, size) of thread t's glibc descriptor (struct pthread).

        glibc exports _thread_db_sizeof_pthread in .dynsym (GLIBC_PRIVATE), so
        the size is known on stripped targets too.
        """
        if self._desc_size is None:
            self._desc_size = PTHREAD_DESC_SIZE
            found = self.lookup("_thread_db_sizeof_pthread")
            raw = self.mem.read_exact(found[0], 4) if found else None
            if raw is not None and 0 < self.L.u32.unpack(raw)[0] <= 64 << 10:
                self._desc_size = self.L.u32.unpack(raw)[0]
        if self.arch.pthread_below_tp:
            return t.tp - self._desc_size, self._desc_size + 2 * self.L.wordsize
        return t.tp, self._desc_size

    def pthread_list(self):
        """What libthread_db reads: each thread's descriptor and glibc's thread
        registry (__nptl_rtld_global points at _rtld_global, whose
        _dl_stack_user/_dl_stack_used lists link the descriptors)."""
        for t in self.threads():
            if t.tp:
                start, size = self.descriptor(t)
                self.plan.add(start, size, "thread descriptor of %d" % t.tid, PRIO_THREADS)
        for name in ("__nptl_rtld_global", "__nptl_nthreads"):
            found = self.lookup(name)
            if found:
                self.plan.add(found[0], min(found[1], 64), "glibc %s" % name, PRIO_THREADS)
            else:
                self.plan.note("no symbol %s: thread list may be incomplete" % name)
        rtld = self.lookup("_rtld_global")
        if not rtld:
            return
        # Only the two list heads, where libthread_db's own field descriptors
        # ({bits, count, offset}) say they are; the whole struct without them.
        heads = [self._db_field("_thread_db_rtld_global__dl_stack_" + n) for n in ("user", "used")]
        if None in heads:
            heads = [(0, rtld[1])]
        for offset, size in heads:
            self.plan.add(rtld[0] + offset, min(size, 64 << 10), "glibc thread list head",
                          PRIO_THREADS)

    def _db_field(self, name):
        """(offset, bytes) from a libthread_db field descriptor, or None."""
        found = self.lookup(name)
        raw = self.mem.read_exact(found[0], 12) if found and found[1] == 12 else None
        if raw is None:
            return None
        bits, count, offset = self.L.u32s(3).unpack(raw)
        return offset, bits // 8 * max(count, 1)

    # --- robust futex lists of all threads -----------------------------------
    def robust_lists(self):
        """Every thread's robust futex list: the head and each mutex on it.

        glibc registers each thread's list head (struct robust_list_head
        {list, futex_offset, list_op_pending}) inside the thread descriptor.
        We find it there, without get_robust_list(2) and the ctypes it would
        need: a word that points to itself (empty list) or starts a chain
        that comes back to it, followed by a small negative futex_offset.
        """
        L = self.L
        w = L.wordsize
        rlh = linux.structs(L).robust_list_head
        for n, t in enumerate(self.kc.threads):
            if self._robust_work <= 0 or self.out_of_time("robust list of thread %d" % t.tid):
                self.plan.warn("robust lists: %d node reads done, %d of %d threads looked "
                               "at: the rest left out" % (MAX_ROBUST_WORK - self._robust_work,
                                                          n, len(self.kc.threads)))
                break
            head = self._robust_head(t) if t.tp else None
            if head is None:
                self.plan.note("thread %d: no robust list head found" % t.tid)
                continue
            raw = self.mem.read_exact(head, rlh.size)
            self.plan.add(head, rlh.size, "robust list head of %d" % t.tid, PRIO_THREADS)
            h = rlh.unpack(raw)
            offset = h.futex_offset
            pending = h.list_op_pending
            entries, complete = self._robust_chain(h.list, head)
            if not complete:
                self.plan.warn("robust list of %d cut after %d entries" % (t.tid, len(entries)))
            for e in entries + ([pending] if pending else []):
                lock = (e + offset) & L.word_max
                start = min(e, lock)
                self.plan.add(start, max(e + w, start + MUTEX_SIZE[L.is64]) - start,
                              "robust mutex of %d" % t.tid, PRIO_THREADS)

    def _robust_chain(self, first, head):
        """(entries, True if the chain returned to head) following next pointers;
        each node read counts against MAX_ROBUST_WORK."""
        entries, seen = [], set()
        nxt = first
        while nxt != head:
            if not nxt or nxt in seen or len(entries) >= MAX_ROBUST or self._robust_work <= 0:
                return entries, False
            self._robust_work -= 1
            seen.add(nxt)
            entries.append(nxt)
            raw = self.mem.read_exact(nxt, self.L.wordsize)
            if raw is None:
                return entries, False
            nxt = self.L.word.unpack(raw)[0]
        return entries, True

    def _robust_head(self, t):
        L = self.L
        w = L.wordsize
        rlh = linux.structs(L).robust_list_head
        i_list, i_offset = rlh.index["list"], rlh.index["futex_offset"]
        start, size = self.descriptor(t)
        raw = self.mem.read(start, size)
        n = len(raw) // w  # a head may start at any word of the descriptor
        offsets = [self._robust_offset] if self._robust_offset is not None else range(n - 2)
        for i in offsets:
            if self._robust_work <= 0:
                return None
            if i * w + rlh.size > len(raw):
                continue
            addr = start + i * w
            h = rlh.struct.unpack_from(raw, i * w)
            if not -128 <= h[i_offset] < 0:
                continue
            nxt = h[i_list]
            if nxt == addr or self._robust_chain(nxt, addr)[1]:
                self._robust_offset = i
                return addr
        return None

    # --- whole mappings by name -----------------------------------------------
    def maps_by_name(self):
        globs = self.recept["maps"]["dump_by_name"]
        for m in self.proc.maps:
            if any(glob_match(g, m.path) for g in globs):
                self.plan.add(m.start, m.end - m.start, "mapping %s" % m.path, PRIO_DATA)

    # --- recept buffers ------------------------------------------------------
    def lookup(self, name):
        return find_symbol(self.modules, name)

    def buffers(self):
        L = self.L
        for b in self.recept["buffers"]:
            name, ident = b["symname"], b["ident"]
            if ident is not None and not valid_ident(ident):
                self.plan.warn("buffer %s: ident %r rejected" % (name, ident))
                continue
            found = self.lookup(name)
            if found is None:
                self.plan.warn("buffer %s: symbol not found" % name)
                continue
            addr, size = found
            if b["follow_ptr"]:
                raw = self.mem.read_exact(addr, L.wordsize)
                if raw is None:
                    self.plan.warn("buffer %s: pointer at %#x unreadable" % (name, addr))
                    continue
                ptr = L.word.unpack(raw)[0]
                length = min(b["data_len"] or size, MAX_BUFFER)
                if ident:
                    self.external(External(ident, "I", addr, self.mem.read(ptr, length), ptr))
                else:
                    self.plan.add(addr, L.wordsize, "buffer %s (pointer)" % name, PRIO_DATA)
                    self.plan.add(ptr, length, "buffer %s (pointee)" % name, PRIO_DATA)
            else:
                length = min(b["data_len"] or size, MAX_BUFFER)
                if ident:
                    self.external(External(ident, "D", addr, self.mem.read(addr, length)))
                else:
                    self.plan.add(addr, length, "buffer %s" % name, PRIO_DATA)

    # --- data registered through libminicoredumper -----------------------------
    def external(self, x):
        self.plan.externals.add(x, self.plan.warn)

    def registered_data(self):
        symbols = registration_symbols(self.lookup)
        if symbols is None:
            return
        w = self.L.wordsize
        for it in registered_items(self.mem, self.L, self.arch, symbols,
                                   self.recept["registered"], self.recept["dump_scope"],
                                   self.plan.warn):
            if it.kind == "bin" and it.ident is None:
                if it.pointer_at is not None:
                    self.plan.add(it.pointer_at, w, "registered data (pointer)", PRIO_DATA)
                if not it.nodump:
                    self.plan.add(it.addr, it.length, "registered data", PRIO_DATA)
            else:
                self.external(registered_external(it, self.mem))


# --- shared with live dumps (live_dump.py) -------------------------------------

class Externals(list):
    """External dumps in order, with an index of their idents: a binary ident
    must be unique, text registrations may share one."""

    def __init__(self):
        super().__init__()
        self.kinds = {}  # ident -> "T" while only text uses it, else the bin kind

    def add(self, x, warn):
        kind = self.kinds.get(x.ident)
        if kind is not None and not (x.kind == "T" and kind == "T"):
            warn("dump ident %r used twice: the later one skipped" % x.ident)
            return
        self.kinds[x.ident] = x.kind
        self.append(x)



def registration_symbols(lookup):
    """(list head, data version) addresses of libminicoredumper in a process,
    or None when it does not use the library.  lookup(name) -> (addr, size)."""
    head = lookup("mcd_dump_data_head")
    version = lookup("mcd_dump_data_version")
    return (head[0], version[0]) if head and version else None


def registered_items(mem, layout, arch, symbols, limits, scope, warn):
    """The registrations with a dump_scope up to scope, in registration order."""
    from .read_registrations import read_registrations
    return read_registrations(mem, layout, arch, symbols[0], symbols[1], limits, warn, scope)


def registered_external(it, mem, ident=None):
    """The External of a registration: text, or bin data read now.  Bin data
    registered without an ident gets `ident` (live dumps have no core)."""
    if it.kind == "text":
        return External(it.ident, "T", 0, it.text, scope=it.scope)
    data = b"" if it.nodump else mem.read(it.addr, it.length)
    kind = "N" if it.nodump else "I" if it.pointer_at is not None else "D"
    vaddr = it.addr if it.pointer_at is None else it.pointer_at
    pointer = it.addr if it.pointer_at is not None else None
    return External(it.ident or ident, kind, vaddr, data, pointer, it.length, it.scope)
