"""mcd's verbs for dumps, in the spirit of coredumpctl: list, info, gdb, extract, verify.

ID is a dump directory's name (or path), a PID or a comm; the newest match
wins for a PID or comm.  Errors say what to do next.
"""

import os
import sys

from .catalog import list_dumps

CORE_OPENERS = {"gz": "gzip", "xz": "lzma", "bz2": "bz2"}


class TempDir:
    """A private scratch directory, removed on exit (tempfile would pull random,
    hashlib and more into the tools package on a target)."""

    def __init__(self, prefix="mcd."):
        base = os.environ.get("TMPDIR", "/tmp")
        n = 0
        while True:
            self.path = os.path.join(base, "%s%d.%d" % (prefix, os.getpid(), n))
            try:
                os.mkdir(self.path, 0o700)
                break
            except FileExistsError:
                n += 1

    def __enter__(self):
        return self.path

    def __exit__(self, *exc):
        from ..publish.dumpdir import remove_tree
        remove_tree(self.path)


class UserError(Exception):
    """A problem the user can fix; the message says how."""


def base_dir(args):
    if args.base_dir:
        return args.base_dir
    from ..decide import config as C
    path = args.config or C.DEFAULT_CONFIG
    try:
        return C.load_main_config(path, []).base_dir
    except C.ConfigError as e:
        raise UserError("%s; name the dump directory with --base-dir" % e) from None


def resolve(args, ident):
    """The Dump for ID (dir name or path, PID, or comm)."""
    from .catalog import Dump
    if os.path.isdir(ident) and os.sep in ident:
        return Dump(os.path.dirname(os.path.abspath(ident)), os.path.basename(ident.rstrip("/")))
    base = base_dir(args)
    dumps = list_dumps(base)
    if not dumps:
        raise UserError("no dumps in %s (is the handler installed? `mcd install`)" % base)
    matches = [d for d in dumps if d.name == ident] or \
        [d for d in dumps if ident.isdigit() and d.pid == int(ident)] or \
        [d for d in dumps if d.comm == ident]
    if not matches:
        raise UserError("no dump matches %r in %s; `mcd list` shows what there is"
                        % (ident, base))
    return matches[-1]


def core_artefact(dump):
    names = [n for n in os.listdir(dump.path) if n == "core" or n.startswith("core.")]
    if not names:
        raise UserError("%s has no core (its recept's budget left no room; see summary.txt)"
                        % dump.name)
    return os.path.join(dump.path, names[0])


def unpack_core(src, out):
    """Write the plain core held by artefact src (core, core.EXT, core.tar.EXT) to out."""
    import shutil
    name = os.path.basename(src)
    ext = name.rsplit(".", 1)[-1]
    if name == "core":
        shutil.copyfile(src, out)
        return out
    if ".tar." in name:
        import tarfile
        with tarfile.open(src) as t:
            with t.extractfile(t.getmember("core")) as f, open(out, "wb") as o:
                shutil.copyfileobj(f, o)
        return out
    module = CORE_OPENERS.get(ext)
    if module is None:
        raise UserError("%s: unknown compression %r; decompress it by hand" % (src, ext))
    opener = __import__(module).open
    with opener(src, "rb") as f, open(out, "wb") as o:
        shutil.copyfileobj(f, o)
    return out


def _summary(dump):
    """summary.json, or what summary.txt's first line says when a small budget
    left the JSON out."""
    import json
    try:
        with open(os.path.join(dump.path, "summary.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        pass
    try:
        with open(os.path.join(dump.path, "summary.txt")) as f:
            first = f.readline()
    except OSError:
        return {}
    exe, _, rest = first.partition(" (pid ")
    signal = rest.partition(" killed by ")[2].split(" ", 1)[0]
    return {"exe": exe if exe.startswith("/") else None, "signal_name": signal}


def cmd_list(args):
    dumps = list_dumps(base_dir(args))
    rows = []
    for d in dumps:
        s = _summary(d)
        rows.append({"name": d.name, "time": d.stamp, "pid": d.pid, "comm": d.comm,
                     "signal": s.get("signal_name") or s.get("signal"), "exe": s.get("exe"),
                     "size": d.size})
    if args.json:
        import json
        json.dump(rows, sys.stdout, indent=2)
        print()
        return 0
    if not rows:
        print("no dumps")
        return 0
    fmt = "%-20s %7s %-16s %-8s %8s  %s"
    print(fmt % ("TIME", "PID", "COMM", "SIGNAL", "SIZE", "DIRECTORY"))
    for r in rows:
        print(fmt % (r["time"], r["pid"], r["comm"][:16], r["signal"] or "-", r["size"], r["name"]))
    return 0


def cmd_info(args):
    d = resolve(args, args.id)
    print("directory: %s" % d.path)
    try:
        with open(os.path.join(d.path, "summary.txt")) as f:
            sys.stdout.write(f.read())
    except OSError:
        print("(no summary.txt)")
    print("files:")
    for root, _, files in os.walk(d.path):
        for f in sorted(files):
            p = os.path.join(root, f)
            print("  %8d  %s" % (os.path.getsize(p), os.path.relpath(p, d.path)))
    return 0


def cmd_extract(args):
    """The plain core of a dump, or with IDENT a registered buffer out of a core."""
    if args.ident:
        return _extract_buffer(args)
    d = resolve(args, args.id)
    out = args.output or "core.%s" % d.pid
    unpack_core(core_artefact(d), out)
    print("%s: %d bytes (from %s)" % (out, os.path.getsize(out), d.name))
    return 0


def _extract_buffer(args):
    """Pull a registered buffer (by its symbol.map ident) out of a core into a
    file, in the dump-file format: [pointer if indirect] + data."""
    from .corefile import CoreFile, parse_symbol_map
    from ..read.corestream import CoreFormatError
    with TempDir() as tmp:
        if os.path.isfile(args.id):
            core, smap = args.id, os.path.join(os.path.dirname(os.path.abspath(args.id)),
                                               "symbol.map")
        else:
            d = resolve(args, args.id)
            core = unpack_core(core_artefact(d), os.path.join(tmp, "core"))
            smap = os.path.join(d.path, "symbol.map")
        smap = args.symbol_map or smap
        try:
            symbols = parse_symbol_map(smap)
        except OSError as e:
            raise UserError("%s: %s; name it with --symbol-map" % (smap, e.strerror)) from None
        if args.ident not in symbols:
            raise UserError("ident %r is not in %s (it lists: %s)" % (
                args.ident, smap, ", ".join(sorted(symbols)) or "nothing"))
        _, vaddr, size, kind = symbols[args.ident]
        if kind == "N":
            raise UserError("%r was registered NODUMP: there is no data" % args.ident)
        c = CoreFile(core)
        try:
            if kind == "I":
                pointer = c.read(vaddr, c.layout.wordsize)
                data = pointer + c.read(c.layout.word.unpack(pointer)[0], size)
            else:
                data = c.read(vaddr, size)
        except CoreFormatError as e:
            raise UserError("%s; run coreinject with the dump file first" % e) from None
        finally:
            c.close()
    out = args.output or args.ident
    with open(out, "wb") as f:
        f.write(data)
    print("%s: %d bytes" % (out, len(data)))
    return 0


def cmd_gdb(args):
    """Unpack the core to a temporary directory and start gdb on it (gdb-multiarch
    with --sysroot for another architecture)."""
    import shutil
    import subprocess
    from ..formats.arch import ARCHES
    from .corefile import CoreFile
    d = resolve(args, args.id)
    exe = args.exe or _summary(d).get("exe")
    if not exe:
        raise UserError("%s does not say which program crashed; give it with --exe" % d.name)
    with TempDir("mcd-gdb.") as tmp:
        core = unpack_core(core_artefact(d), os.path.join(tmp, "core"))
        c = CoreFile(core)
        machine = c.ehdr.machine
        c.close()
        native = machine == _host_machine()
        gdb = "gdb" if native else "gdb-multiarch"
        if shutil.which(gdb) is None:
            raise UserError("%s is not installed (the core is %s)" % (
                gdb, ARCHES[machine].name if machine in ARCHES else "e_machine %d" % machine))
        argv = [gdb]
        sysroot = args.sysroot or ("" if native else None)
        if sysroot is None:
            raise UserError("the core is %s: give the target's root file system with --sysroot"
                            % (ARCHES[machine].name if machine in ARCHES else machine))
        if sysroot:
            argv += ["-ex", "set sysroot " + sysroot]
            if not os.path.exists(exe) and os.path.exists(sysroot + exe):
                exe = sysroot + exe
        argv += args.passthrough + [exe, core]
        return subprocess.call(argv)


def _host_machine():
    with open(sys.executable, "rb") as f:
        head = f.read(20)
    return int.from_bytes(head[18:20], "little")


def cmd_verify(args):
    from ..publish.dumpdir import verify
    dumps = [resolve(args, i) for i in args.ids] if args.ids else list_dumps(base_dir(args))
    bad = 0
    for d in dumps:
        problems = verify(d.path)
        if problems:
            bad += 1
            print("CORRUPT %s: %s" % (d.name, "; ".join(problems)))
        else:
            print("OK %s" % d.name)
    if bad:
        print("%d of %d dumps failed verification" % (bad, len(dumps)), file=sys.stderr)
    return 1 if bad else 0


def add_verbs(sub):
    """Register the dump verbs on mcd's subparsers."""
    def common(p):
        p.add_argument("--config", help="main config (default /etc/minicoredumper/...)")
        p.add_argument("--base-dir", help="dump directory (default: the config's base_dir)")
        return p

    p = common(sub.add_parser("list", help="the dumps, oldest first"))
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)
    p = common(sub.add_parser("info", help="a dump's summary and files"))
    p.add_argument("id", help="dump directory name, PID or comm")
    p.set_defaults(func=cmd_info)
    p = common(sub.add_parser("gdb", help="start gdb on a dump's core"))
    p.add_argument("id")
    p.add_argument("--exe", help="the crashed program (default: from the summary)")
    p.add_argument("--sysroot", help="the target's root file system (foreign architectures)")
    p.epilog = "Arguments after -- go to gdb."
    p.set_defaults(func=cmd_gdb)
    p = common(sub.add_parser("extract", help="a dump's plain core, or a registered buffer"))
    p.add_argument("id", help="dump directory name, PID or comm; or a core file")
    p.add_argument("ident", nargs="?", help="a registered buffer's ident in symbol.map")
    p.add_argument("--symbol-map", help="default: the dump's symbol.map")
    p.add_argument("-o", "--output", help="output file")
    p.set_defaults(func=cmd_extract)
    p = common(sub.add_parser("verify", help="check dumps against their integrity records"))
    p.add_argument("ids", nargs="*", help="dumps to check (default: all)")
    p.set_defaults(func=cmd_verify)
