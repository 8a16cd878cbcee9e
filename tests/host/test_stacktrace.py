"""The stack-trace rung of the budget ladder (stacktrace.py, docs/FORMATS.md §13)
on real crashes, and `mcd trace` naming its frames on this host: a budget too
small for any core still keeps every thread's frames; mcd names them as gdb does
on the kernel's own core of the same program; from a separate debug file found
by build-id, in a directory or from a real debuginfod server; a damaged record
is one line naming the file."""

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request

import pytest

from lab.gdb import threads_by_tid
from lab.logs import handler_log
from lab.unwind import base_name, same_function
from test_mcd import error_line, flip, rerecord
from test_storage import dir_bytes, mcd
from test_unwind import _generic, crash_killed

from minicoredumper import stacktrace as T
from minicoredumper.tool_corefile import file_build_id

# A budget too small for any core of these crashes (crash3's smallest core rung
# needs about 1.2 KB after summary.txt) that holds summary.txt and the record:
# crash3's needs 760 bytes in all, threads8's every thread about 1100.
BUDGET = 1536
NO_DEBUGINFOD = {"DEBUGINFOD_URLS": ""}


def small(**extra):
    return _generic(max_dump_size=BUDGET, **extra)  # no fat core under a budget


def assert_record_rung(d, threads):
    """d holds the stack-trace record of `threads` threads and no core, within
    the budget, and the handler's "dumped" line says so; the record's Trace."""
    __tracebackhide__ = True
    names = os.listdir(d)
    assert T.FILE in names and not [n for n in names if n.startswith("core")], names
    assert dir_bytes(d) <= BUDGET, dir_bytes(d)
    trace = T.read(os.path.join(d, T.FILE))
    assert len(trace.threads) == threads, len(trace.threads)
    assert all(frames for _, frames, _ in trace.threads)
    pid = int(d.rsplit(".", 1)[1])
    dumped = [l for l in handler_log(pid) if " dumped " in l]
    assert dumped and "(the summaries and the stack-trace record)" in dumped[-1], dumped
    assert p_ok(mcd("verify", d)).stdout.startswith("OK ")
    return trace


def p_ok(p):
    __tracebackhide__ = True
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    return p


def trace_json(d, *options, env=NO_DEBUGINFOD):
    return json.loads(p_ok(mcd("trace", "--json", *options, d, env=env)).stdout)


def ours(thread):
    """[(function name, the file that named it)] of a thread of `mcd trace --json`."""
    return [(base_name(f["symbol"] or "??"), f["file"]) for f in thread["frames"]]


def assert_same_threads(traced, gdb, crashed_tid):
    """mcd trace's threads (--json) name gdb's functions ({tid: Backtrace} of
    another crash of the same program): the crashing thread as gdb's crashing
    thread, every other thread as one of gdb's others (the programs' threads sit
    in distinct call chains), one to one."""
    __tracebackhide__ = True
    values = {}
    theirs = {tid: [base_name(n) for n in names] for tid, names in gdb.items()}

    def same(a, b):
        return len(a) == len(b) and all(same_function(o, t, values) for o, t in zip(a, b))

    first, others = traced["threads"][0], traced["threads"][1:]
    assert same(ours(first), theirs.pop(crashed_tid)), (ours(first), gdb[crashed_tid].gdb_text)
    assert len(others) == len(theirs)
    for t in others:
        match = [tid for tid, names in theirs.items() if same(ours(t), names)]
        assert match, "thread %d: %s is none of gdb's %s" % (
            t["tid"], [n for n, _ in ours(t)], list(theirs.values()))
        del theirs[match[0]]


def gdb_of_full_crash(crasher, argv, killed=None):
    """({tid: Backtrace} of gdb on the kernel's own core, the crashing tid, the
    dump) of an unbudgeted crash of argv (the recept's dump_fat_core); gdb reads
    this host's debug files (/usr/lib/debug), as mcd trace does."""
    d = crash_killed(crasher, argv, killed) if killed else crasher.crash(argv, _generic())
    with open(os.path.join(d, "summary.json")) as f:
        tid = json.load(f)["tid"]
    return threads_by_tid(argv[0], os.path.join(d, "fatcore"), debug_files=True), tid, d


@pytest.mark.parametrize("name,threads", [("crash3", 1), ("threads8", 8)])
def test_no_core_fits_the_record_does_and_mcd_names_it_as_gdb(crasher, programs, name,
                                                              threads):
    exe = programs[name]
    d = crasher.crash([exe], small())
    trace = assert_record_rung(d, threads)
    size = os.path.getsize(os.path.join(d, T.FILE))
    assert size <= (256 if name == "crash3" else 1024), size  # the targets
    gdb, tid, full = gdb_of_full_crash(crasher, [exe])
    traced = trace_json(d)
    assert traced["source"] == T.FILE and not traced["missing"]
    assert [t["tid"] for t in traced["threads"]] == [t for t, _, _ in trace.threads]
    assert_same_threads(traced, gdb, tid)
    # and a dump with a core: its summary.json's frames, the same crash as gdb's
    traced = trace_json(full)
    assert traced["source"] == "summary.json"
    assert_same_threads(traced, gdb, tid)
    assert {t["tid"] for t in traced["threads"]} == set(gdb)


def test_debian_sleep_killed_with_sigsegv(crasher):
    d = crash_killed(crasher, ["/usr/bin/sleep", "100"], signal.SIGSEGV, recept=small())
    assert_record_rung(d, 1)
    gdb, tid, _ = gdb_of_full_crash(crasher, ["/usr/bin/sleep", "100"], signal.SIGSEGV)
    traced = trace_json(d)
    assert len(traced["threads"][0]["frames"]) >= 3
    assert_same_threads(traced, gdb, tid)


def test_xz_with_four_threads_killed_with_sigabrt(crasher, tmp_path):
    src = tmp_path / "data"
    with open(src, "wb") as f:
        f.write(os.urandom(64 << 20))
    d = crash_killed(crasher, ["xz", "-T4", "-1", "-k", "-c", str(src)], signal.SIGABRT,
                     after=1.0, recept=small())
    trace = assert_record_rung(d, 5)  # the main thread and four workers
    traced = trace_json(d)
    assert [len(t["frames"]) for t in traced["threads"]] == [len(f) for _, f, _ in trace.threads]
    # Debian's xz and liblzma have no .symtab (and no debug package here): a frame
    # .dynsym cannot name says which build-id it needs (libc.so.6's too, without
    # libc6-dbg in /usr/lib/debug)
    frames = [f for t in traced["threads"] for f in t["frames"]]
    assert any(f["symbol"] for f in frames), frames
    # the record keeps short names (liblzma.so.5.4.1): the library is found in
    # this host's library directories (ldconfig's), by build-id, as gdb names it
    lzma = [f["symbol"] for f in frames if f["module"].startswith("liblzma.so")]
    assert "lzma_code" in lzma, lzma
    for module in {f["module"] for f in frames if f["symbol"] is None}:
        bid = next(f["build_id"] for f in frames if f["module"] == module)
        assert any(m.startswith("no symbols for %s, build-id %s; looked in: " % (module, bid))
                   for m in traced["missing"]), traced["missing"]


# --- symbols from a separate debug file ----------------------------------------------

@pytest.fixture
def stripped(programs, tmp_path):
    """(crash3 stripped of its symbols, its build-id, a .build-id tree holding its
    separate debug file, the debug file)."""
    exe, debug = str(tmp_path / "crash3s"), str(tmp_path / "crash3s.debug")
    shutil.copy(programs["crash3"], exe)
    subprocess.run(["objcopy", "--only-keep-debug", exe, debug], check=True)
    subprocess.run(["strip", "--strip-all", exe], check=True)
    bid = file_build_id(exe)
    assert bid and file_build_id(debug) == bid
    tree = tmp_path / "debug" / ".build-id" / bid[:2]
    tree.mkdir(parents=True)
    shutil.copy(debug, str(tree / (bid[2:] + ".debug")))
    return exe, bid, str(tmp_path / "debug"), debug


def levels(traced):
    return [f["symbol"] for f in traced["threads"][0]["frames"][:4]]


def test_a_stripped_binary_is_named_from_its_debug_file_found_by_build_id(crasher, stripped):
    exe, bid, tree, _ = stripped
    d = crasher.crash([exe], small())
    assert_record_rung(d, 1)
    p = p_ok(mcd("trace", d, env=NO_DEBUGINFOD))
    assert "in ?? () from %s  [pc]  (no symbols for build-id %s)" % (exe, bid) in p.stdout
    missing = [l for l in p.stdout.splitlines() if l.startswith("no symbols for crash3s")]
    assert missing and bid in missing[0] and exe in missing[0] \
        and "/usr/lib/debug/.build-id" in missing[0] and "DEBUGINFOD_URLS" in missing[0], \
        p.stdout
    traced = trace_json(d, "--debug-dir", tree)
    assert levels(traced) == ["level_c", "level_b", "level_a", "main"], traced
    assert traced["threads"][0]["frames"][0]["file"].startswith(tree)
    p = p_ok(mcd("trace", "--debug-dir", tree, d, env=NO_DEBUGINFOD))
    assert " in level_c () from %s  [pc]\n" % exe in p.stdout and "#0  crash3s+0x" in p.stdout


def test_a_file_of_the_module_name_counts_only_with_its_build_id(crasher, programs, stripped,
                                                                tmp_path):
    """Plain trees (--sysroot, --debug-dir without .build-id): a file named as the
    module but of another build (crash3 -O2) is looked at and refused, the
    debug file deeper in another tree names the frames."""
    exe, bid, _, debug = stripped
    decoy, plain = tmp_path / "decoy", tmp_path / "plain" / "usr" / "bin"
    decoy.mkdir()
    plain.mkdir(parents=True)
    shutil.copy(programs["crash3_o2"], str(decoy / "crash3s.debug"))
    shutil.copy(debug, str(plain))
    other = file_build_id(programs["crash3_o2"])
    assert other != bid
    d = crasher.crash([exe], small())
    traced = trace_json(d, "--sysroot", str(decoy))
    assert levels(traced) == [None] * 4
    assert "%s (%s: build-id %s)" % (decoy, decoy / "crash3s.debug", other) in \
        traced["missing"][0], traced["missing"]
    traced = trace_json(d, "--sysroot", str(decoy), "--debug-dir", str(tmp_path / "plain"))
    assert levels(traced) == ["level_c", "level_b", "level_a", "main"], traced
    assert traced["threads"][0]["frames"][0]["file"] == str(plain / "crash3s.debug")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_names_from_a_debuginfod_server(crasher, stripped, tmp_path):
    """Debian's debuginfod indexing a directory with the debug file, on a free
    localhost port; mcd fetches it through debuginfod-find into a fresh cache."""
    server = shutil.which("debuginfod")
    if server is None or shutil.which("debuginfod-find") is None:
        pytest.fail("debuginfod is not installed (scripts/apt-packages.txt lists it)")
    exe, bid, _, debug = stripped
    served = tmp_path / "served"
    served.mkdir()
    shutil.copy(debug, str(served))
    d = crasher.crash([exe], small())
    port = _free_port()
    p = subprocess.Popen([server, "-F", str(served), "-p", str(port), "-d",
                          str(tmp_path / "debuginfod.sqlite")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = "http://127.0.0.1:%d" % port
        end = time.monotonic() + 60
        while True:  # until it has indexed the directory
            try:
                with urllib.request.urlopen("%s/buildid/%s/debuginfo" % (url, bid), timeout=5):
                    break
            except OSError:
                assert time.monotonic() < end and p.poll() is None, "debuginfod never served it"
                time.sleep(0.2)
        cache = tmp_path / "cache"
        traced = trace_json(d, env={"DEBUGINFOD_URLS": url, "DEBUGINFOD_CACHE_PATH": str(cache)})
        assert levels(traced) == ["level_c", "level_b", "level_a", "main"], traced
        assert traced["threads"][0]["frames"][0]["file"].startswith(str(cache))
    finally:
        p.terminate()
        p.wait(timeout=20)


# --- a damaged record ----------------------------------------------------------------

def test_a_damaged_record_is_one_line_naming_the_file(crasher, programs):
    d = crasher.crash([programs["crash3"]], small())
    path = os.path.join(d, T.FILE)
    flip(path, 6)
    line = error_line(mcd("trace", d))  # the integrity record says so first
    assert line.startswith("mcd: %s is damaged: " % d) and T.FILE in line, line
    rerecord(d, T.FILE)  # damaged before it was recorded: the record's own check
    line = error_line(mcd("trace", d))
    assert line.startswith("mcd: %s is damaged: CRC32 " % path), line
