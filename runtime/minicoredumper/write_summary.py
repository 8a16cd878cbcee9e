"""WRITE: the crash summary: summary.json and its short text twin, summary.txt.

What a person needs when no gdb is at hand: signal, code and fault address,
the crashing thread's registers, the PC and return addresses that
read_stack.return_addresses() found (each as module + offset + build-id, with
the symbol name when the module's .symtab or .dynsym has it), exe, cmdline,
uid and gid, and what the dump holds.  JSON is written by hand here: the crash
path imports no json module.
"""

from . import elf as E
from .linux import SIGNAL_NAMES

def symbolize(addresses, modules):
    """[(address, how, module, offset, symbol or None)]."""
    by_module = {}
    placed = []
    for addr, how in addresses:
        m = _module_for(addr, modules)
        placed.append((addr, how, m))
        if m is not None and m.symbol_source():
            by_module.setdefault(m, []).append(addr - m.bias)
    names = {}
    from .read_modules import nearest_symbols
    for m, rel in by_module.items():
        for r, (name, off) in nearest_symbols(m.symbol_source(), set(rel)).items():
            names[(m, r)] = "%s+%#x" % (name, off) if off else name
    return [(addr, how, m, addr - m.bias if m else None,
             names.get((m, addr - m.bias)) if m else None) for addr, how, m in placed]


def _module_for(addr, modules):
    for m in modules:
        for p in m.phdrs:
            if p.type == E.PT_LOAD and m.bias + p.vaddr <= addr < m.bias + p.vaddr + p.memsz:
                return m
    return None


def build(kc, addresses, modules, exe, comm, cmdline, uid, gid, pid, dumped):
    """The summary as a dict (what summary.json holds); addresses from
    read_stack.return_addresses(), read while the process was still there."""
    a = kc.arch
    t = kc.crashing_thread
    signo, code, addr = kc.siginfo or (None, None, None)
    frames = symbolize(addresses, modules)
    mods = []
    for _, _, m, _, _ in frames:
        if m is not None and m not in mods:
            mods.append(m)
    return {
        "pid": pid, "tid": t.tid, "uid": uid, "gid": gid, "exe": exe, "comm": comm,
        "cmdline": cmdline,
        "arch": a.name, "signal": signo, "signal_name": SIGNAL_NAMES.get(signo, ""), "code": code,
        "fault_address": "%#x" % addr if addr is not None else None,
        "registers": dict(zip(a.regs, ("%#x" % v for v in t.regs))),
        "frames": [{"pc": "%#x" % f[0], "how": f[1],
                    "module": mods.index(f[2]) if f[2] is not None else None,
                    "offset": "%#x" % f[3] if f[3] is not None else None,
                    "symbol": f[4]} for f in frames],
        "modules": [{"path": m.path, "build_id": m.build_id} for m in mods],
        "threads": len(kc.threads),
        "dump": dumped,
    }


def text(s):
    """summary.txt: the few lines a person reads first."""
    lines = ["%s (pid %s, uid %s) killed by %s%s code %s%s" % (
        s["exe"] or s["comm"], s["pid"], s["uid"], s["signal_name"] or "signal",
        "" if s["signal_name"] else " %s" % s["signal"], s["code"],
        ", fault address %s" % s["fault_address"] if s["fault_address"] else "")]
    for n, f in enumerate(s["frames"]):
        mod = s["modules"][f["module"]] if f["module"] is not None else None
        where = "%s+%s" % (mod["path"].rsplit("/", 1)[-1], f["offset"]) if mod else "?"
        lines.append("#%d %s %s (%s)%s" % (n, f["pc"], f["symbol"] or "??", where,
                                           " [%s]" % f["how"] if f["how"] == "scan" else ""))
    return "\n".join(lines) + "\n"


def to_json(v, indent=""):
    """JSON text of dicts, lists, str, int, bool and None."""
    if isinstance(v, dict):
        if all(not isinstance(x, (dict, list, tuple)) for x in v.values()):
            return "{" + ", ".join('"%s": %s' % (_escape(str(k)), to_json(x)) for k, x in
                                   v.items()) + "}"  # a flat record on one line
        inner = indent + "  "
        items = ['%s"%s": %s' % (inner, _escape(str(k)), to_json(x, inner)) for k, x in v.items()]
        return "{\n" + ",\n".join(items) + "\n" + indent + "}" if items else "{}"
    if isinstance(v, (list, tuple)):
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
