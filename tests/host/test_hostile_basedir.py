"""A base_dir that someone else can write (issue 17): the attacks of an ordinary
user (nobody, through setpriv) on a base_dir they own, can write, or name with
a symlink of their own.  Each crash of such a base_dir is released at once with
one logged reason and writes nothing; nothing outside base_dir is created,
changed or removed; the next ordinary crash is dumped on time.  In pipe mode
and, where the kernel has it, in socket mode.

The attacks, each of which reached outside base_dir before:
- leftover: a planted .NAME.part.PID symlink; the leftover cleanup emptied
  the directory it points to;
- evict: a planted symlink named like a dump, with max_dumps; the eviction
  emptied the directory it points to;
- lock: a planted .rate-limit.lock symlink, with a rate limit; the lock was
  created where it points;
- swap: the .part directory swapped for a symlink while the crash is written
  (a loop of the attacker's); the dump went where it points;
- link: base_dir itself a symlink the attacker planted in a sticky directory
  (like /tmp); the dump went where it points.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

from lab.logs import handler_log
from minicoredumper import corepattern

NOBODY = 65534
DEADLINE = 3
AS_NOBODY = ["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY, "--clear-groups"]
DEAD_PID = 4194305  # above the kernel's largest pid_max: never a live process
ATTACKS = ["leftover", "evict", "lock", "swap", "link"]
MODES = ["pipe"] + (["socket"] if corepattern.kernel_has_socket_mode() else [])

# The attacker's part, run as nobody: argv[1] the attack, argv[2] base_dir, argv[3] the
# victim directory.  "swap" loops until killed, swapping every .part directory it sees.
ATTACKER = r"""
import os, sys
attack, base, victim, dead_pid = sys.argv[1:5]
if attack == "leftover":
    os.symlink(victim, os.path.join(base, ".crash3.20200101.000000+0000.1.part." + dead_pid))
elif attack == "evict":
    os.symlink(victim, os.path.join(base, "crash3.20200101.000000+0000.1"))
elif attack == "lock":
    os.symlink(os.path.join(victim, "planted"), os.path.join(base, ".rate-limit.lock"))
elif attack == "link":
    os.symlink(victim, base)
elif attack == "swap":
    print("ready", flush=True)
    n = 0
    while True:
        for name in os.listdir(base):
            p = os.path.join(base, name)
            if ".part." in name and not os.path.islink(p):
                try:
                    n += 1
                    os.rename(p, os.path.join(base, ".moved%d" % n))
                    os.symlink(victim, p)
                except OSError:
                    pass
"""


def snapshot(top):
    """{relative path: (kind, mode, uid, size, mtime_ns, sha256)} of everything under top,
    top itself included, symlinks not followed."""
    out = {}
    for root, dirs, files in os.walk(top):
        for name in [""] + dirs + files:
            p = os.path.join(root, name) if name else root
            st = os.lstat(p)
            digest = None
            if os.path.isfile(p) and not os.path.islink(p):
                with open(p, "rb") as f:
                    digest = hashlib.sha256(f.read()).hexdigest()
            out[os.path.relpath(p, top)] = (st.st_mode, st.st_uid, st.st_size, st.st_mtime_ns,
                                            digest)
    return out


@pytest.fixture
def arena(programs):
    """A directory nobody can reach (0755, root's, under /tmp): crash3 to run as
    nobody, a victim directory of root's files nobody can write, and a sticky
    world-writable directory (like /tmp) for the attacker's base_dir symlink."""
    top = tempfile.mkdtemp(prefix="mcd-hostile-", dir="/tmp")
    os.chmod(top, 0o755)
    exe = os.path.join(top, "crash3")
    shutil.copy(programs["crash3"], exe)
    os.chmod(exe, 0o755)
    victim = os.path.join(top, "victim")
    os.makedirs(os.path.join(victim, "sub"))
    for rel in ("precious", "sub/deeper"):
        with open(os.path.join(victim, rel), "w") as f:
            f.write("root's own %s\n" % rel)
    shared = os.path.join(top, "shared")
    os.mkdir(shared)
    os.chmod(shared, 0o1777)
    good = os.path.join(top, "good")
    try:
        yield {"top": top, "exe": exe, "victim": victim, "shared": shared, "good": good}
    finally:
        shutil.rmtree(top)


def attackers_base(arena, attack):
    """The base_dir of the attack: the attacker's own directory (pre-created by them),
    a root-owned one that everybody can write (lock), or a symlink of theirs (link)."""
    if attack == "link":
        return os.path.join(arena["shared"], "crashes")
    base = os.path.join(arena["top"], "base-" + attack)
    os.mkdir(base)
    if attack == "lock":
        os.chmod(base, 0o777)
    else:
        os.chown(base, NOBODY, NOBODY)
    return base


def entries(base):
    """The names in base (not through a symlink), or None when it is not a directory."""
    return None if os.path.islink(base) or not os.path.isdir(base) else sorted(os.listdir(base))


def configure(crasher, base, **extra):
    """The main config naming base (a crash3 recept that writes proc info: a dump
    that takes a while, for the swap)."""
    cfg = {"base_dir": base, "deadline_seconds": DEADLINE,
           "watch": [{"recept": os.path.join(crasher.workdir, "hostile.recept.json")}]}
    cfg.update(extra)
    with open(os.path.join(crasher.workdir, "hostile.recept.json"), "w") as f:
        json.dump({"write_proc_info": True, "write_debug_log": True}, f)
    crasher.configure(config=cfg)


def published(base, pid, timeout=DEADLINE + 2):
    """Dump directories of pid in base once one is there (socket mode publishes after
    the release), else []."""
    end = time.monotonic() + timeout
    while True:
        found = [n for n in os.listdir(base) if n.endswith(".%d" % pid)] \
            if os.path.isdir(base) else []
        if found or time.monotonic() > end:
            return found
        time.sleep(0.02)


@pytest.fixture
def mode(request, crasher):
    if request.param == "socket":
        crasher.start_socket_server()
    try:
        yield request.param
    finally:
        if request.param == "socket":
            crasher.stop_socket_server()


@pytest.mark.parametrize("mode", MODES, indirect=True)
@pytest.mark.parametrize("attack", ATTACKS)
def test_a_base_dir_others_can_change_is_refused(crasher, arena, attack, mode):
    base = attackers_base(arena, attack)
    victim = arena["victim"]
    extra = {"max_dumps": 1} if attack == "evict" else \
        {"rate_limit": {"count": 5, "interval_seconds": 60}} if attack == "lock" else {}
    before = snapshot(arena["victim"])
    swapper = None
    cmd = AS_NOBODY + [sys.executable, "-c", ATTACKER, attack, base, victim, str(DEAD_PID)]
    if attack == "swap":
        swapper = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        assert swapper.stdout.readline() == "ready\n"
    else:
        subprocess.run(cmd, check=True, timeout=20)
    planted = entries(base)
    try:
        configure(crasher, base, **extra)
        rc, reaped, pid = crasher.run(AS_NOBODY + [arena["exe"]])
        assert rc == -11
        assert reaped < DEADLINE + 1, reaped
        time.sleep(0.2 if mode == "pipe" else 1.0)  # socket mode: its log line comes after
    finally:
        if swapper is not None:
            swapper.kill()
            swapper.wait()
    assert snapshot(victim) == before  # nothing created, changed or removed outside
    lines = handler_log(pid)
    refused = [l for l in lines if "base_dir %s refused" % base in l]
    assert len(refused) == 1 and len(lines) == 1, lines
    assert ("uid %d" % NOBODY in refused[0]) or "can be written by others" in refused[0]
    assert entries(base) == planted  # nothing written into base_dir either

    # The next ordinary crash, into a base_dir of root's, is dumped on time.
    configure(crasher, arena["good"])
    rc, reaped, pid = crasher.run(AS_NOBODY + [arena["exe"]])
    assert rc == -11 and reaped < DEADLINE + 1, reaped
    assert len(published(arena["good"], pid)) == 1, handler_log(pid)
