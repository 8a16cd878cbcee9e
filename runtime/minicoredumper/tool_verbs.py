"""mcd's verbs for dumps, in the spirit of coredumpctl: list, info, gdb, extract, verify.

ID is a dump directory's name (or path), a PID or a comm; the newest match
wins for a PID or comm.  Errors say what to do next.  What a verb reads of a
dump is checked against its integrity record first; damaged input is one
line naming the file and what is wrong, and no verb leaves a partial file.
"""

import os
import sys

from .tool_catalog import list_dumps

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
                n += 1  # taken: try the next name

    def __enter__(self):
        return self.path

    def __exit__(self, *exc):
        from .files import remove_tree
        remove_tree(self.path)


class UserError(Exception):
    """A problem the user can fix; the message says how."""


def base_dir(args):
    """--base-dir, else where the handler writes: the main config's base_dir, or
    the default base_dir when the config cannot be used (as for the handler;
    a warning says why, unless it is the default config and not installed).
    UserError if the config is there but this user cannot read it."""
    if args.base_dir:
        return args.base_dir
    from . import config as C
    path = args.config or C.DEFAULT_CONFIG
    cfg, problem = C.main_config_or_defaults(path, [])
    if problem is not None:
        if os.path.exists(path) and not os.access(path, os.R_OK):
            raise UserError("%s; run as root or name the dump directory with --base-dir"
                            % problem)
        if args.config or os.path.lexists(path):
            print("mcd: warning: %s; the handler writes to the default base_dir %s, looking "
                  "there" % (problem, cfg.base_dir), file=sys.stderr)
    return cfg.base_dir


def _reason(e):
    """An OSError's reason, lower case: "permission denied"."""
    return (e.strerror or str(e)).lower()


def _unreadable(what, errors):
    """"WHAT cannot be read (why)", with "; run as root" when that would help."""
    why = ", ".join(sorted({_reason(e) for e in errors}))
    root = os.geteuid() != 0 and any(isinstance(e, PermissionError) for e in errors)
    return "%s cannot be read (%s)%s" % (what, why, "; run as root" if root else "")


def _dumps(base):
    """The dumps in base, oldest first (none if it does not exist); UserError if
    it cannot be read."""
    try:
        return list_dumps(base, strict=True)
    except FileNotFoundError:
        return []  # no base_dir yet: no dumps
    except OSError as e:
        raise UserError(_unreadable(base, [e])) from None


def _report_unreadable(base, errors):
    """The one line for dumps in base that could not be read (errors: one per dump)."""
    if errors:
        what = "%d dump%s in %s" % (len(errors), "" if len(errors) == 1 else "s", base)
        print("mcd: " + _unreadable(what, errors), file=sys.stderr)


def resolve(args, ident):
    """The Dump for ID (dir name or path, PID, or comm); UserError if none matches
    or it cannot be read."""
    from .tool_catalog import Dump
    if os.path.isdir(ident) and os.sep in ident:
        d = Dump(os.path.dirname(os.path.abspath(ident)), os.path.basename(ident.rstrip("/")))
    else:
        base = base_dir(args)
        dumps = _dumps(base)
        if not dumps:
            raise UserError("no dumps in %s (is the handler installed? `mcd install`)" % base)
        matches = [d for d in dumps if d.name == ident] or \
            [d for d in dumps if ident.isdigit() and d.pid == int(ident)] or \
            [d for d in dumps if d.comm == ident]
        if not matches:
            raise UserError("no dump matches %r in %s; `mcd list` shows what there is"
                            % (ident, base))
        d = matches[-1]
    e = d.access_error()
    if e is not None:
        raise UserError(_unreadable(d.path, [e]))
    return d


def check_intact(dump, only=None):
    """UserError naming the damage if the dump's files (only: just these) do not
    match its integrity record; a dump without one (the original
    minicoredumper's) is taken as it is."""
    from .publish_manifest import MANIFEST, verify
    if os.path.lexists(os.path.join(dump.path, MANIFEST)):
        problems = verify(dump.path, only)
        if problems:
            raise UserError("%s is damaged: %s" % (dump.path, "; ".join(problems)))


def core_artefact(dump):
    """The path of the dump's core artefact, checked against the integrity
    record; UserError if there is none or it is damaged."""
    names = [n for n in os.listdir(dump.path) if n == "core" or n.startswith("core.")]
    if not names:
        raise UserError("%s has no core (its recept's budget left no room; see summary.txt)"
                        % dump.name)
    check_intact(dump, names[:1])
    return os.path.join(dump.path, names[0])


def _decode_errors():
    """What reading a damaged archive raises: EOFError, OSError (gzip, bz2), and
    the errors of the decompressors and tarfile when they are loaded."""
    errors = [EOFError, OSError]
    for module, name in (("zlib", "error"), ("lzma", "LZMAError"), ("tarfile", "TarError")):
        if module in sys.modules:
            errors.append(getattr(sys.modules[module], name))
    return tuple(errors)


def _damaged(src, e):
    detail = " ".join(str(e).split()) or type(e).__name__
    return "%s is damaged: %s" % (src, detail)


class _Reader:
    """Reads the decompressing file object f, and at its end what is left of
    rest (the archive around it: the compression's check is at the end); read
    errors become UserError naming src."""

    def __init__(self, f, src, rest=None):
        self.f = f
        self.src = src
        self.rest = rest

    def read(self, size=-1):
        try:
            data = self.f.read(size)
            while not data and self.rest is not None and self.rest.read(1 << 16):
                pass
            return data
        except _decode_errors() as e:
            raise UserError(_damaged(self.src, e)) from None


def unpack_core(src, out):
    """Write the plain core held by artefact src (core, core.EXT, core.tar.EXT) to
    out, whole or not at all (files.replace_file); returns out.  UserError
    naming src if it is damaged, or its compression is one mcd cannot read."""
    from .files import replace_file
    name = os.path.basename(src)
    ext = name.rsplit(".", 1)[-1]
    tar = ".tar." in name
    if name != "core" and not tar and ext not in CORE_OPENERS:
        raise UserError("%s: unknown compression %r; decompress it by hand" % (src, ext))
    with open(src, "rb") as f:
        if name == "core":
            replace_file(out, f)
        elif tar:
            import tarfile
            try:
                t = tarfile.open(src, "r:" + ext if ext in CORE_OPENERS else "r:*", f)
                member = t.extractfile(t.getmember("core"))
            except tarfile.CompressionError as e:
                raise UserError("%s: %s; decompress it by hand" % (src, e)) from None
            except KeyError:
                raise UserError("%s is damaged: it holds no core" % src) from None
            except _decode_errors() as e:
                raise UserError(_damaged(src, e)) from None
            with t:
                replace_file(out, _Reader(member, src, t.fileobj))
        else:
            with __import__(CORE_OPENERS[ext]).open(f) as c:
                replace_file(out, _Reader(c, src))
    return out


def _open_core(core, src):
    """The CoreFile of core, unpacked from the artefact src; UserError naming src
    if it is not a core (or cut short)."""
    from .tool_corefile import CoreFile
    from .read_corestream import CoreFormatError
    try:
        return CoreFile(core, name=src if core == src else "the core in " + src)
    except CoreFormatError as e:
        raise UserError(str(e)) from None


def _summary(dump):
    """summary.json, or what summary.txt's first line says when a small budget
    left the JSON out; UserError if the file read is damaged."""
    import json
    path = os.path.join(dump.path, "summary.json")
    if os.path.exists(path):
        check_intact(dump, ["summary.json"])
        try:
            with open(path, "rb") as f:
                s = json.load(f)
        except ValueError as e:
            raise UserError(_damaged(path, e)) from None
        if not isinstance(s, dict):
            raise UserError("%s is damaged: not a JSON object" % path)
        return s
    check_intact(dump, ["summary.txt"])
    try:
        with open(os.path.join(dump.path, "summary.txt"), errors="replace") as f:
            first = f.readline()
    except FileNotFoundError:
        return {}  # a small budget kept no summary.txt: the summary is empty
    exe, _, rest = first.partition(" (pid ")
    signal = rest.partition(" killed by ")[2].split(" ", 1)[0]
    return {"exe": exe if exe.startswith("/") else None, "signal_name": signal}


def cmd_list(args):
    base = base_dir(args)
    rows, damaged, unreadable = [], [], []
    for d in _dumps(base):
        row = {"name": d.name, "time": d.stamp, "pid": d.pid, "comm": d.comm, "signal": None,
               "exe": None, "size": None, "inaccessible": None}
        e = d.access_error()
        if e is not None:
            unreadable.append(e)
            row["inaccessible"] = _reason(e)
        else:
            try:
                s = _summary(d)
            except UserError as e:
                damaged.append(str(e))
                s = {}
            row.update(signal=s.get("signal_name") or s.get("signal"), exe=s.get("exe"),
                       size=d.size)
        rows.append(row)
    if args.json:
        import json
        json.dump(rows, sys.stdout, indent=2)
        print()
    elif not rows:
        print("no dumps")
    else:
        fmt = "%-20s %7s %-16s %-8s %12s  %s"
        print(fmt % ("TIME", "PID", "COMM", "SIGNAL", "SIZE", "DIRECTORY"))
        for r in rows:
            print(fmt % (r["time"], r["pid"], r["comm"][:16], r["signal"] or "-",
                         "inaccessible" if r["inaccessible"] else r["size"], r["name"]))
    for message in damaged:
        print("mcd: " + message, file=sys.stderr)
    _report_unreadable(base, unreadable)
    return 1 if damaged or unreadable else 0


def cmd_info(args):
    d = resolve(args, args.id)
    print("directory: %s" % d.path)
    try:
        with open(os.path.join(d.path, "summary.txt"), errors="replace") as f:
            sys.stdout.write(f.read())
    except FileNotFoundError:
        print("(no summary.txt)")
    print("files:")
    for root, _, files in os.walk(d.path):
        for f in sorted(files):
            p = os.path.join(root, f)
            print("  %8d  %s" % (os.path.getsize(p), os.path.relpath(p, d.path)))
    check_intact(d)
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
    from .tool_corefile import NotInCore, parse_symbol_map
    from .files import replace_file
    from .read_corestream import CoreFormatError
    with TempDir() as tmp:
        if os.path.isfile(args.id):
            src = core = args.id
            smap = os.path.join(os.path.dirname(os.path.abspath(args.id)), "symbol.map")
        else:
            d = resolve(args, args.id)
            src = core_artefact(d)
            core = unpack_core(src, os.path.join(tmp, "core"))
            smap = os.path.join(d.path, "symbol.map")
            if not args.symbol_map:
                check_intact(d, ["symbol.map"])
        smap = args.symbol_map or smap
        try:
            symbols = parse_symbol_map(smap)
        except OSError as e:
            raise UserError("%s: %s; name it with --symbol-map" % (smap, e.strerror)) from None
        except ValueError as e:
            raise UserError(str(e)) from None
        if args.ident not in symbols:
            raise UserError("ident %r is not in %s (it lists: %s)" % (
                args.ident, smap, ", ".join(sorted(symbols)) or "nothing"))
        _, vaddr, size, kind = symbols[args.ident]
        if kind == "N":
            raise UserError("%r was registered NODUMP: there is no data" % args.ident)
        c = _open_core(core, src)
        try:
            if kind == "I":
                pointer = c.read(vaddr, c.layout.wordsize)
                data = pointer + c.read(c.layout.word.unpack(pointer)[0], size)
            else:
                data = c.read(vaddr, size)
        except NotInCore as e:
            raise UserError("%s; run coreinject with the dump file first" % e) from None
        except CoreFormatError as e:
            raise UserError(str(e)) from None
        finally:
            c.close()
    out = args.output or args.ident
    replace_file(out, data)
    print("%s: %d bytes" % (out, len(data)))
    return 0


def cmd_gdb(args):
    """Unpack the core to a temporary directory and start gdb on it (gdb-multiarch
    with --sysroot for another architecture)."""
    import shutil
    from .linux import ARCHES
    d = resolve(args, args.id)
    exe = args.exe or _summary(d).get("exe")
    if not exe:
        raise UserError("%s does not say which program crashed; give it with --exe" % d.name)
    with TempDir("mcd-gdb.") as tmp:
        src = core_artefact(d)
        core = unpack_core(src, os.path.join(tmp, "core"))
        c = _open_core(core, src)
        machine = c.ehdr.machine
        c.close()
        native = machine == _host_machine()
        gdb = "gdb" if native else "gdb-multiarch"
        path = shutil.which(gdb)
        if path is None:
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
        return _run_debugger(path, argv + args.gdb_args + [exe, core])


def _run_debugger(path, argv):
    """Run the debugger and return its exit status (128 + N if signal N ended it).
    Meanwhile mcd ignores SIGINT, as debugger front ends do: Ctrl-C is the
    debugger's, which starts with SIGINT's default action, not the ignore."""
    import signal
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        pid = os.posix_spawn(path, argv, os.environ, setsigdef=(signal.SIGINT,))
        status = os.waitpid(pid, 0)[1]
    finally:
        signal.signal(signal.SIGINT, old)
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code


def _host_machine():
    """e_machine of this interpreter's own executable: the host's architecture."""
    from .elf import read_ehdr
    with open(sys.executable, "rb") as f:
        return read_ehdr(lambda off, n: os.pread(f.fileno(), n, off))[1].machine


def cmd_verify(args):
    from .publish_manifest import verify
    if args.ids:
        base, dumps = None, [resolve(args, i) for i in args.ids]
    else:
        base = base_dir(args)
        dumps = _dumps(base)
    bad = 0
    unreadable = []
    for d in dumps:
        e = d.access_error()
        if e is not None:
            unreadable.append(e)
            print("INACCESSIBLE %s" % d.name)
            continue
        problems = verify(d.path)
        if problems:
            bad += 1
            print("CORRUPT %s: %s" % (d.name, "; ".join(problems)))
        else:
            print("OK %s" % d.name)
    if bad:
        print("%d of %d dumps failed verification" % (bad, len(dumps)), file=sys.stderr)
    _report_unreadable(base, unreadable)
    return 1 if bad or unreadable else 0


def add_verbs(sub):
    """Register the dump verbs on mcd's subparsers."""
    from argparse import RawDescriptionHelpFormatter

    def verb(name, help, epilog=None, **kw):
        p = sub.add_parser(name, help=help, epilog=epilog,
                           formatter_class=RawDescriptionHelpFormatter, **kw)
        p.add_argument("--config", help="main config (default /etc/minicoredumper/...)")
        p.add_argument("--base-dir", help="dump directory (default: where the handler "
                                          "writes, the config's base_dir)")
        return p

    dash = "An ID that starts with - goes after --:\n  mcd %s -- -bash.20260101.120000+0000.42"
    p = verb("list", "the dumps, oldest first")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)
    p = verb("info", "a dump's summary and files", dash % "info")
    p.add_argument("id", metavar="ID", help="dump directory name, PID or comm")
    p.set_defaults(func=cmd_info)
    p = verb("gdb", "start gdb on a dump's core",
             "With the ID before --, everything after -- goes to gdb:\n"
             "  mcd gdb crash3 -- -batch -ex bt\n"
             "An ID that starts with - goes right after --, and gdb's arguments after a "
             "second --:\n"
             "  mcd gdb -- -bash.20260101.120000+0000.42 -- -batch -ex bt",
             usage="mcd gdb [OPTIONS] ID [-- GDB-ARGUMENTS]\n"
                   "       mcd gdb [OPTIONS] -- ID [-- GDB-ARGUMENTS]")
    p.add_argument("id", metavar="ID", nargs="?", help="dump directory name, PID or comm")
    p.add_argument("--exe", help="the crashed program (default: from the summary)")
    p.add_argument("--sysroot", help="the target's root file system (foreign architectures)")
    p.set_defaults(func=cmd_gdb, usage_error=p.error)
    p = verb("extract", "a dump's plain core, or a registered buffer", dash % "extract")
    p.add_argument("id", metavar="ID", help="dump directory name, PID or comm; or a core file")
    p.add_argument("ident", nargs="?", help="a registered buffer's ident in symbol.map")
    p.add_argument("--symbol-map", help="default: the dump's symbol.map")
    p.add_argument("-o", "--output", help="output file")
    p.set_defaults(func=cmd_extract)
    p = verb("verify", "check dumps against their integrity records", dash % "verify")
    p.add_argument("ids", metavar="ID", nargs="*", help="dumps to check (default: all)")
    p.set_defaults(func=cmd_verify)
