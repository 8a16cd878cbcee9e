"""Files and memory of the crashed process, seen from its own view, and no
stall (issues 12 and 17), in pipe mode and in socket mode (Linux 6.16+).

The crashes: an executable replaced while it runs (a package upgrade), one
run in another mount namespace with another file at its path in ours, an
unprivileged user swapping a FIFO in at the executable's path in a loop of
directory exchanges, an executable whose .strtab claims 64 GiB of a sparse
file, a file truncated under its mapping with every mapping dumped, and a
mapping of a file on a FUSE file system whose daemon stops answering.  Each
asserts: the crashed process reaped within the deadline + 1 s, a dump (or
one logged reason), the frames the summary names, and the next ordinary
crash dumped on time.
"""

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import pytest

from lab import ENV, fuse
from lab.gdb import assert_frames, backtrace, extract_core, gdb
from lab.logs import handler_log
from lab.programs import FRAMES
from minicoredumper import corepattern
from minicoredumper.tool_corefile import CoreFile
from test_socket import published, server  # noqa: F401 (server: a fixture)

DEADLINE = 3.0
MODES = ["pipe"] + (["socket"] if corepattern.kernel_has_socket_mode() else [])
NOBODY = 65534
LEVELS = FRAMES["crash3"]  # procfiles crashes through crash3's functions


@pytest.fixture(params=MODES)
def mode(request, crasher, server):  # noqa: F811 (the fixture imported above)
    """"pipe" or "socket" (minicoredumper_sockd started on the coredump socket)."""
    if request.param == "socket":
        server()
    return request.param


@pytest.fixture
def public_dir():
    """A directory under /tmp that an unprivileged user can reach and write."""
    d = tempfile.mkdtemp(prefix="mcdpf.")
    os.chmod(d, 0o777)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def configure(crasher, recept=None, watch=None):
    """The config for the next crash (deadline DEADLINE); returns base_dir.
    watch: the rule's keys besides the recept (default: every crash)."""
    base = crasher.configure(recept or {})
    rpath = os.path.join(crasher.workdir, "recept%d.json" % crasher.n)
    rule = dict(watch or {}, recept=rpath)
    with open(crasher.cfg, "w") as f:
        json.dump({"base_dir": base, "deadline_seconds": DEADLINE, "watch": [rule]}, f)
    return base


def start(argv, user=None, cwd=None):
    """Popen of argv (stdin and stdout pipes, RLIMIT_CORE unlimited), as user."""
    if user is not None:
        argv = ["setpriv", "--reuid=%d" % user, "--regid=%d" % user, "--clear-groups",
                "--"] + argv
    return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, cwd=cwd,
                            preexec_fn=lambda: resource.setrlimit(
                                resource.RLIMIT_CORE, (resource.RLIM_INFINITY,) * 2))


def crash_now(p, timeout=DEADLINE + 20):
    """Let p (waiting on stdin) crash; seconds until it is reaped."""
    t0 = time.monotonic()
    p.stdin.write(b"x")
    p.stdin.close()
    p.wait(timeout=timeout)
    return time.monotonic() - t0


def the_dump(crasher, base, pid, mode):
    """The one published dump of pid in base (the handler's log in the failure)."""
    __tracebackhide__ = True
    if mode == "socket":
        published(base, timeout=DEADLINE + 2)
    else:
        crasher.wait_idle()
    return crasher.dump_of(base, pid)


def summary_frames(d):
    """The function names summary.txt gives the frames, innermost first."""
    with open(os.path.join(d, "summary.txt")) as f:
        lines = f.read().splitlines()
    return [l.split()[2].split("+")[0] for l in lines if l.startswith("#")]


def assert_reaped_and_dumped(crasher, base, p, reaped, mode, frames=LEVELS):
    __tracebackhide__ = True
    assert p.returncode == -11, p.returncode
    assert reaped <= DEADLINE + 1, (reaped, handler_log(p.pid))
    d = the_dump(crasher, base, p.pid, mode)
    if frames:
        got = summary_frames(d)
        assert got[:len(frames)] == frames, (got, open(os.path.join(d, "summary.txt")).read())
    return d


def assert_next_crash_on_time(crasher, programs, mode):
    """An ordinary crash3 after it: reaped and dumped within the deadline."""
    __tracebackhide__ = True
    base = configure(crasher)
    t0 = time.monotonic()
    rc, reaped, pid = crasher.run([programs["crash3"]], timeout=DEADLINE + 20)
    assert rc == -11 and reaped <= DEADLINE + 1, (rc, reaped, handler_log(pid))
    d = the_dump(crasher, base, pid, mode)
    assert time.monotonic() - t0 <= DEADLINE + 2
    assert summary_frames(d)[:4] == LEVELS


# --- the executable as the process mapped it ------------------------------------

def test_replaced_executable_matches_its_rule_and_names_its_functions(
        crasher, programs, mode, public_dir):
    """A package upgrade renames a new file over the running program: its exe
    reads "... (deleted)", the rule "*/prog" still matches, and the summary's
    symbols come from the file the process mapped."""
    prog = os.path.join(public_dir, "prog")
    shutil.copy(programs["procfiles"], prog)
    base = configure(crasher, watch={"exe": "*/prog"})
    p = start([prog, "wait"])
    shutil.copy("/bin/true", prog + ".new")
    os.rename(prog + ".new", prog)  # the upgrade
    reaped = crash_now(p)
    d = assert_reaped_and_dumped(crasher, base, p, reaped, mode)
    with open(os.path.join(d, "summary.txt")) as f:
        assert f.readline().startswith(prog + " (deleted) (pid %d" % p.pid)
    assert_next_crash_on_time(crasher, programs, mode)


def test_other_mount_namespace_symbols_from_the_mapped_file(crasher, programs, mode,
                                                            public_dir):
    """The process runs PATH in its own mount namespace, where PATH is our
    program; in the handler's, PATH is /bin/true: symbols and build-id come
    from the file the process mapped."""
    if shutil.which("unshare") is None:
        pytest.skip("no unshare")
    prog = os.path.join(public_dir, "prog")
    real = os.path.join(public_dir, "real")
    shutil.copy("/bin/true", prog)
    shutil.copy(programs["procfiles"], real)
    base = configure(crasher)
    p = start(["unshare", "-m", "--propagation", "private", "sh", "-c",
               'mount --bind "$1" "$2" && exec "$2" wait', "sh", real, prog])
    time.sleep(0.3)  # until it runs prog (a wait on stdin)
    reaped = crash_now(p)
    d = assert_reaped_and_dumped(crasher, base, p, reaped, mode)
    build_id = subprocess.run(["readelf", "-n", real], capture_output=True,
                              text=True).stdout.split("Build ID: ")[1].split()[0]
    with open(os.path.join(d, "summary.json")) as f:
        assert json.load(f)["exe_build_id"] == build_id
    assert_next_crash_on_time(crasher, programs, mode)


class Swapper:
    """An unprivileged process exchanging two directories (renameat2
    RENAME_EXCHANGE) as fast as it can, until stop()."""

    CODE = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
a, b = (os.fsencode(x) for x in sys.argv[1:3])
AT_FDCWD, RENAME_EXCHANGE = -100, 2
while True:
    libc.renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE)
"""

    def __init__(self, a, b):
        self.p = subprocess.Popen(["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY,
                                   "--clear-groups", "--", sys.executable, "-c", self.CODE,
                                   a, b])

    def stop(self):
        self.p.kill()
        self.p.wait()


def test_fifo_swapped_in_at_the_exe_path_stalls_nothing(crasher, programs, mode, public_dir):
    """An unprivileged user crashes cur/prog while a loop exchanges cur (the
    program) with alt (a FIFO called prog): whatever the path names when
    the handler looks, every crash is dumped with its functions named."""
    if shutil.which("setpriv") is None:
        pytest.skip("no setpriv")
    cur, alt = os.path.join(public_dir, "cur"), os.path.join(public_dir, "alt")
    for d in (cur, alt):
        os.mkdir(d)
    shutil.copy(programs["procfiles"], os.path.join(cur, "prog"))
    os.mkfifo(os.path.join(alt, "prog"))
    for path in (cur, alt, os.path.join(cur, "prog"), os.path.join(alt, "prog")):
        os.chown(path, NOBODY, NOBODY)
    swapper = Swapper(cur, alt)
    try:
        crashes = 0
        for attempt in range(200):
            if crashes == 8:
                break
            base = configure(crasher)
            p = start([os.path.join(cur, "prog")], user=NOBODY)
            p.stdin.close()
            t0 = time.monotonic()
            p.wait(timeout=DEADLINE + 20)
            reaped = time.monotonic() - t0
            if p.returncode != -11:
                continue  # the exec met the FIFO (the swap won that race): try again
            crashes += 1
            assert_reaped_and_dumped(crasher, base, p, reaped, mode)
    finally:
        swapper.stop()
        for d in (cur, alt):  # a handler blocked opening the FIFO gets a writer
            try:
                os.close(os.open(os.path.join(d, "prog"), os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass  # no reader, or the program: nobody waits on it
    assert crashes == 8
    assert_next_crash_on_time(crasher, programs, mode)


SHT_STRTAB = 3


def test_strtab_of_64_gib_in_a_sparse_file_is_not_read(crasher, programs, mode, public_dir):
    """The executable's .symtab names a 64 GiB .strtab of a sparse file:
    symbol lookups do not scan it (one log line), the dump is on time."""
    from elftools.elf.elffile import ELFFile
    prog = os.path.join(public_dir, "prog")
    shutil.copy(programs["procfiles"], prog)
    with open(prog, "r+b") as f:
        elf = ELFFile(f)
        strtab = elf.get_section_by_name(".strtab")
        index = next(i for i, s in enumerate(elf.iter_sections()) if s.name == ".strtab")
        shdr_at = elf["e_shoff"] + index * elf["e_shentsize"]
        f.seek(shdr_at + 32)  # Elf64_Shdr.sh_size
        f.write((64 << 30).to_bytes(8, "little"))
        f.truncate(strtab["sh_offset"] + (64 << 30))  # sparse: nothing written
    base = configure(crasher)
    p = start([prog, "wait"])
    reaped = crash_now(p)
    assert_reaped_and_dumped(crasher, base, p, reaped, mode, frames=None)
    lines = handler_log(p.pid)
    assert any("string table of %d bytes is larger than" % (64 << 30) in l for l in lines), lines
    assert_next_crash_on_time(crasher, programs, mode)


# --- memory that cannot be read, memory that never arrives -----------------------

def test_truncated_mapping_keeps_the_memory_after_it(crasher, programs, mode, public_dir,
                                                     tmp_path):
    """Every mapping dumped, one of them a file cut to one page under its
    16-page mapping: the 15 unreadable pages are skipped (logged), the rest
    is kept, so gdb still finds the shared libraries through r_debug."""
    base = configure(crasher, {"maps": {"dump_by_name": ["*"]}})
    p = start([programs["procfiles"], "truncated", os.path.join(public_dir, "file")])
    p.stdin.close()
    addr = int(p.stdout.readline().split()[0], 16)
    t0 = time.monotonic()
    p.wait(timeout=DEADLINE + 20)
    d = assert_reaped_and_dumped(crasher, base, p, time.monotonic() - t0, mode)
    core = extract_core(d, str(tmp_path))
    out = gdb(programs["procfiles"], core, "info sharedlibrary")
    assert "libc.so" in out and "ld-linux" in out, out
    assert_frames(LEVELS, backtrace(programs["procfiles"], core))
    lines = handler_log(p.pid)
    assert any("(first %#x-%#x: unreadable)" % (addr + 4096, addr + 16 * 4096) in l
               for l in lines), lines
    assert_next_crash_on_time(crasher, programs, mode)


@pytest.fixture
def fuse_mount(public_dir):
    if not fuse.available():
        pytest.skip("no FUSE here (/dev/fuse, root)")
    mnt = os.path.join(public_dir, "mnt")
    os.mkdir(mnt)
    m = fuse.FuseMount(mnt)
    try:
        yield m
    finally:
        m.close()


def start_mapped(programs, fuse_mount):
    """procfiles with FILE mapped, its first page read; (Popen, mapping address)."""
    p = start([programs["procfiles"], "map", fuse_mount.path])
    addr = int(p.stdout.readline().split()[0], 16)
    return p, addr


def test_fuse_mapping_whose_daemon_stops_answering(crasher, programs, mode, fuse_mount,
                                                   tmp_path):
    """A mapping of a file on FUSE, dumped by name, whose daemon stops
    answering before the crash: only its page that is present is read, the
    rest is left out with a log line; nothing waits for the daemon."""
    base = configure(crasher, {"maps": {"dump_by_name": [fuse_mount.mountpoint + "/*"]}})
    p, addr = start_mapped(programs, fuse_mount)
    fuse_mount.freeze()
    reaped = crash_now(p)
    d = assert_reaped_and_dumped(crasher, base, p, reaped, mode)
    # Read with mcd's reader: gdb would read the rest from the file (NT_FILE), and wait.
    core = CoreFile(extract_core(d, str(tmp_path)))
    assert core.read(addr, 4096) == fuse.PATTERN * 512
    # What the first read brought (read-around) is there, nothing far from it.
    assert not core.present(addr + (1 << 20), 4096)
    lines = handler_log(p.pid)
    assert any("pages not in memory left out of 1 mapping(s) of files on a file system "
               "that may stall: %s" % fuse_mount.path in l for l in lines), lines
    assert_next_crash_on_time(crasher, programs, mode)


LIVE_READ = r"""
import sys
from minicoredumper.live_dump import PausedMemory
from minicoredumper.read_process import Process
pid, addr, size = (int(x, 0) for x in sys.argv[1:4])
proc = Process(pid, memory=PausedMemory)
data = proc.mem.read(addr, size)
print(len(data), data[:8].decode())
"""


def test_live_dump_reads_no_page_that_never_arrives(programs, fuse_mount):
    """A live dump's reader (live_dump.PausedMemory through read_process.Process)
    on a running process whose FUSE mapping's daemon has stopped answering:
    it reads the pages that are present and stops there, at once."""
    p, addr = start_mapped(programs, fuse_mount)
    try:
        fuse_mount.freeze()
        t0 = time.monotonic()
        reader = subprocess.Popen([sys.executable, "-c", LIVE_READ, str(p.pid), hex(addr),
                                   str(fuse.FILE_SIZE)], env=ENV, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        try:
            out, err = reader.communicate(timeout=10)
        except subprocess.TimeoutExpired:  # it waits for the daemon: abort, then fail
            fuse_mount.close()
            reader.kill()
            out, err = reader.communicate()
        took = time.monotonic() - t0
        got, head = out.split() or ("0", err)
        # The present pages: the first, and what fault-around mapped with it.
        assert head == fuse.PATTERN.decode() and 4096 <= int(got) <= 1 << 20, (out, err)
        assert took < 2, took
    finally:
        p.kill()
        p.wait()


def test_pagemap_guard_needs_no_call_into_the_file_system(programs, fuse_mount):
    """Deciding that the FUSE mapping may stall asks nothing of its daemon:
    with the daemon frozen before the process is opened, Process() returns
    at once and names that mapping."""
    from minicoredumper.read_process import Process
    p, addr = start_mapped(programs, fuse_mount)
    try:
        fuse_mount.freeze()
        done = []
        t = threading.Thread(target=lambda: done.append(Process(p.pid)), daemon=True)
        t.start()
        t.join(5)
        assert done, "Process() waited for the FUSE daemon"
        proc = done[0]
        assert proc.mem.may_stall(addr) and not proc.mem.may_stall(proc.maps[0].start)
        proc.close()
    finally:
        p.kill()
        p.wait()
