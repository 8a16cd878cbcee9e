"""mcd's verbs for dumps, as coredumpctl's for core dumps: list, info, gdb
(debug), extract (dump), verify; and trace (every thread's backtrace named
on the host: tool_symbolize).

Every verb takes matches and the selection options of tool_select (PID, COMM,
EXE, FIELD=VALUE, a dump directory's name or path; --since, --until, -1, -n,
-r); list, info and verify show every selected dump, gdb and extract the
newest.  Errors say what to do next.  What a verb reads of a dump is checked
against its integrity record first; damaged input is one line naming the file
and what is wrong, and no verb leaves a partial file.
"""

import os
import sys

from .tool_catalog import list_dumps
from .tool_select import SelectionError

CORE_OPENERS = {"gz": "gzip", "xz": "lzma", "bz2": "bz2"}
# Fields of a dump's record (list --json, info --json, -F), in order.
LIST_FIELDS = ("name", "path", "time", "pid", "uid", "gid", "comm", "exe", "signal",
               "signal_name", "corefile", "core", "size", "inaccessible")
INFO_FIELDS = LIST_FIELDS + ("build_id", "tid", "cmdline", "arch", "code", "fault_address",
                             "threads", "registers", "frames", "modules", "dump", "files")


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
        what = "%d dump%s%s" % (len(errors), "" if len(errors) == 1 else "s",
                                " in %s" % base if base else "")
        print("mcd: " + _unreadable(what, errors), file=sys.stderr)


def selection(args):
    """The tool_select.Selection of args; UserError for a match or time mcd cannot read."""
    from .tool_select import Selection, parse_time
    try:
        since = parse_time(args.since) if args.since else None
        until = parse_time(args.until) if args.until else None
        newest = 1 if args.one else args.lines
        return Selection(args.matches, since, until, newest, args.reverse)
    except SelectionError as e:
        raise UserError(str(e)) from None


def select(args, newest_by_default=False):
    """(base_dir or None, [Dump]) that args select, in the order asked for;
    with newest_by_default only the newest when nothing narrows the selection
    (coredumpctl's info).  UserError if none matches."""
    from .tool_catalog import Dump
    sel = selection(args)
    named = []
    for m in sel.matches:
        if m.kind == "path":
            named.append(Dump(os.path.dirname(m.value), os.path.basename(m.value)))
    if sel.paths_only:
        base, dumps = None, named
    else:
        base = base_dir(args)
        dumps = _dumps(base)
        if not dumps and not named and not os.path.isdir(base):
            raise UserError("%s: no such directory (base_dir; is the handler installed? "
                            "`mcd install`)" % base)
        if not dumps and not named:
            raise UserError("no dumps in %s (is the handler installed? `mcd install`)" % base)
        known = {os.path.realpath(d.path) for d in dumps}
        dumps += [d for d in named if os.path.realpath(d.path) not in known]
    if newest_by_default and not sel.narrowed:
        sel.newest = 1
    need = sel.needs_summary()
    picked = sel.pick([d for d in dumps if sel.accepts(d, _summary_or_empty(d) if need else {})])
    if not picked:
        raise UserError("no dump matches %s%s; `mcd list` shows what there is" % (
            sel.describe() or "the selection", " in %s" % base if base else ""))
    return base, picked


def newest(args):
    """The newest selected Dump, readable; UserError if none, or it cannot be read."""
    d = select(args)[1][-1 if not args.reverse else 0]
    e = d.access_error()
    if e is not None:
        raise UserError(_unreadable(d.path, [e]))
    return d


def check_intact(dump, only=None):
    """UserError naming the damage if the dump's files (only: just these) do not
    match its integrity record; a dump without one is read as it is
    (tool_catalog.Dump.integrity, the rule of every verb)."""
    from .tool_catalog import DAMAGED
    state, problems = dump.integrity(only)
    if state == DAMAGED:
        raise UserError("%s is damaged: %s" % (dump.path, "; ".join(problems)))


def core_artefact(dump):
    """The path of the dump's core artefact, checked against the integrity
    record; UserError if there is none or it is damaged."""
    names = _core_names(dump)
    if not names:
        from .stacktrace import FILE
        instead = ("`mcd trace %s` names its stack-trace record" % dump.name
                   if os.path.exists(os.path.join(dump.path, FILE)) else "see summary.txt")
        raise UserError("%s has no core (its recept's budget left no room; %s)"
                        % (dump.name, instead))
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
    ids, _, killed = rest.partition(") killed by ")
    signal = killed.split(" ", 1)[0]
    out = {"exe": exe if exe.startswith("/") else None, "signal_name": signal}
    # "(pid P, uid U, gid G)"; dumps written before gid was added lack ", gid G"
    for part in ("pid " + ids).split(", "):
        key, _, value = part.partition(" ")
        if key in ("pid", "uid", "gid") and value.isdigit():
            out[key] = int(value)
    return out


def _summary_or_empty(dump):
    """summary.json as _summary reads it, {} if it cannot be read or is damaged."""
    try:
        return _summary(dump)
    except (UserError, OSError):
        return {}  # the verb that shows the dump says what is wrong


def format_size(n):
    """Bytes as people read them: 512B, 3.9K, 12.0M (tenths cut, not rounded)."""
    if n < 1024:
        return "%dB" % n
    for i, unit in enumerate("KMGTPE", 1):
        if n < 1024 ** (i + 1) or unit == "E":
            tenths = n * 10 // 1024 ** i
            return "%d.%d%s" % (tenths // 10, tenths % 10, unit)


def format_time(t):
    """Local time as coredumpctl shows it: Mon 2026-11-30 12:00:01 CET."""
    import time
    return time.strftime("%a %Y-%m-%d %H:%M:%S %Z", time.localtime(t))


def _core_names(dump):
    return sorted(n for n in os.listdir(dump.path) if n == "core" or n.startswith("core."))


def core_state(dump, summary):
    """(state, core file name or None, detail) of a readable dump's core: state
    "present", "cut" (the budget kept less than everything), "none" (no
    core), "inaccessible" or "damaged"; detail says more (or is None)."""
    names = _core_names(dump)
    recorded = (summary.get("dump") or {}).get("core") if isinstance(summary.get("dump"), dict) \
        else None
    if not names:
        from .write_summary import no_core
        detail = no_core(recorded)
        if recorded and detail is None:
            return "damaged", None, "%s: missing" % recorded
        from .stacktrace import FILE
        if os.path.exists(os.path.join(dump.path, FILE)):
            detail = "; ".join(x for x in (detail, "a stack-trace record instead: mcd trace")
                               if x)
        return "none", None, detail
    name = names[0]
    path = os.path.join(dump.path, name)
    if not os.access(path, os.R_OK):
        return "inaccessible", name, "%s: permission denied" % name
    try:
        check_intact(dump, [name])
    except UserError as e:
        return "damaged", name, str(e).split(" is damaged: ", 1)[-1]
    content = (summary.get("dump") or {}).get("core_content")
    if content and content != "everything":
        return "cut", name, content
    return "present", name, content


def record(dump, errors, full=False):
    """A dump's fields (LIST_FIELDS; with full INFO_FIELDS but files); what
    cannot be read is None, with its message appended to errors."""
    row = dict.fromkeys(INFO_FIELDS if full else LIST_FIELDS)
    row.update(name=dump.name, path=dump.path, time=dump.time, pid=dump.pid,
               comm=dump.comm or None)
    if full:
        row.pop("files")  # cmd_info adds them last
    e = dump.access_error()
    if e is not None:
        row.update(inaccessible=_reason(e), corefile="inaccessible")
        errors.append(e)
        return row, {}
    try:
        s = _summary(dump)
    except UserError as e:
        errors.append(str(e))
        s = {}
    for key in row:
        if key in s and key not in ("name", "path", "time", "size"):
            row[key] = s[key]
    if s.get("comm"):
        row["comm"] = s["comm"]
    row["signal_name"] = s.get("signal_name") or _signal_name(s.get("signal"))
    row["corefile"], row["core"], _ = core_state(dump, s)
    row["size"] = dump.size
    if full:
        row["build_id"] = recorded_build_id(s)
    return row, s


def _signal_name(signo):
    """SIGSEGV for 11; None if unknown."""
    import signal
    try:
        return signal.Signals(signo).name if signo else None
    except ValueError:
        return None  # a number this system has no name for


def recorded_build_id(summary):
    """The crashed executable's build-id as summary.json records it (when a
    frame lies in it), or None."""
    from .tool_select import strip_deleted
    exe = summary.get("exe")
    for m in summary.get("modules") or ():
        if isinstance(m, dict) and exe and m.get("path") in (exe, strip_deleted(exe)):
            return m.get("build_id")
    return None


def _files(dump):
    """[{path, size}] of the dump's files, by path."""
    paths = sorted(os.path.relpath(os.path.join(root, f), dump.path)
                   for root, _, files in os.walk(dump.path) for f in files)
    return [{"path": p, "size": os.lstat(os.path.join(dump.path, p)).st_size} for p in paths]


def _print_json(rows):
    import json
    json.dump(rows, sys.stdout, indent=2)
    print()


def _print_field(rows, field):
    import json
    for r in rows:
        v = r.get(field)
        print("" if v is None else v if isinstance(v, (str, int)) and not isinstance(v, bool)
              else json.dumps(v))


def _show_problems(base, errors):
    """Messages of errors (str) and the one line for unreadable dumps (OSError);
    True if there were any."""
    for message in errors:
        if isinstance(message, str):
            print("mcd: " + message, file=sys.stderr)
    _report_unreadable(base, [e for e in errors if not isinstance(e, str)])
    return bool(errors)


def cmd_list(args):
    base, dumps = select(args)
    errors = []
    rows = [record(d, errors, full=bool(args.field))[0] for d in dumps]
    if args.json:
        _print_json(rows)
    elif args.field:
        _print_field(rows, args.field)
    else:
        table = [("TIME", "PID", "UID", "GID", "SIG", "COREFILE", "EXE", "SIZE", "DIRECTORY")]
        for r in rows:
            table.append((format_time(r["time"]), _cell(r["pid"]), _cell(r["uid"]),
                          _cell(r["gid"]), r["signal_name"] or _cell(r["signal"]),
                          r["corefile"], r["exe"] or "-",
                          "-" if r["size"] is None else format_size(r["size"]), r["name"]))
        _print_table(table, right=(1, 2, 3, 7), legend=not args.no_legend)
    return 1 if _show_problems(base, errors) else 0


def _cell(v):
    return "-" if v is None else str(v)


def _print_table(rows, right=(), legend=True):
    """rows (the first: the legend) in columns as wide as their widest cell."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows[0 if legend else 1:]:
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in
                 enumerate(zip(r, widths))]
        print(" ".join(cells).rstrip())


def info_lines(row, summary, dump, files=True):
    """The lines of `mcd info` for one dump (the header only without files)."""
    def field(label, value):
        lines.append("%12s: %s" % (label, value))

    lines = []
    field("Dump", row["name"])
    field("Directory", row["path"])
    field("PID", "%s (%s)" % (_cell(row["pid"]), row["comm"] or "?"))
    for label, key in (("UID", "uid"), ("GID", "gid")):
        if row.get(key) is not None:
            field(label, row[key])
    if row.get("signal") is not None or row.get("signal_name"):
        field("Signal", "%s (%s)" % (_cell(row.get("signal")), row["signal_name"] or "?")
              if row.get("signal") is not None else row["signal_name"])
    field("Timestamp", format_time(row["time"]))
    if row.get("cmdline"):
        field("Command Line", row["cmdline"])
    if row.get("exe"):
        field("Executable", row["exe"])
    if row.get("build_id"):
        field("Build-ID", row["build_id"])
    if row["inaccessible"]:
        field("Corefile", "inaccessible (%s)" % row["inaccessible"])
        return lines
    state, name, detail = core_state(dump, summary)
    words = {"present": "present", "cut": "cut by the budget", "none": "none",
             "damaged": "damaged", "inaccessible": "inaccessible"}[state]
    what = detail if state == "damaged" else \
        ", ".join(x for x in (name, detail if detail != "everything" else None) if x)
    field("Corefile", "%s (%s)" % (words, what) if what else words)
    field("Size", "%s (the dump directory)" % format_size(row["size"]))
    try:
        with open(os.path.join(dump.path, "summary.txt"), errors="replace") as f:
            text = f.read().splitlines()
    except FileNotFoundError:
        text = ["(no summary.txt)"]
    for n, line in enumerate(text):
        lines.append("%12s  %s" % ("", line) if n else "%12s: %s" % ("Summary", line))
    if files:
        for n, f in enumerate(_files(dump)):
            entry = "%8d  %s" % (f["size"], f["path"])
            lines.append("%12s  %s" % ("", entry) if n else "%12s: %s" % ("Files", entry))
    return lines


def cmd_info(args):
    base, dumps = select(args, newest_by_default=True)
    errors, rows = [], []
    for n, d in enumerate(dumps):
        mine = len(errors)
        row, s = record(d, errors, full=True)
        if row["inaccessible"]:
            errors[-1] = _unreadable(d.path, [errors[-1]])
            row["files"] = None
        else:
            row["files"] = _files(d)
            try:
                check_intact(d)
            except UserError as e:  # the whole record's word replaces summary.json's
                errors[mine:] = [m for m in errors[mine:]
                                 if not m.startswith(d.path + " is damaged: ")] + [str(e)]
        rows.append(row)
        if not args.json and not args.field:
            if n:
                print()
            print("\n".join(info_lines(row, s, d)))
    if args.json:
        _print_json(rows)
    elif args.field:
        _print_field(rows, args.field)
    return 1 if _show_problems(base, errors) else 0


def _is_core_file(path):
    """Whether path, named before a buffer's IDENT, is a core file on disk
    rather than an executable to match (an ELF executable or shared object)."""
    from . import elf as E
    if not os.path.isfile(path) or is_dump_word(path):
        return False
    try:
        with open(path, "rb") as f:
            _, ehdr = E.read_ehdr(lambda off, n: os.pread(f.fileno(), n, off))
    except (OSError, E.ElfFormatError):
        return True  # not an executable: the core reader says what is wrong with it
    return ehdr.type not in (E.ET_EXEC, E.ET_DYN)


def is_dump_word(word):
    from .tool_catalog import is_dump_dir
    return "/" in word and is_dump_dir(word)


def _output(args, default, src=None, data=None):
    """Write the core file src (or the bytes data) to -o FILE, else to standard
    output when it is not a terminal, else to default; says where, but on
    standard output."""
    from .files import replace_file
    if not args.output and not sys.stdout.isatty():
        sys.stdout.flush()
        out = sys.stdout.buffer
        if data is not None:
            out.write(data)
        else:
            import shutil
            with open(src, "rb") as f:
                shutil.copyfileobj(f, out)
        out.flush()
        return None
    path = args.output or default
    if data is not None:
        replace_file(path, data)
    else:
        with open(src, "rb") as f:
            replace_file(path, f)
    return path


def cmd_extract(args):
    """The plain core of the newest selected dump, or with IDENT a registered
    buffer out of a core."""
    from .tool_select import Match
    words, ident, corefile = list(args.matches), args.buffer, None
    if words and (ident is not None or len(words) == 2) and _is_core_file(words[0]):
        corefile, words = words[0], words[1:]
        if ident is None:
            ident, words = words[0], []
        if words:
            args.usage_error("a core file takes no matches, only a buffer's IDENT")
    elif len(words) == 2 and ident is None:
        try:
            if Match(words[1]).kind == "comm":  # the older form: ID IDENT
                ident, words = words[1], words[:1]
        except SelectionError as e:
            raise UserError(str(e)) from None
    args.matches = words
    if ident is not None:
        return _extract_buffer(args, ident, corefile)
    d = newest(args)
    with TempDir() as tmp:
        core = unpack_core(core_artefact(d), os.path.join(tmp, "core"))
        out = _output(args, "core.%s" % d.pid, src=core)
    if out is not None:
        print("%s: %d bytes (from %s)" % (out, os.path.getsize(out), d.name))
    return 0


def _extract_buffer(args, ident, corefile):
    """Pull a registered buffer (by its symbol.map ident) out of a core, in the
    dump-file format: [pointer if indirect] + data."""
    from .tool_corefile import NotInCore, parse_symbol_map
    from .read_corestream import CoreFormatError
    with TempDir() as tmp:
        if corefile:
            src = core = corefile
            smap = os.path.join(os.path.dirname(os.path.abspath(corefile)), "symbol.map")
        else:
            d = newest(args)
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
        if ident not in symbols:
            raise UserError("ident %r is not in %s (it lists: %s)" % (
                ident, smap, ", ".join(sorted(symbols)) or "nothing"))
        _, vaddr, size, kind = symbols[ident]
        if kind == "N":
            raise UserError("%r was registered NODUMP: there is no data" % ident)
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
    out = _output(args, ident, data=data)
    if out is not None:
        print("%s: %d bytes" % (out, len(data)))
    return 0


def cmd_gdb(args):
    """Unpack the newest selected dump's core to a temporary directory, show
    its info header and start the debugger on it (gdb; gdb-multiarch with
    --sysroot for another architecture; --debugger or MCD_DEBUGGER: another)."""
    import shutil
    from .linux import ARCHES
    from .tool_select import split_words, strip_deleted
    d = newest(args)
    s = _summary(d)
    try:
        extra = split_words(args.debugger_arguments or "")
    except SelectionError as e:
        raise UserError("-A: %s" % e) from None
    with TempDir("mcd-gdb.") as tmp:
        src = core_artefact(d)
        core = unpack_core(src, os.path.join(tmp, "core"))
        c = _open_core(core, src)
        try:
            machine = c.ehdr.machine
            build_id = recorded_build_id(s) or c.exe_build_id()
            crashed = s.get("exe") or c.mapped_exe()  # no summary: the original's dumps
        finally:
            c.close()
        exe = args.exe or (strip_deleted(crashed) if crashed else None)
        if not exe:
            raise UserError("%s does not say which program crashed; give it with --exe"
                            % d.name)
        native = machine == _host_machine()
        arch = ARCHES[machine].name if machine in ARCHES else "e_machine %d" % machine
        chosen = args.debugger or os.environ.get("MCD_DEBUGGER")
        debugger = chosen or ("gdb" if native else "gdb-multiarch")
        path = shutil.which(debugger)
        if path is None:
            raise UserError("%s is not installed (the core is %s)%s" % (
                debugger, arch, "" if chosen else "; choose another with --debugger"))
        sysroot = args.sysroot or ("" if native else None)
        if sysroot is None:
            raise UserError("the core is %s: give the target's root file system with --sysroot"
                            % arch)
        lldb = os.path.basename(debugger).startswith("lldb")
        argv = [debugger]
        if sysroot:
            argv += (["-O", "platform select --sysroot %s remote-linux" % sysroot] if lldb
                     else ["-ex", "set sysroot " + sysroot])
            if not os.path.exists(exe) and os.path.exists(sysroot + exe):
                exe = sysroot + exe
        row, _ = record(d, [], full=True)
        row["build_id"] = build_id
        print("\n".join(info_lines(row, s, d, files=False)) + "\n", flush=True)
        for warning in exe_warnings(exe, crashed, build_id, given=bool(args.exe)):
            print("mcd: warning: " + warning, file=sys.stderr, flush=True)
        argv += extra + args.gdb_args
        if not os.path.exists(exe):
            argv += ["--core", core]
        else:
            argv += ["--core", core, exe] if lldb else [exe, core]
        return _run_debugger(path, argv)


def exe_warnings(exe, crashed, build_id, given=False):
    """Why the executable the debugger gets (given: with --exe) may not be the
    one that crashed: gone, deleted while it ran, or another build-id than the
    dump records."""
    from . import elf as E
    from .tool_corefile import file_build_id
    if not os.path.exists(exe):
        return ["%s %s: the debugger has no symbols for it" % (
            exe, "does not exist" if given else "is gone (deleted or moved since the crash)")]
    try:
        on_disk = file_build_id(exe)
    except (OSError, E.ElfFormatError) as e:
        return ["%s cannot be read as an ELF file (%s): the debugger may have no symbols for "
                "it" % (exe, getattr(e, "strerror", None) or e)]
    if build_id and on_disk != build_id:
        return ["%s is not the executable that crashed (build-id %s on disk, %s in the dump): "
                "symbols and source lines may be wrong" % (exe, on_disk or "none", build_id)]
    if not build_id and crashed and crashed.endswith(" (deleted)"):
        return ["%s was deleted while the program ran and the dump records no build-id: "
                "the file there now may not be the one that crashed" % exe]
    return []
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


VERIFY_UNVERIFIED = 3  # mcd verify's status when none is damaged but one had no manifest


def cmd_verify(args):
    """One line per selected dump: OK, CORRUPT and what differs, UNVERIFIED
    (no manifest: nothing to verify against) or INACCESSIBLE.  Status 1 if
    any is damaged or unreadable, else 3 if any had no manifest, else 0."""
    from .tool_catalog import DAMAGED, NO_MANIFEST
    base, dumps = select(args)
    bad = unverified = 0
    unreadable = []
    for d in dumps:
        e = d.access_error()
        if e is not None:
            unreadable.append(e)
            print("INACCESSIBLE %s" % d.name)
            continue
        state, problems = d.integrity()
        if state == DAMAGED:
            bad += 1
            print("CORRUPT %s: %s" % (d.name, "; ".join(problems)))
        elif state == NO_MANIFEST:
            unverified += 1
            print("UNVERIFIED %s: no manifest: nothing to verify against" % d.name)
        else:
            print("OK %s" % d.name)
    if bad:
        print("%d of %d dumps failed verification" % (bad, len(dumps)), file=sys.stderr)
    if unverified:
        print("%d of %d dumps have no manifest (the original minicoredumper's, or copied "
              "without it): not verified" % (unverified, len(dumps)), file=sys.stderr)
    _report_unreadable(base, unreadable)
    return 1 if bad or unreadable else VERIFY_UNVERIFIED if unverified else 0


def trace_of(dump):
    """(stacktrace.Trace, its source's file name, the frames' absolute PCs per
    thread or None) of a dump: its stack-trace record when it has one, else
    summary.json's frames; UserError naming the file if it is damaged or
    there is neither."""
    from . import stacktrace as T
    path = os.path.join(dump.path, T.FILE)
    if os.path.exists(path):
        check_intact(dump, [T.FILE])
        try:
            return T.read(path), T.FILE, None
        except T.StackTraceError as e:
            raise UserError(str(e)) from None
    if not os.path.exists(os.path.join(dump.path, "summary.json")):
        raise UserError("%s has neither a stack-trace record nor summary.json: no frames "
                        "(summary.txt has what the budget kept)" % dump.path)
    s = _summary(dump)
    try:
        trace = T.from_summary(s)
        pcs = [[int(f["pc"], 16) for f in frames] for frames in
               [s["frames"]] + [t["frames"] for t in s.get("thread_frames") or ()]]
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
        raise UserError(_damaged(os.path.join(dump.path, "summary.json"),
                                 "no frames to read (%s)" % e)) from None
    return trace, "summary.json", pcs


def _device_paths(dump):
    """({build-id: path}, {short name: path}) of the modules and executable the
    dump's summary names (summary.json, else summary.txt's first line)."""
    s = _summary_or_empty(dump)
    by_id, by_name = {}, {}
    for m in s.get("modules") or ():
        if isinstance(m, dict) and isinstance(m.get("path"), str):
            if isinstance(m.get("build_id"), str):
                by_id[m["build_id"]] = m["path"]
            by_name.setdefault(m["path"].rsplit("/", 1)[-1], m["path"])
    exe = s.get("exe")
    if isinstance(exe, str) and exe.startswith("/"):
        from .tool_select import strip_deleted
        exe = strip_deleted(exe)
        by_name.setdefault(exe.rsplit("/", 1)[-1], exe)
    return by_id, by_name


def cmd_trace(args):
    """Every thread's backtrace of the newest selected dump, named on this host."""
    from .tool_symbolize import Lookup, name_frames, trace_json, trace_lines
    dirs = (args.debug_dir or []) + (args.sysroot or [])
    for given in dirs:
        if not os.path.isdir(given):
            raise UserError("%s is not a directory (--debug-dir and --sysroot name the "
                            "directories to look in)" % given)
    d = newest(args)
    trace, source, pcs = trace_of(d)
    by_id, by_name = _device_paths(d)
    lookup = Lookup(dirs, by_id, by_name)
    try:
        named, missing = name_frames(trace, lookup)
    finally:
        lookup.close()
    if args.json:
        _print_json(trace_json(trace, named, missing, source, pcs))
    else:
        print("\n".join(["%s (from %s)" % (d.name, source), ""] +
                        trace_lines(trace, named, missing, lookup, pcs)))
    return 0


def _positive(text):
    import argparse
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError("%r is not a number of dumps (1 or more)" % text)
    return n


MATCH_HELP = ("PID, COMM (no slash), EXE (a path, or a glob with *), FIELD=VALUE (a "
              "summary.json field: uid=0, signal_name=SIGSEGV), or a dump directory's "
              "name or path.  Matches of one kind are alternatives; of different kinds, "
              "all must hold")
SELECTION_EPILOG = """
TIME is "2026-11-30 12:00[:00]", "2026-11-30", "12:00" (today), "now", "today",
"yesterday", "tomorrow", a relative time ("-1h", "-2d 3h", "+30min", "1 hour
ago") or "@EPOCH"; add " UTC" for UTC instead of local time.
An ID that starts with - goes after --:  mcd %s -- -bash.20260101.120000+0000.42"""


def add_verbs(sub):
    """Register the dump verbs on mcd's subparsers."""
    import textwrap
    from argparse import RawDescriptionHelpFormatter
    from .tool_rawstore import add_store_options

    def verb(name, help, description, epilog="", aliases=(), usage=None):
        p = sub.add_parser(name, help=help, description=textwrap.fill(description, 79),
                           aliases=list(aliases),
                           epilog=(epilog + SELECTION_EPILOG % name).strip("\n"), usage=usage,
                           formatter_class=RawDescriptionHelpFormatter)
        p.add_argument("matches", metavar="MATCH", nargs="*", help=MATCH_HELP)
        p.add_argument("--config", help="main config (default /etc/minicoredumper/"
                                        "minicoredumper.cfg.json)")
        p.add_argument("--base-dir", help="dump directory (default: where the handler "
                                          "writes, the config's base_dir)")
        add_store_options(p)
        g = p.add_argument_group("selection")
        g.add_argument("-S", "--since", metavar="TIME", help="dumps of crashes at or after TIME")
        g.add_argument("-U", "--until", metavar="TIME", help="dumps of crashes at or before TIME")
        g.add_argument("-1", dest="one", action="store_true", help="the newest dump only")
        g.add_argument("-n", dest="lines", metavar="N", type=_positive,
                       help="the N newest dumps")
        g.add_argument("-r", "--reverse", action="store_true", help="newest first")
        p.set_defaults(usage_error=p.error)
        return p

    def output(p, fields):
        p = p.add_mutually_exclusive_group()
        p.add_argument("--json", action="store_true",
                       help="a JSON array, one object per dump (time in seconds since the "
                            "epoch)")
        p.add_argument("-F", "--field", metavar="FIELD", choices=fields,
                       help="print FIELD of each dump, one line each: %s" % ", ".join(fields))

    p = verb("list", "the dumps, oldest first",
             "List the selected dumps, oldest first: crash time, PID, UID, GID, signal, "
             "whether the core is there (present; cut: the budget kept less than "
             "everything; none; inaccessible; damaged), executable, disk use and the "
             "dump's directory name.",
             "Examples:\n  mcd list crash3 --since -1h\n  mcd list -F exe uid=0\n")
    output(p, LIST_FIELDS + INFO_FIELDS[len(LIST_FIELDS):-1])
    p.add_argument("--no-legend", action="store_true", help="no header line")
    p.set_defaults(func=cmd_list)
    p = verb("info", "the summary and files of dumps",
             "Show each selected dump: its fields, summary and files; without matches "
             "or selection options, the newest dump.",
             "Examples:\n  mcd info 4242\n  mcd info --json -1\n")
    output(p, INFO_FIELDS)
    p.set_defaults(func=cmd_info)
    p = verb("gdb", "start a debugger on the newest selected dump's core",
             "Unpack the newest selected dump's core to a temporary directory, show its "
             "info header and start the debugger on the executable and the core.  The "
             "debugger is --debugger, else $MCD_DEBUGGER, else gdb (gdb-multiarch for a "
             "core of another architecture, with --sysroot).  A warning says when the "
             "executable on disk is not the one that crashed.",
             "With matches before --, everything after -- goes to the debugger:\n"
             "  mcd gdb crash3 -- -batch -ex bt\n"
             "  mcd gdb crash3 -A '-batch -ex bt'\n"
             "An ID that starts with - goes right after --, and the debugger's arguments "
             "after a second --:\n"
             "  mcd gdb -- -bash.20260101.120000+0000.42 -- -batch -ex bt\n",
             aliases=("debug",),
             usage="mcd gdb [OPTIONS] [MATCH...] [-- DEBUGGER-ARGUMENTS]\n"
                   "       mcd gdb [OPTIONS] -- ID [-- DEBUGGER-ARGUMENTS]")
    p.add_argument("--exe", help="the crashed program (default: from the summary, else the "
                                 "core's NT_FILE note)")
    p.add_argument("--sysroot", help="the target's root file system (foreign architectures)")
    p.add_argument("--debugger", metavar="DEBUGGER",
                   help="gdb, gdb-multiarch, lldb or a path to one (default: $MCD_DEBUGGER, "
                        "else gdb)")
    p.add_argument("-A", "--debugger-arguments", metavar="ARGS",
                   help="the debugger's arguments in one string, split as a shell would")
    p.set_defaults(func=cmd_gdb)
    p = verb("extract", "the newest selected dump's plain core, or a registered buffer",
             "Write the newest selected dump's core, uncompressed, or with --buffer a "
             "registered buffer out of it, to -o FILE; without -o to standard output when "
             "it is not a terminal, else to core.PID (the buffer: to IDENT).",
             "Examples:\n  mcd extract crash3 > core\n  mcd extract 4242 -o core\n"
             "  mcd extract crash3 --buffer heap.bin -o heap.bin\n"
             "  mcd extract CORE-FILE IDENT --symbol-map symbol.map\n"
             "Two words, the second of COMM form, are ID and IDENT: mcd extract crash3 "
             "heap.bin\n",
             aliases=("dump",))
    p.add_argument("-b", "--buffer", metavar="IDENT",
                   help="a registered buffer's ident in symbol.map")
    p.add_argument("--symbol-map", help="default: the dump's symbol.map")
    p.add_argument("-o", "--output", help="output file")
    p.set_defaults(func=cmd_extract)
    p = verb("trace", "every thread's backtrace of the newest selected dump, named here",
             "Print every thread's backtrace of the newest selected dump, crashing thread "
             "first, one line per frame as gdb's bt, with how the frame was found (pc, "
             "signal, cfi, lr, fp, scan): from the dump's stack-trace record (the budget's "
             "stand-in for a core), else from summary.json's frames.  Frames are named "
             "from files found on this host by the modules' build-ids (checked, never "
             "taken on a name alone): in each --debug-dir and --sysroot (their "
             ".build-id/xx/rest.debug layout, the module's path under them, and any file "
             "of the module's name, or that name + .debug, in them), in "
             "/usr/lib/debug/.build-id, the module's path here (a stack-trace record "
             "keeps short names: then that name in this host's library directories and "
             "$PATH), and from a debuginfod server ($DEBUGINFOD_URLS, through "
             "debuginfod-find, which caches what it fetches).  A frame without a name "
             "says which build-id has no symbols, and the last lines where it was looked "
             "for.",
             "Examples:\n  mcd trace crash3\n"
             "  mcd trace --debug-dir ./build/debug --sysroot /srv/rootfs 4242\n"
             "  DEBUGINFOD_URLS=https://debuginfod.debian.net mcd trace --json -1\n")
    p.add_argument("--debug-dir", metavar="DIR", action="append",
                   help="a directory of debug files or binaries (a .build-id tree or a "
                        "plain one); repeatable, searched in order")
    p.add_argument("--sysroot", metavar="DIR", action="append",
                   help="the target's root file system (its binaries, and debug files in "
                        "usr/lib/debug); repeatable")
    p.add_argument("--json", action="store_true",
                   help="a JSON object: source, threads with their frames, missing")
    p.set_defaults(func=cmd_trace)
    p = verb("verify", "check dumps against their integrity records",
             "Check each selected dump (default: all) against its integrity record "
             "(manifest): OK, CORRUPT and what differs, UNVERIFIED (no manifest: nothing "
             "to verify against) or INACCESSIBLE.  Status 1 if any is CORRUPT or "
             "INACCESSIBLE, else 3 if any is UNVERIFIED, else 0.")
    p.set_defaults(func=cmd_verify)
