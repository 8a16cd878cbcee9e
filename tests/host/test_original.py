"""Compatibility with the original minicoredumper, both ways (docs/FORMATS.md §6, §7).

These run against a build of the original (diamon/minicoredumper 2.0.x) when
MCD_ORIGINAL names its install prefix, and are skipped otherwise (CI has no
copy: it is not packaged in Debian). To build one, outside this checkout, with
autoconf, automake, libtool, libelf-dev and libjson-c-dev installed:

    git clone https://github.com/diamon/minicoredumper && cd minicoredumper
    git checkout v2.0.7 && ./autogen.sh
    ./configure --prefix=$PWD/inst && make && make install
    MCD_ORIGINAL=$PWD/inst pytest tests/host/test_original.py

The prefix must hold sbin/minicoredumper, bin/coreinject, include/minicoredumper.h
and lib/libminicoredumper.so. The original handler runs from core_pattern
(through the lab's Crasher, under its lock); its config is in the Crasher's work
directory, its dumps in the test's.
"""

import json
import os
import shutil
import subprocess
import sys

import pytest

from lab import ENV, RUNTIME
from lab.gdb import assert_frames, backtrace, gdb
from lab.programs import FRAMES
from minicoredumper import elf as E
from minicoredumper.tool_corefile import CoreFile

ORIGINAL = os.environ.get("MCD_ORIGINAL", "")
NEEDS = ("sbin/minicoredumper", "bin/coreinject", "include/minicoredumper.h",
         "lib/libminicoredumper.so")
MYCRASHER = os.path.join(RUNTIME, "libminicoredumper", "mycrasher.c")
OUT_TXT = 's="my string" *i=42\n'


@pytest.fixture(scope="module")
def original():
    """The original's install prefix (skips when there is none)."""
    if not ORIGINAL:
        pytest.skip("MCD_ORIGINAL is not set: no build of the original minicoredumper "
                    "(see this file's docstring)")
    missing = [n for n in NEEDS if not os.path.exists(os.path.join(ORIGINAL, n))]
    if missing:
        pytest.skip("MCD_ORIGINAL=%s lacks %s" % (ORIGINAL, ", ".join(missing)))
    return ORIGINAL


@pytest.fixture(scope="module")
def mycrasher_original(original, tmp_path_factory):
    """Our library's example program, built against the original's header and library."""
    out = str(tmp_path_factory.mktemp("orig") / "mycrasher")
    subprocess.run(["gcc", "-g", "-O0", MYCRASHER, "-I", original + "/include",
                    "-L", original + "/lib", "-Wl,-rpath," + original + "/lib",
                    "-lminicoredumper", "-o", out], check=True)
    return out


def original_dump(crasher, original, exe, tmp_path):
    """The dump directory the original handler writes for a crash of exe."""
    base = tmp_path / "origbase"
    base.mkdir()
    recept = tmp_path / "orig.recept.json"
    recept.write_text(json.dumps({"stacks": {"dump_stacks": True},
                                  "dump_auxv_so_list": True, "dump_scope": 1024}))
    # In the Crasher's short work directory: core_pattern holds 127 characters.
    cfg = os.path.join(crasher.workdir, "orig.cfg.json")
    with open(cfg, "w") as f:
        json.dump({"base_dir": str(base), "watch": [{"recept": str(recept)}]}, f)
    handler = os.path.join(original, "sbin", "minicoredumper")
    pattern = "|%s %%P %%u %%g %%s %%t %%h %%e %s" % (handler, cfg)
    assert len(pattern) <= 127, pattern
    pid = crasher.run_under(pattern, [exe], handler=handler)
    dumps = [d for d in os.listdir(base) if d.endswith(".%d" % pid)]
    assert len(dumps) == 1, (pid, os.listdir(base))
    return str(base / dumps[0]), pid


def test_our_library_under_the_original_handler(crasher, programs, original, tmp_path):
    """An app built against our library, dumped by the original handler: the %s
    text argument's stored length is the original's (its handler wrote the raw
    format, s="%s" *i=42, for a length of 0)."""
    d, pid = original_dump(crasher, original, programs["mycrasher"], tmp_path)
    with open(os.path.join(d, "dumps", str(pid), "out.txt")) as f:
        assert f.read() == OUT_TXT
    with open(os.path.join(d, "dumps", str(pid), "i.bin"), "rb") as f:
        assert f.read() == (42).to_bytes(4, "little")


def test_original_library_under_our_handler(crasher, mycrasher_original):
    """An app built against the original's library, dumped by our handler."""
    d = crasher.crash([mycrasher_original], {})
    pid = d.rsplit(".", 1)[1]
    with open(os.path.join(d, "dumps", pid, "out.txt")) as f:
        assert f.read() == OUT_TXT
    with open(os.path.join(d, "dumps", pid, "i.bin"), "rb") as f:
        assert f.read() == (42).to_bytes(4, "little")
    assert '"my string"' in gdb(mycrasher_original, os.path.join(d, "core"), "print s")


def _readers_agree(core):
    """readelf, eu-readelf and pyelftools read the core without a warning: our
    four sections, and the notes of its PT_NOTE."""
    for tool in (["readelf", "-a", "-W"], ["eu-readelf", "-a"]):
        r = subprocess.run(tool + [core], capture_output=True, text=True)
        assert r.returncode == 0 and "warning" not in (r.stdout + r.stderr).lower(), r.stderr
    from elftools.elf.elffile import ELFFile
    with open(core, "rb") as f:
        elf = ELFFile(f)
        assert [s.name for s in elf.iter_sections()] == [
            "", E.DUMPLIST_SECTION.decode(), ".shstrtab", E.COVER_SECTION.decode()]
        notes = [n["n_type"] for seg in elf.iter_segments() if seg["p_type"] == "PT_NOTE"
                 for n in seg.iter_notes()]
        assert notes[0] == "NT_PRSTATUS" and "NT_FILE" in notes


def _rest_unchanged(before, after, lo, hi, injected=()):
    """The bytes [lo, hi) of two versions of a core are the same, but for the
    (offset, size) ranges injected."""
    a, b = bytearray(before[lo:hi]), bytearray(after[lo:hi])
    for off, n in injected:
        a[off - lo:off - lo + n] = b[off - lo:off - lo + n]
    return a == b


@pytest.mark.parametrize("layout", ["compact", "sparse"])
def test_original_coreinject_on_our_cores(crasher, programs, original, tmp_path, layout):
    """The original's coreinject rewrites the core's section tail through libelf,
    which zeroes what no section covers: our cores' cover section keeps the notes
    and data (before it, gdb called the result "not a core dump"). In a sparse
    core it injects in place; a compact core has no room for the bytes, and
    symbol.map's column 1 sends them past the end, not over other data."""
    exe = programs["mycrasher"]
    d = crasher.crash([exe], {"core_layout": layout})
    pid = d.rsplit(".", 1)[1]
    core = str(tmp_path / "core")
    shutil.copy(os.path.join(d, "core"), core)
    with open(core, "rb") as f:
        before = f.read()
    c = CoreFile(core)
    data_end = c.sections[E.DUMPLIST_SECTION].offset
    c.close()
    (line,) = open(os.path.join(d, "symbol.map")).read().splitlines()
    col1 = int(line.split()[0], 16)
    p = subprocess.run([os.path.join(original, "bin", "coreinject"), core,
                        os.path.join(d, "symbol.map"), os.path.join(d, "dumps", pid, "i.bin")],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "injected: i.bin, 4 bytes, direct" in p.stdout
    with open(core, "rb") as f:
        after = f.read()
    ehdr = E.Layout(E.ELFCLASS64).ehdr
    # Everything from the end of the ELF header to the old tail is as it was
    # (but the 4 bytes injected into the sparse core's hole).
    injected = [(col1, 4)] if layout == "sparse" else []
    assert col1 < data_end if layout == "sparse" else col1 == len(before)
    assert _rest_unchanged(before, after, ehdr.size, data_end, injected)
    assert_frames(FRAMES["mycrasher"], backtrace(exe, core))
    out = gdb(exe, core, "print *i", "print s")
    assert '"my string"' in out
    if layout == "sparse":
        assert "$1 = 42" in out
    else:
        assert "Cannot access memory" in out
    # Our readers see the original's dumplist note appended to ours.
    c = CoreFile(core)
    try:
        assert c.sections[E.COVER_SECTION].offset + c.sections[E.COVER_SECTION].size == data_end
        pairs = c.dumplist()
        assert pairs[-1][1] == 4 and int(line.split()[1], 16) == pairs[-1][0]
    finally:
        c.close()
    _readers_agree(core)


def test_our_coreinject_on_the_originals_dump(crasher, programs, original, tmp_path):
    """Our coreinject on the original's core and symbol.map: gdb then shows the value."""
    exe = programs["mycrasher"]
    d, pid = original_dump(crasher, original, exe, tmp_path)
    core = str(tmp_path / "core")
    shutil.copy(os.path.join(d, "core"), core)
    assert "$1 = 0" in gdb(exe, core, "print *i")  # a hole in the original's sparse core
    p = subprocess.run([sys.executable, "-m", "minicoredumper.cmd_coreinject", core,
                        os.path.join(d, "symbol.map"), os.path.join(d, "dumps", str(pid),
                                                                    "i.bin")],
                       capture_output=True, text=True, env=ENV)
    assert p.returncode == 0, p.stderr
    assert_frames(FRAMES["mycrasher"], backtrace(exe, core))
    assert "$1 = 42" in gdb(exe, core, "print *i")
    c = CoreFile(core)
    try:
        assert c.read(int(open(os.path.join(d, "symbol.map")).read().split()[1], 16), 4) == \
            (42).to_bytes(4, "little")
    finally:
        c.close()
    # ... and the original's coreinject can still work on the result.
    p = subprocess.run([os.path.join(original, "bin", "coreinject"), core,
                        os.path.join(d, "symbol.map"), os.path.join(d, "dumps", str(pid),
                                                                    "i.bin")],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    assert_frames(FRAMES["mycrasher"], backtrace(exe, core))
    assert "$1 = 42" in gdb(exe, core, "print *i")


def test_original_coreinject_after_ours_on_a_compact_core(crasher, programs, original,
                                                         tmp_path):
    """Our coreinject adds a segment to a compact core and keeps the program header
    table right after the ELF header (the notes move to the end): the original's
    coreinject, which zeroes whatever lies between the two, keeps the core whole."""
    exe = programs["mycrasher"]
    d = crasher.crash([exe], {})
    pid = d.rsplit(".", 1)[1]
    core = str(tmp_path / "core")
    shutil.copy(os.path.join(d, "core"), core)
    argv = [core, os.path.join(d, "symbol.map"), os.path.join(d, "dumps", pid, "i.bin")]
    p = subprocess.run([sys.executable, "-m", "minicoredumper.cmd_coreinject"] + argv,
                       capture_output=True, text=True, env=ENV)
    assert p.returncode == 0, p.stderr
    c = CoreFile(core)
    try:
        assert c.ehdr.phoff == c.ehdr.ehsize
        assert len(c.loads) == len([p for p in c.phdrs if p.type == E.PT_LOAD])
    finally:
        c.close()
    assert "$1 = 42" in gdb(exe, core, "print *i")
    _readers_agree(core)
    p = subprocess.run([os.path.join(original, "bin", "coreinject")] + argv,
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    assert_frames(FRAMES["mycrasher"], backtrace(exe, core))
    out = gdb(exe, core, "print *i", "print s")
    assert "$1 = 42" in out and '"my string"' in out
    _readers_agree(core)
