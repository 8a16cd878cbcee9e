"""The stack-trace record (stacktrace.py, docs/FORMATS.md §13): its bytes for a
summary's frames, read back the same; and a damaged or hostile record (every
single-byte change, every truncation, counts that ask for more than the record
holds) is a StackTraceError saying what is wrong, never another exception."""

import os
import subprocess
import sys
import time

import pytest

from lab import ENV
from minicoredumper import stacktrace as T

CRASH3_BUILD_ID = "4d1c9f08a2b9b53bbf63fa8d2d41d3b7a7a1f2e0"
LIBC_BUILD_ID = "93ac61ec5a8eb1396f9fbd350e3169a558528a40"


def frame(pc, how, module=None, offset=None):
    return {"pc": "%#x" % pc, "how": how, "module": module,
            "offset": "%#x" % offset if offset is not None else None, "symbol": None}


def summary():
    """A summary's frames as write_summary.build makes them: two threads, a
    frame outside every module, a signal frame, a walk cut short."""
    return {"tid": 4242,
            "frames": [frame(0x55d400001139, "pc", 0, 0x1139),
                       frame(0x55d400001159, "cfi", 0, 0x1159),
                       frame(0x7f0000000e00, "scan"),
                       frame(0x7f12a002724a, "signal", 1, 0x2724a)],
            "frames_end": None,
            "thread_frames": [{"tid": 4243, "end": "deadline",
                               "frames": [frame(0x7f12a00d3df2, "pc", 1, 0xd3df2),
                                          frame(0x55d4000011ec, "fp", 0, 0x11ec)]}],
            "modules": [{"path": "/usr/bin/crash3", "build_id": CRASH3_BUILD_ID},
                        {"path": "/lib/x86_64-linux-gnu/libc.so.6", "build_id": LIBC_BUILD_ID}]}


def record():
    return T.encode(T.from_summary(summary()))


def test_a_record_reads_back_as_the_summary_frames():
    t = T.decode(record())
    assert t.modules == [(CRASH3_BUILD_ID, "crash3"), (LIBC_BUILD_ID, "libc.so.6")]
    assert t.threads == [
        (4242, [("pc", 0, 0x1139), ("cfi", 0, 0x1159), ("scan", None, 0x7f0000000e00),
                ("signal", 1, 0x2724a)], False),
        (4243, [("pc", 1, 0xd3df2), ("fp", 0, 0x11ec)], True)]


def test_the_crashing_thread_alone_keeps_only_its_modules():
    s = summary()
    s["frames"] = s["frames"][:2]
    forms = list(T.forms(s))
    assert len(forms) == 2 and len(forms[1]) < len(forms[0])
    alone = T.decode(forms[1])
    assert alone.modules == [(CRASH3_BUILD_ID, "crash3")]
    assert [tid for tid, _, _ in alone.threads] == [4242]


def test_a_record_is_its_build_ids_and_a_few_bytes_a_frame():
    """6 frames and 2 modules: 40 bytes of build-ids, 15 of names, 4 bytes of
    magic and version, 4 of CRC32, the rest at most 7 bytes a frame."""
    data = record()
    assert data[:4] == T.MAGIC and data[4] == T.VERSION
    assert len(data) < 128, len(data)


def _check(data):
    """decode(data): a Trace or StackTraceError, nothing else."""
    try:
        return T.decode(data)
    except T.StackTraceError as e:
        assert str(e)
        return None


def test_every_single_byte_change_is_an_error():
    data = record()
    for i in range(len(data)):
        for v in range(256):
            if v != data[i]:
                bad = data[:i] + bytes([v]) + data[i + 1:]
                with pytest.raises(T.StackTraceError):
                    T.decode(bad)


def test_every_single_byte_change_behind_a_good_crc_is_read_strictly():
    """The same changes with the CRC32 made to agree: the structure is checked
    on its own (a Trace or StackTraceError, never another exception)."""
    import zlib
    data = record()
    body = data[:-T.CRC_SIZE]
    results = []
    for i in range(len(body)):
        for v in range(256):
            if v != body[i]:
                bad = body[:i] + bytes([v]) + body[i + 1:]
                results.append(_check(bad + zlib.crc32(bad).to_bytes(4, "little")) is None)
    # both ways taken: a build-id's or an offset's byte changed reads as another one
    assert 0 < sum(results) < len(results)


def test_every_truncation_is_an_error():
    import zlib
    data = record()
    for n in range(len(data)):
        with pytest.raises(T.StackTraceError):
            T.decode(data[:n])
    for n in range(len(data) - T.CRC_SIZE):  # also with a CRC32 that fits the cut bytes
        cut = data[:n]
        assert _check(cut + zlib.crc32(cut).to_bytes(4, "little")) is None


def test_counts_larger_than_the_record_end_at_once():
    import zlib
    for body in (T.MAGIC + bytes([T.VERSION]) + b"\xff" * 9 + b"\x01",  # 2**63 modules
                 T.MAGIC + bytes([T.VERSION, 0, 1, 1]) + b"\xff\x7f",  # 16383 frames
                 T.MAGIC + bytes([T.VERSION]) + b"\x80" * 20000):  # a varint without end
        t0 = time.monotonic()
        with pytest.raises(T.StackTraceError):
            T.decode(body + zlib.crc32(body).to_bytes(4, "little"))
        assert time.monotonic() - t0 < 0.1


def test_a_damaged_file_is_named(tmp_path):
    path = tmp_path / "stacktrace"
    path.write_bytes(record()[:-1])
    with pytest.raises(T.StackTraceError, match="^%s is damaged: " % path):
        T.read(str(path))
    path.write_bytes(b"MCDr" + record()[4:])
    with pytest.raises(T.StackTraceError, match="not a stack-trace record"):
        T.read(str(path))


def test_the_crash_path_imports_only_zlib_for_it():
    """Importing stacktrace adds no module but itself and zlib (which the
    handler has already)."""
    code = ("import sys; before = set(sys.modules); import minicoredumper.stacktrace; "
            "print(sorted(set(sys.modules) - before))")
    out = subprocess.run([sys.executable, "-I", "-S", "-c",
                          "import sys; sys.path.insert(0, %r); %s" % (ENV["PYTHONPATH"], code)],
                         capture_output=True, text=True, check=True).stdout
    assert set(eval(out)) <= {"minicoredumper", "minicoredumper.stacktrace", "zlib"}, out


def test_a_summary_without_walks_gives_the_crashing_thread():
    """No copy of the memory, no walks: summary.json has read_stack's frames of
    the crashing thread and no frames_end or thread_frames (write_summary.build);
    its record is that thread's, one form only."""
    s = summary()
    del s["frames_end"], s["thread_frames"]
    forms = list(T.forms(s))
    assert len(forms) == 1
    t = T.decode(forms[0])
    assert [(tid, len(f), cut) for tid, f, cut in t.threads] == [(4242, 4, False)]
