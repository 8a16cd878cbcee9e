"""READ: the data an application registered with libminicoredumper (docs/FORMATS.md §7).

The list lives in the crashed (or live-dumped) process's memory and is
hostile input: the node count is bounded, cycles end the walk, every length is
capped, the bytes of all registrations together too (max_total_size: what the
handler holds and writes), idents are checked, format strings are parsed by
write_textformat and never handed to a formatter, text is formatted only as far
as it is kept, and the walk stops at the planning share of the deadline.  The
node layout is described once per ELF class here.
"""

from . import deadline
from . import write_textformat
from .config import MAX_IDENT, valid_ident

DATA_VERSION = 2
MCD_BIN = 0
MCD_TEXT = 1
PTR_DIRECT = 1
PTR_INDIRECT = 2
LENGTH_DIRECT = 4
LENGTH_INDIRECT = 8
NODUMP = 16

# struct mcd_dump_data and struct dump_data_elem, per ELF class (docs/FORMATS.md §7).
NODE_FORMATS = {
    True: ("i4xQQQI4xQQ", ("type", "ident", "dump_scope", "es", "es_n", "fmt", "next")),
    False: ("iIIIIII", ("type", "ident", "dump_scope", "es", "es_n", "fmt", "next")),
}
ELEM_FORMATS = {
    True: ("QQQi4x", ("data_ptr", "flags", "u", "fmt_type")),
    False: ("IIIi", ("data_ptr", "flags", "u", "fmt_type")),
}
MAX_ELEMS = 256
MAX_STRING = 1 << 16  # bytes read of one %s string
MAX_VALUES = 16384  # values of text registrations formatted in all (each one read)
TOTAL_REACHED = "registered data over max_total_size"


class Item:
    """One registration worth dumping."""

    def __init__(self, node, kind, ident, scope):
        self.node = node
        self.kind = kind  # "bin" or "text"
        self.ident = ident  # str or None
        self.scope = scope
        self.addr = 0  # bin: where the data is
        self.pointer_at = None  # bin, indirect: address of the pointer variable
        self.length = 0
        self.nodump = False
        self.text = b""  # text: the formatted output


def read_registrations(mem, layout, arch, head_addr, version_addr, limits, warn,
                       scope=0xFFFFFFFF):
    """Items registered in a process with a dump_scope up to scope, in
    registration order (the others are passed over unread).

    limits: dict with max_items, max_item_size and max_total_size (bytes of
    data and text of all items together; a NODUMP item counts none); warn(msg)
    is told about everything skipped or cut.
    """
    from .elf import StructType
    L = layout
    raw = mem.read_exact(version_addr, 4)
    if raw is None or L.s32.unpack(raw)[0] != DATA_VERSION:
        warn("libminicoredumper data version %s is not %d: registrations skipped"
             % (L.s32.unpack(raw)[0] if raw else "unreadable", DATA_VERSION))
        return []
    nfmt, nfields = NODE_FORMATS[L.is64]
    efmt, efields = ELEM_FORMATS[L.is64]
    node_t = StructType(L.byteorder + nfmt, nfields)
    elem_t = StructType(L.byteorder + efmt, efields)
    raw = mem.read_exact(head_addr, L.wordsize)
    node = L.word.unpack(raw)[0] if raw else 0
    seen = set()
    items = []
    room = Room(limits["max_total_size"], warn)
    while node:
        if deadline.expired(deadline.PLAN_SHARE):
            warn("deadline: registrations after the first %d left out" % len(seen))
            break
        if node in seen:
            warn("registration list has a cycle at %#x: walk stopped" % node)
            break
        if len(seen) >= limits["max_items"]:
            warn("more than %d registrations: the rest skipped" % limits["max_items"])
            break
        seen.add(node)
        raw = mem.read_exact(node, node_t.size)
        if raw is None:
            warn("registration node at %#x unreadable: walk stopped" % node)
            break
        n = node_t.unpack(raw)
        item = _read_item(mem, L, arch, n, node, elem_t, limits, room, warn) \
            if n.dump_scope <= scope else None
        if item is not None:
            items.append(item)
        node = n.next
    return items


class Room:
    """What is left of max_total_size (left, bytes) and of MAX_VALUES (values)
    for the registrations still to come; each limit reached is said once."""

    def __init__(self, total, warn):
        self.left = total
        self.values = MAX_VALUES
        self.warn = warn
        self.said = set()

    def reached(self, node, what):
        """Log that a limit cut registration node (once per limit)."""
        if what not in self.said:
            self.said.add(what)
            self.warn("registration %#x: %s: cut here, the rest left out" % (node, what))

    def take(self, node, want):
        """The bytes node may have of the want it asks for (0: none left)."""
        got = min(want, self.left)
        self.left -= got
        if got < want:
            self.reached(node, TOTAL_REACHED)
        return got

    def take_values(self, node, n):
        """True if n more text values may be formatted (then counted)."""
        if n > self.values:
            self.reached(node, "more than %d text values" % MAX_VALUES)
            return False
        self.values -= n
        return True


def _read_item(mem, L, arch, n, node, elem_t, limits, room, warn):
    ident = None
    if n.ident:
        raw = mem.read_cstring(n.ident, MAX_IDENT + 1)
        ident = raw.decode("utf-8", "replace") if raw is not None else None
        if ident is None or not valid_ident(ident):
            warn("registration %#x: ident %r rejected" % (node, ident))
            return None
    if n.type not in (MCD_BIN, MCD_TEXT) or not 0 < n.es_n <= MAX_ELEMS:
        warn("registration %#x: type %d with %d elements skipped" % (node, n.type, n.es_n))
        return None
    if n.type == MCD_BIN and n.es_n != 1:
        warn("registration %#x: binary with %d elements skipped" % (node, n.es_n))
        return None
    if n.type == MCD_TEXT and not (room.take(node, 1) and room.take_values(node, n.es_n)):
        return None  # nothing of it would be kept: not parsed
    raw = mem.read_exact(n.es, n.es_n * elem_t.size)
    if raw is None:
        warn("registration %#x: elements unreadable" % node)
        return None
    elems = [elem_t.unpack(raw, i * elem_t.size) for i in range(n.es_n)]
    if n.type == MCD_BIN:
        return _bin_item(mem, L, n, node, ident, elems[0], limits, room, warn)
    if ident is None:
        warn("registration %#x: text without an ident skipped" % node)
        return None
    return _text_item(mem, L, arch, n, node, ident, elems, limits, room, warn)


def _bin_item(mem, L, n, node, ident, e, limits, room, warn):
    item = Item(node, "bin", ident, n.dump_scope)
    addr = e.data_ptr
    if e.flags & PTR_INDIRECT:
        raw = mem.read_exact(addr, L.wordsize)
        if raw is None:
            warn("registration %#x: pointer at %#x unreadable" % (node, addr))
            return None
        item.pointer_at = addr
        addr = L.word.unpack(raw)[0]
    length = e.u
    if e.flags & LENGTH_INDIRECT:
        raw = mem.read_exact(e.u, L.wordsize)
        if raw is None:
            warn("registration %#x: length at %#x unreadable" % (node, e.u))
            return None
        length = L.word.unpack(raw)[0]
    if length > limits["max_item_size"]:
        warn("registration %#x: %d bytes capped to %d" % (node, length, limits["max_item_size"]))
        length = limits["max_item_size"]
    item.nodump = bool(e.flags & NODUMP)
    if length and not item.nodump:
        length = room.take(node, length)
        if not length:
            return None
    item.addr = addr
    item.length = length
    return item


def _text_item(mem, L, arch, n, node, ident, elems, limits, room, warn):
    fmt = mem.read_cstring(n.fmt, write_textformat.MAX_FORMAT + 1) if n.fmt else None
    if fmt is None:
        warn("registration %#x: format unreadable or too long" % node)
        return None
    try:
        parts = write_textformat.parse(fmt)
    except write_textformat.FormatError as e:
        warn("registration %#x (%s): %s" % (node, ident, e))
        return None
    directives = [p for p in parts if not isinstance(p, bytes)]
    if len(directives) != len(elems):
        warn("registration %#x (%s): %d directives but %d values" % (
            node, ident, len(directives), len(elems)))
        return None
    # Formatted only as far as it is kept: a %s string is read up to its
    # precision and to what is left of the item's room plus the most padding
    # could shift (MAX_WIDTH): the bytes kept are those of the whole string's.
    by_total = room.left + 1 < limits["max_item_size"]
    cap = min(limits["max_item_size"], room.left + 1)  # the byte taken to look
    whole = min(limits["max_item_size"], MAX_STRING)  # what a %s may be
    out = []
    size = 0
    values = iter(elems)
    for p in parts:
        if size >= cap:
            size += 1  # more would follow: the text is cut
            break
        if isinstance(p, bytes):
            out.append(p)
            size += len(p)
            continue
        e = next(values)
        if p.conv == "s":
            limit = min(whole, cap - size + write_textformat.MAX_WIDTH + 1,
                        whole if p.precision is None else p.precision + 1)
            s = mem.read_cstring(e.data_ptr, limit) if e.data_ptr else b"(null)"
            if s is None and limit < whole:  # longer than what is kept of it
                s = mem.read(e.data_ptr, limit) or None
            value = s if s is not None else b"<unreadable>"
        else:
            nbytes = p.value_size(L.wordsize, arch.long_double[1])
            raw = mem.read_exact(e.data_ptr, nbytes)
            if raw is None:
                out.append(b"<unreadable>")
                size += len(out[-1])
                continue
            value = write_textformat.decode_value(p, raw, L.byteorder, arch.long_double)
        out.append(write_textformat.render(p, value))
        size += len(out[-1])
    item = Item(node, "text", ident, n.dump_scope)
    item.text = b"".join(out)[:cap]
    room.take(node, len(item.text) - 1)
    if by_total and size > cap:
        room.reached(node, TOTAL_REACHED)
    return item
