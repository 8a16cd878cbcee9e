"""The raw store's record format (docs/FORMATS.md §12) on a plain file and on a
loop device (losetup): ring wrap-around, sequence wrap, every single-byte
corruption of a header, stamp and payload detected, and a power cut at every
write boundary never giving a record that verifies but differs from what was
written."""

import os
import subprocess

import pytest

from minicoredumper import rawstore as R

SLOT = 512
SLOTS = 4


def payload(n, size=200):
    return bytes((n * 7 + i) & 0xFF for i in range(size))


@pytest.fixture(params=["file", "loop"])
def device(request, tmp_path):
    """A zero-filled store device of SLOTS slots: a plain file, or a loop device on one."""
    path = str(tmp_path / "store.img")
    with open(path, "wb") as f:
        f.write(bytes(SLOT * SLOTS))
    if request.param == "file":
        yield path
        return
    try:
        loop = subprocess.run(["losetup", "--find", "--show", path], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as e:
        pytest.skip("no loop device here: %s" % e)
    try:
        yield loop
    finally:
        subprocess.run(["losetup", "-d", loop], check=True)


def records(device):
    with R.Store(device, SLOT) as s:
        return [(slot.sequence, slot.index, data) for slot, data in s.records()]


def test_geometry_from_the_device(device):
    with R.Store(device, SLOT) as s:
        assert (s.slots, s.size, s.room) == (SLOTS, SLOT * SLOTS, SLOT - 16 - 32)
        assert [x.state for x in s.scan()] == ["blank"] * SLOTS
    with pytest.raises(R.StoreError, match="do not fit"):
        R.Store(device, SLOT, SLOTS + 1)
    with R.Store(device, SLOT, write=True) as s, pytest.raises(R.StoreError, match="fit"):
        s.write(bytes(s.room + 1))


def test_ring_wraps_round_and_keeps_the_newest(device):
    with R.Store(device, SLOT, write=True) as s:
        placed = [s.write(payload(n, 100 + n)) for n in range(10)]
    # round the ring: slot n % 4, sequence n
    assert placed == [(n % SLOTS, n) for n in range(10)]
    assert records(device) == [(n, n % SLOTS, payload(n, 100 + n)) for n in range(6, 10)]


def test_sequence_wraps_at_2_to_the_32(device):
    with R.Store(device, SLOT, write=True) as s:
        s.write(payload(0), sequence=0xFFFFFFFE)
        placed = [s.write(payload(n)) for n in range(1, 5)]
    assert placed == [(1, 0xFFFFFFFF), (2, 0), (3, 1), (0, 2)]
    # oldest first across the wrap; the next goes after the newest (sequence 2, slot 0)
    assert [seq for seq, _, _ in records(device)] == [0xFFFFFFFF, 0, 1, 2]
    with R.Store(device, SLOT) as s:
        assert s.next_slot() == (1, 3)


def test_every_single_byte_corruption_is_detected(device):
    with R.Store(device, SLOT, write=True) as s:
        s.write(payload(1, 300))
        s.write(payload(2, 300))
    with open(device, "rb") as f:
        image = f.read()
    record = list(range(0, 16 + 300)) + list(range(SLOT - 32, SLOT))  # stamp, payload, header
    fd = os.open(device, os.O_RDWR)
    try:
        for off in record:
            for flip in (0x01, 0x80, 0xFF):
                os.pwrite(fd, bytes([image[off] ^ flip]), off)
                got = records(device)
                assert got == [(1, 1, payload(2, 300))], (off, flip)
                os.pwrite(fd, image[off:off + 1], off)
    finally:
        os.close(fd)
    assert records(device) == [(0, 0, payload(1, 300)), (1, 1, payload(2, 300))]


class Recorder(R.Store):
    """A store whose writes are kept as (offset, bytes), in order, not written."""

    def __init__(self, *a, **kw):
        R.Store.__init__(self, *a, **kw)
        self.writes = []

    def _put(self, offset, data):
        self.writes.append((offset, bytes(data)))


@pytest.mark.parametrize("fill", ["old", "zero", "truncate"])
def test_power_cut_at_every_byte_never_gives_a_wrong_record(device, fill):
    # Four records fill the ring; the fifth goes over the oldest (slot 0): the cut
    # falls into a slot that holds a valid record.
    with R.Store(device, SLOT, write=True) as s:
        for n in range(4):
            s.write(payload(n, 150 + n))
    before = records(device)
    with Recorder(device, SLOT) as r:
        new = payload(9, 333)
        slot, seq = r.write(new)
    assert (slot, seq) == (0, 4)
    with open(device, "rb") as f:
        image = f.read()
    total = sum(len(d) for _, d in r.writes)
    valid_old = {(q, i): d for q, i, d in before}
    outcomes = set()
    fd = os.open(device, os.O_RDWR)
    try:
        for cut in range(total + 1):
            os.pwrite(fd, image, 0)
            left = cut
            for offset, data in r.writes:
                done = data[:left]
                os.pwrite(fd, done, offset)
                rest = len(data) - len(done)
                if left < len(data) and fill != "old":
                    # the torn write's remaining bytes: zeros (a device that clears a
                    # torn sector), or for truncate the slot's end gone to zeros too
                    end = offset + len(data) if fill == "zero" else (slot + 1) * SLOT
                    os.pwrite(fd, bytes(end - offset - len(done)), offset + len(done))
                left -= len(done)
                if rest:
                    break
            got = records(device)
            for q, i, d in got:
                if (q, i) == (seq, slot):
                    assert d == new and cut == total, cut  # only once the header is there
                else:
                    assert valid_old[(q, i)] == d, cut
            # the records in the other slots are never touched
            assert [x for x in got if x[1] != slot] == [x for x in before if x[1] != slot]
            outcomes.add(len(got))
            with R.Store(device, SLOT) as s:  # the next record goes after the attempt
                nxt = s.next_slot()
            # before the whole stamp is there, the attempt left no trace
            assert nxt == ((0, 4) if cut < 16 else (1, 5)), (cut, nxt)
    finally:
        os.close(fd)
    assert outcomes == {3, 4}  # the old record lost once the stamp is there; the new one
    assert records(device)[-1] == (4, 0, new)


def test_a_crash_loop_of_torn_writes_goes_round_every_slot(device):
    """Every write cut after its stamp and payload, before its header: the ring
    still advances, so no slot is written more often than the others."""
    with R.Store(device, SLOT, write=True) as s:
        s.write(payload(0))
    used = []
    for n in range(2 * SLOTS):
        with Recorder(device, SLOT) as r:
            slot, _ = r.write(payload(n))
        used.append(slot)
        fd = os.open(device, os.O_RDWR)
        try:
            for offset, data in r.writes[:-1]:  # no header
                os.pwrite(fd, data, offset)
        finally:
            os.close(fd)
    assert used == [1, 2, 3, 0, 1, 2, 3, 0]
    with R.Store(device, SLOT) as s:
        assert [x.state for x in s.scan()] == ["torn"] * SLOTS


def test_payload_container_round_trip_and_refusals():
    files = [("summary.txt", b"pid 1\n"), ("core.xz", bytes(range(256))),
             ("dumps/12/buf", b"")]
    p = R.pack_payload("crash3.20260101.120000+0000.12", files)
    assert len(p) == sum(R.entry_size(r, len(d)) for r, d in
                         [("", b"crash3.20260101.120000+0000.12")] + files)
    assert R.unpack_payload(p) == ("crash3.20260101.120000+0000.12", files)
    for bad in ([("../x", b"")], [("/etc/x", b"")], [("a//b", b"")]):
        with pytest.raises(R.StoreError, match="unusable path"):
            R.unpack_payload(R.pack_payload("n", bad))
    with pytest.raises(R.StoreError, match="dump directory"):
        R.unpack_payload(R.pack_payload("..", []))
    with pytest.raises(R.StoreError, match="past the end"):
        R.unpack_payload(p[:-1])


class FakeNand(R.Store):
    """A NAND flash's operations on a plain file (the MTD ioctls are the guest's:
    tests/qemu/test_rawstore_guests.py test_nand_bad_blocks runs nandsim): erase
    blocks of half a slot, bad blocks by offset, blocks whose erase or write fails
    with EIO once it has been done `ok` times (nandsim's weakblocks, weakpages),
    marks that hold or not."""

    def __init__(self, path, bad=(), weak_erase=None, weak_write=None, marks_hold=True):
        R.Store.__init__(self, path, SLOT, write=True)
        self.mtd, self.bad_blocks, self.erase = {}, True, SLOT // 2
        self.bad, self.marks_hold = set(bad), marks_hold
        self.weak = {"erase": dict([weak_erase]) if weak_erase else {},
                     "write": dict([weak_write]) if weak_write else {}}

    def _fail(self, op, offset):
        left = self.weak[op].get(offset)
        if left is not None:
            if left == 0:
                raise OSError(5, "Input/output error")
            self.weak[op][offset] = left - 1

    def _mtd_erase(self, offset):
        self._fail("erase", offset)
        os.pwrite(self.fd, b"\xff" * self.erase, offset)

    def _mtd_write(self, offset, data):
        self._fail("write", offset - offset % self.erase)
        os.pwrite(self.fd, data, offset)

    def _mtd_isbad(self, offset):
        return offset in self.bad

    def _mtd_markbad(self, offset):
        if self.marks_hold:
            self.bad.add(offset)


def nand_records(s):
    return [(slot.index, slot.sequence, data) for slot, data in s.records()]


def test_bad_nand_blocks_are_skipped_and_failing_blocks_marked(tmp_path):
    """Slot 1 has a bad block (its second half); slot 3's first block fails its
    second erase, slot 4's first its second write: the ring goes round the good
    slots in order, each failing block is marked and its record goes into the
    next good slot with the next sequence number."""
    path = str(tmp_path / "nand.img")
    with open(path, "wb") as f:
        f.write(b"\xff" * SLOT * 5)
    half = SLOT // 2
    with FakeNand(path, bad=[SLOT + half], weak_erase=(3 * SLOT, 1),
                  weak_write=(4 * SLOT, 1)) as s:
        s.slots = 5
        assert [x.state for x in s.scan()] == ["blank", "bad", "blank", "blank", "blank"]
        used = [s.write(payload(n)) for n in range(7)]
        assert used == [(0, 0), (2, 1), (3, 2), (4, 3), (0, 4), (2, 5), (0, 8)]
        assert s.bad == {SLOT + half, 3 * SLOT, 4 * SLOT}
        assert nand_records(s) == [(2, 5, payload(5)), (0, 8, payload(6))]
        assert [x.why for x in s.scan() if x.state == "bad"] == [
            "bad erase block at %#x" % o for o in (SLOT + half, 3 * SLOT, 4 * SLOT)]
        assert s.next_slot() == (2, 9)


def test_a_failing_block_whose_mark_does_not_hold_does_not_stop_the_ring(tmp_path):
    """Slot 1's block fails every write and the mark does not hold (a NOR flash has
    no bad blocks at all): each record meant for it goes into the next slot with
    the next sequence number, the records there before are untouched, and the ring
    goes on. When every block fails, a record tries WRITE_ATTEMPTS slots (each try
    erases one), then the write is the device's error."""
    path = str(tmp_path / "nand.img")
    with open(path, "wb") as f:
        f.write(b"\xff" * SLOT * SLOTS)
    with FakeNand(path, weak_write=(SLOT, 0), marks_hold=False) as s:
        assert [s.write(payload(n)) for n in range(5)] == [
            (0, 0), (2, 2), (3, 3), (0, 4), (2, 6)]
        assert nand_records(s) == [(3, 3, payload(2)), (0, 4, payload(3)),
                                   (2, 6, payload(4))]
        assert s.scan()[1].state == "blank"  # erased, its write failed before the stamp
        s.weak["write"] = {i * SLOT: 0 for i in range(SLOTS)}
        with pytest.raises(OSError) as e:
            s.write(payload(9))
        assert e.value.errno == 5 and R.WRITE_ATTEMPTS == 3
        assert nand_records(s) == [(2, 6, payload(4))]  # slots 3, 0 and 1 were tried


def test_every_slot_bad_is_a_store_error(tmp_path):
    path = str(tmp_path / "nand.img")
    with open(path, "wb") as f:
        f.write(b"\xff" * SLOT * SLOTS)
    with FakeNand(path, bad=[i * SLOT for i in range(SLOTS)]) as s:
        with pytest.raises(R.StoreError, match="every slot has a bad erase block"):
            s.write(payload(0))
