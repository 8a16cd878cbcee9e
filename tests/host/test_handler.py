"""Real kernel, real gdb: crash programs with the handler in core_pattern."""

import os
import re
import subprocess

import pytest
from elftools.elf.elffile import ELFFile

from lab.gdb import assert_frames, backtrace, extract_core, gdb, threads_backtraces
from lab.programs import FRAMES

COMPRESSIONS = {
    "none": None,
    "gzip-tar": {"compressor": "gzip", "extension": "gz", "in_tar": True},
    "gzip": {"compressor": "gzip", "extension": "gz", "in_tar": False},
    "xz": {"compressor": "xz", "extension": "xz", "in_tar": False},
    "bzip2-tar": {"compressor": "bzip2", "extension": "bz2", "in_tar": True},
}


@pytest.mark.parametrize("layout", ["compact", "sparse"])
@pytest.mark.parametrize("compression", sorted(COMPRESSIONS))
def test_three_deep_backtrace(crasher, programs, tmp_path, layout, compression):
    recept = {"core_layout": layout}
    if COMPRESSIONS[compression]:
        recept["compression"] = COMPRESSIONS[compression]
    d = crasher.crash([programs["crash3"]], recept)
    core = extract_core(d, str(tmp_path))
    assert_frames(FRAMES["crash3"], backtrace(programs["crash3"], core))


def test_compact_globals_and_undumped_memory(crasher, programs, tmp_path):
    recept = {"buffers": [{"symname": "recept_global", "data_len": 4}]}
    d = crasher.crash([programs["crash3"]], recept)
    core = extract_core(d, str(tmp_path))
    out = gdb(programs["crash3"], core, "print/x recept_global", "print data_global",
              "print bss_global", "print *heap_ptr", "print heap_ptr[100]")
    assert "= 0x600df00d" in out
    for expr_addr in re.findall(r"Cannot access memory at address (0x[0-9a-f]+)", out):
        assert int(expr_addr, 16)
    assert out.count("Cannot access memory") == 4, out
    assert "1515870810" not in out  # 0x5a5a5a5a never shows as a stale value


THREAD = re.compile(r"^Thread \d+ \(Thread 0x[0-9a-f]+ \(LWP \d+\)\):$")


def test_threads_match_kernel_core(crasher, programs, tmp_path):
    exe = programs["threads8"]
    kernel = crasher.kernel_core([exe])
    expected = threads_backtraces(exe, kernel)
    os.unlink(kernel)
    assert len(expected) == 8 and all(THREAD.match(h) for h in expected), expected.gdb_text
    # The same crash, our core beside the kernel's stream (fatcore): identical.
    d = crasher.crash([exe], {"dump_fat_core": True})
    ours = threads_backtraces(exe, extract_core(d, str(tmp_path)))
    fat = threads_backtraces(exe, os.path.join(d, "fatcore"))
    assert ours == fat, "gdb on ours:\n%s\ngdb on the fatcore:\n%s" % (ours.gdb_text,
                                                                        fat.gdb_text)
    # Names ("Thread 0x... (LWP n)") come from libthread_db reading our core.
    assert all(THREAD.match(h) for h in ours), ours.gdb_text
    # Another run of the same program: the same set of call chains.
    assert sorted(ours.values()) == sorted(expected.values()), \
        "gdb on ours:\n%s\ngdb on the kernel's core:\n%s" % (ours.gdb_text, expected.gdb_text)


def _dumplist(elf):
    sec = elf.get_section_by_name(".note.minicoredumper.dumplist")
    assert sec is not None
    pairs = []
    for note in sec.iter_notes():
        assert note["n_name"] == "minicoredumper" and note["n_type"] == 80
        desc = note["n_descdata"]
        w = 8 if elf.elfclass == 64 else 4
        vals = [int.from_bytes(desc[i:i + w], "little") for i in range(0, len(desc), w)]
        pairs += list(zip(vals[::2], vals[1::2]))
    return pairs


@pytest.mark.parametrize("layout", ["compact", "sparse"])
def test_dumplist_matches_file(crasher, programs, layout):
    d = crasher.crash([programs["crash3"]], {"core_layout": layout})
    with open(os.path.join(d, "core"), "rb") as f:
        elf = ELFFile(f)
        pairs = _dumplist(elf)
        loads = [s for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"]
        header_end = min(s["p_offset"] for s in loads if s["p_filesz"])
        assert pairs[0][0] == 0 and pairs[0][1] <= header_end
        for start, length in pairs[1:]:
            seg = [s for s in loads if s["p_vaddr"] <= start and
                   start + length <= s["p_vaddr"] + s["p_filesz"]]
            assert len(seg) == 1, hex(start)
            if layout == "compact":
                assert (seg[0]["p_vaddr"], seg[0]["p_filesz"]) == (start, length)
        if layout == "compact":
            assert len(pairs) - 1 == len(loads)
            # Every dumped byte in the file is what the dumplist says, in order.
            assert sum(n for _, n in pairs[1:]) == sum(s["p_filesz"] for s in loads)


def test_elf32_process_under_64bit_handler(crasher, programs, tmp_path):
    if "crash3_i386" not in programs:
        pytest.skip("i686-linux-gnu-gcc is not installed")
    d = crasher.crash([programs["crash3_i386"]], {})
    core = os.path.join(d, "core")
    with open(core, "rb") as f:
        elf = ELFFile(f)
        assert elf.elfclass == 32 and elf["e_machine"] == "EM_386"
        assert _dumplist(elf)[0][0] == 0
    assert_frames(FRAMES["crash3_i386"], backtrace(programs["crash3_i386"], core))


@pytest.mark.parametrize("layout", ["compact", "sparse"])
def test_readelf_and_eu_readelf_print_no_warnings(crasher, programs, layout):
    d = crasher.crash([programs["threads8"]], {"core_layout": layout,
                                                "maps": {"dump_by_name": ["[vdso]"]}})
    core = os.path.join(d, "core")
    for tool in (["readelf", "-a", "-W"], ["eu-readelf", "-a"]):
        p = subprocess.run(tool + [core], capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        text = (p.stdout + p.stderr).lower()
        assert "warning" not in text and "invalid" not in text, tool
    assert "past end of file" not in gdb(programs["threads8"], core, "bt")


def _build_ids(core):
    out = subprocess.run(["eu-unstrip", "-n", "--core", core], capture_output=True,
                         text=True, check=True).stdout
    ids = {}
    for line in out.splitlines():
        parts = line.split()
        if parts[1] != "-" and parts[-1] != "[dso]":
            ids[os.path.basename(parts[-1])] = parts[1].split("@")[0]
    return ids


def test_build_ids_for_offline_symbolisation(crasher, programs):
    exe = programs["crash3"]
    kernel = _build_ids(crasher.kernel_core([exe]))
    embedded = os.path.join(os.path.dirname(__file__), "..", "..", "conf",
                            "embedded.recept.json")
    with open(embedded) as f:
        text = f.read().replace('"compressor": "xz"', '"compressor": null').replace(
            '"max_dump_size": 4096', '"max_dump_size": 0')
    base = crasher.configure(recept_text=text)
    crasher.run([exe])
    d = os.path.join(base, os.listdir(base)[0])
    ours = _build_ids(os.path.join(d, "core"))
    for name in ("crash3", "libc.so.6", "ld-linux-x86-64.so.2"):
        assert ours[name] == kernel[name]
