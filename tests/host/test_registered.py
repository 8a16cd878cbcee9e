"""Data registered through libminicoredumper, dumped by the handler (docs/FORMATS.md §6-7)."""

import os
import subprocess

from lab.gdb import gdb
from lab.logs import handler_log


def _pid(d):
    return d.rsplit(".", 1)[1]


def test_mycrasher_scenario(crasher, programs):
    exe = programs["mycrasher"]
    d = crasher.crash([exe], {})
    pid = _pid(d)
    assert open(os.path.join(d, "dumps", pid, "out.txt")).read() == 's="my string" *i=42\n'
    with open(os.path.join(d, "dumps", pid, "i.bin"), "rb") as f:
        assert f.read() == (42).to_bytes(4, "little")
    (line,) = open(os.path.join(d, "symbol.map")).read().splitlines()
    off, vaddr, size, kind, ident = line.split()
    assert (size, kind, ident) == ("4", "D", "i.bin")
    out = gdb(exe, os.path.join(d, "core"), "print s", "print *i", "print i")
    assert '"my string"' in out
    assert "Cannot access memory at address 0x%s" % vaddr in out


def test_every_printf_type_matches_printf(crasher, programs, tmp_path):
    exe = programs["regtypes"]
    base = crasher.configure({})
    p = subprocess.Popen([exe], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    expected, _ = p.communicate()
    crasher.wait_idle()
    assert p.returncode == -11  # crashed, not a failed registration
    d = crasher.dump_of(base, p.pid)
    got = open(os.path.join(d, "dumps", _pid(d), "types.txt"), "rb").read()
    assert got.splitlines() == expected.splitlines()
    assert len(expected.splitlines()) == 16


def test_dump_scope_filters(crasher, programs):
    d = crasher.crash([programs["mycrasher"]], {"dump_scope": 1000})  # mycrasher uses 1024
    assert not os.path.exists(os.path.join(d, "dumps"))
    assert not os.path.exists(os.path.join(d, "symbol.map"))


def test_hostile_registration_list(crasher, programs):
    exe = programs["hostile"]
    base = crasher.configure({"registered": {"max_item_size": 65536}})
    marker = "/etc/x"
    existed = os.path.exists(marker)
    rc, reaped, pid = crasher.run([exe])
    assert reaped < 5
    assert os.path.exists(marker) == existed
    d = crasher.dump_of(base, pid)
    files = sorted(os.path.relpath(os.path.join(r, f), d)
                   for r, _, fs in os.walk(d) for f in fs)
    assert files == ["core", "dumps/%d/good.bin" % pid, "dumps/%d/huge.bin" % pid,
                     "dumps/%d/ok.txt" % pid, "manifest", "summary.json", "summary.txt",
                     "symbol.map"]
    assert open(os.path.join(d, "dumps", str(pid), "ok.txt")).read() == "value=7\n"
    # The 2^40 length is capped by the recept, not trusted.
    assert os.path.getsize(os.path.join(d, "dumps", str(pid), "huge.bin")) <= 65536
    text = "\n".join(handler_log(pid))
    assert "capped" in text and "rejected" in text, text
    assert "cycle" in text or "more warnings" in text, text
