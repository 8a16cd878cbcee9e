"""The crashed process's files and memory, in parts: bounded symbol tables,
unreadable pages skipped, the mount table deciding which mappings may stall,
" (deleted)" executables matching their watch rules (issues 12 and 17)."""

import mmap
import os
import time

import pytest

from lab.programs import with_strtab_size
from minicoredumper.config import MainConfig
from minicoredumper.decide_plan import Plan
from minicoredumper.read_modules import MAX_TABLE, MappedFile, ReadBudget
from minicoredumper.read_process import (PAGE, PROBE_RUN, Mapping, Process, SnapshotMemory,
                                         exe_path, parse_maps, shmem_dev, stalling_mappings,
                                         status_field)


def mapped(path, budget=None):
    fd = os.open(path, os.O_RDONLY)
    return MappedFile(fd, path, budget)


@pytest.fixture(scope="module")
def small_elf(tmp_path_factory):
    d = tmp_path_factory.mktemp("pf")
    (d / "s.c").write_text("int used_name(int x) { return x + 1; }\n"
                           "int main(void) { return used_name(1); }\n")
    out = str(d / "s")
    import subprocess
    subprocess.run(["gcc", "-O0", "-o", out, str(d / "s.c")], check=True)
    return out


@pytest.mark.parametrize("size,extend,why", [
    (64 << 30, True, "string table of %d bytes is larger than 64 MiB" % (64 << 30)),
    (1 << 40, False, "lies beyond the file")])
def test_absurd_string_table_is_missing_and_said_once(small_elf, tmp_path, size, extend, why):
    path = str(tmp_path / "big")
    with_strtab_size(small_elf, path, size, extend)
    said = []
    f = mapped(path, ReadBudget(warn=said.append))
    t0 = time.monotonic()
    assert f.symbols.lookup(b"used_name") is None  # .symtab's names are out of reach
    assert f.symbols.lookup(b"main") is None
    assert f.symbols.nearest({0x1000}) == {}
    assert time.monotonic() - t0 < 0.5
    assert len(said) == 1 and why in said[0] and said[0].startswith(path), said
    f.close()
    good = mapped(small_elf)
    assert good.symbols.lookup(b"used_name") is not None
    good.close()


def test_reads_stop_at_the_budget_and_at_the_deadline(small_elf):
    said = []
    f = mapped(small_elf, ReadBudget(limit=100, warn=said.append))
    assert f.symbols.lookup(b"used_name") is None
    assert said == ["reads of mapped files (symbols) stopped: the 100-byte cap was reached"]
    said.clear()
    f = mapped(small_elf, ReadBudget(deadline=time.monotonic() - 1, warn=said.append))
    assert f.symbols.lookup(b"used_name") is None and f.pread(0, 4) == b""
    assert said == ["reads of mapped files (symbols) stopped: the deadline passed"]
    assert MAX_TABLE == 64 << 20


def test_pread_stays_within_the_file(small_elf):
    f = mapped(small_elf)
    assert f.pread(0, 4) == b"\x7fELF"
    assert f.pread(f.size - 2, 100) == open(small_elf, "rb").read()[-2:]
    assert f.pread(f.size + 10, 100) == b""
    f.close()


def test_exe_path_and_watch_rule_without_deleted():
    assert exe_path("/usr/bin/prog (deleted)") == ("/usr/bin/prog", True)
    assert exe_path("/usr/bin/prog") == ("/usr/bin/prog", False)
    cfg = MainConfig({"watch": [{"exe": "*/prog", "recept": "/r.json"}]}, "/etc/x.json", [])
    assert cfg.match("/opt/prog (deleted)", "prog") == "/r.json"
    assert cfg.match("/opt/prog", "prog") == "/r.json"
    assert cfg.match("/opt/other (deleted)", "other") is None


MAPS = """\
55fd0f64a000-55fd0f64b000 r--p 00000000 fe:00 2351338 /usr/bin/prog
7fda63e00000-7fda64600000 r--s 00000000 00:27 2 /mnt/fuse/file
7fda64600000-7fda64700000 r--s 00000000 00:30 7 /net/file
7fda64700000-7fda64800000 r--s 00000000 00:31 9 /gone/file
7fda64800000-7fda64900000 rw-s 00000000 %02x:%02x 5 /memfd:x (deleted)
7fda64900000-7fda64a00000 rw-p 00000000 00:00 0
"""
MOUNTINFO_PROCESS = """\
25 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
42 25 0:39 / /mnt/fuse rw,relatime - fuse.sshfs host: rw,user_id=0,group_id=0
"""
MOUNTINFO_OURS = """\
25 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
50 25 0:48 / /net rw - nfs4 server:/x rw
"""


def test_stalling_mappings_by_device_and_mount_table():
    shm = shmem_dev() or (0, 1)
    maps = parse_maps(MAPS % shm)
    assert maps[1].dev == (0, 0x27) and maps[0].dev == (0xfe, 0)
    bad = stalling_mappings(maps, [MOUNTINFO_PROCESS, MOUNTINFO_OURS])
    # FUSE (the process's table), NFS (ours), an anonymous device no table lists;
    # not ext4, not shared memory, not anonymous memory.
    assert [m.path for m in bad] == ["/mnt/fuse/file", "/net/file", "/gone/file"]


def test_plan_ranges_leave_out_what_was_unreadable():
    plan = Plan()
    plan.add(0x1000, 0x10000, "maps", 4)
    segments = [(0, 1 << 20)]
    assert plan.ranges(segments) == [(0x1000, 0x11000)]
    plan.unreadable = [(0x2000, 0x4000), (0x10000, 0x12000)]
    assert plan.ranges(segments) == [(0x1000, 0x2000), (0x4000, 0x10000)]


def test_unreadable_pages_are_skipped_and_the_rest_kept(tmp_path):
    """A file cut to one page under its 16-page shared mapping, in this very
    process: /proc/self/mem reads the first page, the other 15 fail; the
    snapshot keeps the first, skips the rest at once (PROBE_RUN failures in
    a row end the mapping) and says so."""
    path = tmp_path / "f"
    path.write_bytes(b"\x5a" * (16 * PAGE))
    with open(path, "r+b") as f:
        m = mmap.mmap(f.fileno(), 16 * PAGE)
        os.truncate(path, PAGE)
        addr = next(mp.start for mp in parse_maps(open("/proc/self/maps").read())
                    if mp.path == str(path))
        with Process(os.getpid()) as proc:
            snap = SnapshotMemory(proc.mem, [(addr, addr + 16 * PAGE)])
            assert snap.read(addr, PAGE) == b"\x5a" * PAGE
            assert snap.unreadable == [(addr + PAGE, addr + 16 * PAGE)]
            assert snap.read(addr + PAGE, 8) == b""
            assert proc.mem.probes >= 4096 - PROBE_RUN
            assert proc.mem.skip_report() == (
                "memory not read: 61440 bytes in 1 range(s) skipped (first %#x-%#x: "
                "unreadable)" % (addr + PAGE, addr + 16 * PAGE))
        m.close()


def test_mapping_dataclass_default_device():
    assert Mapping(0, 1, "r--p", 0, 0, "").dev == (0, 0)


def test_modules_files_are_the_mapped_files_once_each_and_closed():
    """find_modules on this very process: every module with a file has the
    file of its mapping (same inode), one fd per file, all closed by close();
    the vDSO, which has no file, its image copied from memory."""
    from minicoredumper.read_modules import find_modules
    with Process(os.getpid()) as proc:
        modules = find_modules(proc, proc.mem)
        with_files = [m for m in modules if m.file is not None]
        assert with_files and all(m.file.pread(0, 4) == b"\x7fELF" for m in with_files)
        vdso = [m for m in with_files if m.path == "[vdso]"]
        assert len(vdso) == 1 and vdso[0].file.fd < 0 and vdso[0].file.symbols.nearest(
            {vdso[0].file.symbols.lookup(b"__vdso_clock_gettime")[0]})
        with_files.remove(vdso[0])
        by_start = {mp.start: mp for mp in proc.maps}
        for m in with_files:
            assert m.file.ino == by_start[m.base].inode
        fds = [f.fd for f in modules.files.values() if f is not None]
        assert len(fds) == len({(by_start[m.base].dev, m.file.ino) for m in with_files})
        assert os.readlink("/proc/self/fd/%d" % fds[0]) == with_files[0].path
        modules.close()
        for fd in fds:
            with pytest.raises(OSError):
                os.fstat(fd)


# A process whose main thread called pthread_exit() while another thread sleeps
# (the kernel keeps the leader as a zombie until the last thread exits).
LEADER_EXITS = ("import ctypes, sys, threading, time\n"
                "threading.Thread(target=time.sleep, args=(30,)).start()\n"
                "print(threading.get_native_id(), flush=True)\n"
                "ctypes.CDLL(None).pthread_exit(None)\n")


def test_a_process_whose_leader_exited_is_read_through_another_thread():
    """/proc/PID/mem of a zombie leader answers ESRCH (and its maps are empty,
    its exe gone): Process reads /proc/TID of the other thread instead, the
    same memory, maps and exe (tests/host/test_bug_reports.py crashes one)."""
    import subprocess
    import sys
    p = subprocess.Popen([sys.executable, "-c", LEADER_EXITS], stdout=subprocess.PIPE)
    try:
        leader = int(p.stdout.readline())
        assert leader == p.pid
        end = time.monotonic() + 10
        while "Z" not in (status_field(p.pid, "State") or "") and time.monotonic() < end:
            time.sleep(0.01)
        with pytest.raises(ProcessLookupError):
            os.open("/proc/%d/mem" % p.pid, os.O_RDONLY)
        (tid,) = [int(t) for t in os.listdir("/proc/%d/task" % p.pid) if int(t) != p.pid]
        with Process(p.pid) as proc:
            assert proc.dir == "/proc/%d" % tid and proc.pid == p.pid
            assert proc.exe() == os.path.realpath(sys.executable)
            stack = next(m for m in proc.maps if m.path == "[stack]")
            assert len(proc.mem.read(stack.end - 8, 8)) == 8
    finally:
        p.kill()
        p.wait()
