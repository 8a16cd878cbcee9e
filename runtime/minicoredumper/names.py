"""Names the crashed process hands us, made safe for our files: idents of
registered data and recept buffers (dumps/PID/IDENT, symbol.map lines) and
the dump directory's name from the comm (docs/FORMATS.md §4, §6, §7)."""

import time

MAX_IDENT = 255


def valid_ident(ident):
    """An ident usable as the file name dumps/PID/IDENT (docs/FORMATS.md §7's rules, plus no
    control characters, which would also break symbol.map lines)."""
    return (bool(ident) and ident not in (".", "..") and "/" not in ident
            and len(ident) <= MAX_IDENT and ident.isprintable())


def safe_name(text, limit=64):
    """A name usable as one path component."""
    out = "".join(c if c.isprintable() and c not in "/\\" else "_" for c in text[:limit])
    return out if out.strip(".") else "_" + out


def dump_name(comm, timestamp, pid):
    """<comm>.<YYYYmmdd.HHMMSS±zzzz>.<pid>: the dump directory's name (docs/FORMATS.md §4)."""
    stamp = time.strftime("%Y%m%d.%H%M%S%z", time.localtime(timestamp))
    return "%s.%s.%d" % (safe_name(comm or "unknown"), stamp, pid)
