"""tests/qemu/test_guests.py: the layer's packages on Debian guests of three architectures
(amd64, armhf, arm64) under QEMU TCG, checked on the host.

Each guest boots once per session (conftest.py): its init wires core_pattern with the
layer's init script, then qemu/guest/run.sh crashes crash3 (three calls deep), threads8
(one of eight threads) and mycrasher (registered data) under the embedded recept (the
target's default), the embedded recept with the debug log, and the generic recept; and,
once the runtime has minicoredumper_trigger, live dumps of a registered process. The
programs are minicoredumper-crashtests', in minicoredumper's ptest directory. Last, the
guest runs the package test a Yocto image gets, minicoredumper-ptest's run-ptest; its
PASS/FAIL lines are checked here.
"""

import json
import os
import re
import tomllib

import pytest
from elftools.elf.elffile import ELFFile

import guests
import report
from lab import ENV, RUNTIME
from lab.gdb import assert_frames, backtrace, extract_core, frames
from lab.programs import FRAMES
from lab.unwind import assert_same_as_gdb

RECEPTS = ["embedded", "debug", "generic"]
PROGRAMS = ["crash3", "threads8", "mycrasher"]
SIGSEGV_STATUS = 128 + 11
PTEST_PATH = "usr/lib/minicoredumper/ptest"  # ${PTEST_PATH} of the runtime recipe
PTEST_BIN = PTEST_PATH + "/bin"  # minicoredumper-crashtests' programs


def dump(guest, recept, program):
    d = guest["dumps"].get((recept, program))
    assert d is not None, "no dump of %s under the %s recept (crashes: %s)" % (
        program, recept, guest["crashes"])
    assert len(d["dirs"]) == 1, d["dirs"]
    return d


_CORES = {}


def core_of(guest, recept, program, tmp_path_factory):
    """The plain core of an artefact, unpacked once per session."""
    key = (guest["arch"], recept, program)
    if key not in _CORES:
        dest = str(tmp_path_factory.mktemp("core-%s-%s-%s" % key))
        _CORES[key] = extract_core(dump(guest, recept, program)["dir"], dest)
    return _CORES[key]


def dumplist(elf):
    sec = elf.get_section_by_name(".note.minicoredumper.dumplist")
    assert sec is not None, "no .note.minicoredumper.dumplist section"
    pairs = []
    w = 8 if elf.elfclass == 64 else 4
    for note in sec.iter_notes():
        assert note["n_name"] == "minicoredumper" and note["n_type"] == 80
        desc = note["n_descdata"]
        vals = [int.from_bytes(desc[i:i + w], "little") for i in range(0, len(desc), w)]
        pairs += list(zip(vals[::2], vals[1::2]))
    return pairs


# --- the boot ----------------------------------------------------------------------

def test_guest_ran_its_job(guest):
    b = guest["boot"]
    assert not b["timed_out"] and b["returncode"] == 0, b.get("qemu_output")
    assert b["fresh"], "the results disk holds another boot's results"
    bt = guest["boot_txt"]
    assert bt.get("finish") == "job done" and bt.get("job_rc") == "0", bt
    assert bt.get("resdev") == "vdb" and bt.get("jobdev") == "vda", bt
    assert bt["machine"] == {"amd64": "x86_64", "armhf": "armv7l", "arm64": "aarch64"}[guest["arch"]]


def test_core_pattern_from_the_layer(guest):
    """/etc/init.d/minicoredumper (the layer's sysvinit wiring) applied the recipe's
    sysctl drop-in: the values in the guest are the drop-in's."""
    dropin = os.path.join(guest["rootfs"], "usr/lib/sysctl.d/60-minicoredumper.conf")
    values = {}
    with open(dropin) as f:
        for line in f:
            if "=" in line and not line.lstrip().startswith(("#", ";")):
                k, _, v = line.partition("=")
                values[k.strip()] = v.strip()
    assert guest["sysctl"]["core_pattern"] == values["kernel.core_pattern"]
    assert guest["sysctl"]["core_pipe_limit"] == values["kernel.core_pipe_limit"]
    assert values["kernel.core_pattern"].startswith("|/usr/sbin/minicoredumper %P ")


# --- the three crash scenarios ---------------------------------------------------------

@pytest.mark.parametrize("program", PROGRAMS)
@pytest.mark.parametrize("recept", RECEPTS)
def test_crash_gives_a_dump(guest, recept, program):
    d = dump(guest, recept, program)
    assert d["rc"] == SIGSEGV_STATUS, d
    assert d["artefact"], "no core artefact in %s: %s" % (d["dir"], d["files"])
    assert d["handler_ms"] is not None, "no 'dumped' line in the guest's kernel log"


@pytest.mark.parametrize("program", PROGRAMS)
@pytest.mark.parametrize("recept", RECEPTS)
def test_gdb_multiarch_backtrace(guest, recept, program, tmp_path_factory):
    """gdb-multiarch on the host, with the guest's root file system as sysroot, gets the
    crashing thread's whole call chain from the artefact."""
    core = core_of(guest, recept, program, tmp_path_factory)
    rootfs = guest["rootfs"]
    bt = backtrace(os.path.join(rootfs, PTEST_BIN, program), core, sysroot=rootfs,
                   program="gdb-multiarch")
    assert_frames(FRAMES[program], bt, whole=False)


@pytest.mark.parametrize("recept", RECEPTS)
def test_mycrasher_registered_text(guest, recept):
    d = dump(guest, recept, "mycrasher")
    pid = os.path.basename(d["dir"]).rsplit(".", 1)[1]
    with open(os.path.join(d["dir"], "dumps", pid, "out.txt")) as f:
        assert f.read() == 's="my string" *i=42\n'


@pytest.mark.parametrize("program", PROGRAMS)
def test_embedded_recept_fits_the_eeprom_budget(guest, program, budget):
    """The embedded recept's core artefact, and every other file of its dump, fit the
    EEPROM budget (MCD_EEPROM_BUDGET, default 4096 bytes). When the installed recept
    caps the whole dump directory (max_dump_size), the directory keeps to that cap."""
    d = dump(guest, "embedded", program)
    sizes = {f: os.path.getsize(os.path.join(d["dir"], f)) for f in d["files"]}
    print("%s %s: artefact %s %d bytes, dump directory %d bytes (%s), budget %d" % (
        guest["arch"], program, os.path.basename(d["artefact"]), d["artefact_bytes"],
        d["dir_bytes"], ", ".join("%s %d" % kv for kv in sorted(sizes.items())), budget))
    assert d["artefact_bytes"] <= budget
    assert max(sizes.values()) <= budget, sizes
    with open(os.path.join(guest["results"], "etc-minicoredumper", "embedded.recept.json")) as f:
        cap = json.load(f).get("max_dump_size", 0)
    if cap:
        assert d["dir_bytes"] <= cap, sizes


@pytest.mark.parametrize("program", PROGRAMS)
@pytest.mark.parametrize("recept", RECEPTS)
def test_dumplist_note_matches_the_file(guest, recept, program, tmp_path_factory):
    """The dumplist ranges are exactly the PT_LOAD ranges present in the file (compact
    layout: one PT_LOAD per dumped range), after the header block (0, size)."""
    core = core_of(guest, recept, program, tmp_path_factory)
    with open(core, "rb") as f:
        elf = ELFFile(f)
        assert elf["e_machine"] == guests.ARCHS[guest["arch"]]["elf_machine"]
        pairs = dumplist(elf)
        loads = [s for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"]
        present = [(s["p_vaddr"], s["p_filesz"]) for s in loads if s["p_filesz"]]
        size = os.path.getsize(core)
        for s in loads:
            assert s["p_offset"] + s["p_filesz"] <= size
    assert pairs[0][0] == 0 and 0 < pairs[0][1] <= min(s["p_offset"] for s in loads if s["p_filesz"])
    assert pairs[1:] == present


@pytest.mark.parametrize("program", PROGRAMS)
def test_debug_log_agrees_with_the_dumplist(guest, program, tmp_path_factory):
    """debug.txt's "core ranges present" (the handler's own account) is the note's list
    after its header block."""
    d = dump(guest, "debug", program)
    with open(os.path.join(d["dir"], "debug.txt")) as f:
        text = f.read()
    block = text.split("core ranges present (start length):\n", 1)[1].split("\n\n", 1)[0]
    logged = [tuple(int(x, 16) for x in line.split()) for line in block.splitlines() if line.strip()]
    with open(core_of(guest, "debug", program, tmp_path_factory), "rb") as f:
        assert dumplist(ELFFile(f))[1:] == logged


# --- the guest's Python ------------------------------------------------------------------

def test_pruned_stdlib_is_enough(guest):
    """Every module of the installed package imports in the guest, the tools start, and
    every module the handler had loaded (debug.txt) is one the closure provides."""
    py = guest["python"]
    assert "imports_rc=0" in py, py
    assert "import-failed" not in py, py
    for tool in ("mcd", "coreinject"):
        assert "tool /usr/bin/%s rc=0" % tool in py, py
    closure = guest["image"]["stdlib_closure"]
    assert set(closure["missing"]) <= {"ujson", "zstandard", "compression", "compression.zstd"}
    provided = set(closure["builtin"]) | set(closure["frozen"]) | set(closure["runtime_modules"])
    for rel in closure["files"]:
        mod = rel[:-3] if rel.endswith(".py") else rel.split("/")[-1].split(".")[0]
        mod = mod.replace("/", ".")
        provided.add(mod[:-len(".__init__")] if mod.endswith(".__init__") else mod)
    for program in PROGRAMS:
        d = dump(guest, "debug", program)
        with open(os.path.join(d["dir"], "debug.txt")) as f:
            loaded = re.search(r"^modules loaded: (.*)$", f.read(), re.M).group(1).split()
        assert set(loaded) - provided - {"__main__"} == set()


def test_guest_libc_is_the_one_linked_against(guest):
    """glibc in the guest (and so in gdb's sysroot) is the very files the programs were
    linked with: the cross toolchain's libc (the host's for amd64)."""
    a = guests.ARCHS[guest["arch"]]
    libdir = os.path.join(guest["rootfs"], "usr/lib", a["triplet"])
    for name in ("libc.so.6", os.path.basename(a["interp"])):
        with open(os.path.join(libdir, name), "rb") as g, \
                open(os.path.realpath(os.path.join(a["libc_dir"], name)), "rb") as h:
            assert g.read() == h.read(), name
    for program in PROGRAMS:
        with open(os.path.join(guest["rootfs"], PTEST_BIN, program), "rb") as f:
            elf = ELFFile(f)
            interp = [s.get_interp_name() for s in elf.iter_segments() if s["p_type"] == "PT_INTERP"]
        assert interp == [a["interp"]]
        assert os.path.exists(os.path.join(guest["rootfs"], a["interp"].lstrip("/")))


# --- the package test (run-ptest) ----------------------------------------------------

def test_crash_programs_are_off_path(guest):
    """minicoredumper-crashtests installs its programs into the runtime's ptest
    directory: none is in /usr/bin or /usr/sbin."""
    rootfs = guest["rootfs"]
    programs = os.listdir(os.path.join(rootfs, PTEST_BIN))
    assert set(PROGRAMS) <= set(programs)
    for d in ("usr/bin", "usr/sbin"):
        assert set(programs) & set(os.listdir(os.path.join(rootfs, d))) == set(), d


def ptest_expected(guest):
    """The names run-ptest reports, from the installed script's PROGRAMS."""
    with open(os.path.join(guest["rootfs"], PTEST_PATH, "run-ptest")) as f:
        programs = re.search(r'^PROGRAMS="([^"]*)"$', f.read(), re.M).group(1).split()
    assert set(programs) == set(FRAMES) - {"crash3_i386"}
    names = ["core-pattern", "programs-off-path"]
    for p in programs:
        names += ["%s-dump" % p, "%s-frames" % p, "%s-eeprom-budget" % p]
    return names + ["mycrasher-registered-data", "core-pattern-restored"]


def test_ptest_passes(guest):
    """run-ptest, run in the guest as ptest-runner runs it, says PASS for every test:
    core_pattern is the recipe's, the programs are off PATH, each program's crash gives
    a dump whose summary shows the expected frames and whose files fit the EEPROM
    budget, mycrasher's registered text is in its dump, and core_pattern is put back."""
    pt = guest["ptest"]
    assert pt.get("ptest") != "absent", "no run-ptest in the guest"
    results = report.ptest_results(pt["log"])
    print("%s run-ptest (%s ms):\n%s" % (guest["arch"], pt.get("ms"),
                                         "\n".join("%s: %s" % r for r in results)))
    names = [n for _, n in results]
    assert len(names) == len(set(names)), names
    assert [r for r in results if r[0] != "PASS"] == [], pt["log"]
    assert set(ptest_expected(guest)) <= set(names), pt["log"]
    assert pt.get("rc") == "0", pt["log"]
    assert pt["core_pattern_after"] == pt["core_pattern_before"]
    assert pt["core_pipe_limit_after"] == guest["sysctl"]["core_pipe_limit"]


def test_ptest_dumps_fit_the_budget(guest, budget):
    """The dumps run-ptest checked (kept with MCD_PTEST_KEEP), checked again here: one per
    program, every file within the budget, the PC's function in summary.txt the
    program's innermost frame."""
    top = guest["ptest"]["dumps"]
    dirs = sorted(os.listdir(top))
    assert sorted(d.split(".", 1)[0] for d in dirs) == sorted(set(FRAMES) - {"crash3_i386"})
    for d in dirs:
        path = os.path.join(top, d)
        sizes = {os.path.relpath(os.path.join(r, f), path): os.path.getsize(os.path.join(r, f))
                 for r, _, fs in os.walk(path) for f in fs}
        assert max(sizes.values()) <= budget, (d, sizes)
        with open(os.path.join(path, "summary.txt")) as f:
            pc = next(l for l in f.read().splitlines() if l.startswith("#0 ")).split()[2]
        assert re.split(r"[.+]", pc)[0] == FRAMES[d.split(".", 1)[0]][0], (d, pc)


# --- live dumps --------------------------------------------------------------------------

def _has_trigger():
    with open(os.path.join(RUNTIME, "pyproject.toml"), "rb") as f:
        return "minicoredumper_trigger" in tomllib.load(f)["project"].get("scripts", {})


def test_live_dump(guest):
    """minicoredumper_trigger dumps a running registered process (regloop) on demand,
    and a crash whose recept sets live_dumper dumps it too."""
    if not _has_trigger():
        pytest.skip("no live dumps yet: runtime/pyproject.toml has no minicoredumper_trigger")
    live = guest["live"]
    assert live.get("live") == "done", live
    assert live.get("registered") == "1", live
    assert live.get("trigger_rc", "").startswith("0 "), live
    pid = live["regloop_pid"]
    trig = os.path.join(guest["results"], "dumps", "live", "trigger", "dumps", pid)
    with open(os.path.join(trig, "status.txt")) as f:
        assert re.fullmatch(r"name=live count=\d+\n", f.read())
    assert not os.path.exists(os.path.join(trig, "secret.bin"))  # dump_scope 100 > 1
    d = dump(guest, "live", "crash3")
    with open(os.path.join(d["dir"], "dumps", pid, "status.txt")) as f:
        assert re.fullmatch(r"name=live count=\d+\n", f.read())


def test_mcd_gdb_on_a_guest_dump(guest):
    """`mcd gdb` picks gdb-multiarch and the guest's root file system for a foreign
    architecture (gdb for the host's own), and the backtrace is whole."""
    import subprocess
    import sys
    d = dump(guest, "embedded", "crash3")["dir"]
    rootfs = guest["rootfs"]
    p = subprocess.run([sys.executable, "-m", "minicoredumper.cmd_mcd", "gdb", d, "--sysroot", rootfs,
                        "--", "-nx", "-batch", "-ex", "bt"], capture_output=True, text=True,
                       env=ENV, timeout=300)
    assert p.returncode == 0, p.stderr
    assert_frames(FRAMES["crash3"], frames(p.stdout), whole=False)


@pytest.mark.parametrize("program", PROGRAMS)
def test_unwound_frames_of_every_thread_are_gdbs(guest, program):
    """Under the fatcore scenario (generic recept with dump_fat_core) the summary's
    function names of every thread, unwound on the guest with its own binaries'
    tables (.eh_frame, .ARM.exidx), equal gdb-multiarch's on the kernel's core of
    the same crash, with the guest's root file system as sysroot."""
    d = dump(guest, "fatcore", program)["dir"]
    rootfs = guest["rootfs"]
    assert_same_as_gdb(d, os.path.join(rootfs, PTEST_BIN, program), sysroot=rootfs,
                       program="gdb-multiarch")
