"""read_registrations under registered.max_total_size: text cut by the total is the
whole text's prefix, byte for byte (it is formatted only as far as it is kept),
binary data is cut at the total and NODUMP counts nothing.  The process memory is a
file read through ProcessMemory: an address is a file offset."""

import struct

import pytest

from minicoredumper import elf as E
from minicoredumper import read_registrations as R
from minicoredumper.linux import EM_X86_64, arch_for_machine
from minicoredumper.read_process import ProcessMemory

LAYOUT = E.Layout(E.ELFCLASS64, E.ELFDATA2LSB)
ARCH = arch_for_machine(EM_X86_64)
VERSION, HEAD = 0x10, 0x18
LONG = b"y" * 3000


class Image:
    """A 64-bit little-endian memory image with a registration list in it."""

    def __init__(self):
        self.mem = bytearray(0x100)
        struct.pack_into("<iQ", self.mem, VERSION, R.DATA_VERSION, 0)
        self.last = HEAD  # where the next node's address goes

    def put(self, data):
        addr = len(self.mem)
        self.mem += data + bytes(-len(data) % 8)
        return addr

    def node(self, kind, ident, elems, fmt=None):
        es = self.put(b"".join(struct.pack("<QQQi4x", *e) for e in elems))
        fmt_at = self.put(fmt + b"\0") if fmt else 0
        node = self.put(struct.pack("<i4xQQQI4xQQ", kind, self.put(ident + b"\0"), 1, es,
                                    len(elems), fmt_at, 0))
        struct.pack_into("<Q", self.mem, self.last + (48 if self.last != HEAD else 0), node)
        self.last = node

    def read(self, tmp_path, total, item=1 << 20):
        path = tmp_path / "mem"
        path.write_bytes(bytes(self.mem))
        mem = ProcessMemory(str(path))
        warnings = []
        try:
            items = R.read_registrations(mem, LAYOUT, ARCH, HEAD, VERSION,
                                         {"max_items": 100, "max_item_size": item,
                                          "max_total_size": total}, warnings.append)
        finally:
            mem.close()
        return items, warnings


def text_image():
    img = Image()
    s = img.put(LONG + b"\0")
    direct = R.PTR_DIRECT | R.LENGTH_DIRECT
    img.node(R.MCD_TEXT, b"a.txt", [(s, direct, 0, 0)] * 3, b"[%-300.500s|%500s|%.3s]")
    return img


@pytest.mark.parametrize("total", [1, 10, 499, 500, 501, 502, 1000, 1301, 2500, 3504, 3505, 3506, 5000])
def test_text_cut_by_the_total_is_a_prefix_of_the_whole(tmp_path, total):
    whole, _ = text_image().read(tmp_path, 1 << 30)
    assert whole[0].text == b"[" + LONG[:500] + b"|" + LONG + b"|yyy]"
    items, warnings = text_image().read(tmp_path, total)
    assert items[0].text == whole[0].text[:total]
    assert any("max_total_size" in w for w in warnings) == (total < len(whole[0].text))


def test_binary_data_is_cut_at_the_total_and_nodump_counts_none(tmp_path):
    img = Image()
    data = img.put(b"z" * 100)
    direct = R.PTR_DIRECT | R.LENGTH_DIRECT
    img.node(R.MCD_BIN, b"nodump.bin", [(data, direct | R.NODUMP, 100, 0)])
    for n in range(4):
        img.node(R.MCD_BIN, b"b%d.bin" % n, [(data, direct, 100, 0)])
    items, warnings = img.read(tmp_path, 250)
    assert [(it.ident, it.length, it.nodump) for it in items] == [
        ("nodump.bin", 100, True), ("b0.bin", 100, False), ("b1.bin", 100, False),
        ("b2.bin", 50, False)]
    assert len([w for w in warnings if "max_total_size" in w]) == 1
