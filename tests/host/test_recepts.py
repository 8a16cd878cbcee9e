"""Every recept key, on real crashes: what lands in the dump directory."""

import os
import re

from elftools.elf.elffile import ELFFile

from lab.gdb import assert_frames, backtrace, extract_core, gdb
from lab.programs import FRAMES

ALWAYS = ["manifest", "summary.json", "summary.txt"]  # in every dump directory


def _files(d):
    out = []
    for root, _, files in os.walk(d):
        out += [os.path.relpath(os.path.join(root, f), d) for f in files]
    return sorted(out)


def test_buffers_follow_ptr_ident_and_no_ident_carry_over(crasher, programs, tmp_path):
    recept = {"buffers": [
        {"symname": "data_global", "data_len": 4, "ident": "data.bin"},
        {"symname": "bss_global", "data_len": 4},
        {"symname": "heap_ptr", "follow_ptr": True, "data_len": 16},
        {"symname": "heap_ptr", "follow_ptr": True, "data_len": 8, "ident": "heap.bin"},
        {"symname": "no_such_symbol"},
        {"symname": "data_global", "ident": "../escape"},
    ]}
    d = crasher.crash([programs["crash3"]], recept)
    pid = d.rsplit(".", 1)[1]
    assert _files(d) == sorted(["core", "dumps/%s/data.bin" % pid, "dumps/%s/heap.bin" % pid,
                                "symbol.map"] + ALWAYS)
    with open(os.path.join(d, "dumps", pid, "data.bin"), "rb") as f:
        assert f.read() == (0x5A5A5A5A).to_bytes(4, "little")
    with open(os.path.join(d, "dumps", pid, "heap.bin"), "rb") as f:
        blob = f.read()
    assert len(blob) == 8 + 8 and blob[8:] == b"\x77" * 8
    lines = open(os.path.join(d, "symbol.map")).read().splitlines()
    assert [l.split()[3:] for l in lines] == [["D", "data.bin"], ["I", "heap.bin"]]
    assert all(re.fullmatch(r"[0-9a-f]+ [0-9a-f]+ [0-9a-f]+ [DI] \S+", l) for l in lines)
    core = os.path.join(d, "core")
    out = gdb(programs["crash3"], core, "print/x bss_global", "print/x heap_ptr[15]",
              "print data_global", "print/x heap_ptr[16]")
    # The second buffer has no ident: it is in the core (the original lost it).
    assert "= 0x3c3c3c3c" in out and "= 0x77" in out
    assert out.count("Cannot access memory") == 2


def test_stack_cap_first_thread_and_red_zone(crasher, programs):
    recept = {"stacks": {"first_thread_only": True, "max_stack_size": 1024},
              "dump_pthread_list": False, "dump_robust_mutex_list": False,
              "write_debug_log": True}
    d = crasher.crash([programs["threads8"]], recept)
    debug = open(os.path.join(d, "debug.txt")).read()
    stacks = re.findall(r"(0x[0-9a-f]+) (0x[0-9a-f]+) \d stack of thread \d+ \(SP (0x[0-9a-f]+)\)",
                        debug)
    assert len(stacks) == 1  # only the crashing thread
    start, size, sp = (int(x, 16) for x in stacks[0])
    assert start == sp - 128 and start + size == sp + 1024  # red zone below SP, cap above
    assert_frames(FRAMES["threads8"], backtrace(programs["threads8"], os.path.join(d, "core")),
                  whole=False)


def test_maps_dump_by_name_vdso(crasher, programs):
    d = crasher.crash([programs["crash3"]], {"maps": {"dump_by_name": ["[vdso]"]},
                                             "write_proc_info": True})
    maps = open(os.path.join(d, "proc", d.rsplit(".", 1)[1], "maps")).read()
    vdso = [l for l in maps.splitlines() if l.endswith("[vdso]")][0]
    start, end = (int(x, 16) for x in vdso.split()[0].split("-"))
    with open(os.path.join(d, "core"), "rb") as f:
        loads = [(s["p_vaddr"], s["p_filesz"]) for s in ELFFile(f).iter_segments()
                 if s["p_type"] == "PT_LOAD"]
    assert any(s <= start and end <= s + n for s, n in loads)


def test_write_proc_info(crasher, programs):
    d = crasher.crash([programs["threads8"]], {"write_proc_info": True})
    pid = d.rsplit(".", 1)[1]
    files = _files(d)
    for name in ("cmdline", "environ", "maps", "smaps", "stat", "statm", "io", "cwd", "fd"):
        assert "proc/%s/%s" % (pid, name) in files
    tasks = {f.split("/")[3] for f in files if f.startswith("proc/%s/task/" % pid)}
    assert len(tasks) == 8
    assert open(os.path.join(d, "proc", pid, "cmdline"), "rb").read().startswith(
        programs["threads8"].encode())
    assert "0 -> " in open(os.path.join(d, "proc", pid, "fd")).read()


def test_proc_info_of_a_cwd_that_is_not_utf8(crasher, programs, tmp_path):
    """Paths are bytes where the kernel gives bytes: a working directory whose name
    is not UTF-8 is copied byte for byte (it once cost the whole dump)."""
    cwd = os.path.join(os.fsencode(str(tmp_path)), b"caf\xe9-\xff")
    os.mkdir(cwd)
    argv = [b"/bin/sh", b"-c", b'cd "$0" && exec "$1"', cwd, os.fsencode(programs["crash3"])]
    d = crasher.crash(argv, {"write_proc_info": True})
    pid = d.rsplit(".", 1)[1]
    with open(os.path.join(d, "proc", pid, "cwd"), "rb") as f:
        assert f.read() == cwd + b"\n"


def test_robust_mutex_lists_of_all_threads(crasher, programs):
    recept = {"dump_robust_mutex_list": True, "stacks": {"first_thread_only": True}}
    d = crasher.crash([programs["robust"]], recept)
    out = gdb(programs["robust"], os.path.join(d, "core"),
              "print main_mutex.__data.__owner", "print worker_mutex.__data.__owner",
              "info threads")
    owners = [int(x) for x in re.findall(r"^\$\d+ = (\d+)$", out, re.M)]
    lwps = [int(x) for x in re.findall(r"LWP (\d+)", out)]
    assert len(owners) == 2 and set(owners) <= set(lwps) and owners[0] != owners[1]


def test_write_debug_log_and_fat_core(crasher, programs):
    d = crasher.crash([programs["crash3"]], {"write_debug_log": True, "dump_fat_core": True})
    debug = open(os.path.join(d, "debug.txt")).read()
    assert "stack of thread" in debug and "core ranges present" in debug
    assert_frames(FRAMES["crash3"], backtrace(programs["crash3"], os.path.join(d, "fatcore")))
    # The fat core is sparse on disk: zero pages of the kernel's stream are holes.
    st = os.stat(os.path.join(d, "fatcore"))
    assert st.st_blocks * 512 < st.st_size


def test_dump_directory_tree_and_modes(crasher, programs):
    d = crasher.crash([programs["crash3"]], {"write_debug_log": True,
                                             "compression": {"compressor": "gzip"}})
    name = os.path.basename(d)
    assert re.fullmatch(r"crash3\.\d{8}\.\d{6}[+-]\d{4}\.\d+", name)
    assert os.stat(d).st_mode & 0o777 == 0o700
    for f in _files(d):
        assert os.stat(os.path.join(d, f)).st_mode & 0o777 == 0o600
    assert _files(d) == sorted(["core.tar.compressed", "debug.txt"] + ALWAYS)
    assert not [x for x in os.listdir(os.path.dirname(d)) if x.startswith(".")]


def test_compressed_core_extracts(crasher, programs, tmp_path):
    d = crasher.crash([programs["crash3"]], {"compression": {"compressor": "xz",
                                                             "extension": "xz"}})
    assert_frames(FRAMES["crash3"], backtrace(programs["crash3"], extract_core(d, str(tmp_path))))
