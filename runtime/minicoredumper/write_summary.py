"""WRITE: the crash summary: summary.json and its short text twin, summary.txt.

What a person needs when no gdb is at hand: signal, code and fault address,
the crashing thread's registers, every thread's frames as read_unwind
walked them after the release (crashing thread first; read_stack's return
addresses when nothing was copied to walk; each frame as module + offset +
build-id, with the symbol gdb names it by from the module's .symtab or
.dynsym (read_modules.SymbolFile.nearest), and how it was found), who crashed
where (pid, uid, gid, time, host, boot id, kernel, exe with its build-id and
package, cgroup and systemd unit), its rlimits and open fds, and what the
dump holds.  Under a small budget summary.json leaves keys out in LEAVE_OUT's
order and never the identity (docs/FORMATS.md §9).  JSON is written by hand
here, and the package note's JSON read by hand: the crash path imports no
json module.
"""

import time

from . import elf as E
from .linux import SIGNAL_NAMES, si_code_name

# What summary.json leaves out, group after group, while the budget cannot
# hold it (docs/FORMATS.md §9): the smallest form is the identity of the
# crash (pid, tid, uid, gid, time, host, boot id, exe, its build-id, comm,
# signal, the crashing thread's frames and their modules).  "thread_frames": the
# other threads' frames, "frames_end": why the crashing thread's walk ended;
# "frames.symbol": every frame's symbol; "frames.scan": the frames a stack scan
# guessed, but for the first KEEP_FRAMES frames.
LEAVE_OUT = [("fds", "fds_more"), ("rlimits",), ("registers",), ("cmdline",),
             ("cgroup", "unit", "user_unit"), ("package",), ("arch", "kernel", "threads"),
             ("thread_frames", "frames_end"), ("dump",), ("frames.symbol",), ("frames.scan",)]
MAX_LOOKUPS = 1024
# Frames whose PC is where execution stopped (the first, and the one a signal
# interrupted); the others hold a return address, looked up at PC - 1 as gdb
# does (a call that never returns may end its function).
EXACT = ("pc", "signal")
# The symbol of the kernel's signal return trampoline's frame (the one below a
# frame found in a signal's context), as gdb names it.
SIGNAL_TRAMPOLINE = "<signal handler called>"
KEEP_FRAMES = 4
# summary.json's dump.core when the budget left no core: this, then why
# (docs/FORMATS.md §9); no_core() reads it back.
NO_CORE = "none: "

# The FDO packaging metadata note (.note.package) is the process's own bytes:
# read as at most PACKAGE_TEXT characters, PACKAGE_MEMBERS members kept.
PACKAGE_TEXT = 4096
PACKAGE_MEMBERS = 16
PACKAGE_KEY = 64
PACKAGE_VALUE = 256
PACKAGE_DEPTH = 8  # nested values are skipped, this deep at most


def symbolize(addresses, modules, names=True):
    """[(address, how, module, offset, symbol or None)] for [(address, how)];
    names False: no symbol lookup (every symbol None).  A return address's
    symbol is the one holding address - 1 (EXACT).  Only the first
    MAX_LOOKUPS distinct addresses are named (nearest_symbols keeps a window
    of symbols per address)."""
    by_module = {}
    placed = []
    looked_up = 0
    for addr, how in addresses:
        m = _module_for(addr, modules)
        back = lookup_back(how)
        placed.append((addr, how, m, back))
        if names and m is not None and looked_up < MAX_LOOKUPS and m.file is not None:
            rel = by_module.setdefault(m, set())
            looked_up += (addr - m.bias - back) not in rel
            rel.add(addr - m.bias - back)
    found = {}
    for m, rel in by_module.items():
        for r, (name, off) in m.nearest_symbols(rel).items():
            found[(m, r)] = (name, off)
    out = []
    for addr, how, m, back in placed:
        sym = found.get((m, addr - m.bias - back)) if m else None
        if sym is not None:
            sym = symbol_text(sym[0], sym[1] + back)
        out.append((addr, how, m, addr - m.bias if m else None, sym))
    return out


def lookup_back(how):
    """How far below a frame's PC its symbol is looked up: 0 where execution
    stopped (EXACT), 1 for a return address (docs/FORMATS.md §9)."""
    return 0 if how in EXACT else 1


def symbol_text(name, offset):
    """A frame's symbol as summaries show it: "name", or "name+0x.." with the
    PC's offset from the symbol's start."""
    return "%s+%#x" % (name, offset) if offset else name


def below_signal(hows, n):
    """Whether frame n of a thread whose frames were found as hows [how] is
    the signal return trampoline's (SIGNAL_TRAMPOLINE): the frame after it
    holds the registers a signal interrupted."""
    return n + 1 < len(hows) and hows[n + 1] == "signal"


def _module_for(addr, modules):
    for m in modules:
        for p in m.phdrs:
            if p.type == E.PT_LOAD and m.bias + p.vaddr <= addr < m.bias + p.vaddr + p.memsz:
                return m
    return None


def no_core(core):
    """Why a dump has no core, from summary.json's dump.core (any JSON value),
    or None when it names a core file (or is absent)."""
    return core[len(NO_CORE):] if isinstance(core, str) and core.startswith(NO_CORE) else None


def exe_module(kc, modules, exe):
    """The executable's Module: the one whose segments hold the auxv's
    AT_PHDR, else the one mapped from exe's path; None if neither is found."""
    phdr = kc.auxv.get(E.AT_PHDR)
    m = _module_for(phdr, modules) if phdr else None
    if m is None and exe:
        m = next((m for m in modules if m.path == exe), None)
    return m


def build(kc, addresses, modules, arrival, exe, comm, cmdline, facts, dumped=None,
          symbols=True, walks=None):
    """The summary as a dict (what summary.json holds), keys in their
    order; addresses from read_stack.return_addresses() and facts from
    read_process.Process.facts(), both read while the process was still
    there; walks: read_unwind.Walk per thread (crashing thread first), which
    replace addresses, or None; arrival: crash.Arrival.  symbols False: no
    symbol lookup (each frame's symbol None), for the size of the smallest
    form."""
    a = kc.arch
    t = kc.crashing_thread
    signo, code, addr = kc.siginfo or (None, None, None)
    lists = [w.frames for w in walks] if walks else [addresses]
    every = symbolize([f for frames in lists for f in frames], modules, symbols)
    mods = []
    for _, _, m, _, _ in every:
        if m is not None and m not in mods:
            mods.append(m)
    threads = []
    for frames in lists:
        mine, every = every[:len(frames)], every[len(frames):]
        hows = [f[1] for f in mine]
        threads.append([{"pc": "%#x" % f[0], "how": f[1],
                         "module": mods.index(f[2]) if f[2] is not None else None,
                         "offset": "%#x" % f[3] if f[3] is not None else None,
                         "symbol": SIGNAL_TRAMPOLINE if below_signal(hows, n) else f[4]}
                        for n, f in enumerate(mine)])
    em = exe_module(kc, modules, exe)
    s = {
        "pid": arrival.pid, "tid": t.tid, "uid": arrival.uid, "gid": arrival.gid,
        "time": arrival.time, "time_given": arrival.time_given,
        "hostname": arrival.hostname, "boot_id": facts["boot_id"], "kernel": facts["kernel"],
        "exe": exe, "exe_build_id": em.build_id if em is not None else None,
        "package": parse_package(em.package) if em is not None else None,
        "comm": comm, "cmdline": cmdline,
        "cgroup": facts["cgroup"], "unit": facts["unit"], "user_unit": facts["user_unit"],
        "arch": a.name, "signal": signo, "signal_name": SIGNAL_NAMES.get(signo, ""), "code": code,
        "code_name": si_code_name(signo, code),
        "fault_address": "%#x" % addr if addr is not None else None,
        "sender": ({"pid": kc.sender[0], "uid": kc.sender[1]} if kc.sender is not None
                   else None),
        "registers": dict(zip(a.regs, ("%#x" % v for v in t.regs))),
        "frames": threads[0],
        "frames_end": walks[0].reason if walks else None,
        "thread_frames": [{"tid": w.tid, "frames": f, "end": w.reason}
                          for w, f in zip(walks[1:], threads[1:])] if walks else None,
        "modules": [{"path": m.path, "build_id": m.build_id} for m in mods],
        "threads": len(kc.threads),
        "rlimits": facts["rlimits"], "fds": facts["fds"], "fds_more": facts["fds_more"],
        "dump": dumped,
    }
    if not walks:  # read_stack's frames (before the release): no walks to speak of
        del s["frames_end"], s["thread_frames"]
    return s


def leave_out(s, n):
    """The summary s without the first n groups of LEAVE_OUT, and a last key
    "left_out" that lists what is really missing (s itself when n is 0)."""
    if not n:
        return s
    groups = [k for group in LEAVE_OUT[:n] for k in group]
    out = {k: v for k, v in s.items() if k not in groups}
    gone = [k for k in groups if k in s]
    frames = s["frames"]
    if "frames.symbol" in groups:
        frames = [{k: v for k, v in f.items() if k != "symbol"} for f in frames]
        gone.append("frames.symbol")
    if "frames.scan" in groups:
        kept = [f for i, f in enumerate(frames) if i < KEEP_FRAMES or f["how"] != "scan"]
        if len(kept) < len(frames):
            gone.append("frames.scan")
        frames = kept
    out["frames"] = frames
    out["left_out"] = gone
    return out


def forms(s):
    """summary.json's bytes for s, richest first: whole and indented, then on
    one line (compact), whole and with one more group of LEAVE_OUT left out
    each time; the last is smallest_form(s)."""
    yield to_json(s).encode("utf-8", "replace") + b"\n"
    for n in range(len(LEAVE_OUT) + 1):
        yield to_json(leave_out(s, n), None).encode("utf-8", "replace") + b"\n"


def smallest_form(s):
    """summary.json's bytes for s with every group of LEAVE_OUT left out, compact."""
    return to_json(leave_out(s, len(LEAVE_OUT)), None).encode("utf-8", "replace") + b"\n"


def text(s, limit=None):
    """summary.txt: the few lines a person reads first, then every thread's
    frames (crashing thread first), at most limit bytes (UTF-8) cut at a line
    boundary, a last line saying how many were left out."""
    sender = s.get("sender")
    lines = ["%s (pid %s, uid %s, gid %s) killed by %s%s code %s%s%s%s" % (
        one_line(s["exe"] or s["comm"]), s["pid"], s["uid"], s["gid"], s["signal_name"] or "signal",
        "" if s["signal_name"] else " %s" % s["signal"], s["code"],
        " (%s)" % s["code_name"] if s.get("code_name") else "",
        ", fault address %s" % s["fault_address"] if s["fault_address"] else "",
        ", sent by pid %s uid %s" % (sender["pid"], sender["uid"]) if sender else "")]
    where = ["on %s" % (s["hostname"] or "?"), "boot %s" % (s["boot_id"] or "?"),
             "Linux %s" % s["kernel"], _utc(s["time"])]
    if s["unit"]:
        where.append("unit %s" % s["unit"] + (" (%s)" % s["user_unit"] if s["user_unit"] else ""))
    pkg = s["package"]
    if pkg:
        where.append("package %s %s" % (pkg.get("name", "?"), pkg.get("version", "?")))
    lines.append(", ".join(where))
    lines += _frame_lines(s, s["frames"])
    for t in s.get("thread_frames") or ():
        lines.append("thread %s:" % t["tid"])
        lines += _frame_lines(s, t["frames"])
    return _cut([line + "\n" for line in lines], limit)


def one_line(text):
    """text with its control characters (a newline in a path or a thread name)
    as \\ooo, as /proc/PID/maps writes a newline: one line of summary.txt."""
    return "".join(c if " " <= c != "\x7f" else "\\%03o" % ord(c) for c in text)


def _frame_lines(s, frames):
    out = []
    for n, f in enumerate(frames):
        mod = s["modules"][f["module"]] if f["module"] is not None else None
        at = "%s+%s" % (mod["path"].rsplit("/", 1)[-1], f["offset"]) if mod else "?"
        out.append("#%d %s %s (%s)%s" % (n, f["pc"], f["symbol"] or "??", at,
                                         "" if f["how"] in ("pc", "cfi") else " [%s]" % f["how"]))
    return out


def _cut(lines, limit):
    """The lines joined, whole lines only within limit bytes (UTF-8) and a
    last line "(N more lines)" when some were left out."""
    data = [line.encode("utf-8", "replace") for line in lines]
    if limit is None or sum(map(len, data)) <= limit:
        return b"".join(data)
    more = len(("(%d more lines)\n" % len(data)).encode())
    out, used = [], 0
    for line in data:
        if used + len(line) + more > limit:
            break
        out.append(line)
        used += len(line)
    tail = ("(%d more lines)\n" % (len(data) - len(out))).encode()
    return b"".join(out) + (tail if used + len(tail) <= limit else b"")


def _utc(t):
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))
    except (OverflowError, OSError, ValueError):
        return "time %s" % t  # beyond what gmtime takes: the number itself


# --- the package note's JSON, read by hand -----------------------------------

def parse_package(desc):
    """The FDO packaging metadata note's desc (a NUL-terminated JSON object:
    "type", "name", "version", ...) as a dict of its members whose values
    are strings, numbers, true, false or null (nested values are skipped);
    at most PACKAGE_MEMBERS of them, keys and strings cut at PACKAGE_KEY and
    PACKAGE_VALUE characters; numbers that are no integers as their text.
    None when there is no note or it is not such an object (the process's
    own bytes: nothing in them is trusted, every loop is bounded by their
    length, cut at PACKAGE_TEXT)."""
    if not desc:
        return None
    t = desc.split(b"\0", 1)[0][:PACKAGE_TEXT].decode("utf-8", "replace")
    try:
        i = _ws(t, 0)
        if t[i] != "{":
            return None
        out = {}
        i = _ws(t, i + 1)
        if t[i] == "}":
            i += 1
        else:
            while True:
                key, i = _string(t, _ws(t, i))
                i = _ws(t, i)
                if t[i] != ":":
                    return None
                i = _ws(t, i + 1)
                value, keep, i = _value(t, i)
                if keep and len(out) < PACKAGE_MEMBERS:
                    out[key[:PACKAGE_KEY]] = value[:PACKAGE_VALUE] if isinstance(value, str) \
                        else value
                i = _ws(t, i)
                if t[i] == "}":
                    i += 1
                    break
                if t[i] != ",":
                    return None
                i += 1
        return out if _ws(t, i) == len(t) else None
    except (IndexError, ValueError):
        return None  # cut short or not JSON: no package


_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r",
            "t": "\t"}


def _ws(t, i):
    n = len(t)
    while i < n and t[i] in " \t\r\n":
        i += 1
    return i


def _string(t, i):
    """(the JSON string at t[i], index after it); ValueError if there is none."""
    if t[i] != '"':
        raise ValueError("not a string")
    out = []
    i += 1
    while True:
        c = t[i]
        if c == '"':
            return "".join(out), i + 1
        if c < " ":
            raise ValueError("control character in a string")
        if c != "\\":
            out.append(c)
            i += 1
            continue
        e = t[i + 1]
        if e in _ESCAPES:
            out.append(_ESCAPES[e])
            i += 2
            continue
        if e != "u":
            raise ValueError("bad escape")
        u = _hex4(t, i + 2)
        i += 6
        if 0xD800 <= u < 0xDC00 and t[i:i + 2] == "\\u":
            low = _hex4(t, i + 2)
            if 0xDC00 <= low < 0xE000:
                u = 0x10000 + ((u - 0xD800) << 10) + (low - 0xDC00)
                i += 6
        out.append("\ufffd" if 0xD800 <= u < 0xE000 else chr(u))


def _hex4(t, i):
    h = t[i:i + 4]
    if len(h) != 4 or h.strip("0123456789abcdefABCDEF"):
        raise ValueError("bad \\u escape")
    return int(h, 16)


def _value(t, i):
    """(value, kept, index after it): a scalar is kept, a nested object or
    array skipped (kept False)."""
    c = t[i]
    if c == '"':
        v, i = _string(t, i)
        return v, True, i
    for word, v in (("true", True), ("false", False), ("null", None)):
        if t.startswith(word, i):
            return v, True, i + len(word)
    if c == "-" or "0" <= c <= "9":
        j = i
        while j < len(t) and t[j] in "+-.eE0123456789":
            j += 1
        number = t[i:j]
        float(number)  # ValueError if it is none
        return (int(number) if number.lstrip("-").isdigit() else number), True, j
    if c not in "{[":
        raise ValueError("not a JSON value")
    depth = 0
    while True:
        c = t[i]
        if c == '"':
            _, i = _string(t, i)
            continue
        if c in "{[":
            depth += 1
            if depth > PACKAGE_DEPTH:
                raise ValueError("nested too deep")
        elif c in "}]":
            depth -= 1
            if not depth:
                return None, False, i + 1
        i += 1


def to_json(v, indent=""):
    """JSON text of dicts, lists, str, int, bool and None: indented by
    records, or with indent None on one line without spaces (the compact
    forms of a small budget)."""
    if indent is None:
        if isinstance(v, dict):
            return "{" + ",".join('"%s":%s' % (_escape(str(k)), to_json(x, None))
                                  for k, x in v.items()) + "}"
        if isinstance(v, (list, tuple)):
            return "[" + ",".join(to_json(x, None) for x in v) + "]"
    elif isinstance(v, dict):
        if all(not isinstance(x, (dict, list, tuple)) for x in v.values()):
            return "{" + ", ".join('"%s": %s' % (_escape(str(k)), to_json(x)) for k, x in
                                   v.items()) + "}"  # a flat record on one line
        inner = indent + "  "
        items = ['%s"%s": %s' % (inner, _escape(str(k)), to_json(x, inner)) for k, x in v.items()]
        return "{\n" + ",\n".join(items) + "\n" + indent + "}" if items else "{}"
    elif isinstance(v, (list, tuple)):
        if all(not isinstance(x, (dict, list, tuple)) for x in v):
            return "[" + ", ".join(to_json(x, indent) for x in v) + "]"
        inner = indent + "  "
        return "[\n" + ",\n".join(inner + to_json(x, inner) for x in v) + "\n" + indent + "]"
    if v is None:
        return "null"
    if v is True or v is False:
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    return '"%s"' % _escape(str(v))


def _escape(s):
    out = []
    for c in s:
        if c in '"\\':
            out.append("\\" + c)
        elif c < " " or c == "\x7f":
            out.append("\\u%04x" % ord(c))
        else:
            out.append(c)
    return "".join(out)
