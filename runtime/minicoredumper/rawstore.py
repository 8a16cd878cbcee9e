"""The raw store: dumps as records in a ring of fixed-size slots on a device
without a file system (docs/FORMATS.md §12), for the handler, which writes
them (publish_rawstore), and mcd, which reads and imports them (tool_rawstore).

A slot holds, in order of writing: a stamp (the record's sequence number,
first bytes of the slot), the payload (the dump's files in a small TLV
container), and last, in the slot's final bytes, the header (magic, format
version, sequence number, payload size and CRC32, geometry, the header's own
CRC32).  Each part reaches the device (fsync, or an MTD write, which is
synchronous) before the next is written: the header is the commit.  A slot is
presented as a record only if its header, its stamp and its payload all
check out, so a power cut at any point leaves the previous records and at
most one torn slot, which is ignored.

The devices: a plain file or block device (pwrite, fsync), an nvmem device
(/sys/bus/nvmem/devices/NAME/nvmem: byte writes, no erase) and an MTD
partition (/dev/mtdN: MEMGETINFO for its geometry, MEMERASE of the slot
before writing it, writes in whole pages; NOR and NAND).  On NAND, a slot
with a bad erase block (MEMGETBADBLOCK) is skipped, and a block whose erase
or write fails is marked bad (MEMSETBADBLOCK); on any MTD the record then
goes into the next good slot.
"""

import errno
import os
import struct
import zlib

# docs/FORMATS.md §12; little-endian whatever the machine, so that any host reads it.
HEADER = struct.Struct("<4sBBHIIIII")  # + its CRC32: 32 bytes with HEADER_CRC
HEADER_CRC = struct.Struct("<I")
HEADER_SIZE = HEADER.size + HEADER_CRC.size
HEADER_MAGIC = b"MCDr"
STAMP = struct.Struct("<4sIII")  # magic, sequence, payload size, CRC32 of the first 12 bytes
STAMP_MAGIC = b"MCDs"
VERSION = 1
ENTRY = struct.Struct("<HI")  # payload entry: path length, data length (then path, data)
SEQ_MASK = 0xFFFFFFFF
SEQ_HALF = 1 << 31
DEFAULT_SLOT_SIZE = 4096
# Slots a record tries on MTD when erases or writes fail: each try erases a slot's
# record, and a flash on which more blocks than that fail in a row is failing.
WRITE_ATTEMPTS = 3


class StoreError(OSError):
    """A store that cannot be used: the device, its geometry, a record too big
    (an OSError, as the device's own errors are, with the message as its text)."""


def newer(a, b):
    """True if sequence number a is newer than b, across the wrap at 2**32
    (serial number arithmetic, RFC 1982: a is newer when it is less than
    2**31 ahead of b)."""
    return 0 < ((a - b) & SEQ_MASK) < SEQ_HALF


def entry_size(rel, size):
    """Bytes a file of size bytes called rel takes in the payload."""
    return ENTRY.size + len(rel.encode("utf-8", "surrogateescape")) + size


def pack_payload(name, files):
    """The payload of a dump called name with files [(rel, bytes)]: a first
    entry with an empty path whose data is the name, then one per file."""
    out = []
    for rel, data in [("", name.encode("utf-8", "surrogateescape"))] + list(files):
        path = rel.encode("utf-8", "surrogateescape")
        out += [ENTRY.pack(len(path), len(data)), path, data]
    return b"".join(out)


def unpack_payload(payload):
    """(name, [(rel, bytes)]) of a payload; StoreError if malformed (an entry
    running past the end, a path that is absolute, empty or has "..")."""
    entries = []
    pos = 0
    while pos < len(payload):
        if pos + ENTRY.size > len(payload):
            raise StoreError("payload entry at %d is cut off" % pos)
        n, size = ENTRY.unpack_from(payload, pos)
        pos += ENTRY.size
        if pos + n + size > len(payload):
            raise StoreError("payload entry at %d runs past the end" % (pos - ENTRY.size))
        rel = payload[pos:pos + n].decode("utf-8", "surrogateescape")
        entries.append((rel, payload[pos + n:pos + n + size]))
        pos += n + size
    if not entries or entries[0][0]:
        raise StoreError("payload does not start with the dump's name")
    name = entries[0][1].decode("utf-8", "surrogateescape")
    if not name or "/" in name or name.startswith("."):
        raise StoreError("payload names no usable dump directory (%r)" % name)
    for rel, _ in entries[1:]:
        parts = rel.split("/")
        if not rel or rel.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise StoreError("payload holds an unusable path %r" % rel)
    return name, entries[1:]


class Slot:
    """What one slot holds: index, state ("record": a valid record; "blank";
    "torn": a stamp without a valid record; "damaged": neither; "bad": a bad
    erase block of a NAND flash, not read), sequence
    (of the stamp, None without one), size (the payload's), crc, why (what
    does not check out)."""

    def __init__(self, index, state, sequence=None, size=0, crc=0, why=""):
        self.index, self.state, self.sequence = index, state, sequence
        self.size, self.crc, self.why = size, crc, why


class Store:
    """A raw store on device (a path): slot_size bytes per slot (0: the MTD
    erase block, else DEFAULT_SLOT_SIZE), slots of them (0: as many as the
    device holds).  write: opened for writing.  StoreError if the device
    cannot be opened or the geometry does not fit it."""

    def __init__(self, device, slot_size=0, slots=0, write=False):
        self.device = device
        try:
            self.fd = os.open(device, (os.O_RDWR if write else os.O_RDONLY) | os.O_CLOEXEC)
        except OSError as e:
            raise StoreError("%s: %s" % (device, e.strerror or e)) from None
        try:
            self._geometry(slot_size, slots)
        except BaseException:
            os.close(self.fd)
            raise

    def _geometry(self, slot_size, slots):
        import stat
        st = os.fstat(self.fd)
        self.mtd = None
        self.unit = 1  # bytes written at a time: the page of a NAND flash
        self.erase = 0  # erase block (MTD only)
        self.bad_blocks = False  # a NAND flash: its bad blocks are skipped
        if stat.S_ISCHR(st.st_mode):
            from .linux import MTD_MLCNANDFLASH, MTD_NANDFLASH
            self.mtd = mtd_info(self.fd, self.device)
            self.size = self.mtd["size"]
            self.erase = self.mtd["erasesize"]
            self.unit = max(1, self.mtd["writesize"])
            self.bad_blocks = self.mtd["type"] in (MTD_NANDFLASH, MTD_MLCNANDFLASH)
        elif stat.S_ISREG(st.st_mode) and not self.device.startswith("/sys/"):
            self.size = st.st_size
        else:  # a block device, or sysfs's nvmem file, which has the device's size
            self.size = st.st_size if stat.S_ISREG(st.st_mode) else os.lseek(self.fd, 0, 2)
        self.slot_size = slot_size or self.erase or DEFAULT_SLOT_SIZE
        if self.erase and self.slot_size % self.erase:
            raise StoreError("%s: slot size %d is not a multiple of the erase block (%d)"
                             % (self.device, self.slot_size, self.erase))
        # The header has write units of its own, after the payload's.
        self.header_room = -(-HEADER_SIZE // self.unit) * self.unit
        if self.slot_size < STAMP.size + self.header_room + 1:
            raise StoreError("%s: slot size %d leaves no room for a payload"
                             % (self.device, self.slot_size))
        self.slots = slots or self.size // self.slot_size
        if self.slots < 1 or self.slots * self.slot_size > self.size:
            raise StoreError("%s: %d slots of %d bytes do not fit its %d bytes"
                             % (self.device, self.slots, self.slot_size, self.size))

    @property
    def room(self):
        """The largest payload a slot holds, in bytes."""
        return self.slot_size - STAMP.size - self.header_room

    def close(self):
        os.close(self.fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- reading ---------------------------------------------------------
    def _read(self, offset, n):
        data = os.pread(self.fd, n, offset)
        if len(data) != n:
            raise OSError(0, "short read: %d of %d bytes at %d" % (len(data), n, offset))
        return data

    def read_slot(self, index):
        """(Slot, payload bytes or None): what slot index holds, checked."""
        base = index * self.slot_size
        bad = self.bad_block(index)
        if bad is not None:
            return Slot(index, "bad", why="bad erase block at %#x" % bad), None
        try:
            head = self._read(base + self.slot_size - HEADER_SIZE, HEADER_SIZE)
            stamp = self._read(base, STAMP.size)
        except OSError as e:  # an MTD read that ECC cannot correct: a torn page
            return Slot(index, "damaged", why="unreadable: %s" % (e.strerror or e)), None
        seq, stamp_size = check_stamp(stamp)
        fields = check_header(head)
        if fields is None:
            blank = head in (b"\xff" * HEADER_SIZE, bytes(HEADER_SIZE))
            if seq is not None:
                return Slot(index, "torn", seq, why="no valid header"), None
            return Slot(index, "blank" if blank else "damaged", why="no valid header"), None
        _, version, _, _, hseq, size, crc, slot_size, _ = fields
        if version != VERSION:
            return Slot(index, "damaged", seq, why="format version %d" % version), None
        if slot_size != self.slot_size or size > self.room:
            return Slot(index, "damaged", seq, why="written for %d-byte slots, payload %d"
                        % (slot_size, size)), None
        if seq != hseq or stamp_size != size:
            return Slot(index, "torn", seq, why="header of record %d, stamp of %s"
                        % (hseq, "none" if seq is None else seq)), None
        try:
            payload = self._read(base + STAMP.size, size)
        except OSError as e:
            return Slot(index, "torn", seq, why="payload unreadable: %s"
                        % (e.strerror or e)), None
        if zlib.crc32(payload) != crc:
            return Slot(index, "torn", seq, why="payload CRC32 %08x, the header says %08x"
                        % (zlib.crc32(payload), crc)), None
        return Slot(index, "record", seq, size, crc), payload

    def scan(self):
        """Every slot's Slot, in slot order (payloads not kept)."""
        return [self.read_slot(i)[0] for i in range(self.slots)]

    def records(self):
        """[(Slot, payload)] of the valid records, oldest first."""
        found = [s for s in (self.read_slot(i) for i in range(self.slots))
                 if s[0].state == "record"]
        last = newest([s for s, _ in found])
        if last is None:
            return []
        return sorted(found, key=lambda s: (s[0].sequence - last.sequence - 1) & SEQ_MASK)

    # --- writing ---------------------------------------------------------
    def next_slot(self, slots=None):
        """(slot index, sequence number) the next record gets: the first good
        slot after the newest stamp, valid record or torn (so that a crash
        loop, torn by power cuts or not, goes round all the slots); the first
        good slot and sequence 0 on a store never written.  StoreError if
        every slot has a bad block."""
        slots = slots or self.scan()
        last = newest([s for s in slots if s.sequence is not None])
        if last is None:
            return self.good_slot(0, slots), 0
        return self.good_slot(last.index + 1, slots), (last.sequence + 1) & SEQ_MASK

    def good_slot(self, index, slots=None):
        """The first slot from index on (round the ring) without a bad block;
        slots: their Slots, if known.  StoreError if there is none."""
        for n in range(self.slots):
            i = (index + n) % self.slots
            if (slots[i].state != "bad") if slots else self.bad_block(i) is None:
                return i
        raise StoreError("%s: every slot has a bad erase block" % self.device)

    def bad_block(self, index):
        """The offset of a bad erase block in slot index (MEMGETBADBLOCK), or
        None: always None but on a NAND flash."""
        if not self.bad_blocks:
            return None
        base = index * self.slot_size
        for offset in range(base, base + self.slot_size, self.erase):
            if self._mtd_isbad(offset):
                return offset
        return None

    def write(self, payload, sequence=None):
        """Write payload (bytes) as the next record; returns (slot, sequence).
        sequence: given instead of the next one (tests of the wrap).
        On MTD, a slot whose erase or write fails with EIO has the failing
        erase block marked bad (NAND) and the record goes into the next good
        slot, with the next sequence number (so that a mark that did not
        hold, or a flash without bad blocks, never leaves two stamps of one
        number, and a block that fails again and again never stops the ring),
        in WRITE_ATTEMPTS slots at most.  StoreError if it is larger than a
        slot holds or no good slot is left; OSError from the device (on MTD,
        the last one when every slot tried failed)."""
        if len(payload) > self.room:
            raise StoreError("a %d-byte payload does not fit %d-byte slots (%d bytes of "
                             "payload)" % (len(payload), self.slot_size, self.room))
        index, seq = self.next_slot()
        if sequence is not None:
            seq = sequence & SEQ_MASK
        for _ in range(min(WRITE_ATTEMPTS, self.slots)):
            try:
                self._write_slot(index, seq, payload)
                return index, seq
            except BlockFailed as e:
                error = e.error
                self.mark_bad(e.offset)
            index, seq = self.good_slot(index + 1), (seq + 1) & SEQ_MASK
        raise error

    def _write_slot(self, index, seq, payload):
        base = index * self.slot_size
        stamp = stamp_bytes(seq, len(payload))
        header = header_bytes(seq, len(payload), zlib.crc32(payload), self.slot_size,
                              self.slots)
        if self.mtd is not None:
            self._erase(base)
            self._program(base, stamp + payload)
            self._program(base + self.slot_size - self.header_room, header, pad_before=True)
        else:
            # The stamp first: from here on the slot's old record is no longer valid.
            self._put(base, stamp)
            self._put(base + STAMP.size, payload)
            self._put(base + self.slot_size - HEADER_SIZE, header)  # the commit
        return index, seq

    def _put(self, offset, data):
        _write_all(self.fd, data, offset)
        self._flush()

    def _flush(self):
        try:
            os.fsync(self.fd)
        except OSError as e:
            if e.errno != 22:  # EINVAL: sysfs (nvmem) writes are done when write returns
                raise

    def _erase(self, base):
        """Erase the slot at base, an erase block at a time (BlockFailed names
        the one that failed)."""
        for offset in range(base, base + self.slot_size, self.erase):
            with failing_block(offset):
                self._mtd_erase(offset)

    def _program(self, offset, data, pad_before=False):
        """Write data in whole write units (a NAND page is written once per
        erase), padded with 0xff, the erased state; before it with pad_before.
        One write per erase block (BlockFailed names the one that failed)."""
        pad = -len(data) % self.unit
        view = memoryview(b"\xff" * pad + data if pad_before else data + b"\xff" * pad)
        while view:
            n = min(len(view), self.erase - offset % self.erase)
            with failing_block(offset - offset % self.erase):
                self._mtd_write(offset, view[:n])
            offset, view = offset + n, view[n:]

    def mark_bad(self, offset):
        """Mark the erase block at offset bad: True if it now reads as bad (NAND
        drivers note it in their table even when writing the marker into the
        block itself fails), False on a flash without bad blocks or if the
        mark did not hold."""
        if not self.bad_blocks:
            return False
        try:
            self._mtd_markbad(offset)
        except OSError:
            pass  # told by the check below
        return self._mtd_isbad(offset)

    # --- the MTD's operations, an erase block (at offset) at a time --------
    def _mtd_erase(self, offset):
        import fcntl
        from .linux import ERASE_INFO_USER, MEMERASE
        fcntl.ioctl(self.fd, MEMERASE, ERASE_INFO_USER.pack(offset, self.erase))

    def _mtd_write(self, offset, data):
        _write_all(self.fd, data, offset)  # mtdchar: done when write returns

    def _mtd_isbad(self, offset):
        import fcntl
        from .linux import LOFF_T, MEMGETBADBLOCK
        return fcntl.ioctl(self.fd, MEMGETBADBLOCK, bytearray(LOFF_T.pack(offset))) == 1

    def _mtd_markbad(self, offset):
        import fcntl
        from .linux import LOFF_T, MEMSETBADBLOCK
        fcntl.ioctl(self.fd, MEMSETBADBLOCK, bytearray(LOFF_T.pack(offset)))


class BlockFailed(Exception):
    """An erase or write of the erase block at offset failed with EIO (error)."""

    def __init__(self, offset, error):
        Exception.__init__(self, offset, error)
        self.offset, self.error = offset, error


class failing_block:
    """Context: an EIO inside becomes BlockFailed(offset)."""

    def __init__(self, offset):
        self.offset = offset

    def __enter__(self):
        return self

    def __exit__(self, kind, error, tb):
        if isinstance(error, OSError) and error.errno == errno.EIO:
            raise BlockFailed(self.offset, error) from None
        return False


def _write_all(fd, data, offset):
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        offset += n
        view = view[n:]


def mtd_info(fd, device):
    """{type, flags, size, erasesize, writesize, oobsize} of an MTD device
    (MEMGETINFO); StoreError if fd is a character device of another kind."""
    import fcntl
    from .linux import MEMGETINFO, MTD_INFO_FIELDS, MTD_INFO_USER
    try:
        raw = fcntl.ioctl(fd, MEMGETINFO, bytes(MTD_INFO_USER.size))
    except OSError as e:
        raise StoreError("%s: not an MTD device (MEMGETINFO: %s)"
                         % (device, e.strerror or e)) from None
    return dict(zip(MTD_INFO_FIELDS, MTD_INFO_USER.unpack(raw)))


def newest(slots):
    """The Slot of the newest sequence number among slots (None if none)."""
    last = None
    for s in slots:
        if last is None or newer(s.sequence, last.sequence):
            last = s
    return last


def stamp_bytes(seq, size):
    head = STAMP.pack(STAMP_MAGIC, seq, size, 0)[:12]
    return head + HEADER_CRC.pack(zlib.crc32(head))


def check_stamp(raw):
    """(sequence, payload size) of a valid stamp, else (None, None)."""
    magic, seq, size, crc = STAMP.unpack(raw)
    if magic != STAMP_MAGIC or zlib.crc32(raw[:12]) != crc:
        return None, None
    return seq, size


def header_bytes(seq, size, crc, slot_size, slots):
    head = HEADER.pack(HEADER_MAGIC, VERSION, HEADER_SIZE, 0, seq, size, crc, slot_size, slots)
    return head + HEADER_CRC.pack(zlib.crc32(head))


def check_header(raw):
    """The HEADER fields of a valid header (magic, header CRC, its size), else None."""
    head = raw[:HEADER.size]
    fields = HEADER.unpack(head)
    if (fields[0] != HEADER_MAGIC or fields[2] != HEADER_SIZE
            or HEADER_CRC.unpack(raw[HEADER.size:])[0] != zlib.crc32(head)):
        return None
    return fields
