"""The pieces of live dumps that need no other process: the trigger's arguments,
finding and bounding the trigger from the handler, a live dump's files, and
taking them into the crash's integrity record and budget."""

import os
import struct
import time

import pytest

from minicoredumper import decide_budget as budget
from minicoredumper import publish_dumpdir
from minicoredumper import write_externals as externals, publish_manifest as manifest
from minicoredumper import live_spawn as spawn
from minicoredumper import cmd_trigger as trigger
from minicoredumper.decide_plan import External


class Log:
    def __init__(self):
        self.lines = []

    def warning(self, msg):
        self.lines.append(msg)

    info = error = warning


def test_trigger_arguments():
    opts, d, scope = trigger.parse_args(["--crashed=12", "D", "0x10", "--max-pause", "7.5"])
    assert (d, scope, opts["crashed"], opts["max-pause"]) == ("D", 16, 12, 7.5)
    assert opts["state"] == "/run/minicoredumper/regd.pids"
    for bad in (["D"], ["D", "-1"], ["D", "1", "--colour=red"], ["D", "1", "--state"],
                ["D", str(1 << 32)], ["D", "1", "--max-pause=0"]):
        with pytest.raises(ValueError):
            trigger.parse_args(bad)


def test_trigger_is_found_next_to_the_launcher_then_on_path(tmp_path):
    here, there = tmp_path / "here", tmp_path / "there"
    for d in (here, there):
        d.mkdir()
        (d / "minicoredumper_trigger").write_text("#!/bin/sh\n")
    (there / "minicoredumper_trigger").chmod(0o755)
    launcher = str(here / "minicoredumper")
    assert spawn.find_trigger(launcher, str(there)) == str(there / "minicoredumper_trigger")
    (here / "minicoredumper_trigger").chmod(0o755)
    assert spawn.find_trigger(launcher, str(there)) == str(here / "minicoredumper_trigger")
    assert spawn.find_trigger(str(tmp_path / "x" / "m"), str(tmp_path)) is None


def test_an_overrunning_trigger_is_killed_at_the_deadline():
    log = Log()
    pid = os.posix_spawn("/bin/sleep", ["sleep", "30"], os.environ)
    t0 = time.monotonic()
    spawn.wait(pid, t0 + 0.2, log)
    assert 0.2 <= time.monotonic() - t0 < 5
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reaped
    assert "killed unfinished" in log.lines[0]


def test_live_dump_files_have_offsets_in_their_own_files(tmp_path):
    dd = publish_dumpdir.DumpDir(str(tmp_path), "123")
    word = struct.Struct("<Q")
    externals.write_externals(dd, "", [
        External("a.bin", "D", 0x1000, b"abcd"),
        External("core-data", "D", 0x2000, b"xy"),
        External("core-data", "I", 0x3000, b"zz", pointer=0x4000),
        External("core-data", "N", 0x5000, b"", size=9),
        External("t.txt", "T", 0, b"text\n")], word)
    path = dd.publish(manifest=False)
    assert path == str(tmp_path / "123")
    assert sorted(os.listdir(path)) == ["a.bin", "core-data", "symbol.map", "t.txt"]
    assert open(path + "/core-data", "rb").read() == b"xy" + word.pack(0x4000) + b"zz"
    assert open(path + "/symbol.map").read() == (
        "0 1000 4 D a.bin\n0 2000 2 D core-data\n2 3000 2 I core-data\n"
        "c 5000 9 N core-data\n")


def live_files(dd, pid, files):
    for name, data in files.items():
        os.makedirs("%s/dumps/%d" % (dd.path, pid), exist_ok=True)
        with open("%s/dumps/%d/%s" % (dd.path, pid, name), "wb") as f:
            f.write(data)


def test_live_dumps_join_the_integrity_record(tmp_path):
    dd = publish_dumpdir.DumpDir(str(tmp_path), "crash.1")
    dd.write_file("dumps/1/own.bin", b"own")
    live_files(dd, 2, {"a": b"A" * 10, "symbol.map": b"0 0 1 D a\n"})
    os.makedirs(dd.path + "/dumps/.3" + publish_dumpdir.PART + "99/x")  # a killed dumper's
    assert dd.adopt("dumps") == []
    final = dd.publish()
    assert sorted(os.listdir(final + "/dumps")) == ["1", "2"]
    assert manifest.verify(final) == []


def test_live_dumps_that_do_not_fit_the_budget_are_dropped(tmp_path):
    dd = publish_dumpdir.DumpDir(str(tmp_path), "crash.2")
    b = budget.Budget(400)
    b.take("core", 100)
    live_files(dd, 2, {"small": b"s" * 20})
    live_files(dd, 3, {"big": b"b" * 300})
    live_files(dd, 4, {"x": b"x" * 10, "y": b"y" * 10})
    used = b.used
    assert dd.adopt("dumps", b) == ["3"]
    assert sorted(os.listdir(dd.path + "/dumps")) == ["2", "4"]
    assert b.used == used + sum(b.cost(r, n) for r, n in (
        ("dumps/2/small", 20), ("dumps/4/x", 10), ("dumps/4/y", 10)))
    assert sorted(dd.records) == ["dumps/2/small", "dumps/4/x", "dumps/4/y"]
