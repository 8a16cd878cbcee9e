"""summary.json's crash metadata on real crashes, each field against a source of
its own: os.uname(), the kernel's boot_id, readelf, a program linked with a
.note.package note, a cgroup made for the crash, rlimits set and fds opened in
the child before it crashes; and the embedded recept's 4 KiB budget keeping
summary.json with the crash's identity every time (docs/FORMATS.md §9)."""

import errno
import json
import os
import re
import resource
import signal
import subprocess
import time

import pytest

from lab.gdb import assert_frames, backtrace, extract_core
from lab.programs import FRAMES, SOURCES
from minicoredumper import corepattern
from test_storage import dir_bytes, embedded

BOOT_ID = "/proc/sys/kernel/random/boot_id"
PACKAGE = {"type": "deb", "name": "crashpkg", "version": "1.2.3-4", "architecture": "amd64",
           "os": "debian", "osVersion": "12"}
GID = 4321


def summary(d):
    with open(os.path.join(d, "summary.json")) as f:
        return json.load(f)


def summary_txt(d):
    with open(os.path.join(d, "summary.txt")) as f:
        return f.read()


def crash(crasher, argv, recept=None, preexec=None, pass_fds=()):
    """Crash argv with recept (default: no budget); preexec runs in the child before
    the exec, pass_fds stay open in it.  (dump directory, pid, seconds since the epoch
    before the start and after the end)."""
    base = crasher.configure(recept or {})

    def child():
        resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY,) * 2)
        if preexec is not None:
            preexec()
    t0 = int(time.time())
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, preexec_fn=child, pass_fds=pass_fds)
    assert p.wait(timeout=20) == -11
    t1 = int(time.time())
    crasher.wait_idle()
    return crasher.dump_of(base, p.pid), p.pid, t0, t1


def build_id(exe):
    """The executable's build-id as readelf prints it."""
    out = subprocess.run(["readelf", "-nW", exe], capture_output=True, text=True,
                         check=True).stdout
    return re.search(r"Build ID: ([0-9a-f]+)", out).group(1)


def become_gid():
    os.setgroups([])
    os.setgid(GID)


def test_identity_fields(crasher, programs):
    exe = programs["crash3"]
    d, pid, t0, t1 = crash(crasher, [exe, "x"], preexec=become_gid)
    s = summary(d)
    assert (s["pid"], s["tid"], s["uid"], s["gid"]) == (pid, pid, 0, GID)
    assert t0 <= s["time"] <= t1 and s["time_given"] == str(s["time"])
    assert s["hostname"] == os.uname().nodename
    with open(BOOT_ID) as f:
        assert s["boot_id"] == f.read().strip()
    assert s["kernel"] == os.uname().release
    assert (s["exe"], s["comm"], s["cmdline"]) == (exe, "crash3", exe + " x")
    assert s["exe_build_id"] == build_id(exe)
    assert s["package"] is None  # crash3 has no .note.package
    assert s["signal"] == 11 and s["frames"][0]["symbol"].startswith("level_c")
    first, where = summary_txt(d).splitlines()[:2]
    assert "(pid %d, uid 0, gid %d) killed by SIGSEGV" % (pid, GID) in first
    assert where.startswith("on %s, boot %s, Linux %s, %s" % (
        os.uname().nodename, s["boot_id"], os.uname().release,
        time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(s["time"]))))


@pytest.mark.skipif(not corepattern.kernel_has_socket_mode(),
                    reason="coredump socket needs Linux 6.16")
def test_identity_fields_in_socket_mode(crasher, programs):
    from test_socket import published
    crasher.start_socket_server("plain")
    try:
        base = crasher.configure({})
        t0 = int(time.time())
        rc, _, pid = crasher.run([programs["crash3"]])
        (d,) = published(base)
    finally:
        crasher.stop_socket_server()
    s = summary(d)
    assert rc == -11 and (s["pid"], s["uid"], s["gid"]) == (pid, 0, 0)
    assert s["hostname"] == os.uname().nodename  # no %h: the server's uname
    assert t0 <= s["time"] <= int(time.time()) and s["time_given"] is None  # no %t
    with open(BOOT_ID) as f:
        assert s["boot_id"] == f.read().strip()


# --- the executable's package ----------------------------------------------------

def ld_has_package_metadata():
    p = subprocess.run(["ld", "--help"], capture_output=True, text=True)
    return "--package-metadata" in p.stdout


NOTE_C = """\
/* The FDO packaging metadata note as C data: gas gives a section named .note* the
 * type SHT_NOTE, and ld puts it into a PT_NOTE segment. */
#define DESC %s
__attribute__((section(".note.package"), aligned(4), used))
static const struct {
	unsigned namesz, descsz, type;
	char name[4];
	char desc[(sizeof(DESC) + 3) & ~3];
} package_note = {4, sizeof(DESC), 0xcafe1a7eu, "FDO", DESC};
"""


def crash3_with_note(tmp_path, name, desc, linker=False):
    """crash3 built with a .note.package of desc (text): by ld's --package-metadata
    (linker True), else from C data."""
    exe = str(tmp_path / name)
    cmd = ["gcc", "-g", "-O0", "-fPIE", "-pie", os.path.join(SOURCES, "crash3.c"),
           "-I", SOURCES, "-o", exe]
    if linker:
        cmd += ["-Xlinker", "--package-metadata=" + desc]
    else:
        src = tmp_path / (name + "-note.c")
        src.write_text(NOTE_C % json.dumps(desc))
        cmd.append(str(src))
    subprocess.run(cmd, check=True)
    return exe


def readelf_package(exe):
    """The note's JSON text as readelf prints it, or None."""
    out = subprocess.run(["readelf", "-nW", exe], capture_output=True, text=True,
                         check=True).stdout
    m = re.search(r"Packaging Metadata: (.*)", out)
    return m.group(1).strip() if m else None


def test_package_of_the_executable(crasher, tmp_path):
    exe = crash3_with_note(tmp_path, "pkgcrash", json.dumps(PACKAGE),
                           linker=ld_has_package_metadata())
    assert json.loads(readelf_package(exe)) == PACKAGE
    d, _, _, _ = crash(crasher, [exe])
    s = summary(d)
    assert s["package"] == PACKAGE and s["exe_build_id"] == build_id(exe)
    assert "package crashpkg 1.2.3-4" in summary_txt(d).splitlines()[1]
    # The note is among the module's identity ranges: the core holds it too.
    with open(extract_core(d, str(tmp_path)), "rb") as f:
        assert json.dumps(PACKAGE).encode() in f.read()


def test_package_note_escapes_nesting_and_garbage(crasher, tmp_path):
    """Escapes decoded, nested members skipped; a note that is no JSON object is no
    package, and the rest of the dump is whole."""
    exe = crash3_with_note(tmp_path, "escnote", '{"type":"rpm","name":"caf\\u00e9",'
                           '"nested":{"a":[1,"]}"]},"version":"2.0"}')
    s = summary(crash(crasher, [exe])[0])
    assert s["package"] == {"type": "rpm", "name": "caf\u00e9", "version": "2.0"}
    for i, bad in enumerate(['{"type":"rpm","name":', "not json", '{"a":' + "[" * 50 + "]" * 50
                             + "}", '{"x":"' + "y" * 3000 + '"'], 1):
        exe = crash3_with_note(tmp_path, "badnote%d" % i, bad)
        d = crash(crasher, [exe])[0]
        s = summary(d)
        assert s["package"] is None and s["exe_build_id"] == build_id(exe), bad
        assert [f["symbol"].split("+")[0] for f in s["frames"][:4]] == FRAMES["crash3"]


# --- cgroup and systemd unit ---------------------------------------------------

def cgroup_mounts():
    """{"v2" or "systemd": mount point} of the cgroup v2 and name=systemd hierarchies
    mounted at their root (/proc/self/mountinfo)."""
    found = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            root, mnt = left.split()[3:5]
            fstype, _, opts = right.split()[:3]
            if root != "/":
                continue
            if fstype == "cgroup2":
                found.setdefault("v2", mnt)
            elif fstype == "cgroup" and "name=systemd" in opts.split(","):
                found.setdefault("systemd", mnt)
    return found


def make_cgroup(rel):
    """Create cgroup rel in every hierarchy of cgroup_mounts(); the directories made,
    or [] where none could be."""
    made = []
    for mnt in cgroup_mounts().values():
        try:
            os.makedirs(os.path.join(mnt, rel))
        except OSError as e:
            if e.errno not in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOENT):
                raise
            continue
        made.append((mnt, rel))
    return made


def remove_cgroup(made):
    for mnt, rel in made:
        parts = rel.split("/")
        for n in range(len(parts), 0, -1):
            path = os.path.join(mnt, *parts[:n])
            for _ in range(100):  # the reaped process leaves its cgroup a moment later
                try:
                    os.rmdir(path)
                    break
                except FileNotFoundError:
                    break
                except OSError as e:
                    if e.errno != errno.EBUSY:
                        raise
                    time.sleep(0.02)


@pytest.mark.parametrize("leaf, unit, user_unit", [
    ("mcdtest-{n}.scope", "mcdtest-{n}.scope", None),
    ("user@{gid}.service/app.slice/mcdapp-{n}.service", "user@{gid}.service",
     "mcdapp-{n}.service"),
])
def test_cgroup_and_unit(crasher, programs, leaf, unit, user_unit):
    n = os.getpid()
    leaf, unit, user_unit = (x.format(n=n, gid=GID) if x else x for x in (leaf, unit, user_unit))
    rel = "mcdtest-%d.slice/%s" % (n, leaf)
    made = make_cgroup(rel)

    def enter():
        for mnt, r in made:
            with open(os.path.join(mnt, r, "cgroup.procs"), "w") as f:
                f.write("0")
    try:
        d, _, _, _ = crash(crasher, [programs["crash3"]], preexec=enter)
    finally:
        remove_cgroup(made)
    s = summary(d)
    if made:
        assert (s["cgroup"], s["unit"], s["user_unit"]) == ("/" + rel, unit, user_unit)
        assert ", unit %s" % unit in summary_txt(d).splitlines()[1]
    else:  # no hierarchy to make a cgroup in: the test's own, which the child inherits
        with open("/proc/self/cgroup") as f:
            assert s["cgroup"] in [line.split(":", 2)[2].strip() for line in f]


# --- rlimits and open fds ------------------------------------------------------

RLIMITS = {"cpu": resource.RLIMIT_CPU, "fsize": resource.RLIMIT_FSIZE,
           "data": resource.RLIMIT_DATA, "stack": resource.RLIMIT_STACK,
           "core": resource.RLIMIT_CORE, "rss": resource.RLIMIT_RSS,
           "nproc": resource.RLIMIT_NPROC, "nofile": resource.RLIMIT_NOFILE,
           "memlock": resource.RLIMIT_MEMLOCK, "as": resource.RLIMIT_AS,
           "locks": 10,  # RLIMIT_LOCKS, which Python's resource module lacks
           "sigpending": resource.RLIMIT_SIGPENDING, "msgqueue": resource.RLIMIT_MSGQUEUE,
           "nice": resource.RLIMIT_NICE, "rtprio": resource.RLIMIT_RTPRIO,
           "rttime": resource.RLIMIT_RTTIME}
SET = {"cpu": (1000, 2000), "nofile": (77, 99), "msgqueue": (12345, 23456),
       "stack": (4 << 20, 6 << 20), "core": (resource.RLIM_INFINITY,) * 2}


def test_rlimits(crasher, programs):
    def limit():
        for name, values in SET.items():
            resource.setrlimit(RLIMITS[name], values)
    s = summary(crash(crasher, [programs["crash3"]], preexec=limit)[0])
    assert list(s["rlimits"]) == list(RLIMITS)  # the kernel's order

    def shown(v):
        return "unlimited" if v == resource.RLIM_INFINITY else v
    for name, r in RLIMITS.items():  # the others as the child inherited them from us
        assert s["rlimits"][name] == [shown(v) for v in SET.get(name) or resource.getrlimit(r)], \
            name


def test_open_fds(crasher, programs, tmp_path):
    plain = tmp_path / "known.txt"
    plain.write_text("x")
    odd = os.path.join(os.fsencode(str(tmp_path)), b"caf\xe9 \xff")  # not UTF-8
    with open(odd, "wb"):
        pass
    deep = tmp_path / ("d" * 200) / ("e" * 200) / ("f" * 200)
    deep.mkdir(parents=True)
    (deep / "long").write_text("")
    r, w = os.pipe()
    pipe = "pipe:[%d]" % os.fstat(r).st_ino
    fds = [os.open(str(plain), os.O_RDONLY), os.open(odd, os.O_RDONLY),
           os.open(str(deep / "long"), os.O_RDONLY), r]
    try:
        s = summary(crash(crasher, [programs["crash3"]], pass_fds=fds)[0])
        many = [os.dup(fds[0]) for _ in range(100)]
        try:
            s_many = summary(crash(crasher, [programs["crash3"]], pass_fds=many)[0])
        finally:
            for fd in many:
                os.close(fd)
    finally:
        for fd in fds + [w]:
            os.close(fd)
    expected = {"0": "/dev/null", "1": "/dev/null", "2": "/dev/null",
                str(fds[0]): str(plain),
                str(fds[1]): os.fsencode(str(tmp_path)).decode() + "/caf\\xe9 \\xff",
                str(fds[2]): os.fsencode(str(deep / "long"))[:512].decode(),
                str(fds[3]): pipe}
    assert len(str(deep / "long")) > 512
    assert s["fds"] == expected and s["fds_more"] is False
    assert list(s["fds"]) == sorted(s["fds"], key=int)
    lowest = sorted([0, 1, 2] + many)[:64]  # bounded: the 64 lowest of 103
    assert list(s_many["fds"]) == [str(fd) for fd in lowest] and s_many["fds_more"] is True
    assert set(s_many["fds"].values()) == {"/dev/null", str(plain)}


# --- the embedded recept's 4 KiB --------------------------------------------------

@pytest.mark.parametrize("name", ["crash3", "threads8"])
def test_embedded_budget_keeps_the_identity_every_time(crasher, programs, tmp_path, name):
    """20 crashes under conf/embedded.recept.json (4 KiB): summary.json every time with
    the identity fields; every core rung the budget gave still has gdb's backtrace."""
    exe = programs[name]
    base = crasher.configure(embedded())
    t0 = int(time.time())
    pids = [crasher.run([exe])[2] for _ in range(20)]
    t1 = int(time.time())
    with open(BOOT_ID) as f:
        boot = f.read().strip()
    bid = build_id(exe)
    dumps = {int(n.rsplit(".", 1)[1]): os.path.join(base, n) for n in os.listdir(base)}
    assert sorted(dumps) == sorted(pids)
    rungs = {}
    for pid in pids:
        d = dumps[pid]
        assert dir_bytes(d) <= 4096
        assert sorted(os.listdir(d)) == ["core.xz", "manifest", "summary.json", "summary.txt"]
        s = summary(d)
        assert (s["pid"], s["uid"], s["gid"], s["signal"], s["signal_name"]) == \
            (pid, 0, 0, 11, "SIGSEGV")
        assert t0 <= s["time"] <= t1 and s["time_given"] == str(s["time"])
        assert (s["exe"], s["comm"], s["exe_build_id"]) == (exe, name, bid)
        assert (s["hostname"], s["boot_id"]) == (os.uname().nodename, boot)
        assert s["frames"] and s["modules"][s["frames"][0]["module"]] == \
            {"path": exe, "build_id": bid}
        assert set(s.get("left_out", [])) <= {
            "fds", "fds_more", "rlimits", "registers", "cmdline", "cgroup", "unit",
            "user_unit", "package", "arch", "kernel", "threads", "dump", "thread_frames",
            "frames_end", "frames.symbol"}
        rung = s["dump"]["core_content"] if "dump" in s else "(not said: %d)" % pid
        if rung not in rungs:
            out = tmp_path / str(pid)
            out.mkdir()
            bt = backtrace(exe, extract_core(d, str(out)))
            rungs[rung] = assert_frames(FRAMES[name], bt, whole=name != "threads8")


def test_small_budgets_keep_summary_json_before_the_core(crasher, programs):
    """From about 1.8 KiB on every budget has summary.json with the identity; a core
    never comes without it, and once there it stays at every larger budget."""
    exe = programs["crash3"]
    had_core = False
    for kib in (2, 2.5, 3, 3.5, 4, 6, 8):
        d = crasher.crash([exe], embedded(max_dump_size=int(kib * 1024)))
        files = os.listdir(d)
        assert dir_bytes(d) <= kib * 1024 and "summary.json" in files, (kib, files)
        s = summary(d)
        assert (s["exe"], s["exe_build_id"], s["signal"]) == (exe, build_id(exe), 11), kib
        assert [f["offset"] for f in s["frames"]] and s["modules"][0]["path"] == exe
        assert "core.xz" in files or not had_core, kib
        had_core = "core.xz" in files
    assert had_core


def test_a_signal_sent_by_a_process_names_the_sender_not_a_fault_address(crasher, tmp_path):
    """kill(2) gives SIGSEGV si_code SI_USER and si_pid/si_uid where a fault has si_addr:
    the summary names the sender and gives no fault address (Debian's own sleep)."""
    base = crasher.configure({})
    p = subprocess.Popen(["sleep", "30"], preexec_fn=lambda: resource.setrlimit(
        resource.RLIMIT_CORE, (resource.RLIM_INFINITY,) * 2))
    time.sleep(0.3)
    os.kill(p.pid, signal.SIGSEGV)
    assert p.wait(timeout=20) == -signal.SIGSEGV
    crasher.wait_idle()
    d = crasher.dump_of(base, p.pid)
    s = summary(d)
    assert (s["signal_name"], s["code"], s["code_name"]) == ("SIGSEGV", 0, "SI_USER")
    assert s["fault_address"] is None
    assert s["sender"] == {"pid": os.getpid(), "uid": os.getuid()}
    first = open(os.path.join(d, "summary.txt")).readline()
    assert "killed by SIGSEGV code 0 (SI_USER), sent by pid %d uid %d" % (
        os.getpid(), os.getuid()) in first
    assert "fault address" not in first


def test_a_fault_has_its_code_named(crasher, programs):
    d = crasher.crash([programs["crash3"]], {})
    s = summary(d)
    assert (s["code"], s["code_name"], s["fault_address"], s["sender"]) == (
        1, "SEGV_MAPERR", "0x0", None)
