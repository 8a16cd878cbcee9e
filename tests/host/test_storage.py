"""Field-ready storage on real crashes: budgets, atomic publish, integrity,
storage policy, rate limit, crash summary, privacy and the mcd verbs."""

import json
import shutil
import os
import random
import subprocess
import sys
import time

from lab import ENV, ROOT
from lab.gdb import assert_frames, backtrace, extract_core, frames, gdb
from lab.logs import handler_log
from lab.programs import FRAMES

CONF = os.path.join(ROOT, "conf")


def mcd(*argv, prefix=(), env=None, **kw):
    """Run mcd (after prefix, e.g. setpriv; env: variables to change); kw goes to
    subprocess.run."""
    env = dict(ENV, **(env or {}))
    return subprocess.run(list(prefix) + [sys.executable, "-m", "minicoredumper.cmd_mcd"]
                          + list(argv), capture_output=True, text=True, env=env, **kw)


def dumps(base):
    return sorted(d for d in os.listdir(base) if not d.startswith(".")) if os.path.isdir(
        base) else []


def dir_bytes(d):
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(d) for f in fs)


def embedded(**changes):
    with open(os.path.join(CONF, "embedded.recept.json")) as f:
        r = json.load(f)
    r.update(changes)
    return r


def test_a_dump_without_a_core_says_so_in_the_log(crasher, programs):
    """A budget that keeps the summaries but no core: the "dumped" line says there is
    no core and why (a new user read only "dumped ... in 65 ms" and looked for one)."""
    d = crasher.crash([programs["crash3"]], embedded(max_dump_size=2000))
    assert not [f for f in os.listdir(d) if f.startswith("core")]
    pid = int(d.rsplit(".", 1)[1])
    dumped = [l for l in handler_log(pid) if "dumped crash3 to" in l]
    assert dumped and "no core: not even the smallest core fits" in dumped[-1], dumped


def test_budget_ladder_is_never_exceeded_and_never_gets_worse(crasher, programs, tmp_path):
    exe = programs["threads8"]
    quality = []
    for kib in (1, 2, 4, 8, 16, 64):
        recept = {"max_dump_size": kib * 1024, "compression": {"compressor": "xz",
                  "extension": "xz", "in_tar": False}, "write_debug_log": True}
        d = crasher.crash([exe], recept)
        assert dir_bytes(d) <= kib * 1024, (kib, dir_bytes(d))
        assert os.path.exists(os.path.join(d, "summary.txt"))
        if any(n.startswith("core") for n in os.listdir(d)):
            core = extract_core(d, str(tmp_path))
            out = gdb(exe, core, "thread apply all bt")
            got = (len(frames(gdb(exe, core, "bt"))), out.count("\n#"))
        else:
            got = (0, 0)
        quality.append(got)
    assert quality == sorted(quality), quality  # more budget, never a worse backtrace
    assert quality[-1][0] >= 1


def test_three_deep_crash_has_full_backtrace_at_4kib(crasher, programs, tmp_path):
    for kib in (4, 8):
        d = crasher.crash([programs["crash3"]], embedded(max_dump_size=kib * 1024))
        assert dir_bytes(d) <= kib * 1024
        core = extract_core(d, str(tmp_path))
        assert_frames(FRAMES["crash3"], backtrace(programs["crash3"], core))


def test_budget_with_a_compressor_program(crasher, programs, tmp_path):
    """A compressor run as a program (a path: not a built-in name) under a budget:
    the ladder renders through the program, the core fits and gdb reads it; a budget
    too small for any core keeps the summary and the manifest verifies."""
    gzip = shutil.which("gzip")
    for kib, has_core in ((8, True), (1, False)):
        d = crasher.crash([programs["crash3"]], embedded(max_dump_size=kib * 1024, compression={
            "compressor": gzip, "extension": "gz", "in_tar": True}))
        assert dir_bytes(d) <= kib * 1024, (kib, dir_bytes(d))
        assert os.path.exists(os.path.join(d, "summary.txt"))
        assert os.path.exists(os.path.join(d, "core.tar.gz")) == has_core, os.listdir(d)
        if has_core:
            core = extract_core(d, str(tmp_path))
            assert_frames(FRAMES["crash3"], backtrace(programs["crash3"], core))
        p = mcd("verify", "--base-dir", os.path.dirname(d), os.path.basename(d))
        assert p.returncode == 0, p.stdout + p.stderr


def test_summary(crasher, programs):
    d = crasher.crash([programs["crash3"], "hello"], embedded(max_dump_size=16384))
    s = json.load(open(os.path.join(d, "summary.json")))
    assert (s["signal"], s["signal_name"], s["code"], s["fault_address"]) == (11, "SIGSEGV", 1,
                                                                              "0x0")
    assert s["exe"] == programs["crash3"] and s["cmdline"] == programs["crash3"] + " hello"
    assert s["uid"] == os.getuid() and s["pid"] == int(d.rsplit(".", 1)[1])
    assert set(s["registers"]) >= {"rip", "rsp", "rbp"}
    syms = [f["symbol"].split("+")[0] for f in s["frames"][:4]]
    assert syms == FRAMES["crash3"], s["frames"]
    mod = s["modules"][s["frames"][0]["module"]]
    assert mod["path"] == programs["crash3"] and len(mod["build_id"]) == 40
    assert s["dump"]["core"] == "core.xz" and s["dump"]["core_ranges"] > 0
    txt = open(os.path.join(d, "summary.txt")).read()
    assert "killed by SIGSEGV code 1 (SEGV_MAPERR), fault address 0x0" in txt.splitlines()[0]
    assert FRAMES["crash3"][0] in txt and len(txt) <= 640


def test_integrity_record_and_mcd_verify(crasher, programs, tmp_path):
    base = crasher.configure(embedded(write_debug_log=True, max_dump_size=0))
    crasher.run([programs["crash3"]])
    crasher.run([programs["crash3"]])
    (a, b) = dumps(base)
    p = mcd("verify", "--base-dir", base)
    assert p.returncode == 0 and p.stdout.count("OK ") == 2
    with open(os.path.join(base, b, "debug.txt"), "r+b") as f:
        f.seek(10)
        f.write(b"X")
    p = mcd("verify", "--base-dir", base)
    assert p.returncode == 1 and "CORRUPT %s: debug.txt: CRC32" % b in p.stdout
    assert "OK %s" % a in p.stdout


def test_killed_handler_never_leaves_a_listed_half_dump(crasher, programs):
    """kill -9 of the handler at random points of 100 crashes."""
    base = crasher.configure({"write_debug_log": True, "write_proc_info": True})
    rnd = random.Random(7)
    for _ in range(100):
        p = subprocess.Popen([programs["crash3"]], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        time.sleep(rnd.uniform(0, 0.06))
        subprocess.run(["pkill", "-9", "-f", crasher.launcher], capture_output=True)
        p.wait(timeout=10)
    crasher.wait_idle()
    listed = json.loads(mcd("list", "--json", "--base-dir", base).stdout)
    assert all(d["name"] in dumps(base) for d in listed)
    p = mcd("verify", "--base-dir", base)
    assert p.returncode == 0, p.stdout  # every listed dump is whole
    # The next run removes what the killed ones left behind.
    crasher.run([programs["crash3"]])
    assert [x for x in os.listdir(base) if ".part." in x] == []


def test_full_filesystem_gives_no_corrupt_artefact(crasher, programs, tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], check=True)
    try:
        with open(mnt / "filler", "wb") as f:
            try:
                f.write(b"x" * (60 << 10))
            except OSError:
                pass
        crasher.configure()
        crasher.configure(config={"base_dir": str(mnt / "crash"), "watch": [{}]})
        rc, reaped, pid = crasher.run([programs["threads8"]])
        assert reaped < 5
        logs = handler_log(pid)
        assert any("No space left on device" in l for l in logs), logs
        for d in dumps(str(mnt / "crash")):
            assert mcd("verify", "--base-dir", str(mnt / "crash"), d).returncode == 0
        assert [x for x in os.listdir(mnt / "crash") if ".part." in x] == []
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_crash_loop_is_rate_limited_and_refusals_write_nothing(crasher, programs):
    base = crasher.configure()
    crasher.configure(config={"base_dir": base, "watch": [{}],
                              "rate_limit": {"count": 3, "interval_seconds": 3600}})
    pids = []
    for _ in range(7):
        rc, reaped, pid = crasher.run([programs["crash3"]])
        assert reaped < 5
        pids.append(pid)
    assert len(dumps(base)) == 3
    refused = [p for p in pids if any("rate limit" in l for l in handler_log(p))]
    assert len(refused) == 4
    state = os.path.join(base, ".rate-limit")
    assert os.path.exists(state)  # survives a reboot: it is on disk
    mtime = os.stat(state).st_mtime_ns
    crasher.run([programs["crash3"]])
    assert os.stat(state).st_mtime_ns == mtime  # a refused crash writes nothing


def test_fifty_crashes_at_once(crasher, programs):
    base = crasher.configure()
    crasher.configure(config={"base_dir": base, "watch": [{}],
                              "rate_limit": {"count": 10, "interval_seconds": 3600}})
    t0 = time.monotonic()
    procs = [subprocess.Popen([programs["crash3"]], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL) for _ in range(50)]
    reaped = []
    for p in procs:
        p.wait(timeout=30)
        reaped.append(time.monotonic() - t0)
    crasher.wait_idle(60)
    assert max(reaped) < 3.0 + 1.0 + 5  # the deadline and its grace, plus start-up under load
    outcome = {p.pid: ("dumped" if any(d.endswith(".%d" % p.pid) for d in dumps(base)) else
                       "refused" if any("rate limit" in l for l in handler_log(p.pid)) else "lost")
               for p in procs}
    lost = {pid: handler_log(pid) for pid, what in outcome.items() if what == "lost"}
    assert list(outcome.values()).count("dumped") == 10, lost
    assert list(outcome.values()).count("refused") == 40, lost


def test_storage_limits_evict_the_oldest(crasher, programs):
    base = crasher.configure()
    crasher.configure(config={"base_dir": base, "watch": [{}], "max_dumps": 3})
    seen = []
    for _ in range(5):
        crasher.run([programs["crash3"]])
        seen += [d for d in dumps(base) if d not in seen]
    assert len(seen) == 5 and sorted(dumps(base)) == sorted(seen[-3:])  # the 3 newest
    # Sizes are disk use (what the storage gives up), as mcd list reports them.
    listed = json.loads(mcd("list", "--json", "--base-dir", base).stdout)
    # Room for two dumps, not three, even if the new one takes a block or two more.
    biggest = max(d["size"] for d in listed)
    limit = 2 * biggest + biggest // 2
    crasher.configure(config={"base_dir": base, "watch": [{}], "max_total_size": limit})
    crasher.run([programs["crash3"]])
    listed = json.loads(mcd("list", "--json", "--base-dir", base).stdout)
    assert sum(d["size"] for d in listed) <= limit
    assert len(listed) == 2 and listed[-1]["name"] not in seen  # the new one is kept


def test_privacy_secret_never_leaves(crasher, programs, tmp_path):
    secret = "Sup3rS3cretT0ken4711"
    base = crasher.configure(embedded(write_proc_info=True, sanitize_stack=1,
                                      omit_environ=True, write_debug_log=True, max_dump_size=0,
                                      stacks={"max_stack_size": 0, "first_thread_only": True}))
    p = subprocess.run([programs["secret"]], env={"MCD_SECRET": secret, "PATH": "/usr/bin"})
    assert p.returncode == -11
    crasher.wait_idle()
    (d,) = dumps(base)
    d = os.path.join(base, d)
    core = extract_core(d, str(tmp_path))
    for root, _, files in os.walk(d):
        for f in files:
            assert secret.encode() not in open(os.path.join(root, f), "rb").read(), f
    assert secret.encode() not in open(core, "rb").read()
    assert_frames(FRAMES["secret"], backtrace(programs["secret"], core))
    # Without the privacy options the same crash does carry it (the test can see it).
    base = crasher.configure(embedded(write_proc_info=True, max_dump_size=0, omit_environ=False))
    subprocess.run([programs["secret"]], env={"MCD_SECRET": secret, "PATH": "/usr/bin"})
    crasher.wait_idle()
    (d,) = dumps(base)
    assert secret.encode() in open(os.path.join(base, d, "proc", d.rsplit(".", 1)[1],
                                                "environ"), "rb").read()


def test_mcd_list_info_extract_gdb_and_ids(crasher, programs, tmp_path):
    base = crasher.configure(embedded(max_dump_size=16384))
    rc, reaped, pid = crasher.run([programs["crash3"]])
    (name,) = dumps(base)
    p = mcd("list", "--base-dir", base)
    assert p.returncode == 0 and "SIGSEGV" in p.stdout and name in p.stdout
    rows = json.loads(mcd("list", "--json", "--base-dir", base).stdout)
    assert rows[0]["pid"] == pid and rows[0]["comm"] == "crash3"
    for ident in (name, str(pid), "crash3"):
        p = mcd("info", "--base-dir", base, ident)
        assert p.returncode == 0 and FRAMES["crash3"][0] in p.stdout and "summary.json" in p.stdout
    out = str(tmp_path / "core")
    p = mcd("extract", "--base-dir", base, str(pid), "-o", out)
    assert p.returncode == 0, p.stderr
    assert_frames(FRAMES["crash3"], backtrace(programs["crash3"], out))
    p = mcd("gdb", "--base-dir", base, "crash3", "--", "-batch", "-ex", "bt")
    assert p.returncode == 0, p.stdout + p.stderr
    assert_frames(FRAMES["crash3"], frames(p.stdout))
    p = mcd("info", "--base-dir", base, "nosuchthing")
    assert p.returncode == 1 and "`mcd list` shows what there is" in p.stderr


def test_a_comm_that_starts_with_a_dot_is_a_visible_dump(crasher, programs, tmp_path):
    """A program called ".hidden" once gave a dump directory starting with ".", which mcd
    and the storage policy take for the base_dir's own hidden files: it was never listed,
    verified or counted."""
    prog = tmp_path / ".hidden"
    shutil.copy(programs["crash3"], prog)
    base = crasher.configure({})
    _, _, pid = crasher.run([str(prog)])
    d = crasher.dump_of(base, pid)
    assert os.path.basename(d).startswith("_.hidden.")
    listed = json.loads(mcd("list", "--json", "--base-dir", base).stdout)
    assert [r["pid"] for r in listed] == [pid]
    assert mcd("verify", "--base-dir", base).returncode == 0
