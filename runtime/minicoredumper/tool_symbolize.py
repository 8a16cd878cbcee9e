"""mcd trace: names for the frames a device recorded as module + offset +
build-id (the stack-trace record, stacktrace.py, or summary.json's frames),
from files found on this host by their build-id.

Where a module's files are looked for, in this order; a file is used only
when its GNU build-id is the recorded one, never on its name alone:

  1. each --debug-dir and --sysroot DIR, in the order given:
     DIR/.build-id/xx/rest.debug and DIR/.build-id/xx/rest (the layout of
     /usr/lib/debug), the same under DIR/usr/lib/debug; DIR + the module's
     path on the device, and DIR/usr/lib/debug + that path + ".debug"; then
     DIR as a plain tree: every file in it named as the module (or NAME.debug),
     found by one walk of at most TREE_ENTRIES entries per directory
  2. /usr/lib/debug/.build-id/xx/rest.debug (this host's debug packages)
  3. the module's path on the device, here (the file may be the same build);
     when the dump does not say it (a stack-trace record keeps short names
     only), the file of that name in this host's library search path (as
     `ldconfig -p` lists it) and in $PATH
  4. a debuginfod server ($DEBUGINFOD_URLS), through elfutils' own client,
     debuginfod-find: the debuginfo, then the executable.  The client rather
     than the HTTP protocol by hand: it keeps its downloads in the user's cache
     ($DEBUGINFOD_CACHE_PATH, else $XDG_CACHE_HOME/debuginfod_client), the one
     gdb reads, so a file either fetched is not fetched again; it honours the
     other DEBUGINFOD_* settings (timeouts, signatures, several servers); and
     mcd imports no HTTP client (urllib would add python3-netclient to the
     tools package of a target, tests/layer/test_crashpath_imports.py)

Symbols come from each file's .symtab, else its .dynsym, through the
handler's own lookup (read_modules.SymbolFile over a MappedFile), file after
file until every frame of the module is named; a return address is named
at pc - 1 (write_summary.lookup_back), as on the device.
"""

import os
import stat

from .read_modules import MappedFile
from .tool_corefile import fd_build_id
from .write_summary import SIGNAL_TRAMPOLINE, below_signal, lookup_back

SYSTEM_DEBUG = "/usr/lib/debug"
TREE_ENTRIES = 200000  # directory entries one plain tree's walk looks at, at most
MAX_SYMBOLS = 10000000  # symbols of one table searched (the handler's cap is lower)
DEBUGINFOD_TIMEOUT = 90  # seconds for one debuginfod-find (elfutils' own default)


class Lookup:
    """The files with a module's symbols, found by build-id: dirs, the
    --debug-dir and --sysroot directories in order; paths {build-id hex: the
    module's path on the device}, names {short name: that path} (what the
    dump's summary says); debuginfod: ask $DEBUGINFOD_URLS.  looked[build-id]
    lists where a module was looked for, once its files were asked for."""

    def __init__(self, dirs=(), paths=None, names=None, debuginfod=True):
        self.dirs = list(dirs)
        self.paths = paths or {}
        self.names = names or {}
        self.debuginfod = debuginfod
        self.trees = {}  # dir -> {file name: [paths]}
        self.looked = {}
        self.opened = []

    def files(self, build_id, name):
        """The MappedFiles whose build-id is build_id (hex), in the order of
        the module docstring, opened as they are needed (a generator)."""
        looked = self.looked.setdefault(build_id, [])
        seen = set()
        for where, path in self._candidates(build_id, name, looked):
            if path in seen:
                continue
            seen.add(path)
            f, why = _open_matching(path, build_id)
            if f is not None:
                self.opened.append(f)
                looked.append("%s (%s: the build-id matches)" % (where, path))
                yield f
            elif why:
                looked.append("%s (%s: %s)" % (where, path, why))

    def device_path(self, build_id, name):
        """The module's path on the device (name itself when it is one, else what
        the summary says of its build-id or its name), None if unknown; without
        the " (deleted)" that maps adds for a file deleted or replaced."""
        from .tool_select import strip_deleted
        path = (name if name.startswith("/") else None) or self.paths.get(build_id) \
            or self.names.get(name.rsplit("/", 1)[-1])
        return strip_deleted(path) if path else None

    def _candidates(self, build_id, name, looked):
        short = name.rsplit("/", 1)[-1]
        path = self.device_path(build_id, name)
        rel = ".build-id/%s/%s" % (build_id[:2], build_id[2:])
        for d in self.dirs:
            looked.append(d)
            for base in (d, d + SYSTEM_DEBUG):
                yield d, os.path.join(base, rel + ".debug")
                yield d, os.path.join(base, rel)
            if path:
                yield d, d + path
                yield d, d + SYSTEM_DEBUG + path + ".debug"
            tree = self._tree(d, looked)
            for p in tree.get(short, []) + tree.get(short + ".debug", []):
                yield d, p
        looked.append(os.path.join(SYSTEM_DEBUG, ".build-id"))
        yield SYSTEM_DEBUG, os.path.join(SYSTEM_DEBUG, rel + ".debug")
        if path:
            looked.append(path)
            yield "this host", path
        else:
            for p in host_files(short):
                looked.append(p)
                yield "this host", p
        if self.debuginfod:
            yield from self._debuginfod(build_id, looked)

    def _tree(self, d, looked):
        """{file name: [paths]} of the regular files in d's tree (symlinked
        directories not followed), at most TREE_ENTRIES entries looked at (a
        walk cut there says so in looked)."""
        if d not in self.trees:
            index, n = {}, 0
            for root, dirs, files in os.walk(d):
                n += len(dirs) + len(files)
                for f in files:
                    index.setdefault(f, []).append(os.path.join(root, f))
                if n > TREE_ENTRIES:
                    index[None] = root
                    break
            self.trees[d] = index
        if None in self.trees[d]:
            looked.append("%s as a plain tree: walk cut after %d entries, at %s (give a "
                          "narrower --debug-dir)" % (d, TREE_ENTRIES, self.trees[d][None]))
        return self.trees[d]

    def _debuginfod(self, build_id, looked):
        """(where, path) of what debuginfod-find fetched (or had in its cache)
        for build_id: the debuginfo, then the executable."""
        import shutil
        import subprocess
        if not os.environ.get("DEBUGINFOD_URLS", "").strip():
            looked.append("debuginfod (DEBUGINFOD_URLS is not set)")
            return
        client = shutil.which("debuginfod-find")
        if client is None:
            looked.append("debuginfod (no debuginfod-find here: Debian's package debuginfod)")
            return
        for kind in ("debuginfo", "executable"):
            try:
                p = subprocess.run([client, kind, build_id], capture_output=True, text=True,
                                   timeout=DEBUGINFOD_TIMEOUT, stdin=subprocess.DEVNULL)
            except subprocess.TimeoutExpired:
                looked.append("debuginfod %s (no answer in %d s)" % (kind, DEBUGINFOD_TIMEOUT))
                continue
            path = p.stdout.strip()
            if p.returncode or not path:
                why = (p.stderr.strip().splitlines() or ["exit status %d" % p.returncode])[-1]
                looked.append("debuginfod %s (%s)" % (kind, why))
                continue
            yield "debuginfod " + kind, path

    def close(self):
        for f in self.opened:
            f.close()
        self.opened = []


def host_files(name):
    """The paths on this host of a file called name, for a module whose path
    on the device is not known: name in each directory of the dynamic
    linker's cache (`ldconfig -p`: its search path with multiarch and
    ld.so.conf.d; a device's maps name the file, libc.so.6 or
    liblzma.so.5.4.1, so the directories are asked, not the sonames), then
    the program of that name in $PATH.  [] if neither has it."""
    import shutil
    found = [os.path.join(d, name) for d in library_dirs()
             if os.path.isfile(os.path.join(d, name))]
    program = shutil.which(name) if "/" not in name else None
    if program:
        found.append(os.path.realpath(program))
    return found


def library_dirs():
    """The directories of the libraries in this host's ld.so cache, in its
    order (`ldconfig -p`, run once); the usual ones when it cannot run."""
    import shutil
    import subprocess
    global _library_dirs
    if _library_dirs is None:
        try:
            out = subprocess.run([shutil.which("ldconfig") or "/sbin/ldconfig", "-p"],
                                 capture_output=True, text=True, timeout=30,
                                 stdin=subprocess.DEVNULL).stdout
        except (OSError, subprocess.SubprocessError):
            out = ""
        dirs = [os.path.dirname(line.rpartition(" => ")[2]) for line in out.splitlines()
                if " => " in line]
        _library_dirs = list(dict.fromkeys(dirs or ["/lib", "/usr/lib", "/lib64", "/usr/lib64"]))
    return _library_dirs


_library_dirs = None


def _open_matching(path, build_id):
    """(MappedFile of path, None) if it is a regular ELF file of that build-id,
    else (None, why not; None when there is no such file)."""
    from . import elf as E
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None, None
    except OSError as e:
        return None, (e.strerror or str(e)).lower()
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            why = "not a regular file"
        else:
            found = fd_build_id(fd)
            why = None if found == build_id else "build-id %s" % (found or "none")
    except (OSError, E.ElfFormatError) as e:
        why = "not an ELF file we can read (%s)" % (getattr(e, "strerror", None) or e)
    if why is not None:
        os.close(fd)
        return None, why
    return MappedFile(fd, path), None


def name_frames(trace, lookup):
    """Every thread of trace (stacktrace.Trace) with its frames named:
    [(tid, cut, [(how, module index or None, value, symbol or None, the file
    that named it or None)])], and {module index: why it has unnamed frames}."""
    want = {}
    for _, frames, _ in trace.threads:
        for how, m, value in frames:
            if m is not None:
                want.setdefault(m, set()).add(value - lookup_back(how))
    found, missing = {}, {}
    for m, rels in sorted(want.items()):
        build_id, name = trace.modules[m]
        if build_id is None:
            missing[m] = "no build-id recorded for %s" % name
            continue
        left = set(rels)
        for f in lookup.files(build_id, name):
            for rel, (sym, _) in f.symbols.nearest(left, MAX_SYMBOLS).items():
                found[(m, rel)] = (sym, f.name)
            left = {r for r in left if (m, r) not in found}
            if not left:
                break
        if left:
            missing[m] = "no symbols for %s, build-id %s; looked in: %s" % (
                name, build_id, "; ".join(lookup.looked.get(build_id) or ["nowhere"]))
    out = []
    for tid, frames, cut in trace.threads:
        hows = [how for how, _, _ in frames]
        named = []
        for n, (how, m, value) in enumerate(frames):
            sym, path = found.get((m, value - lookup_back(how)), (None, None)) \
                if m is not None else (None, None)
            if below_signal(hows, n):
                sym = SIGNAL_TRAMPOLINE
            named.append((how, m, value, sym, path))
        out.append((tid, cut, named))
    return out, missing


def trace_lines(trace, named, missing, lookup, pcs=None):
    """The text of `mcd trace`: per thread a header and one line per frame as
    gdb's bt has them ("from" the module's path on the device, where known),
    with how the frame was found; then one line per module whose frames have
    no name.  pcs: the frames' absolute PCs [[int]] per thread, where known
    (summary.json's), else module + offset."""
    lines = []
    for t, (tid, cut, frames) in enumerate(named):
        if t:
            lines.append("")
        lines.append("Thread %d (LWP %d)%s:" % (t + 1, tid, ", the crashing thread"
                                                if t == 0 else ""))
        for n, (how, m, value, sym, _) in enumerate(frames):
            if sym == SIGNAL_TRAMPOLINE:
                lines.append("#%-2d <signal handler called>  [%s]" % (n, how))
                continue
            module = trace.modules[m][1] if m is not None else None
            if pcs is not None:
                where = "%#018x" % pcs[t][n]
            elif module is not None:
                where = "%s+%#x" % (module.rsplit("/", 1)[-1], value)
            else:
                where = "%#018x" % value
            shown = lookup.device_path(*trace.modules[m]) or module if m is not None else "??"
            line = "#%-2d %s in %s () from %s  [%s]" % (n, where, sym or "??", shown, how)
            if sym is None and m in missing:
                line += "  (no symbols for build-id %s)" % (trace.modules[m][0] or "none")
            lines.append(line)
        if cut:
            lines.append("(the walk ended before the outermost frame)")
    if missing:
        lines.append("")
        lines += [missing[m] for m in sorted(missing)]
    return lines


def trace_json(trace, named, missing, source, pcs=None):
    """`mcd trace --json`: {source, threads: [{tid, crashed, cut, frames:
    [{pc, module, build_id, offset, how, symbol, file}]}], missing: [text]}."""
    threads = []
    for t, (tid, cut, frames) in enumerate(named):
        out = []
        for n, (how, m, value, sym, path) in enumerate(frames):
            mod = trace.modules[m] if m is not None else (None, None)
            out.append({"pc": "%#x" % pcs[t][n] if pcs is not None else
                        ("%#x" % value if m is None else None),
                        "module": mod[1], "build_id": mod[0],
                        "offset": "%#x" % value if m is not None else None,
                        "how": how, "symbol": sym, "file": path})
        threads.append({"tid": tid, "crashed": t == 0, "cut": cut, "frames": out})
    return {"source": source, "threads": threads,
            "missing": [missing[m] for m in sorted(missing)]}
