"""WRITE: printf-style text of registered data, formatted by us, never by libc.

The format string comes from a crashed process: it is parsed here into
literal text and directives, each directive checked against what we support
(d i u x X o c s p f e E g G with h hh l ll z L, and %%), with width and
precision capped.  Each value is then formatted with a format spec built from
the checked parts only.  Output matches C's printf for the supported set.
"""

import struct

FLAGS = "-+ #0"
MAX_WIDTH = 512
MAX_FORMAT = 4096
INT_CONV = "diuxXoc"
FLOAT_CONV = "feEgG"


class FormatError(ValueError):
    pass


class Directive:
    __slots__ = ("flags", "width", "precision", "length", "conv")

    def __init__(self, flags, width, precision, length, conv):
        self.flags = flags
        self.width = width
        self.precision = precision
        self.length = length
        self.conv = conv

    def value_size(self, wordsize, long_double_size):
        """Bytes of the variable a registration points to for this directive."""
        if self.conv in "sp":
            return wordsize if self.conv == "p" else 0
        if self.conv in FLOAT_CONV:
            return long_double_size if self.length == "L" else 8
        if self.conv == "c":
            return 1
        return {"hh": 1, "h": 2, "": 4, "l": wordsize, "ll": 8, "z": wordsize}[self.length]


def parse(fmt):
    """Split fmt into literal byte strings and Directives; FormatError if unsupported."""
    if len(fmt) > MAX_FORMAT:
        raise FormatError("format longer than %d bytes" % MAX_FORMAT)
    parts = []
    i = 0
    n = len(fmt)
    lit = bytearray()
    while i < n:
        c = fmt[i]
        if c != 0x25:  # '%'
            lit.append(c)
            i += 1
            continue
        i += 1
        if i < n and fmt[i] == 0x25:
            lit.append(0x25)
            i += 1
            continue
        flags = ""
        while i < n and chr(fmt[i]) in FLAGS:
            flags += chr(fmt[i])
            i += 1
        width = _number(fmt, i)
        i += len(str(width)) if width is not None else 0
        precision = None
        if i < n and fmt[i] == 0x2E:  # '.'
            i += 1
            precision = _number(fmt, i) or 0
            while i < n and 0x30 <= fmt[i] <= 0x39:
                i += 1
        length = ""
        for mod in ("hh", "ll", "h", "l", "z", "L"):
            if fmt[i:i + len(mod)] == mod.encode():
                length = mod
                i += len(mod)
                break
        if i >= n:
            raise FormatError("format ends inside a directive")
        conv = chr(fmt[i])
        i += 1
        if conv not in INT_CONV + FLOAT_CONV + "sp":
            raise FormatError("unsupported conversion %%%s" % conv)
        allowed = ("", "l", "L") if conv in FLOAT_CONV else ("",) if conv in "csp" else (
            "", "hh", "h", "l", "ll", "z")
        if length not in allowed:
            raise FormatError("length %r does not go with %%%s" % (length, conv))
        if (width or 0) > MAX_WIDTH or (precision or 0) > MAX_WIDTH:
            raise FormatError("width or precision above %d" % MAX_WIDTH)
        if lit:
            parts.append(bytes(lit))
            lit = bytearray()
        parts.append(Directive(flags, width, precision, length, conv))
    if lit:
        parts.append(bytes(lit))
    return parts


def _number(fmt, i):
    j = i
    while j < len(fmt) and 0x30 <= fmt[j] <= 0x39:
        j += 1
        if j - i > 4:
            raise FormatError("width or precision above %d" % MAX_WIDTH)
    return int(fmt[i:j]) if j > i else None


def decode_value(d, raw, byteorder, long_double):
    """The Python value of a directive's variable from its raw bytes."""
    if d.conv in FLOAT_CONV:
        if d.length == "L":
            return _long_double(raw, byteorder, long_double[0])
        return struct.unpack(byteorder + "d", raw)[0]
    signed = d.conv in "di"
    return int.from_bytes(raw, "little" if byteorder == "<" else "big", signed=signed)


def _long_double(raw, byteorder, encoding):
    big = byteorder == ">"
    if encoding == "double":
        return struct.unpack(byteorder + "d", raw[:8])[0]
    if encoding == "x87":
        b = raw[:10]
        mant = int.from_bytes(b[:8], "big" if big else "little")
        se = int.from_bytes(b[8:10], "big" if big else "little")
        frac_bits, bias, exp_max = 63, 16383, 0x7FFF
    else:  # quad
        v = int.from_bytes(raw[:16], "big" if big else "little")
        se = v >> 112
        mant = (v & ((1 << 112) - 1)) | (1 << 112 if se & 0x7FFF else 0)
        frac_bits, bias, exp_max = 112, 16383, 0x7FFF
    sign = -1.0 if se & 0x8000 else 1.0
    exp = se & 0x7FFF
    if exp == exp_max:
        return sign * float("inf") if mant & ((1 << frac_bits) - 1) == 0 else float("nan")
    if exp == 0:
        exp = 1
    try:
        return sign * float.fromhex("0x%xp%d" % (mant, exp - bias - frac_bits))
    except OverflowError:
        return sign * float("inf")  # printf prints inf for a value beyond a double, as libc would


def render(d, value):
    """One directive as bytes, like C's printf."""
    if d.conv == "s":
        text = value.decode("latin-1")
        if d.precision is not None:
            text = text[:d.precision]
        return _pad(d, text, numeric=False).encode("latin-1")
    if d.conv == "c":
        return _pad(d, chr(value & 0xFF), numeric=False).encode("latin-1")
    if d.conv == "p":
        return _pad(d, "0x%x" % value if value else "(nil)", numeric=False).encode()
    if d.conv in FLOAT_CONV:
        # C pads inf and nan with spaces even under the 0 flag.
        flags = d.flags if value - value == 0 else d.flags.replace("0", "")
        return (("%" + flags + _wp(d) + d.conv) % value).encode()
    conv = "d" if d.conv in "iu" else d.conv
    if conv == "o" and "#" in d.flags:
        digits = ("%" + _wp(d, width=False) + "o") % value
        if not digits.startswith("0"):
            digits = "0" + digits
        return _pad(d, digits, numeric=d.precision is None).encode()
    # C ignores the 0 flag of an integer conversion that has a precision, and
    # prints nothing for a zero value with precision 0.
    # Unsigned conversions have no sign, so C ignores + and space there.
    flags = d.flags.replace("0", "") if d.precision is not None else d.flags
    if d.conv in "uxXo":
        flags = flags.replace("+", "").replace(" ", "")
    if value == 0 and d.conv in "xX":
        flags = flags.replace("#", "")  # C writes no 0x before a zero
    if d.precision == 0 and value == 0:
        sign = "+" if "+" in flags else " " if " " in flags else ""
        return _pad(d, "0" if conv == "o" and "#" in flags else sign, numeric=False).encode()
    return (("%" + flags + _wp(d) + conv) % value).encode()


def _wp(d, width=True):
    out = str(d.width) if width and d.width else ""
    if d.precision is not None:
        out += "." + str(d.precision)
    return out


def _pad(d, text, numeric):
    w = d.width or 0
    if len(text) >= w:
        return text
    if "-" in d.flags:
        return text.ljust(w)
    if numeric and "0" in d.flags:
        return text.rjust(w, "0")
    return text.rjust(w)
