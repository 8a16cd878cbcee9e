"""mcd as a new user meets it: where it looks without a config, dumps it may not
read, Ctrl-C in gdb, damaged dumps, IDs that start with "-", and --version."""

import json
import lzma
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from lab import ENV, RUNTIME
from lab.gdb import assert_frames, backtrace, frames
from lab.programs import FRAMES
from test_storage import dumps, embedded, mcd

from minicoredumper import __version__
from minicoredumper.config import DEFAULT_BASE_DIR

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
XZ = embedded(max_dump_size=0)  # core.xz
TGZ = {"compression": {"compressor": "gzip", "extension": "gz", "in_tar": True}}
HEAP = {"buffers": [{"symname": "heap_ptr", "follow_ptr": True, "data_len": 32,
                     "ident": "heap.bin"}]}


def flip(path, offset):
    """Invert one byte of a file."""
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0xFF]))


def error_line(p):
    """The one line a failed mcd wrote to stderr (no traceback)."""
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    assert "Traceback" not in p.stderr and p.stderr.count("\n") == 1, p.stderr
    return p.stderr.rstrip("\n")


def rerecord(d, rel):
    """The integrity record made to agree with rel as it is now (damage done
    before the record was written)."""
    from minicoredumper.write_sinks import file_size_crc
    path = os.path.join(d, "manifest")
    lines = [l for l in open(path).read().splitlines() if l.split(" ", 2)[2] != rel]
    lines.append("%08x %d %s" % (file_size_crc(os.path.join(d, rel))[::-1] + (rel,)))
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


# --- 1: where the handler writes -------------------------------------------------------

def test_with_a_broken_config_mcd_looks_where_the_handler_wrote(crasher, programs):
    """The handler falls back to the default base_dir when the main config cannot
    be used; mcd looks there too and says why in one line."""
    crasher.configure(config='{"base_dir": ')
    rc, reaped, pid = crasher.run([programs["crash3"]])
    new = [d for d in os.listdir(DEFAULT_BASE_DIR) if d.endswith(".%d" % pid)]
    try:
        assert len(new) == 1
        p = mcd("list", "--config", crasher.cfg)
        assert p.returncode == 0 and new[0] in p.stdout, (p.stdout, p.stderr)
        assert p.stderr.count("\n") == 1, p.stderr
        assert p.stderr.startswith("mcd: warning: %s: malformed JSON: " % crasher.cfg)
        assert p.stderr.endswith("; the handler writes to the default base_dir %s, looking "
                                 "there\n" % DEFAULT_BASE_DIR)
        p = mcd("info", "--config", crasher.cfg, str(pid))
        assert p.returncode == 0 and "level_c" in p.stdout, p.stderr
    finally:
        for d in new:
            shutil.rmtree(os.path.join(DEFAULT_BASE_DIR, d))


def test_without_a_config_file_mcd_looks_in_the_default_base_dir(crasher, programs, tmp_path,
                                                                 monkeypatch, capsys):
    """No config installed (the handler's defaults): the default base_dir, silently."""
    from minicoredumper import cmd_mcd as cli, config
    base = crasher.configure(XZ)
    crasher.run([programs["crash3"]])
    (name,) = dumps(base)
    monkeypatch.setattr(config, "DEFAULT_CONFIG", str(tmp_path / "not-installed.json"))
    monkeypatch.setattr(config, "DEFAULT_BASE_DIR", base)
    assert cli.main(["list"]) == 0
    out, err = capsys.readouterr()
    assert name in out and err == ""
    assert cli.main(["info", "crash3"]) == 0
    out, err = capsys.readouterr()
    assert "level_c" in out and err == ""


# --- 2: dumps this user may not read ----------------------------------------------------

def test_dumps_nobody_may_read_are_counted_and_marked(crasher, programs):
    base = crasher.configure(XZ)
    crasher.run([programs["crash3"]])
    crasher.run([programs["crash3"]])
    names = dumps(base)
    pub = tempfile.mkdtemp(prefix="mcdu.")
    try:
        os.chmod(pub, 0o755)
        shared = os.path.join(pub, "crash")
        shutil.copytree(base, shared)  # root's: directories 0700, files 0600
        os.chmod(shared, 0o755)  # names listable, dumps not
        line = "mcd: 2 dumps in %s cannot be read (permission denied); run as root" % shared
        p = mcd("list", "--base-dir", shared, prefix=NOBODY)
        assert error_line(p) == line
        for n in names:
            # COREFILE, EXE and SIZE (unknown), DIRECTORY
            assert re.search(r" inaccessible +- +- %s$" % re.escape(n), p.stdout, re.M), p.stdout
        p = mcd("list", "--json", "--base-dir", shared, prefix=NOBODY)
        assert error_line(p) == line
        assert sorted((r["name"], r["inaccessible"]) for r in json.loads(p.stdout)) == \
            [(n, "permission denied") for n in names]
        p = mcd("verify", "--base-dir", shared, prefix=NOBODY)
        assert error_line(p) == line
        assert sorted(p.stdout.splitlines()) == ["INACCESSIBLE " + n for n in names]
        p = mcd("info", "--base-dir", shared, names[0], prefix=NOBODY)
        assert error_line(p) == ("mcd: %s/%s cannot be read (permission denied); run as root"
                                 % (shared, names[0]))
        os.chmod(shared, 0o700)  # as the handler makes base_dir
        for argv in (["list"], ["verify"], ["info", "crash3"]):
            p = mcd(*argv, "--base-dir", shared, prefix=NOBODY)
            assert error_line(p) == "mcd: %s cannot be read (permission denied); run as root" \
                % shared
            assert p.stdout == ""
        p = mcd("list", "--base-dir", shared)
        assert p.returncode == 0 and p.stderr == "" and "inaccessible" not in p.stdout
    finally:
        shutil.rmtree(pub)


# --- 3: Ctrl-C in mcd gdb ---------------------------------------------------------------

def test_ctrl_c_in_mcd_gdb_is_for_gdb(crasher, programs):
    """Ctrl-C reaches the whole foreground process group (here: gdb's shell
    command interrupts its own group): gdb handles it and goes on, mcd waits."""
    base = crasher.configure(XZ)
    crasher.run([programs["crash3"]])
    p = mcd("gdb", "--base-dir", base, "crash3", "--", "-nx", "-batch",
            "-ex", "shell kill -INT 0", "-ex", "bt", "-ex", "echo survived\\n", "-ex", "bt",
            start_new_session=True, timeout=120)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    assert "survived" in p.stdout
    assert_frames(FRAMES["crash3"], frames(p.stdout))


def test_mcd_gdb_ignores_sigint_but_gdb_does_not_inherit_the_ignore(crasher, programs, tmp_path):
    """A stand-in gdb shows its ignored signals, interrupts mcd and exits 7."""
    base = crasher.configure(XZ)
    crasher.run([programs["crash3"]])
    fake = tmp_path / "bin" / "gdb"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\ngrep '^SigIgn:' /proc/$$/status\nkill -INT $PPID\nsleep 0.3\n"
                    "echo done\nexit 7\n")
    fake.chmod(0o755)
    p = mcd("gdb", "--base-dir", base, "crash3",
            env={"PATH": "%s:%s" % (fake.parent, os.environ["PATH"])}, timeout=60)
    assert p.returncode == 7 and p.stderr == "", p.stderr
    ignored = int(re.search(r"^SigIgn:\s*([0-9a-f]+)$", p.stdout, re.M).group(1), 16)
    assert not ignored & 1 << (signal.SIGINT - 1)
    assert p.stdout.endswith("done\n")


# --- 4: damaged dumps -------------------------------------------------------------------

@pytest.mark.parametrize("record", [True, False], ids=["record", "no-record"])
def test_every_verb_on_a_damaged_dump_says_what_and_where(crasher, programs, tmp_path, record):
    """One flipped byte in core.xz and summary.json; without the integrity record
    (the original minicoredumper's dumps) the decompressor and parser tell."""
    d = crasher.crash([programs["crash3"]], dict(XZ, **HEAP))
    name = os.path.basename(d)
    base = os.path.dirname(d)
    core = os.path.join(d, "core.xz")
    flip(core, os.path.getsize(core) // 2)
    if not record:
        os.unlink(os.path.join(d, "manifest"))
    if record:
        damaged = re.escape("mcd: %s is damaged: core.xz: CRC32 " % d) + \
            r"[0-9a-f]{8}, the record says [0-9a-f]{8}"
    else:
        damaged = re.escape("mcd: %s is damaged: " % core) + r"\S.*"
    out = tmp_path / "out"
    out.mkdir()
    for argv in (["gdb", name, "--", "-nx", "-batch", "-ex", "bt"],
                 ["extract", name, "-o", str(out / "core")],
                 ["extract", name, "heap.bin", "-o", str(out / "heap.bin")]):
        p = mcd(argv[0], "--base-dir", base, *argv[1:])
        assert re.fullmatch(damaged, error_line(p)), (argv, p.stderr)
        assert p.stdout == ""
    assert os.listdir(out) == []
    p = mcd("info", "--base-dir", base, name)
    if record:  # the summary, then what is wrong
        assert re.fullmatch(damaged, error_line(p)) and "level_c" in p.stdout
    else:
        assert p.returncode == 0 and "level_c" in p.stdout
    p = mcd("verify", "--base-dir", base)
    if record:
        assert error_line(p) == "1 of 1 dumps failed verification"
        assert p.stdout.startswith("CORRUPT %s: " % name)
    else:  # nothing to verify against: only the readers above can tell
        assert p.returncode == 3 and p.stdout.startswith("UNVERIFIED %s: " % name), p
    summary = os.path.join(d, "summary.json")
    if record:
        flip(summary, 100)
        damaged = re.escape("mcd: %s is damaged: summary.json: CRC32 " % d) + \
            r"[0-9a-f]{8}, the record says [0-9a-f]{8}"
    else:
        os.truncate(summary, 100)
        damaged = re.escape("mcd: %s is damaged: " % summary) + r"\S.*"
    for argv in (["list"], ["list", "--json"]):
        p = mcd(*argv, "--base-dir", base)
        assert re.fullmatch(damaged, error_line(p)), p.stderr
        assert name in p.stdout  # the row is still there
    p = mcd("gdb", "--base-dir", base, name)
    assert re.fullmatch(damaged, error_line(p))


@pytest.mark.parametrize("record", [True, False], ids=["record", "no-record"])
def test_extract_of_a_truncated_core_xz_leaves_no_file(crasher, programs, tmp_path, record):
    d = crasher.crash([programs["crash3"]], XZ)
    core = os.path.join(d, "core.xz")
    size = os.path.getsize(core)
    os.truncate(core, size // 2)
    if not record:
        os.unlink(os.path.join(d, "manifest"))
    p = mcd("extract", d, "-o", str(tmp_path / "core"))
    if record:
        assert error_line(p) == "mcd: %s is damaged: core.xz: %d bytes, the record says %d" % (
            d, size // 2, size)
    else:
        assert error_line(p) == ("mcd: %s is damaged: Compressed file ended before the "
                                 "end-of-stream marker was reached" % core)
    assert os.listdir(tmp_path) == []


def test_gdb_on_a_flipped_byte_in_core_tar_gz(crasher, programs):
    d = crasher.crash([programs["crash3"]], TGZ)
    core = os.path.join(d, "core.tar.gz")
    flip(core, os.path.getsize(core) // 2)
    os.unlink(os.path.join(d, "manifest"))  # the archive's own checks tell
    p = mcd("gdb", d, "--", "-nx", "-batch", "-ex", "bt")
    assert error_line(p).startswith("mcd: %s is damaged: " % core) and p.stdout == ""


def test_a_damaged_integrity_record_is_reported_not_raised(crasher, programs):
    d = crasher.crash([programs["crash3"]], XZ)
    flip(os.path.join(d, "manifest"), 3)  # in the first line's CRC32
    p = mcd("verify", d)
    assert error_line(p) == "1 of 1 dumps failed verification"
    assert p.stdout.startswith("CORRUPT %s: malformed record line " % os.path.basename(d))


@pytest.mark.parametrize("cut,what", [(10, "truncated at offset 0x0"),
                                      (40, "truncated at offset 0x10"),
                                      (100, "truncated at offset 0x40")])
def test_a_truncated_core_in_its_archive(crasher, programs, tmp_path, cut, what):
    """A core cut short inside an intact core.xz (or given as a file): the
    headers gdb's architecture choice and extract IDENT read."""
    d = crasher.crash([programs["crash3"]], dict(XZ, **HEAP))
    art = os.path.join(d, "core.xz")
    with lzma.open(art) as f:
        whole = f.read()
    with lzma.open(art, "wb") as f:
        f.write(whole[:cut])
    rerecord(d, "core.xz")
    p = mcd("gdb", d, "--", "-nx", "-batch", "-ex", "bt")
    assert error_line(p) == "mcd: the core in %s: %s" % (art, what) and p.stdout == ""
    out = tmp_path / "heap.bin"
    p = mcd("extract", d, "heap.bin", "-o", str(out))
    assert error_line(p) == "mcd: the core in %s: %s" % (art, what)
    plain = tmp_path / "core"
    plain.write_bytes(whole[:cut])
    p = mcd("extract", str(plain), "heap.bin", "--symbol-map", os.path.join(d, "symbol.map"),
            "-o", str(out))
    assert error_line(p) == "mcd: %s: %s" % (plain, what)
    assert not out.exists()


# --- 5: IDs that start with "-" ---------------------------------------------------------

def test_an_id_that_starts_with_a_dash(crasher, programs, tmp_path):
    """A comm like a login shell's (-bash): by name or comm after --; gdb takes
    the ID right after -- and its own arguments after a second --."""
    prog = tmp_path / "-rf"
    shutil.copy(programs["crash3"], prog)
    base = crasher.configure(XZ)
    crasher.run([str(prog)])
    (name,) = dumps(base)
    assert name.startswith("-rf.")
    for ident in (name, "-rf"):
        p = mcd("info", "--base-dir", base, "--", ident)
        assert p.returncode == 0 and "level_c" in p.stdout, p.stderr
    core = tmp_path / "core"
    p = mcd("extract", "--base-dir", base, "-o", str(core), "--", name)
    assert p.returncode == 0, p.stderr
    assert_frames(FRAMES["crash3"], backtrace(str(prog), str(core)))
    p = mcd("verify", "--base-dir", base, "--", name)
    assert p.returncode == 0 and p.stdout == "OK %s\n" % name
    p = mcd("gdb", "--base-dir", base, "--", name, "--", "-nx", "-batch", "-ex", "bt")
    assert p.returncode == 0, p.stderr
    assert_frames(FRAMES["crash3"], frames(p.stdout))
    for argv, error in ((["--", "-rf", "-batch"], "after `-- ID`, the debugger's arguments "
                                                  "follow a second --"),
                        (["--"], "the following arguments are required: ID")):
        p = mcd("gdb", "--base-dir", base, *argv)
        assert p.returncode == 2 and p.stderr.startswith(
            "usage: mcd gdb [OPTIONS] [MATCH...] [-- DEBUGGER-ARGUMENTS]\n"
            "       mcd gdb [OPTIONS] -- ID [-- DEBUGGER-ARGUMENTS]\n")
        assert p.stderr.endswith("\nmcd gdb: error: %s\n" % error), p.stderr


# --- 6: --version -----------------------------------------------------------------------

@pytest.mark.parametrize("module,name", [
    ("cmd_mcd", "mcd"), ("cmd_handler", "minicoredumper"), ("cmd_coreinject", "coreinject"),
    ("cmd_regd", "minicoredumper_regd"), ("cmd_trigger", "minicoredumper_trigger"),
    ("cmd_sockd", "minicoredumper_sockd")])
def test_version(module, name):
    p = subprocess.run([sys.executable, "-m", "minicoredumper." + module, "--version"],
                       capture_output=True, text=True, env=ENV)
    assert (p.returncode, p.stdout, p.stderr) == (0, "%s %s\n" % (name, __version__), "")
    assert __version__ == "0.2.0"


def test_version_through_the_handler_launcher(tmp_path):
    """The launcher the kernel runs keeps stdout for a person asking."""
    from minicoredumper import cmd_mcd as cli
    launcher = tmp_path / "minicoredumper"
    launcher.write_text(cli.render_launcher(sys.executable, os.path.abspath(RUNTIME)))
    launcher.chmod(0o755)
    p = subprocess.run([str(launcher), "--version"], capture_output=True, text=True)
    assert (p.returncode, p.stdout) == (0, "minicoredumper %s\n" % __version__)


# --- user reports: missing base_dir, unknown options ------------------------------------

def test_list_of_a_missing_base_dir_says_it_is_missing():
    p = mcd("list", "--base-dir", "/nonexistent")
    assert p.returncode == 1
    assert p.stderr.startswith("mcd: /nonexistent: no such directory"), p.stderr


@pytest.mark.parametrize("argv", [["--bogus"], ["--bogus", "list"]])
def test_an_unknown_option_before_the_verb_is_named(argv):
    p = mcd(*argv)
    assert p.returncode == 2
    assert "unrecognized arguments: --bogus" in p.stderr.splitlines()[-1], p.stderr


@pytest.mark.parametrize("text,problem", [
    ('{"base_dir": "/tmp/x",', "malformed JSON"),
    ('{"max_dumps": "4"}', "max_dumps must be an integer >= 0")])
def test_install_refuses_a_broken_config_before_writing(tmp_path, text, problem):
    """Under the core_pattern lock, so no other test's setting moves meanwhile
    (the config is refused before mcd would take the lock itself)."""
    from minicoredumper.corepattern import CorePatternLock
    cfg = tmp_path / "broken.json"
    cfg.write_text(text)
    with CorePatternLock():
        before = open("/proc/sys/kernel/core_pattern").read()
        p = mcd("install", "--config", str(cfg), env={"MCD_STATE_DIR": str(tmp_path / "st")})
        after = open("/proc/sys/kernel/core_pattern").read()
    assert p.returncode == 1, p
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and str(cfg) in lines[0] and problem in lines[0], p.stderr
    assert after == before and not (tmp_path / "st").exists()


# --- the core_pattern lock ----------------------------------------------------------------

@pytest.mark.parametrize("verb", ["install", "uninstall"])
def test_install_and_uninstall_wait_for_the_core_pattern_lock_and_name_its_holder(
        crasher, tmp_path, verb):
    """This test session holds the lock (crasher): mcd in another process waits
    --wait seconds, names this process and changes nothing; core_pattern is put
    back here (under the session's lock) if it did."""
    state = tmp_path / "st"
    if verb == "uninstall":  # what install saved
        state.mkdir()
        (state / "saved-kernel-settings.json").write_text(
            json.dumps({"core_pattern": "core", "core_pipe_limit": "0"}))
    cfg = tmp_path / "cfg.json"
    cfg.write_text("{}")
    settings = ("core_pattern", "core_pipe_limit")
    before = [open("/proc/sys/kernel/" + k).read() for k in settings]
    t0 = time.monotonic()
    try:
        p = mcd(verb, "--wait", "0.5", *(["--config", str(cfg)] if verb == "install" else []),
                env={"MCD_STATE_DIR": str(state)})
        waited = time.monotonic() - t0
        after = [open("/proc/sys/kernel/" + k).read() for k in settings]
    finally:
        for k, v in zip(settings, before):
            with open("/proc/sys/kernel/" + k, "w") as f:
                f.write(v)
    assert after == before
    assert error_line(p) == (
        "mcd: core_pattern is in use by pid %d (%s) (it holds "
        "/run/lock/minicoredumper-core-pattern.lock; waited 0.5 s); try again when it "
        "has restored core_pattern" % (os.getpid(), " ".join(sys.argv)[:200]))
    assert 0.5 <= waited < 5, waited
    if verb == "install":  # not even the state directory
        assert not state.exists()
    else:
        assert os.listdir(state) == ["saved-kernel-settings.json"]


def test_the_lock_is_counted_within_its_process_and_bounded_for_others(tmp_path):
    """A second CorePatternLock of the holding process, released, leaves the lock
    held (closing a second descriptor of the file would drop it); another
    process waits at most its wait and is told the holder."""
    from minicoredumper.corepattern import CorePatternLock, LockBusy
    path = str(tmp_path / "lock")
    probe = ("import sys, time; from minicoredumper.corepattern import CorePatternLock, "
             "LockBusy\ntry:\n    CorePatternLock(wait=0.3, path=%r).acquire()\n"
             "    print('taken')\nexcept LockBusy as e:\n    print(e.holder)") % path
    with CorePatternLock(path=path):
        with CorePatternLock(path=path):
            pass
        t0 = time.monotonic()
        p = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                           env=ENV, check=True)
        assert p.stdout == "pid %d (%s)\n" % (os.getpid(), " ".join(sys.argv)[:200])
        assert 0.3 <= time.monotonic() - t0 < 5
    p = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=ENV,
                       check=True)
    assert p.stdout == "taken\n"
    with CorePatternLock(path=path):  # a forked child does not inherit it
        pid = os.fork()
        if pid == 0:
            try:
                CorePatternLock(wait=0, path=path).acquire()
                os._exit(0)
            except LockBusy:
                os._exit(7)
            finally:
                os._exit(1)
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 7

# --- dumps without an integrity record ---------------------------------------------------

def as_the_original_writes_it(d, dest):
    """A copy of dump d laid out as the original minicoredumper writes its dumps
    (SPEC.md §4): the core, symbol.map and dumps/, no summary, no manifest."""
    os.mkdir(dest, 0o700)
    shutil.copy2(os.path.join(d, "core.xz"), dest)
    shutil.copy2(os.path.join(d, "symbol.map"), dest)
    shutil.copytree(os.path.join(d, "dumps"), os.path.join(dest, "dumps"))
    return dest


def test_every_verb_reads_a_dump_without_a_manifest_and_verify_says_so(crasher, programs,
                                                                          tmp_path):
    """The original minicoredumper's dumps (no summary, no manifest) and a dump
    copied by hand without its manifest: list, info, gdb and extract read them as
    they are; verify says there is nothing to verify against, status 3 (1 when
    another dump is damaged)."""
    d = crasher.crash([programs["crash3"]], dict(XZ, **HEAP))
    name = os.path.basename(d)
    old = str(tmp_path / "old")
    os.mkdir(old)
    orig = as_the_original_writes_it(d, os.path.join(old, name))
    copied = str(tmp_path / "copied")  # a name that is not a dump's: its files say it is one
    shutil.copytree(d, copied)
    os.unlink(os.path.join(copied, "manifest"))
    p = mcd("list", "--base-dir", old, "-F", "corefile")
    assert (p.returncode, p.stdout, p.stderr) == (0, "present\n", ""), p
    for dump in (orig, copied):
        p = mcd("info", dump)
        assert p.returncode == 0 and p.stderr == "", p
        assert "Corefile: present (core.xz" in p.stdout
        p = mcd("gdb", dump, "--", "-nx", "-batch", "-ex", "bt")
        assert p.returncode == 0, p.stderr
        assert_frames(FRAMES["crash3"], frames(p.stdout))
        p = mcd("extract", dump, "-o", str(tmp_path / "core"))
        assert p.returncode == 0 and p.stderr == "", p
        assert_frames(FRAMES["crash3"], backtrace(programs["crash3"], str(tmp_path / "core")))
        p = mcd("verify", dump)
        assert (p.returncode, p.stdout) == (3, "UNVERIFIED %s: no manifest: nothing to verify "
                                               "against\n" % os.path.basename(dump)), p
        assert p.stderr == "1 of 1 dumps have no manifest (the original minicoredumper's, or " \
                           "copied without it): not verified\n"
    p = mcd("verify", d, orig)
    assert p.returncode == 3 and p.stdout.splitlines() == [
        "OK " + name, "UNVERIFIED %s: no manifest: nothing to verify against" % name], p
    flip(os.path.join(d, "core.xz"), 100)
    p = mcd("verify", d, orig)
    assert p.returncode == 1 and p.stdout.splitlines()[0].startswith("CORRUPT " + name), p
    assert p.stderr.splitlines()[0] == "1 of 2 dumps failed verification"
    from minicoredumper.tool_catalog import is_dump_dir
    assert is_dump_dir(orig) and is_dump_dir(copied)
    assert not is_dump_dir(old)  # it holds a dump: it is not one


def test_verify_lists_problems_in_path_order(crasher, programs):
    """However the record and the directory list them: the record's lines
    reversed, two files changed, two unrecorded files made z first."""
    d = crasher.crash([programs["crash3"]], dict(XZ, **HEAP))
    path = os.path.join(d, "manifest")
    lines = open(path).read().splitlines()
    with open(path, "w") as f:
        f.write("\n".join(lines[::-1]) + "\n")
    flip(os.path.join(d, "core.xz"), 100)
    flip(os.path.join(d, "summary.json"), 10)
    for extra in ("zz", "dumps/aa", "aa"):
        open(os.path.join(d, extra), "w").close()
    p = mcd("verify", d)
    assert p.returncode == 1, p
    problems = p.stdout.split(": ", 1)[1].rstrip("\n").split("; ")
    paths = [x.split(":")[0] for x in problems]
    assert paths == ["aa", "core.xz", "dumps/aa", "summary.json", "zz"], p.stdout
