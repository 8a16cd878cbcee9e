"""The stack-trace record (docs/FORMATS.md §13): every thread's frames as
module + offset, each with how it was found, and the build-ids and short
names of the modules they refer to; what a host needs to name the frames
(`mcd trace`) and nothing else.  It is the budget ladder's last rung before
"no core" (decide_budget): a few hundred bytes where not even the smallest
core fits.

The layout is described here once: a magic and a version byte, then ULEB128
numbers, then a CRC32.  encode() is the handler's (from the summary's
frames, write_summary.build); decode() is mcd's, strict and bounded: a
record that is cut short, damaged or hostile raises StackTraceError saying
what is wrong and where, never anything else, and no count read from it
makes a loop longer than the record's own bytes allow.

A Trace is the same either way: modules [(build-id hex or None, name)] and
threads [(tid, frames, cut)], crashing thread first, frames [(how, module
index or None, offset in the module, or the absolute address without one)]
innermost first, cut True when the walk ended before the outermost frame.
"""

import zlib

MAGIC = b"MCDt"
VERSION = 1
# how a frame was found (docs/FORMATS.md §9), by its code in the record
HOWS = ("pc", "signal", "cfi", "lr", "fp", "scan")
HOW_BITS = 3
MAX_BUILD_ID = 64  # bytes
MAX_NAME = 255  # bytes of a module's short name (longer ones are cut at encoding)
MAX_FRAMES = 1024  # per thread (read_unwind.MAX_FRAMES)
MAX_RECORD = 16 << 20  # bytes mcd reads of a record file
MAX_VALUE = (1 << 64) - 1
CRC_SIZE = 4
FILE = "stacktrace"  # its name in a dump directory (docs/FORMATS.md §4)


class StackTraceError(ValueError):
    """A record that cannot be read: the message says what is wrong and where."""


class Trace:
    """modules [(build-id hex or None, name)], threads [(tid, [(how, module
    index or None, value)], cut)], crashing thread first (module docstring)."""

    __slots__ = ("modules", "threads")

    def __init__(self, modules, threads):
        self.modules = modules
        self.threads = threads


def from_summary(s, threads=None):
    """The Trace of a summary (write_summary.build's dict, or summary.json
    read back): its crashing thread's frames, then thread_frames' (only the
    first `threads` threads when given), each frame's module, offset (hex)
    and how; modules as summary's "modules" (path, build_id), only those the
    kept frames refer to.  KeyError, TypeError or ValueError on a summary
    that lacks what it needs."""
    lists = [(s["tid"], s["frames"], s.get("frames_end") is not None)]
    lists += [(t["tid"], t["frames"], t.get("end") is not None)
              for t in s.get("thread_frames") or ()]
    if threads is not None:
        lists = lists[:threads]
    used = {}
    out = []
    for tid, frames, cut in lists:
        mine = []
        for f in frames:
            m = f["module"]
            if m is None or f.get("offset") is None:
                mine.append((f["how"], None, int(f["pc"], 16)))
            else:
                mine.append((f["how"], used.setdefault(m, len(used)), int(f["offset"], 16)))
        out.append((tid, mine, cut))
    mods = [None] * len(used)
    for m, i in used.items():
        mods[i] = (s["modules"][m]["build_id"], s["modules"][m]["path"])
    return Trace(mods, out)


def _uleb(n, out):
    while n > 0x7F:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    out.append(n)


def encode(trace):
    """The record's bytes for a Trace (module names cut to their last path
    component and MAX_NAME bytes)."""
    out = bytearray(MAGIC)
    out.append(VERSION)
    _uleb(len(trace.modules), out)
    for build_id, name in trace.modules:
        bid = bytes.fromhex(build_id)[:MAX_BUILD_ID] if build_id else b""
        _uleb(len(bid), out)
        out += bid
        short = name.rsplit("/", 1)[-1].encode("utf-8", "surrogateescape")[:MAX_NAME]
        _uleb(len(short), out)
        out += short
    _uleb(len(trace.threads), out)
    for tid, frames, cut in trace.threads:
        frames = frames[:MAX_FRAMES]
        _uleb(tid, out)
        _uleb(len(frames) << 1 | bool(cut), out)
        for how, module, value in frames:
            code = HOWS.index(how) if how in HOWS else HOWS.index("scan")
            _uleb(((0 if module is None else module + 1) << HOW_BITS) | code, out)
            _uleb(value & MAX_VALUE, out)
    out += zlib.crc32(out).to_bytes(CRC_SIZE, "little")
    return bytes(out)


def forms(s):
    """The records of summary s to try, richest first: every thread, then the
    crashing thread alone (when there are others)."""
    yield encode(from_summary(s))
    if s.get("thread_frames"):
        yield encode(from_summary(s, threads=1))


class _Reader:
    def __init__(self, data, end):
        self.data = data
        self.pos = 0
        self.end = end

    def fail(self, what):
        raise StackTraceError("%s (at byte %d)" % (what, self.pos))

    def uleb(self, what, limit=MAX_VALUE):
        n = shift = 0
        start = self.pos
        while True:
            if self.pos >= self.end:
                self.pos = start
                self.fail("cut short in %s" % what)
            b = self.data[self.pos]
            self.pos += 1
            n |= (b & 0x7F) << shift
            if not b & 0x80:
                break
            shift += 7
            if shift > 63:
                self.pos = start
                self.fail("%s is longer than 64 bits" % what)
        if n > limit:
            self.pos = start
            self.fail("%s is %d, more than %d" % (what, n, limit))
        return n

    def bytes(self, n, what):
        if self.pos + n > self.end:
            self.fail("cut short in %s" % what)
        self.pos += n
        return self.data[self.pos - n:self.pos]

    def left(self):
        return self.end - self.pos


def decode(data):
    """The Trace of a record's bytes; StackTraceError if they are not one
    (magic, version, CRC32, every count and index checked; no bytes after it)."""
    data = bytes(data)
    head = len(MAGIC) + 1
    if len(data) < head + CRC_SIZE:
        raise StackTraceError("%d bytes: too short for a stack-trace record" % len(data))
    if data[:len(MAGIC)] != MAGIC:
        raise StackTraceError("not a stack-trace record (magic %r, expected %r)"
                              % (data[:len(MAGIC)], MAGIC))
    if data[len(MAGIC)] != VERSION:
        raise StackTraceError("version %d of the stack-trace record; this mcd reads "
                              "version %d" % (data[len(MAGIC)], VERSION))
    end = len(data) - CRC_SIZE
    crc = int.from_bytes(data[end:], "little")
    if zlib.crc32(data[:end]) != crc:
        raise StackTraceError("CRC32 %08x does not match its bytes (%08x): damaged"
                              % (crc, zlib.crc32(data[:end])))
    r = _Reader(data, end)
    r.pos = head
    # Each module takes at least 2 bytes, each thread 2, each frame 2: no
    # count can ask for more items than the bytes left hold.
    modules = []
    for _ in range(r.uleb("the module count", r.left() // 2)):
        bid = r.bytes(r.uleb("a build-id's length", MAX_BUILD_ID), "a build-id")
        raw = r.bytes(r.uleb("a module name's length", MAX_NAME), "a module name")
        try:
            name = raw.decode("utf-8")
        except UnicodeDecodeError:
            r.fail("a module name that is not UTF-8")
        if not name or "/" in name or "\0" in name:
            r.fail("a module name %r that is no file name" % name)
        modules.append((bid.hex() if bid else None, name))
    threads = []
    for _ in range(r.uleb("the thread count", r.left() // 2)):
        tid = r.uleb("a thread id", (1 << 32) - 1)
        count = r.uleb("a frame count", min(MAX_FRAMES, r.left() // 2) << 1 | 1)
        frames = []
        for _ in range(count >> 1):
            code = r.uleb("a frame's module and how", (len(modules) + 1) << HOW_BITS)
            how = code & ((1 << HOW_BITS) - 1)
            if how >= len(HOWS):
                r.fail("a frame's how code %d (known: 0-%d)" % (how, len(HOWS) - 1))
            module = (code >> HOW_BITS) - 1
            if module >= len(modules):
                r.fail("a frame in module %d of %d" % (module, len(modules)))
            frames.append((HOWS[how], None if module < 0 else module,
                           r.uleb("a frame's address")))
        threads.append((tid, frames, bool(count & 1)))
    if r.pos != end:
        r.fail("%d bytes after the last thread" % (end - r.pos))
    if not threads:
        r.fail("no thread")
    return Trace(modules, threads)


def read(path):
    """decode() of the file at path; StackTraceError naming the file for a
    record that cannot be read (larger than MAX_RECORD, or not a record)."""
    with open(path, "rb") as f:
        data = f.read(MAX_RECORD + 1)
    if len(data) > MAX_RECORD:
        raise StackTraceError("%s is damaged: larger than %d bytes, no stack-trace record"
                              % (path, MAX_RECORD))
    try:
        return decode(data)
    except StackTraceError as e:
        raise StackTraceError("%s is damaged: %s" % (path, e)) from None
