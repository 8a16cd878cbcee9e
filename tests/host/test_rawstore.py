"""Real crashes into a raw store (docs/FORMATS.md §12): crash3 under the real
kernel into a plain file and a loop device, mcd reading the store like a
directory store, `mcd store import`, and gdb's backtrace from the imported dump."""

import json
import os
import subprocess
import sys

import pytest

from lab import ENV
from lab.gdb import assert_frames, backtrace, extract_core, frames
from lab.logs import handler_log
from lab.programs import FRAMES
from minicoredumper import rawstore as R
from test_storage import embedded

SLOT = 4096


def mcd(*argv):
    return subprocess.run([sys.executable, "-m", "minicoredumper.cmd_mcd"] + list(argv),
                          capture_output=True, text=True, env=ENV)


@pytest.fixture(params=["file", "loop"])
def store_device(request, tmp_path):
    """A 64 KiB store device, zero-filled: a plain file, or a loop device on one."""
    path = str(tmp_path / "store.img")
    with open(path, "wb") as f:
        f.write(bytes(64 << 10))
    if request.param == "file":
        yield path
        return
    loop = subprocess.run(["losetup", "--find", "--show", path], capture_output=True,
                          text=True)
    if loop.returncode:
        pytest.skip("no loop device: %s" % loop.stderr.strip())
    try:
        yield loop.stdout.strip()
    finally:
        subprocess.run(["losetup", "-d", loop.stdout.strip()], check=True)


def crash_into_store(crasher, exe, device, tmp_path, recept=None, slot=SLOT):
    """Crash exe with the config's store on device; returns (the unused base_dir, pid)."""
    base = str(tmp_path / "base")
    rpath = str(tmp_path / "recept.json")
    with open(rpath, "w") as f:
        json.dump(recept if recept is not None else embedded(max_dump_size=0), f)
    crasher.configure(config={"base_dir": base, "watch": [{"recept": rpath}],
                              "store": {"device": device, "slot_size": slot}})
    _, _, pid = crasher.run([exe])
    return base, pid


def test_crash_into_a_raw_store_import_and_backtrace(crasher, programs, store_device,
                                                      tmp_path):
    exe = programs["crash3"]
    base, pid = crash_into_store(crasher, exe, store_device, tmp_path)
    # nothing on a file system: the handler never made base_dir
    assert not os.path.exists(base), os.listdir(base)
    with R.Store(store_device, SLOT) as s:
        recs = s.records()
        assert len(recs) == 1, handler_log(pid)
        name, files = R.unpack_payload(recs[0][1])
        assert recs[0][0].index == 0 and recs[0][0].size <= s.room
    names = [rel for rel, _ in files]
    assert name.startswith("crash3.") and name.endswith(".%d" % pid)
    assert names[0] == "summary.txt" and "core.xz" in names and "manifest" not in names
    assert any("dumped crash3 to %s slot 0 record 0" % store_device in line
               for line in handler_log(pid)), handler_log(pid)
    # mcd reads the store like a directory store
    cfg = crasher.cfg
    p = mcd("list", "--config", cfg, "--no-legend", "-F", "pid")
    assert (p.returncode, p.stdout.split()) == (1, []), p  # base_dir: nothing there
    p = mcd("list", "--config", cfg, "--store", store_device, "-F", "name")
    assert (p.returncode, p.stdout.split(), p.stderr) == (0, [name], ""), p
    p = mcd("verify", "--config", cfg, "--store", store_device)
    assert (p.returncode, p.stdout) == (0, "OK %s\n" % name), p
    p = mcd("gdb", "--config", cfg, "--store", store_device, "crash3", "--", "-batch", "-ex",
            "bt")
    assert p.returncode == 0, p
    assert_frames(FRAMES["crash3"], frames(p.stdout))
    # import: an ordinary dump directory, then marked imported; twice imports nothing
    p = mcd("store", "import", "--config", cfg)
    assert p.returncode == 0, p
    assert p.stdout.splitlines() == ["imported %s/%s" % (base, name),
                                     "1 record imported from %s into %s, 0 imported before"
                                     % (store_device, base)], p.stdout
    d = os.path.join(base, name)
    assert sorted(os.listdir(d)) == sorted(names + ["manifest"])
    p = mcd("verify", "--base-dir", base)
    assert p.returncode == 0, p
    core = extract_core(d, str(tmp_path))
    assert_frames(FRAMES["crash3"], backtrace(exe, core))
    with open(os.path.join(base, ".rawstore-imported")) as f:
        assert f.read() == "%08x %08x %s\n" % (0, recs[0][0].crc, name)
    p = mcd("store", "import", "--config", cfg)
    assert p.stdout.splitlines() == ["0 records imported from %s into %s, 1 imported before"
                                     % (store_device, base)], p.stdout
    # a second crash goes into the next slot; import takes just that one
    _, pid2 = crash_into_store(crasher, exe, store_device, tmp_path)
    p = mcd("store", "import", "--config", cfg)
    assert p.stdout.splitlines()[-1] == ("1 record imported from %s into %s, 1 imported "
                                         "before" % (store_device, base)), p.stdout
    assert sorted(n for n in os.listdir(base) if not n.startswith(".")) == sorted(
        [name, p.stdout.split()[1].rsplit("/", 1)[1]])
    assert p.stdout.split()[1].endswith(".%d" % pid2)


def test_import_cut_before_its_mark_imports_once(crasher, programs, tmp_path):
    device = str(tmp_path / "store.img")
    with open(device, "wb") as f:
        f.write(bytes(4 * SLOT))
    base, _ = crash_into_store(crasher, programs["crash3"], device, tmp_path)
    p = mcd("store", "import", "--config", crasher.cfg)
    assert p.returncode == 0, p
    os.unlink(os.path.join(base, ".rawstore-imported"))  # the power went before the mark
    p = mcd("store", "import", "--config", crasher.cfg)
    assert p.stdout.splitlines() == ["0 records imported from %s into %s, 0 imported before"
                                     % (device, base)], p.stdout
    assert len([n for n in os.listdir(base) if not n.startswith(".")]) == 1
    assert os.path.exists(os.path.join(base, ".rawstore-imported"))  # marked now


def test_torn_record_is_named_and_skipped_by_mcd(crasher, programs, tmp_path):
    device = str(tmp_path / "store.img")
    with open(device, "wb") as f:
        f.write(bytes(4 * SLOT))
    crash_into_store(crasher, programs["crash3"], device, tmp_path)
    crash_into_store(crasher, programs["crash3"], device, tmp_path)
    with open(device, "r+b") as f:  # a power cut inside the second record's payload
        f.seek(SLOT + 100)
        f.write(b"\0" * 50)
    p = mcd("list", "--config", crasher.cfg, "--store", device, "-F", "pid")
    assert p.returncode == 0 and len(p.stdout.split()) == 1, p
    assert p.stderr.startswith("mcd: %s slot 1: torn record ignored (payload CRC32 " % device)


def test_a_slot_too_small_for_a_core_still_keeps_the_summary(crasher, programs, tmp_path):
    device = str(tmp_path / "store.img")
    with open(device, "wb") as f:
        f.write(bytes(4 * 512))
    base, pid = crash_into_store(crasher, programs["crash3"], device, tmp_path, slot=512)
    with R.Store(device, 512) as s:
        (slot, payload), = s.records()
        files = dict(R.unpack_payload(payload)[1])
    assert "summary.txt" in files and "core.xz" not in files, (sorted(files), handler_log(pid))
    assert len(payload) <= s.room == 512 - 48


def test_a_store_that_cannot_be_opened_gives_one_log_line(crasher, programs, tmp_path):
    device = str(tmp_path / "missing.img")
    base, pid = crash_into_store(crasher, programs["crash3"], device, tmp_path)
    assert not os.path.exists(base) and not os.path.exists(device)
    assert any("not dumped: raw store %s: No such file or directory" % device in line
               for line in handler_log(pid)), handler_log(pid)
