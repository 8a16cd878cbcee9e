"""mcd at coredumpctl's level: matches (PID, COMM, EXE, FIELD=VALUE, names and
paths) on every verb, --since/--until/-1/-n/-r, list's columns, --json, -F,
--no-legend, info of several dumps, gdb's debugger choice and warnings, extract
to standard output, the man page and the bash completion.

Four crashes in order, each in its own second, into one base_dir:

  A  crash3 as root, the embedded recept without a budget: core present
  B  threads8 as root, 4 KiB: the budget keeps only the crashing thread (cut)
  C  a copy of crash3 elsewhere, as nobody (UID and GID 65534): present
  D  a copy of crash3 called tiny, 1 KiB: no core fits, nor summary.json (none)
"""

import datetime
import json
import lzma
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

from lab import ENV, ROOT
from lab.gdb import assert_frames, frames
from lab.programs import FRAMES, SOURCES
from test_storage import embedded, mcd

from minicoredumper.tool_select import SelectionError, parse_time, split_words
from minicoredumper.tool_verbs import INFO_FIELDS, LIST_FIELDS, format_size

XZ = {"compression": {"compressor": "xz", "extension": "xz", "in_tar": False}}
HEAP = {"buffers": [{"symname": "heap_ptr", "follow_ptr": True, "data_len": 32,
                     "ident": "heap.bin"}]}
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
MAN = os.path.join(ROOT, "runtime", "man", "mcd.1")
COMPLETION = os.path.join(ROOT, "runtime", "completion", "mcd")


class Lab:
    """The four dumps: .base, .names/.paths/.pids by letter, .exes, .pub."""


def next_second():
    time.sleep(1 - time.time() % 1 + 0.05)


def build_crash3(out, build_id):
    """crash3.c built with a build-id of our choosing."""
    subprocess.run(["gcc", "-g", "-O0", "-fPIE", "-pie", "-Wl,--build-id=0x" + build_id,
                    "crash3.c", "-o", out], cwd=SOURCES, check=True)
    return out


@pytest.fixture(scope="module")
def lab(crasher, programs):
    pub = tempfile.mkdtemp(prefix="mcds.")  # readable by nobody, unlike pytest's tmp
    os.chmod(pub, 0o755)
    L = Lab()
    L.pub = pub
    L.exes = {"A": programs["crash3"], "B": programs["threads8"],
              "C": os.path.join(pub, "crash3"), "D": os.path.join(pub, "tiny")}
    shutil.copy(programs["crash3"], L.exes["C"])
    shutil.copy(programs["crash3"], L.exes["D"])
    recepts = {"full": dict(embedded(max_dump_size=0), **HEAP),
               "cut": dict(XZ, max_dump_size=4096), "none": embedded(max_dump_size=1024)}
    for name, recept in recepts.items():
        with open(os.path.join(crasher.workdir, "select-%s.json" % name), "w") as f:
            json.dump(recept, f)
    L.base = crasher.configure()
    crasher.configure(config={"base_dir": L.base, "watch": [
        {"comm": "threads8", "recept": os.path.join(crasher.workdir, "select-cut.json")},
        {"comm": "tiny", "recept": os.path.join(crasher.workdir, "select-none.json")},
        {"recept": os.path.join(crasher.workdir, "select-full.json")}]})
    L.pids = {}
    for letter, prefix in (("A", []), ("B", []), ("C", NOBODY), ("D", [])):
        next_second()
        L.pids[letter] = crasher.run(prefix + [L.exes[letter]])[2]
    names = sorted(os.listdir(L.base))
    L.names = {k: next(n for n in names if n.endswith(".%d" % pid)) for k, pid in L.pids.items()}
    L.paths = {k: os.path.join(L.base, n) for k, n in L.names.items()}
    yield L
    shutil.rmtree(pub)


def run(lab, *argv, **kw):
    return mcd(argv[0], "--base-dir", lab.base, *argv[1:], **kw)


def names(lab, *argv, **kw):
    """The letters of the dumps `mcd list -F name ARGV` prints, in its order."""
    p = run(lab, "list", "-F", "name", *argv, **kw)
    assert p.returncode == 0 and p.stderr == "", (argv, p.stderr)
    by_name = {n: k for k, n in lab.names.items()}
    return "".join(by_name[line] for line in p.stdout.splitlines())


def epoch(name):
    """The crash time of a dump directory's name, read with datetime (not mcd's code)."""
    stamp = ".".join(name.split(".")[-3:-1])
    return int(datetime.datetime.strptime(stamp, "%Y%m%d.%H%M%S%z").timestamp())


def local(t, fmt="%a %Y-%m-%d %H:%M:%S %Z"):
    return time.strftime(fmt, time.localtime(t))


def disk_use(path):
    n = sum(os.lstat(os.path.join(r, f)).st_blocks * 512 for r, _, fs in os.walk(path)
            for f in fs)
    return "%d.%dK" % divmod(n * 10 // 1024, 10) if n >= 1024 else "%dB" % n


def elf_build_id(path):
    """The build-id of an ELF file as pyelftools reads it."""
    from elftools.elf.elffile import ELFFile
    with open(path, "rb") as f:
        for section in ELFFile(f).iter_sections():
            if section.name == ".note.gnu.build-id":
                for note in section.iter_notes():
                    return note["n_desc"]


HEADER = ("TIME", "PID", "UID", "GID", "SIG", "COREFILE", "EXE", "SIZE", "DIRECTORY")


def table(rows, legend=True, right=(1, 2, 3, 7)):
    """mcd list's text for rows: columns as wide as their widest cell, the legend's
    included; numbers to the right."""
    rows = [HEADER] + list(rows)
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    return "".join(" ".join(c.rjust(w) if i in right else c.ljust(w)
                            for i, (c, w) in enumerate(zip(r, widths))).rstrip() + "\n"
                   for r in rows[0 if legend else 1:])


def row(lab, k, uid, gid, corefile, sig="SIGSEGV", size=None, exe=None):
    return (local(epoch(lab.names[k])), str(lab.pids[k]), uid, gid, sig, corefile,
            lab.exes[k] if exe is None else exe, size or disk_use(lab.paths[k]), lab.names[k])


# --- list -------------------------------------------------------------------------------

def test_list_has_coredumpctls_columns(lab):
    rows = [row(lab, "A", "0", "0", "present"), row(lab, "B", "0", "0", "cut"),
            row(lab, "C", "65534", "65534", "present"), row(lab, "D", "0", "0", "none")]
    p = run(lab, "list")
    assert (p.returncode, p.stderr) == (0, "")
    assert p.stdout == table(rows)
    p = run(lab, "list", "--no-legend")
    assert (p.returncode, p.stdout) == (0, table(rows, legend=False))


def test_list_json_has_the_time_as_a_number(lab):
    p = run(lab, "list", "--json")
    assert (p.returncode, p.stderr) == (0, "")
    got = json.loads(p.stdout)
    assert [list(r) for r in got] == [list(LIST_FIELDS)] * 4
    a, b, c, d = got
    assert a == {"name": lab.names["A"], "path": lab.paths["A"], "time": epoch(lab.names["A"]),
                 "pid": lab.pids["A"], "uid": 0, "gid": 0, "comm": "crash3",
                 "exe": lab.exes["A"], "signal": 11, "signal_name": "SIGSEGV",
                 "corefile": "present", "core": "core.xz", "size": a["size"],
                 "inaccessible": None}
    assert a["size"] == sum(os.lstat(os.path.join(r, f)).st_blocks * 512
                            for r, _, fs in os.walk(lab.paths["A"]) for f in fs)
    assert (b["corefile"], b["core"], b["comm"]) == ("cut", "core.xz", "threads8")
    assert (c["uid"], c["gid"], c["exe"]) == (65534, 65534, lab.exes["C"])
    # No summary.json under the smallest budget: what summary.txt says.
    assert {k: d[k] for k in ("uid", "gid", "signal", "signal_name", "exe", "corefile",
                              "core")} == {"uid": 0, "gid": 0, "signal": None,
                                           "signal_name": "SIGSEGV", "exe": lab.exes["D"],
                                           "corefile": "none", "core": None}


def test_field_prints_one_line_per_dump(lab):
    p = run(lab, "list", "-F", "exe")
    assert p.stdout == "".join(lab.exes[k] + "\n" for k in "ABCD")
    p = run(lab, "list", "-F", "time", "crash3")
    assert p.stdout == "%d\n%d\n" % (epoch(lab.names["A"]), epoch(lab.names["C"]))
    p = run(lab, "list", "-F", "gid")
    assert p.stdout == "0\n0\n65534\n0\n"  # D's from summary.txt (no summary.json)
    p = run(lab, "info", "-F", "build_id", "-r", "crash3")
    assert p.stdout == "%s\n%s\n" % (elf_build_id(lab.exes["C"]), elf_build_id(lab.exes["A"]))
    p = run(lab, "list", "-F", "nosuch")
    assert p.returncode == 2 and "argument -F/--field: invalid choice: 'nosuch'" in p.stderr


# --- matches ----------------------------------------------------------------------------

def test_matches_as_coredumpctl_has_them(lab):
    assert names(lab, str(lab.pids["A"])) == "A"
    assert names(lab, str(lab.pids["A"]), str(lab.pids["C"])) == "AC"  # one kind: either
    assert names(lab, "crash3") == "AC"  # COMM
    assert names(lab, "crash3", "uid=65534") == "C"  # different kinds: both
    assert names(lab, lab.exes["A"]) == "A"  # EXE, a path
    assert names(lab, "*/crash3") == "AC"  # EXE, a glob
    assert names(lab, lab.pub + "/*") == "CD"
    assert names(lab, "./tiny", cwd=lab.pub) == "D"  # a relative path is the cwd's
    assert names(lab, "COREDUMP_COMM=threads8") == "B"  # coredumpctl's field names too
    assert names(lab, "signal_name=SIGSEGV", "gid=65534") == "C"
    assert names(lab, "signal=11") == "ABC"  # D has no summary.json
    assert names(lab, "crash3", "threads8", str(lab.pids["A"])) == "A"
    assert names(lab, lab.names["B"]) == "B"  # today's IDs: a directory name
    assert names(lab, lab.names["B"], "tiny") == "BD"
    p = mcd("list", "-F", "name", lab.paths["B"])  # a path: no base_dir needed
    assert (p.returncode, p.stdout) == (0, lab.names["B"] + "\n")
    p = run(lab, "list", "nosuch=1")
    assert (p.returncode, p.stdout) == (1, "")
    assert p.stderr.startswith("mcd: nosuch: no such field; FIELD=VALUE takes one of pid, ")


def test_every_verb_takes_matches(lab, tmp_path):
    p = run(lab, "verify", "crash3", "uid=0")
    assert (p.returncode, p.stdout) == (0, "OK %s\n" % lab.names["A"])
    p = run(lab, "info", "*/crash3", "gid=65534")
    assert p.returncode == 0 and p.stdout.startswith("        Dump: %s\n" % lab.names["C"])
    p = run(lab, "extract", "crash3", "uid=0", "-o", str(tmp_path / "core"))
    assert p.stdout == "%s: %d bytes (from %s)\n" % (tmp_path / "core", os.path.getsize(
        tmp_path / "core"), lab.names["A"])
    p = run(lab, "gdb", "crash3", "uid=0", "-A", "-nx -batch -ex bt", timeout=120)
    assert p.returncode == 0 and p.stdout.startswith("        Dump: %s\n" % lab.names["A"])
    assert_frames(FRAMES["crash3"], frames(p.stdout))


# --- selection --------------------------------------------------------------------------

def test_since_until_newest_and_reverse(lab):
    t = {k: epoch(n) for k, n in lab.names.items()}
    assert names(lab, "--since", local(t["C"], "%Y-%m-%d %H:%M:%S")) == "CD"
    assert names(lab, "--until", local(t["B"], "%Y-%m-%d %H:%M:%S")) == "AB"
    assert names(lab, "-S", local(t["B"], "%Y-%m-%d %H:%M:%S"),
                 "-U", local(t["C"], "%Y-%m-%d %H:%M:%S")) == "BC"
    assert names(lab, "--since", "@%d" % t["C"]) == "CD"
    assert names(lab, "--since", time.strftime("%Y-%m-%d %H:%M:%S UTC",
                                               time.gmtime(t["D"]))) == "D"
    assert names(lab, "--since", "-1h") == "ABCD"
    assert names(lab, "--since", "1 hour ago", "--until", "+1h") == "ABCD"
    assert names(lab, "--since", "yesterday") == "ABCD"
    assert names(lab, "-1") == "D"
    assert names(lab, "-n", "2") == "CD"
    assert names(lab, "-n", "2", "crash3") == "AC"
    assert names(lab, "-r") == "DCBA"
    assert names(lab, "-r", "-n", "2") == "DC"
    assert names(lab, "crash3", "-r", "tiny") == "DCA"  # matches between options
    p = run(lab, "list", "--until", "-1h")
    assert (p.returncode, p.stdout) == (1, "")
    assert re.fullmatch(r"mcd: no dump matches --until \d{4}-\d\d-\d\d \d\d:\d\d:\d\d in %s; "
                        r"`mcd list` shows what there is\n" % re.escape(lab.base), p.stderr), \
        p.stderr
    p = run(lab, "list", "--since", "soon")
    assert (p.returncode, p.stdout) == (1, "")
    assert p.stderr.startswith("mcd: 'soon' is not a time mcd knows; it takes \"2026-11-30 ")


def test_nothing_matches_is_an_error_on_every_verb(lab, tmp_path):
    for verb in ("list", "info", "gdb", "debug", "extract", "dump", "verify", "trace"):
        p = run(lab, verb, "nosuch", "uid=0")
        assert (p.returncode, p.stdout) == (1, ""), verb
        assert p.stderr == "mcd: no dump matches nosuch uid=0 in %s; `mcd list` shows what " \
                           "there is\n" % lab.base, verb
    empty = tmp_path / "empty"
    empty.mkdir()
    p = mcd("list", "--base-dir", str(empty))
    assert (p.returncode, p.stdout, p.stderr) == (
        1, "", "mcd: no dumps in %s (is the handler installed? `mcd install`)\n" % empty)


def test_corefile_damaged_and_inaccessible(lab, tmp_path):
    pub = tempfile.mkdtemp(prefix="mcdu.")
    try:
        os.chmod(pub, 0o755)
        copy = os.path.join(pub, "crash")
        shutil.copytree(lab.base, copy)
        os.chmod(copy, 0o755)
        core = os.path.join(copy, lab.names["A"], "core.xz")
        with open(core, "r+b") as f:
            f.seek(100)
            b = f.read(1)
            f.seek(100)
            f.write(bytes([b[0] ^ 0xFF]))
        p = mcd("list", "--base-dir", copy, "--no-legend", "crash3")
        assert (p.returncode, p.stderr) == (0, "")
        assert p.stdout == table([row(lab, "A", "0", "0", "damaged"),
                                  row(lab, "C", "65534", "65534", "present")], legend=False)
        p = mcd("info", "--base-dir", copy, lab.names["A"])
        assert re.search(r"^    Corefile: damaged \(core\.xz: CRC32 [0-9a-f]{8}, the record "
                         r"says [0-9a-f]{8}\)$", p.stdout, re.M), p.stdout
        assert p.returncode == 1
        p = mcd("list", "--base-dir", copy, "--no-legend", str(lab.pids["B"]), prefix=NOBODY)
        assert p.returncode == 1 and p.stderr == "mcd: 1 dump in %s cannot be read " \
            "(permission denied); run as root\n" % copy
        assert p.stdout == table([row(lab, "B", "-", "-", "inaccessible", sig="-", size="-",
                                      exe="-")], legend=False)
    finally:
        shutil.rmtree(pub)


# --- info -------------------------------------------------------------------------------

def expected_info(lab, k, corefile, files=True):
    d = lab.paths[k]
    s = json.load(open(os.path.join(d, "summary.json")))
    summary = open(os.path.join(d, "summary.txt")).read().splitlines()
    lines = ["        Dump: " + lab.names[k],
             "   Directory: " + d,
             "         PID: %d (%s)" % (lab.pids[k], s["comm"]),
             "         UID: %d" % s["uid"],
             "         GID: %d" % s["gid"],
             "      Signal: 11 (SIGSEGV)",
             "   Timestamp: " + local(epoch(lab.names[k])),
             "Command Line: " + lab.exes[k],
             "  Executable: " + lab.exes[k],
             "    Build-ID: " + elf_build_id(lab.exes[k]),
             "    Corefile: " + corefile,
             "        Size: %s (the dump directory)" % disk_use(d),
             "     Summary: " + summary[0]] + ["              " + l for l in summary[1:]]
    if files:
        listing = sorted(os.path.relpath(os.path.join(r, f), d) for r, _, fs in os.walk(d)
                         for f in fs)
        for n, f in enumerate(listing):
            lines.append("%12s%s %8d  %s" % ("Files" if n == 0 else "", ":" if n == 0 else " ",
                                             os.path.getsize(os.path.join(d, f)), f))
    return "\n".join(lines) + "\n"


def test_info_of_several_dumps_and_of_the_newest(lab):
    p = run(lab, "info", "crash3")
    assert (p.returncode, p.stderr) == (0, "")
    assert p.stdout == expected_info(lab, "A", "present (core.xz)") + "\n" + \
        expected_info(lab, "C", "present (core.xz)")
    p = run(lab, "info", "threads8")
    assert "\n    Corefile: cut by the budget (core.xz, crashing thread)\n" in p.stdout
    p = run(lab, "info")  # no matches: the newest, as coredumpctl info
    assert p.returncode == 0 and p.stdout.startswith("        Dump: %s\n" % lab.names["D"])
    assert p.stdout.count("Dump: ") == 1
    assert "\n         PID: %d (tiny)\n         UID: 0\n         GID: 0\n      Signal: SIGSEGV\n" % \
        lab.pids["D"] in p.stdout
    # a budget too small for any core keeps the stack-trace record instead
    assert "\n    Corefile: none (a stack-trace record instead: mcd trace)\n" in p.stdout


def test_info_json(lab):
    p = run(lab, "info", "--json", str(lab.pids["A"]), str(lab.pids["C"]))
    assert (p.returncode, p.stderr) == (0, "")
    a, c = json.loads(p.stdout)
    assert list(a) == list(INFO_FIELDS)
    s = json.load(open(os.path.join(lab.paths["A"], "summary.json")))
    assert a["time"] == epoch(lab.names["A"]) and isinstance(a["time"], int)
    assert a["build_id"] == elf_build_id(lab.exes["A"])
    for key in ("pid", "tid", "uid", "gid", "cmdline", "arch", "code", "fault_address",
                "threads", "registers", "frames", "modules", "dump", "signal", "exe"):
        assert a[key] == s[key], key
    assert [f["symbol"].split("+")[0] for f in a["frames"][:4]] == FRAMES["crash3"]
    assert a["files"] == [{"path": f, "size": os.path.getsize(os.path.join(lab.paths["A"], f))}
                          for f in ("core.xz", "dumps/%d/heap.bin" % lab.pids["A"], "manifest",
                                    "summary.json", "summary.txt", "symbol.map")]
    assert (c["uid"], c["name"], c["corefile"]) == (65534, lab.names["C"], "present")


# --- gdb --------------------------------------------------------------------------------

@pytest.fixture
def fake_debuggers(tmp_path):
    """gdb and lldb stand-ins that print their name and arguments, one a line."""
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    for name in ("gdb", "lldb", "gdb-multiarch"):
        (bin_ / name).write_text('#!/bin/sh\necho "$(basename "$0")"\nfor a in "$@"; do '
                                 'echo "[$a]"; done\n')
        (bin_ / name).chmod(0o755)
    return {"PATH": "%s:%s" % (bin_, os.environ["PATH"])}


CORE = r"\[/tmp/mcd-gdb\.\d+\.\d+/core\]\n"


def test_gdb_prints_the_info_header_then_runs_the_chosen_debugger(lab, fake_debuggers):
    header = expected_info(lab, "C", "present (core.xz)", files=False) + "\n"
    p = run(lab, "gdb", "crash3", "-A", "-nx -batch -ex 'bt full' -ex \"p \\\"x\\\"\"",
            env=fake_debuggers)
    assert (p.returncode, p.stderr) == (0, "")
    assert p.stdout.startswith(header)
    assert re.fullmatch(r"gdb\n\[-nx\]\n\[-batch\]\n\[-ex\]\n\[bt full\]\n\[-ex\]\n"
                        r"\[p \"x\"\]\n\[%s\]\n%s" % (re.escape(lab.exes["C"]), CORE),
                        p.stdout[len(header):]), p.stdout
    env = dict(fake_debuggers, MCD_DEBUGGER="lldb")
    p = run(lab, "debug", str(lab.pids["A"]), "--", "-b", "-o", "bt", env=env)
    assert p.returncode == 0 and p.stdout.startswith("        Dump: %s\n" % lab.names["A"])
    assert re.search(r"\nlldb\n\[-b\]\n\[-o\]\n\[bt\]\n\[--core\]\n%s\[%s\]\n$" % (
        CORE, re.escape(lab.exes["A"])), p.stdout), p.stdout
    p = run(lab, "gdb", "--debugger", "gdb-multiarch", str(lab.pids["A"]), env=env)
    assert re.search(r"\ngdb-multiarch\n\[%s\]\n%s$" % (re.escape(lab.exes["A"]), CORE),
                     p.stdout), p.stdout
    p = run(lab, "gdb", "--debugger", "nosuch-debugger", "crash3")
    assert (p.returncode, p.stdout, p.stderr) == (
        1, "", "mcd: nosuch-debugger is not installed (the core is x86_64)\n")


def test_gdb_warns_when_the_executable_is_not_the_one_that_crashed(crasher, tmp_path,
                                                                   fake_debuggers):
    old, new = "0123456789abcdef0123456789abcdef01234567", "fedcba98" * 5
    exe = build_crash3(str(tmp_path / "victim"), old)
    base = crasher.configure(embedded(max_dump_size=0))
    crasher.run([exe])
    build_crash3(exe, new)  # rebuilt since the crash
    p = mcd("gdb", "--base-dir", base, "victim", env=fake_debuggers)
    assert p.returncode == 0 and "\n    Build-ID: %s\n" % old in p.stdout
    assert p.stderr == ("mcd: warning: %s is not the executable that crashed (build-id %s on "
                        "disk, %s in the dump): symbols and source lines may be wrong\n"
                        % (exe, new, old))
    (name,) = os.listdir(base)
    os.unlink(os.path.join(base, name, "summary.json"))  # the core's own record then
    p = mcd("gdb", "--base-dir", base, "victim", env=fake_debuggers)
    assert "in the dump): symbols" in p.stderr and "(build-id %s on disk, %s in" % (new, old) \
        in p.stderr
    os.unlink(exe)
    p = mcd("gdb", "--base-dir", base, "victim", env=fake_debuggers)
    assert p.stderr == ("mcd: warning: %s is gone (deleted or moved since the crash): the "
                        "debugger has no symbols for it\n" % exe)
    assert re.search(r"\ngdb\n\[--core\]\n%s$" % CORE, p.stdout), p.stdout


def test_the_core_records_the_executables_build_id(crasher, tmp_path):
    from minicoredumper.tool_corefile import CoreFile, file_build_id
    from lab.gdb import extract_core
    build_id = "00112233445566778899aabbccddeeff00112233"
    exe = build_crash3(str(tmp_path / "bid"), build_id)
    d = crasher.crash([exe], embedded(max_dump_size=4096))
    c = CoreFile(extract_core(d, str(tmp_path)))
    assert c.exe_build_id() == build_id == file_build_id(exe)


def test_gdb_with_the_real_gdb(lab):
    p = run(lab, "debug", str(lab.pids["A"]), "-A", "-nx -batch -ex bt", timeout=120)
    assert p.returncode == 0 and p.stdout.startswith(
        expected_info(lab, "A", "present (core.xz)", files=False) + "\n")
    assert_frames(FRAMES["crash3"], frames(p.stdout))


# --- extract ----------------------------------------------------------------------------

def test_extract_writes_to_standard_output_when_it_is_not_a_terminal(lab, tmp_path):
    env = dict(ENV)
    whole = lzma.decompress(open(os.path.join(lab.paths["C"], "core.xz"), "rb").read())
    for verb in ("extract", "dump"):
        p = subprocess.run([sys.executable, "-m", "minicoredumper.cmd_mcd", verb, "--base-dir",
                            lab.base, "crash3"], capture_output=True, env=env)
        assert (p.returncode, p.stderr) == (0, b"")
        assert p.stdout == whole  # the newest crash3: C
    # On a terminal, as before: a file core.PID, and a line that says so.
    import pty
    master, slave = pty.openpty()
    try:
        p = subprocess.run([sys.executable, "-m", "minicoredumper.cmd_mcd", "extract",
                            "--base-dir", lab.base, "crash3"], stdout=slave,
                           stderr=subprocess.PIPE, env=env, cwd=str(tmp_path))
        said = os.read(master, 4096).decode()
    finally:
        os.close(master)
        os.close(slave)
    out = tmp_path / ("core.%d" % lab.pids["C"])
    assert (p.returncode, p.stderr) == (0, b"") and out.read_bytes() == whole
    assert said == "core.%d: %d bytes (from %s)\r\n" % (lab.pids["C"], len(whole),
                                                         lab.names["C"])
    # A buffer with an ident is a file beside the core (dumps/PID/heap.bin) until
    # coreinject puts it into a core; extract takes it out again.
    heap = os.path.join(lab.paths["A"], "dumps", str(lab.pids["A"]), "heap.bin")
    smap = os.path.join(lab.paths["A"], "symbol.map")
    for argv in (["--buffer", "heap.bin", "crash3", "uid=0"], [lab.names["A"], "heap.bin"]):
        p = run(lab, "extract", *argv)
        assert (p.returncode, p.stdout) == (1, "")
        assert re.fullmatch(r"mcd: the core in %s: 0x[0-9a-f]+\+0x8 is not in the core; run "
                            r"coreinject with the dump file first\n" % re.escape(
                                os.path.join(lab.paths["A"], "core.xz")), p.stderr), p.stderr
    core = tmp_path / "core"
    assert run(lab, "extract", str(lab.pids["A"]), "-o", str(core)).returncode == 0
    p = subprocess.run([sys.executable, "-m", "minicoredumper.cmd_coreinject", str(core), smap,
                        heap], capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr
    for argv in ([str(core), "heap.bin"], ["--buffer", "heap.bin", str(core)]):
        p = subprocess.run([sys.executable, "-m", "minicoredumper.cmd_mcd", "dump",
                            "--symbol-map", smap] + argv, capture_output=True, env=env)
        assert (p.returncode, p.stderr) == (0, b"")
        assert p.stdout == open(heap, "rb").read() and p.stdout[8:] == b"\x77" * 32
    p = mcd("extract", str(core), "heap.bin", "--symbol-map", smap, "-o", str(tmp_path / "h"))
    assert p.stdout == "%s: 40 bytes\n" % (tmp_path / "h")


# --- help, man page, completion -----------------------------------------------------------

VERBS = ("install", "uninstall", "list", "info", "gdb", "debug", "extract", "dump", "verify",
         "trace", "store")


def test_help_cites_no_source_files():
    for argv in [["--help"]] + [[v, "--help"] for v in VERBS]:
        p = mcd(*argv)
        assert p.returncode == 0 and p.stdout.startswith("usage: mcd"), argv
        assert not re.search(r"\.py\b|FORMATS|SPEC|§|docs/", p.stdout), (argv, p.stdout)


def parser_words():
    """Every verb and option string of mcd's parser."""
    from minicoredumper.cmd_mcd import build_parser
    words = set()
    p = build_parser()
    sub = next(a for a in p._actions if a.__class__.__name__ == "_SubParsersAction")
    for verb, vp in sub.choices.items():
        words.add(verb)
        words |= {o for a in vp._actions for o in a.option_strings if o not in ("-h", "--help")}
    return words


def test_man_page_renders_without_warnings_and_names_every_option():
    if shutil.which("groff") is None:
        pytest.skip("groff missing")
    p = subprocess.run(["groff", "-man", "-Tutf8", "-ww", MAN], capture_output=True, text=True,
                       env=dict(os.environ, LC_ALL="C.UTF-8"))
    assert p.returncode == 0 and p.stderr == "", p.stderr
    text = re.sub(r".\x08|\x1b\[[0-9;]*m", "", p.stdout).replace("\u2010", "-").replace(
        "\u2212", "-")
    missing = [w for w in sorted(parser_words()) if not re.search(
        r"(?<![\w-])%s(?![\w-])" % re.escape(w), text)]
    assert missing == []
    assert "MCD_DEBUGGER" in text and "SEE ALSO" in text


def complete(*words, cword=None):
    """COMPREPLY of the completion function for the command line words."""
    cword = len(words) - 1 if cword is None else cword
    script = ('source %s\nCOMP_WORDS=(%s)\nCOMP_CWORD=%d\nCOMP_LINE="${COMP_WORDS[*]}"\n'
              'COMP_POINT=${#COMP_LINE}\n_mcd mcd "${COMP_WORDS[COMP_CWORD]}" '
              '"${COMP_WORDS[COMP_CWORD-1]}"\nprintf "%%s\\n" "${COMPREPLY[@]}"\n'
              % (COMPLETION, " ".join("'%s'" % w for w in words), cword))
    p = subprocess.run(["bash", "--norc", "-c", script], capture_output=True, text=True)
    assert p.returncode == 0 and p.stderr == "", p.stderr
    return sorted(p.stdout.split())


def test_bash_completion(tmp_path):
    p = subprocess.run(["bash", "-n", COMPLETION], capture_output=True, text=True)
    assert (p.returncode, p.stderr) == (0, "")
    assert complete("mcd", "") == sorted(VERBS + ("--help", "--version"))
    assert complete("mcd", "d") == ["debug", "dump"]
    assert complete("mcd", "list", "--s") == ["--since", "--slot-size", "--store"]
    assert complete("mcd", "gdb", "--debugger", "") == ["gdb", "gdb-multiarch", "lldb"]
    assert complete("mcd", "list", "-F", "gi") == ["gid"]
    assert complete("mcd", "info", "--since", "y") == ["yesterday"]
    assert complete("mcd", "install", "--mode", "") == ["pipe", "socket"]
    assert complete("mcd", "store", "i") == ["import"]
    assert complete("mcd", "list", "--sto") == ["--store"]
    options = complete("mcd", "extract", "-")
    assert {"-o", "--output", "--buffer", "--symbol-map", "-1", "-n", "-r", "--since",
            "--until", "--base-dir", "--config"} <= set(options)
    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_text("")
    got = complete("mcd", "list", "--base-dir", str(tmp_path) + "/d")
    assert got == [str(tmp_path / "dir")]


def test_bash_completion_offers_the_dumps_comms_and_names(lab, tmp_path):
    wrapper = tmp_path / "mcd"
    wrapper.write_text('#!/bin/sh\nPYTHONPATH=%s exec %s -m minicoredumper.cmd_mcd "$@"\n'
                       % (ENV["PYTHONPATH"], sys.executable))
    wrapper.chmod(0o755)
    assert complete(str(wrapper), "info", "--base-dir", lab.base, "cr") == sorted(
        ["crash3", lab.names["A"], lab.names["C"]])
    assert complete(str(wrapper), "gdb", "--base-dir=" + lab.base, "t") == sorted(
        ["threads8", "tiny", lab.names["B"], lab.names["D"]])


# --- times and words, without crashes -----------------------------------------------------

@pytest.fixture
def cet(monkeypatch):
    """Local time one hour ahead of UTC, without daylight saving (a POSIX TZ)."""
    monkeypatch.setenv("TZ", "CET-1")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_times_people_type(cet):
    now = 1796041882.5  # Mon 2026-11-30 12:31:22.5 UTC, 13:31:22.5 local
    utc = lambda *a: datetime.datetime(*a, tzinfo=datetime.timezone.utc).timestamp()
    cases = {"now": now,
             "today": utc(2026, 11, 29, 23), "yesterday": utc(2026, 11, 28, 23),
             "tomorrow": utc(2026, 11, 30, 23),
             "2026-11-30 12:00": utc(2026, 11, 30, 11), "2026-11-30 12:00:07": utc(
                 2026, 11, 30, 11, 0, 7), "2026-11-30": utc(2026, 11, 29, 23),
             "2026-11-30T12:00:00": utc(2026, 11, 30, 11), "12:00": utc(2026, 11, 30, 11),
             "2026-11-30 12:00 UTC": utc(2026, 11, 30, 12), "today UTC": utc(2026, 11, 30),
             "@1796041882": 1796041882, "-1h": now - 3600, "+30min": now + 1800,
             "-2d 3h": now - 2 * 86400 - 3 * 3600, "-1h30m": now - 5400,
             "1 hour ago": now - 3600, "3 days ago": now - 3 * 86400, "-90": now - 90,
             "-1w": now - 7 * 86400, "-1M": now - 2629800, "-1y": now - 31557600}
    for text, want in cases.items():
        assert parse_time(text, now) == want, text
    for bad in ("soon", "2026-13-01", "25:00", "-1 fortnight", "", "@x", "ago"):
        with pytest.raises(SelectionError, match="is not a time mcd knows"):
            parse_time(bad, now)


def test_debugger_arguments_are_split_as_a_shell_would():
    assert split_words("-nx -batch -ex 'bt full'") == ["-nx", "-batch", "-ex", "bt full"]
    assert split_words('-ex "p \\"a b\\"" x\\ y \'\'') == ["-ex", 'p "a b"', "x y", ""]
    assert split_words("  ") == []
    with pytest.raises(SelectionError, match="unmatched '"):
        split_words("-ex 'bt")


def test_sizes_people_read():
    assert [format_size(n) for n in (0, 512, 1023, 1024, 4000, 16384, 1048575, 1 << 20,
                                     5 << 30)] == \
        ["0B", "512B", "1023B", "1.0K", "3.9K", "16.0K", "1023.9K", "1.0M", "5.0G"]
