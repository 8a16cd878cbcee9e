"""The summary's readers and its budget rule, without a crash: the package note's
JSON (against the json module), /proc/PID/cgroup, limits and systemd units, and
summary.json's forms (docs/FORMATS.md §9)."""

import json
import random

import pytest

from minicoredumper import write_summary as W
from minicoredumper.read_process import cgroup_path, parse_limits, systemd_units


@pytest.mark.parametrize("text", [
    '{"type":"deb","name":"foo","version":"1.2-3","architecture":"amd64","os":"debian"}',
    ' { "type" : "rpm" , "name" : "b\\u00e4r\\ud83d\\ude00\\n\\t\\"\\\\\\/" } ',
    '{"n": 12, "neg": -3, "t": true, "f": false, "z": null}',
    '{}',
])
def test_package_note_as_json_reads_it(text):
    assert W.parse_package(text.encode() + b"\0\0") == json.loads(text)


def test_package_note_skips_nested_values_and_cuts():
    desc = ('{"a":{"b":[1,{"c":"}]"}]},"name":"x","long":"%s","e":1.5e3}'
            % ("y" * 1000)).encode()
    assert W.parse_package(desc) == {"name": "x", "long": "y" * W.PACKAGE_VALUE, "e": "1.5e3"}
    many = "{" + ",".join('"k%d":"v"' % i for i in range(40)) + "}"
    assert len(W.parse_package(many.encode())) == W.PACKAGE_MEMBERS
    assert W.parse_package(b'{"a":"\\ud800"}') == {"a": "\ufffd"}  # a lone surrogate


@pytest.mark.parametrize("desc", [
    None, b"", b"\0", b"[1]", b'"x"', b"{", b'{"a"}', b'{"a":1,}', b'{"a" 1}', b'{a:1}',
    b'{"a":"x"} junk', b'{"a":"\x01"}', b'{"a":1e}', b'{"a":-}', b'{"a":"\\u12"}',
    b'{"a":"\\q"}', b'{"a":' + b"[" * 20 + b"]" * 20 + b"}", b'{"a":"unterminated',
    b'{"a":[1,2', b"\xff\xfe{",
])
def test_package_note_that_is_no_object_is_none(desc):
    assert W.parse_package(desc) is None


def test_package_note_random_bytes_never_raise():
    rng = random.Random(7)
    good = b'{"type":"deb","name":"n\\u00e9","version":"1","x":[{"y":"z"}]}'
    for _ in range(3000):
        b = bytearray(good)
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(len(b))] = rng.choice(b'{}[]",:\\u0 e1-\x00\xff')
        got = W.parse_package(bytes(b))
        assert got is None or isinstance(got, dict)


def test_cgroup_path():
    v2 = b"0::/system.slice/foo.service\n"
    assert cgroup_path(v2) == "/system.slice/foo.service"
    hybrid = (b"12:pids:/a\n1:name=systemd:/user.slice/user-0.slice/session-4.scope\n"
              b"0::/other\n")
    assert cgroup_path(hybrid) == "/user.slice/user-0.slice/session-4.scope"
    assert cgroup_path(b"4:memory:/m\n3:cpu:/c\n") == "/m"
    assert cgroup_path(b"garbage\n") is None
    assert cgroup_path(b"0::/caf\xff\n") == "/caf\\xff"


@pytest.mark.parametrize("path, unit, user_unit", [
    ("/system.slice/foo.service", "foo.service", None),
    ("/system.slice/system-getty.slice/getty@tty1.service", "getty@tty1.service", None),
    ("/user.slice/user-1000.slice/session-2.scope", "session-2.scope", None),
    ("/user.slice/user-1000.slice/user@1000.service/app.slice/app-x.scope",
     "user@1000.service", "app-x.scope"),
    ("/user.slice/user-1000.slice/user@1000.service/init.scope", "user@1000.service",
     "init.scope"),
    ("/init.scope", "init.scope", None),
    ("/system.slice/_foo.service", "foo.service", None),
    ("/system.slice/docker-1.scope/inner/x.service", "docker-1.scope", None),
    ("/", None, None), ("/system.slice", None, None), ("/lxc/c1/x.service", None, None),
    ("/.service", None, None), (None, None, None),
])
def test_systemd_units(path, unit, user_unit):
    assert systemd_units(path) == (unit, user_unit)


LIMITS = b"""\
Limit                     Soft Limit           Hard Limit           Units     
Max cpu time              unlimited            unlimited            seconds   
Max core file size        0                    unlimited            bytes     
Max open files            1024                 524288               files     
Max nice priority         0                    0                    
Max future thing          5                    6                    things    
"""


def test_parse_limits():
    assert parse_limits(LIMITS) == {"cpu": ["unlimited", "unlimited"], "core": [0, "unlimited"],
                                    "nofile": [1024, 524288], "nice": [0, 0],
                                    "Max future thing": [5, 6]}
    assert parse_limits(b"") == {} and parse_limits(b"Limit\nMax cpu time\n") == {}


def _summary():
    return {"pid": 7, "tid": 7, "uid": 0, "gid": 0, "time": 1, "time_given": "1",
            "hostname": "h", "boot_id": "b", "kernel": "6.1", "exe": "/bin/x",
            "exe_build_id": "ab", "package": {"name": "x", "version": "1"}, "comm": "x",
            "cmdline": "/bin/x -v", "cgroup": "/", "unit": None, "user_unit": None,
            "arch": "x86_64", "signal": 11, "signal_name": "SIGSEGV", "code": 1,
            "code_name": "SEGV_MAPERR", "fault_address": "0x0", "sender": None,
            "registers": {"rip": "0x1"},
            "frames": [{"pc": "0x1", "how": "pc", "module": 0, "offset": "0x1",
                        "symbol": "main"}], "frames_end": None,
            "thread_frames": [{"tid": 8, "frames": [{"pc": "0x2", "how": "pc", "module": 0,
                                                     "offset": "0x2", "symbol": "f"}],
                               "end": None}],
            "modules": [{"path": "/bin/x", "build_id": "ab"}], "threads": 2,
            "rlimits": {"core": [0, "unlimited"]}, "fds": {"0": "/dev/null"},
            "fds_more": False, "dump": {"core": "core"}}


def test_forms_leave_out_groups_and_keep_the_identity():
    s = _summary()
    raw = list(W.forms(s))
    forms = [json.loads(f) for f in raw]
    # whole and indented, then the same on one line, then the reduced forms on one line
    assert forms[0] == forms[1] == s and "left_out" not in forms[0]
    assert b"\n  " in raw[0] and all(f.count(b"\n") == 1 for f in raw[1:])
    assert [len(f) for f in raw] == sorted((len(f) for f in raw), reverse=True)
    assert raw[-1] == W.smallest_form(s)
    del forms[0]
    assert len(forms) == len(W.LEAVE_OUT) + 1
    identity = {"pid", "tid", "uid", "gid", "time", "time_given", "hostname", "boot_id",
                "exe", "exe_build_id", "comm", "signal", "signal_name", "code",
                "fault_address", "code_name", "sender", "frames", "modules", "left_out"}
    assert set(forms[-1]) == identity
    assert forms[-1]["frames"] == [{"pc": "0x1", "how": "pc", "module": 0, "offset": "0x1"}]
    for n, f in enumerate(forms[1:], 1):
        # what is really missing: one frame, none scanned, so "frames.scan" drops nothing
        gone = [k for g in W.LEAVE_OUT[:n] for k in g if k != "frames.scan"]
        assert f["left_out"] == gone
        assert [k for k in s if k in f] == [k for k in f if k != "left_out"]  # same order
        assert all(k not in f for k in gone if k != "frames.symbol")


def test_smallest_form_does_not_depend_on_symbols_or_the_dump():
    """Its size is reserved before the core is written and symbols are looked up."""
    a, b = _summary(), _summary()
    b["frames"][0]["symbol"] = None
    b["dump"] = None
    assert W.smallest_form(a) == W.smallest_form(b)


def test_smallest_form_keeps_the_trusted_frames_and_the_first_scanned():
    """A stack scan's guesses (armhf without frame records gives a dozen) go before any
    of the identity: the frames found through pc, lr or fp stay, and the first
    KEEP_FRAMES frames whatever found them."""
    s = _summary()
    hows = ["pc", "lr", "scan", "scan", "scan", "fp", "scan", "scan"]
    s["frames"] = [{"pc": "%#x" % i, "how": h, "module": 0, "offset": "%#x" % i,
                    "symbol": None} for i, h in enumerate(hows)]
    small = json.loads(W.smallest_form(s))
    assert [f["how"] for f in small["frames"]] == ["pc", "lr", "scan", "scan", "fp"]
    assert small["left_out"][-1] == "frames.scan"


def test_summary_txt_is_cut_at_line_boundaries():
    """summary.txt holds every thread's frames, and a limit cuts whole lines only,
    the last saying how many were left out."""
    s = _summary()
    s["frames"] = [{"pc": "%#x" % (0x1000 + i), "how": "cfi", "module": 0,
                    "offset": "%#x" % i, "symbol": "f%d" % i} for i in range(30)]
    whole = W.text(s)
    lines = whole.decode().splitlines()
    assert lines[-2:] == ["thread 8:", "#0 0x2 f (x+0x2)"] and "#29 0x101d f29 (x+0x1d)" in lines
    for limit in (100, 200, 333, 640):
        cut = W.text(s, limit)
        assert len(cut) <= limit and cut.endswith(b"\n")
        kept = cut.decode().splitlines()
        assert kept[:-1] == lines[:len(kept) - 1]  # whole lines, in order
        assert kept[-1] == "(%d more lines)" % (len(lines) - len(kept) + 1)
    assert W.text(s, len(whole)) == whole


def test_the_hard_deadlines_summary_keeps_a_newline_in_comm_on_its_first_line():
    """crash.Crash.publish_at_hard_deadline writes summary.txt from the
    arrival's facts alone; a comm with a newline (systemd #10786's kind of
    name) must not split the line mcd reads when there is no summary.json."""
    from minicoredumper.crash import Arrival, Crash

    class Log:
        def error(self, message):
            pass

    class DumpDir:
        records = {}
        written = {}

        def write_file(self, name, data):
            self.written[name] = data

        def publish(self):
            return "published"

    class KernelCore:
        siginfo = None

    arrival = Arrival(42, 0, 0, 11, 1700000000, "host\nname", "evil\ncomm", hard_deadline=False)
    dd = DumpDir()
    assert Crash(arrival, Log()).publish_at_hard_deadline(dd, None, KernelCore()) == "published"
    lines = dd.written["summary.txt"].decode().splitlines()
    assert lines[0].startswith("evil\\012comm (pid 42, ") and lines[1].endswith(
        "host host\\012name; the hard deadline passed before more was read"), lines
