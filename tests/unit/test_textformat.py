"""Our printf renderer against C's printf: thousands of specs, compiled and run."""

import shutil
import struct
import subprocess

import pytest

from minicoredumper import write_textformat as T

INTS = [0, 1, -1, 42, -42, 255, 65535, 2 ** 31 - 1, -2 ** 31, 123456789]
FLOATS = [0.0, 1.5, -3.25, 1e10, 1.0 / 3, 123456.789, -0.0001234, float("inf")]


def _cases():
    cases = []
    for conv in "diuxXo":
        for flags in ["", "-", "+", " ", "#", "0", "-#", "+0", "#0"]:
            for wp in ["", "8", ".3", "10.5", "1", ".0"]:
                cases += [("%" + flags + wp + conv, v) for v in INTS]
    for conv in "feEgG":
        for flags in ["", "-", "+", " ", "#", "0"]:
            for wp in ["", "12", ".3", "15.6", ".0"]:
                cases += [("%" + flags + wp + conv, v) for v in FLOATS]
    for flags in ["", "-"]:
        for wp in ["", "6", ".2"]:
            cases.append(("%" + flags + wp + "c", ord("Q")))
            cases.append(("%" + flags + wp + "s", "abc"))
    return cases


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
def test_render_matches_c_printf(tmp_path):
    cases = _cases()
    lines = ["#include <stdio.h>", "#include <math.h>", "int main(void) {"]
    for fmt, v in cases:
        if isinstance(v, float):
            lit = "INFINITY" if v == float("inf") else repr(v)
            lines.append('printf("[%s]\\n", (double)%s);' % (fmt, lit))
        elif isinstance(v, str):
            lines.append('printf("[%s]\\n", "%s");' % (fmt, v))
        elif fmt.endswith("c"):
            lines.append('printf("[%s]\\n", %d);' % (fmt, v))
        else:
            lines.append('printf("[%s]\\n", (int)%d);' % (fmt, v))
    lines.append("return 0; }")
    (tmp_path / "p.c").write_text("\n".join(lines))
    subprocess.run(["gcc", "-w", "-o", str(tmp_path / "p"), str(tmp_path / "p.c")], check=True)
    expected = subprocess.run([str(tmp_path / "p")], capture_output=True,
                              check=True).stdout.split(b"\n")
    for (fmt, v), want in zip(cases, expected):
        d = T.parse(fmt.encode())[0]
        if isinstance(v, float):
            value = v
        elif isinstance(v, str):
            value = v.encode()
        elif d.conv == "c":
            value = v
        else:
            value = T.decode_value(d, struct.pack("<i", v), "<", ("x87", 16))
        assert b"[" + T.render(d, value) + b"]" == want, (fmt, v)


@pytest.mark.parametrize("fmt", [b"%n", b"%s%n", b"%*d", b"%1$d", b"%ls", b"%Ld", b"%hs",
                                 b"%99999d", b"%.99999f", b"abc%", b"%q", b"%lc"])
def test_unsupported_or_dangerous_formats_are_refused(fmt):
    with pytest.raises(T.FormatError):
        T.parse(fmt)


def test_literals_and_percent():
    parts = T.parse(b'100%% s="%s" *i=%d\n')
    assert parts[0] == b'100% s="' and parts[2] == b'" *i=' and parts[4] == b"\n"
    assert [p.conv for p in parts if not isinstance(p, bytes)] == ["s", "d"]


@pytest.mark.parametrize("encoding,raw,value", [
    ("x87", bytes.fromhex("00000000000000a00040") + bytes(6), 2.5),
    ("x87", bytes.fromhex("000000000000008001c0") + bytes(6), -4.0),
    ("quad", (0x40004000000000000000000000000000).to_bytes(16, "little"), 2.5),
    ("double", struct.pack("<d", -0.75), -0.75),
])
def test_long_double_encodings(encoding, raw, value):
    d = T.parse(b"%Lf")[0]
    assert T.decode_value(d, raw, "<", (encoding, 16)) == value
