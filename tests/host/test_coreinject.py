"""coreinject puts external dumps back; mcd extract takes them out again."""

import os
import shutil
import subprocess
import sys

import pytest

from lab import ENV
from lab.gdb import gdb
from minicoredumper import elf as E
from minicoredumper.tool_corefile import CoreFile


def _tool(*argv, cwd=None):
    return subprocess.run([sys.executable, "-m"] + list(argv), capture_output=True, text=True,
                          env=ENV, cwd=cwd)


@pytest.mark.parametrize("layout", ["compact", "sparse"])
def test_mycrasher_coreinject_then_gdb_prints_i(crasher, programs, tmp_path, layout):
    exe = programs["mycrasher"]
    d = crasher.crash([exe], {"core_layout": layout})
    core = str(tmp_path / "core")
    shutil.copy(os.path.join(d, "core"), core)
    ibin = os.path.join(d, "dumps", d.rsplit(".", 1)[1], "i.bin")
    before = gdb(exe, core, "print *i")
    # Undumped memory: unknown in a compact core, zero in the original's sparse layout.
    assert ("Cannot access memory" in before) if layout == "compact" else ("$1 = 0" in before)
    p = _tool("minicoredumper.cmd_coreinject", core, os.path.join(d, "symbol.map"), ibin)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "injected: i.bin, 4 bytes, direct"
    out = gdb(exe, core, "print *i", "print s")
    assert "$1 = 42" in out and '"my string"' in out
    for tool in (["readelf", "-a", "-W"], ["eu-readelf", "-a"]):
        r = subprocess.run(tool + [core], capture_output=True, text=True)
        assert "warning" not in (r.stdout + r.stderr).lower()
    # The inverse gives back the dump file byte for byte.
    x = _tool("minicoredumper.cmd_mcd", "extract", core, "i.bin", "--symbol-map",
              os.path.join(d, "symbol.map"), "-o", str(tmp_path / "i.out"))
    assert x.returncode == 0, x.stderr
    assert open(tmp_path / "i.out", "rb").read() == open(ibin, "rb").read()
    # Where the original's coreinject would write (docs/FORMATS.md §6): i.bin's own
    # bytes in the sparse core; in the compact one, past the old end, a range that
    # no segment or section of ours uses. The program header table still follows
    # the ELF header, and the cover section reaches the dumplist.
    (line,) = open(os.path.join(d, "symbol.map")).read().splitlines()
    col1 = int(line.split()[0], 16)
    c = CoreFile(core)
    try:
        assert c.ehdr.phoff == c.ehdr.ehsize
        cover, dl = c.sections[E.COVER_SECTION], c.sections[E.DUMPLIST_SECTION]
        assert cover.offset == c.ehdr.ehsize + c.ehdr.phnum * c.ehdr.phentsize
        assert cover.offset + cover.size == dl.offset
        if layout == "sparse":
            assert c.pread(col1, 4) == (42).to_bytes(4, "little")
        else:
            assert col1 == os.path.getsize(os.path.join(d, "core"))
            assert not any(p.offset < col1 + 4 and col1 < p.offset + p.filesz
                           for p in c.phdrs)
            assert all(s.offset >= col1 + 4 for name, s in c.sections.items()
                       if s.size and name != E.COVER_SECTION)
            assert c.pread(col1, 4) == bytes(4)
    finally:
        c.close()


def test_indirect_buffer_round_trip_with_data_option(crasher, programs, tmp_path):
    exe = programs["crash3"]
    d = crasher.crash([exe], {"buffers": [{"symname": "heap_ptr", "follow_ptr": True,
                                           "data_len": 32, "ident": "heap.bin"}]})
    core = str(tmp_path / "core")
    shutil.copy(os.path.join(d, "core"), core)
    dump = os.path.join(d, "dumps", d.rsplit(".", 1)[1], "heap.bin")
    # Inject it from an archive-like file at an offset, as --data allows.
    blob = tmp_path / "blob"
    blob.write_bytes(b"X" * 100 + open(dump, "rb").read())
    p = _tool("minicoredumper.cmd_coreinject", "--data=heap.bin:%d@%s+100" % (
        os.path.getsize(dump), blob), core, os.path.join(d, "symbol.map"))
    assert p.returncode == 0, p.stderr
    assert "heap.bin, 32 bytes, indirect" in p.stdout
    out = gdb(exe, core, "print/x heap_ptr[31]", "print/x heap_ptr[32]")
    assert "= 0x77" in out and "Cannot access memory" in out


def test_unknown_ident_is_an_error_and_changes_nothing(crasher, programs, tmp_path):
    d = crasher.crash([programs["mycrasher"]], {})
    core = str(tmp_path / "core")
    shutil.copy(os.path.join(d, "core"), core)
    before = open(core, "rb").read()
    other = tmp_path / "nothere.bin"
    other.write_bytes(b"1234")
    p = _tool("minicoredumper.cmd_coreinject", core, os.path.join(d, "symbol.map"), str(other))
    assert p.returncode == 1 and "'nothere.bin' is not in symbol.map" in p.stderr
    assert open(core, "rb").read() == before
    x = _tool("minicoredumper.cmd_mcd", "extract", core, "i.bin", "--symbol-map",
              os.path.join(d, "symbol.map"), "-o", str(tmp_path / "o"))
    assert x.returncode == 1 and "coreinject" in x.stderr
