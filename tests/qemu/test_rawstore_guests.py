"""tests/qemu/test_rawstore_guests.py: the raw store (docs/FORMATS.md §12) in the QEMU
guests, checked on the host.

Each guest gets a 64 KiB raw virtio disk (serial "mcdstore", an image file on the host
kept between boots) as its store, 16 slots of 4 KiB. Boot 1 crashes crash3, threads8
and mycrasher into it (qemu/guest/rawstore.sh, phase "crash"; on armhf also into a
simulated NAND flash, nandsim's /dev/mtd0, read back and imported in the same boot, as
its contents do not survive one). Boot 2 imports the store (`mcd store import`), and
gdb-multiarch on the host gets each program's backtrace from the imported dumps. Then
the power-cut trials: boots that crash crash3 into the store again and again, QEMU
killed at a random moment once the first crash has started, or (every other trial) as
soon as the host sees the next record's stamp in the image; after each, the host reads
the image (the format is the same on every architecture) and checks that every record
it presents verifies and unpacks, that the records there before are intact unless
their slot was written since, and that at most one slot is torn. A last boot imports
what is left and names the torn slots. MCD_RAWSTORE_TRIALS sets the number of trials
per architecture (default 8).

The NOR flash (armhf): QEMU's CFI parallel flash on `virt` (pflash unit 1, an image on
the host), Linux's CFI drivers (qemu/nor_modules.py), slots of one 256 KiB erase block:
crashes round a ring of NOR_SLOTS slots, reboot, import, gdb-multiarch; then power cuts
(MCD_RAWSTORE_NOR_TRIALS, default 6), each slot's stamp checked to be where the ring's
order puts it (every slot erased once a round). Bad NAND blocks (armhf): nandsim with a
factory-bad block, a block whose second erase fails and a page whose second write fails;
the crashes go round the good slots, the failing blocks marked bad. And the time one
record takes to write on each device (test_record_write_times).
"""

import os
import random
import re
import subprocess
import sys
import time

import pytest

import boot as qboot  # qemu/ (pytest.ini's pythonpath)
import build_image
import guests
from lab import ENV
from lab.gdb import assert_frames, backtrace, extract_core
from lab.programs import FRAMES
from minicoredumper import rawstore as R

STORE_BYTES = 64 << 10
SLOT = 4096
# QEMU's pflash on `virt`: two x16 devices in a 32-bit bank, 128 KiB blocks each
NOR_ERASE = 256 << 10
NOR_SLOTS = 4
PROGRAMS = ["crash3", "threads8", "mycrasher"]
PTEST_BIN = "usr/lib/minicoredumper/ptest/bin"
TRIALS = int(os.environ.get("MCD_RAWSTORE_TRIALS", "8"))


def host_records(image, slot=SLOT, slots=0):
    """{(sequence, slot): payload} of the valid records of a store image, and its Slots."""
    with R.Store(image, slot, slots) as s:
        return {(x.sequence, x.index): p for x, p in s.records()}, s.scan()


class StoreGuest:
    """The boots of one architecture against one store image: a virtio disk, or
    eeprom or nor (guests.py's settings) the EEPROM or the NOR flash."""

    def __init__(self, arch, top, timeout, eeprom=None, nor=None):
        self.arch = arch
        self.top = top
        self.timeout = timeout
        self.image_dir = os.path.join(top, arch + "-image")
        build_image.build(arch, copy_to=self.image_dir)
        self.eeprom = eeprom  # guests.py's eeprom settings: the store is the EEPROM
        self.nor = nor
        kind = "eeprom" if eeprom else "nor" if nor else "store"
        self.store = os.path.join(top, "%s-%s.img" % (arch, kind))
        # the store's geometry as the host reads the image: on the NOR flash the
        # erase block (the guest's MEMGETINFO, checked by the tests) and NOR_SLOTS
        self.slot_size, self.slots = (NOR_ERASE, NOR_SLOTS) if nor else (SLOT, 0)
        with open(self.store, "wb") as f:  # an EEPROM or a flash comes erased to 0xff
            if eeprom or nor:
                f.write(b"\xff" * (eeprom or nor)["bytes"])
            else:
                f.write(bytes(STORE_BYTES))
        self.n = 0

    def records(self):
        """host_records of the store image."""
        return host_records(self.store, self.slot_size, self.slots)

    def job(self, phase, **extra):
        job = dict(phase=phase, slot_size=SLOT, **extra)
        if self.nor:
            job.update(nor=1, slots=NOR_SLOTS)
        if self.eeprom:
            # at24 instantiated through new_device writes a byte at a time (no page size
            # known), over the versatile controller's bit-banged I2C, under TCG: a 4 KiB
            # record takes about 30 s, so the deadline is raised for it
            job.update(eeprom=1, eeprom_model=self.eeprom["model"],
                       eeprom_address="%#x" % self.eeprom["address"], deadline=300)
        return job

    def disks(self):
        """qemu_command's drives, eeprom and nor: the store as a virtio disk, the
        EEPROM or the NOR flash."""
        if self.eeprom:
            return dict(eeprom=self.store)
        if self.nor:
            return dict(nor=self.store)
        return dict(drives=[("mcdstore", self.store)])

    def boot(self, phase, **extra):
        self.n += 1
        outdir = os.path.join(self.top, "%s-%d-%s" % (self.arch, self.n, phase))
        rec = qboot.boot(self.arch, outdir, image_dir=self.image_dir, timeout=self.timeout,
                         script="rawstore.sh", job_extra=self.job(phase, **extra),
                         **self.disks())
        assert rec.get("results") and rec.get("fresh"), rec
        return os.path.join(outdir, "results")

    def cut(self, rng, window, at_stamp=False):
        """One power-cut trial: boot the loop, kill QEMU at a random moment up to window
        seconds after the first crash started, or with at_stamp as soon as the next
        record's stamp is on the store (QEMU writes the image with cache=unsafe: the
        host sees each write as it is made); returns the seconds waited."""
        with R.Store(self.store, self.slot_size, self.slots) as s:
            slot, seq = s.next_slot()
        self.n += 1
        outdir = os.path.join(self.top, "%s-%d-cut" % (self.arch, self.n))
        os.makedirs(outdir)
        job = dict(self.job("loop", crashes=1000), id="cut%d" % self.n, arch=self.arch,
                   guest_timeout=600)
        job_img, results_img = os.path.join(outdir, "job.img"), os.path.join(outdir, "r.img")
        qboot.make_job(job_img, job, "rawstore.sh")
        with open(results_img, "wb") as f:
            f.truncate(1 << 20)
        console = os.path.join(outdir, "console.log")
        cmd = qboot.qemu_command(self.arch, self.image_dir, job_img, results_img, console,
                                 **self.disks())
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        try:
            end = time.monotonic() + self.timeout
            while time.monotonic() < end:
                try:
                    with open(console, errors="replace") as f:
                        if "mcd-rawstore: crash 1" in f.read():
                            break
                except FileNotFoundError:
                    pass  # QEMU has not opened it yet
                assert p.poll() is None, "the guest ended before its first crash"
                time.sleep(0.05)
            t0 = time.monotonic()
            if at_stamp:
                fd = os.open(self.store, os.O_RDONLY)
                try:  # pread: a buffered file would keep serving its old bytes
                    while time.monotonic() < t0 + window * 3 and p.poll() is None:
                        stamp = os.pread(fd, R.STAMP.size, slot * self.slot_size)
                        if R.check_stamp(stamp)[0] == seq:
                            break
                finally:
                    os.close(fd)
            else:
                time.sleep(rng.uniform(0, window))
            wait = time.monotonic() - t0
        finally:
            p.kill()
            p.wait()
        return wait


_GUESTS = {}


@pytest.fixture
def store_guest(arch, guest_tools, boot_timeout, tmp_path_factory):
    """The StoreGuest of arch, one per session: its store image lives on from test to test."""
    if arch not in _GUESTS:
        _GUESTS[arch] = StoreGuest(arch, str(tmp_path_factory.mktemp("rawstore-" + arch)),
                                   boot_timeout)
    return _GUESTS[arch]


def mcd(*argv):
    return subprocess.run([sys.executable, "-m", "minicoredumper.cmd_mcd"] + list(argv),
                          capture_output=True, text=True, env=ENV)


def imported(results):
    top = os.path.join(results, "imported")
    return {d.split(".")[0]: os.path.join(top, d) for d in sorted(os.listdir(top))
            if not d.startswith(".")}


def test_crash_reboot_import_and_backtrace(store_guest, tmp_path):
    g = store_guest
    res = g.boot("crash")
    with open(os.path.join(res, "crashes.txt")) as f:
        lines = [l.split() for l in f if l.startswith("/dev/vd")]
    assert [(l[1], l[3]) for l in lines] == [(p, "dumped=1") for p in PROGRAMS], lines
    records, _ = host_records(g.store)
    assert sorted(s for _, s in records) == [0, 1, 2]
    sizes = []
    for payload in records.values():
        assert len(payload) <= SLOT - 48
        name, files = R.unpack_payload(payload)
        sizes.append("%s: %d (%s)" % (name.split(".")[0], len(payload),
                                      ", ".join("%s %d" % (r, len(d)) for r, d in files)))
    print("%s records: %s" % (g.arch, "; ".join(sorted(sizes))))
    res = g.boot("import")
    with open(os.path.join(res, "import.txt")) as f:
        text = f.read()
    assert "3 records imported from /dev/vd" in text and "rc=0" in text, text
    dumps = imported(res)
    assert sorted(dumps) == sorted(PROGRAMS), dumps
    rootfs = os.path.join(g.image_dir, "rootfs")
    for program, d in dumps.items():
        p = mcd("verify", d)
        assert p.returncode == 0, p
        core = extract_core(d, str(tmp_path))
        bt = backtrace(os.path.join(rootfs, PTEST_BIN, program), core, sysroot=rootfs,
                       program="gdb-multiarch")
        assert_frames(FRAMES[program], bt, whole=False)
        os.unlink(core)


def test_nand_flash_store(store_guest, tmp_path):
    """nandsim's NAND (armhf): erase-block slots, the ring wrapping over three slots,
    mcd reading the flash and importing from it; gdb-multiarch on the imports."""
    g = store_guest
    res = os.path.join(g.top, "%s-1-crash" % g.arch, "results")
    mtd = os.path.join(res, "mtd")
    if not os.path.isdir(mtd):
        pytest.skip("%s: the guest kernel has no MTD modules (only armhf's has nandsim)"
                    % g.arch)
    with open(os.path.join(mtd, "geometry.txt")) as f:
        geometry = dict(l.strip().split("=", 1) for l in f if "=" in l)
    assert geometry["type"] == "nand" and geometry["erasesize"] == "16384", geometry
    assert geometry["writesize"] == "512", geometry
    with open(os.path.join(res, "crashes.txt")) as f:
        lines = [l.split() for l in f if l.startswith("/dev/mtd0")]
    assert [(l[1], l[3]) for l in lines] == [(p, "dumped=1") for p in
                                             ("crash3", "threads8", "crash3", "mycrasher")]
    with open(os.path.join(mtd, "list.txt")) as f:
        listed = f.read().split()
    # three slots: the first crash3 is overwritten by mycrasher, one crash3 is left (the
    # crashes share one second: mcd lists them in no particular order)
    assert sorted(n.split(".")[0] for n in listed) == ["crash3", "mycrasher", "threads8"]
    with open(os.path.join(mtd, "list.err")) as f:
        assert f.read() == ""
    with open(os.path.join(mtd, "import.txt")) as f:
        assert "3 records imported from /dev/mtd0" in f.read()
    rootfs = os.path.join(g.image_dir, "rootfs")
    top = os.path.join(mtd, "imported")
    for d in sorted(os.listdir(top)):
        if d.startswith("."):
            continue
        program = d.split(".")[0]
        core = extract_core(os.path.join(top, d), str(tmp_path))
        assert_frames(FRAMES[program], backtrace(os.path.join(rootfs, PTEST_BIN, program),
                                                 core, sysroot=rootfs,
                                                 program="gdb-multiarch"), whole=False)
        os.unlink(core)


def power_cut_trials(g, trials, window):
    """trials power cuts of g's crash loop (every other one at the next stamp), each
    checked on the host; then a boot that imports what is left.  Returns the outcomes
    [(seconds waited, new records, [(torn slot, why)])]."""
    rng = random.Random(14)
    outcomes = []
    for trial in range(trials):
        before, slots_before = g.records()
        torn_before = {(s.index, s.sequence) for s in slots_before if s.state == "torn"}
        wait = g.cut(rng, window, at_stamp=trial % 2 == 1)
        after, slots = g.records()
        new = {k: v for k, v in after.items() if k not in before}
        newest_before = max((q for q, _ in before), default=-1)
        for (seq, index), payload in after.items():
            if (seq, index) in before:
                assert before[(seq, index)] == payload, (trial, seq, index)
            else:
                assert seq > newest_before, (trial, seq, newest_before)
            name, files = R.unpack_payload(payload)  # whole and well-formed
            assert files[0][0] == "summary.txt", name
            assert name.startswith("crash3.") or (seq, index) in before, name
        written = {i for _, i in new}
        torn = [s for s in slots if s.state == "torn"]
        # the records of the slots not written since are all still there
        lost = [k for k in before if k not in after and k[1] not in written
                and k[1] not in {s.index for s in torn}]
        assert lost == [], (trial, lost)
        torn_now = [s for s in torn if (s.index, s.sequence) not in torn_before]
        assert len(torn_now) <= 1, (trial, [(s.index, s.sequence, s.why) for s in torn_now])
        outcomes.append((round(wait, 2), len(new), [(s.index, s.why) for s in torn_now]))
    print("%s%s power cuts (wait s, new records, torn slots): %s" % (
        g.arch, " EEPROM" if g.eeprom else " NOR" if g.nor else "", outcomes))
    # the guest itself: import what is there, torn slots named
    res = g.boot("import")
    after, slots = g.records()
    with open(os.path.join(res, "import.txt")) as f:
        text = f.read()
    assert "%d record%s imported" % (len(after), "" if len(after) == 1 else "s") in text, text
    with open(os.path.join(res, "list.err")) as f:
        errors = f.read()
    for s in slots:
        if s.state == "torn":
            assert "slot %d: torn record ignored" % s.index in errors, errors
    # the dumps and the mark
    assert len(os.listdir(os.path.join(res, "imported"))) == len(after) + bool(after)
    return outcomes


def test_power_cut_trials(store_guest):
    power_cut_trials(store_guest, TRIALS, 3.0)


def test_eeprom_store(arch, guest_tools, boot_timeout, tmp_path_factory, tmp_path):
    """The store on an emulated I2C EEPROM (armhf: vexpress-a15, at24c-eeprom, at24's
    nvmem file), two 4 KiB slots: crash3 into it, reboot, import, gdb-multiarch; then
    power cuts while records are written (MCD_RAWSTORE_EEPROM_TRIALS, default 4)."""
    eeprom = guests.ARCHS[arch].get("eeprom")
    if not eeprom:
        pytest.skip("%s: no eeprom machine in qemu/guests.py (only armhf has one)" % arch)
    g = StoreGuest(arch, str(tmp_path_factory.mktemp("eeprom-" + arch)), boot_timeout,
                   eeprom)
    res = g.boot("crash", programs="crash3")
    with open(os.path.join(res, "store.txt")) as f:
        assert f.readline().startswith("store=/sys/bus/nvmem/devices/0-0057")
    records, _ = host_records(g.store)
    assert list(records) == [(0, 0)], records
    name, files = R.unpack_payload(records[(0, 0)])
    print("%s EEPROM record: %d bytes (%s)" % (arch, len(records[(0, 0)]), ", ".join(
        "%s %d" % (r, len(d)) for r, d in files)))
    res = g.boot("import")
    d = imported(res)["crash3"]
    rootfs = os.path.join(g.image_dir, "rootfs")
    core = extract_core(d, str(tmp_path))
    assert_frames(FRAMES["crash3"], backtrace(os.path.join(rootfs, PTEST_BIN, "crash3"), core,
                                              sysroot=rootfs, program="gdb-multiarch"))
    power_cut_trials(g, int(os.environ.get("MCD_RAWSTORE_EEPROM_TRIALS", "4")), 30.0)


def assert_round_robin(slots, n):
    """Every stamp in the slot the ring's order gives it (sequence mod n, the ring
    started at slot 0): each slot erased and written once a round, none more often."""
    wrong = [(x.index, x.sequence) for x in slots
             if x.sequence is not None and x.index != x.sequence % n]
    assert wrong == [], wrong


def dumped_lines(res, device):
    """[(program, slot, sequence)] of the handler's "dumped" lines for device."""
    with open(os.path.join(res, "dmesg.txt")) as f:
        return [(m.group(1), int(m.group(2)), int(m.group(3))) for m in re.finditer(
            r"dumped (\S+) to %s slot (\d+) record (\d+)" % re.escape(device), f.read())]


def geometry(res, name="geometry.txt"):
    with open(os.path.join(res, name)) as f:
        return dict(l.strip().split("=", 1) for l in f if "=" in l)


def backtraces(g, dumps, tmp_path):
    """gdb-multiarch's backtrace of each imported dump {program: directory}, checked."""
    rootfs = os.path.join(g.image_dir, "rootfs")
    for program, d in dumps.items():
        assert mcd("verify", d).returncode == 0, d
        core = extract_core(d, str(tmp_path))
        assert_frames(FRAMES[program], backtrace(os.path.join(rootfs, PTEST_BIN, program),
                                                 core, sysroot=rootfs,
                                                 program="gdb-multiarch"), whole=False)
        os.unlink(core)


def test_nor_flash_store(arch, guest_tools, boot_timeout, tmp_path_factory, tmp_path):
    """The store on a real emulated CFI NOR flash (armhf): five crashes round four
    erase-block slots, reboot, import, gdb-multiarch; then power cuts."""
    nor = guests.ARCHS[arch].get("nor")
    if not nor:
        pytest.skip("%s: no NOR flash in qemu/guests.py (the arm64 and amd64 kernels have "
                    "no MTD; armhf's gets the CFI drivers built)" % arch)
    g = StoreGuest(arch, str(tmp_path_factory.mktemp("nor-" + arch)), boot_timeout, nor=nor)
    programs = ["crash3", "threads8", "mycrasher", "crash3", "threads8"]
    res = g.boot("crash", programs=" ".join(programs))
    geo = geometry(res)
    assert (geo["type"], geo["size"], geo["erasesize"], geo["writesize"]) == (
        "nor", str(nor["bytes"]), str(NOR_ERASE), "1"), geo
    with open(os.path.join(res, "store.txt")) as f:
        device = f.readline().split()[0].split("=")[1]
    assert device.startswith("/dev/mtd"), device
    with open(os.path.join(res, "small-slot.err")) as f:  # slots share no erase block
        assert "slot size 4096 is not a multiple of the erase block (262144)" in f.read()
    assert [(p, s, q) for p, s, q in dumped_lines(res, device)] == [
        (p, i % NOR_SLOTS, i) for i, p in enumerate(programs)]
    records, slots = g.records()
    assert sorted(records) == [(i, i % NOR_SLOTS) for i in range(1, 5)], sorted(records)
    assert_round_robin(slots, NOR_SLOTS)
    sizes = []
    for (seq, _), payload in sorted(records.items()):
        name, files = R.unpack_payload(payload)
        assert name.split(".")[0] == programs[seq]
        sizes.append("%s: %d (%s)" % (name.split(".")[0], len(payload),
                                      ", ".join("%s %d" % (r, len(d)) for r, d in files)))
    print("%s NOR records (%d-byte slots, %d bytes of room): %s" % (
        arch, NOR_ERASE, NOR_ERASE - 48, "; ".join(sizes)))
    res = g.boot("import")
    with open(os.path.join(res, "import.txt")) as f:
        text = f.read()
    assert "4 records imported from %s" % device in text and "rc=0" in text, text
    dumps = imported(res)
    assert sorted(dumps) == ["crash3", "mycrasher", "threads8"], dumps  # one crash3 left
    backtraces(g, dumps, tmp_path)
    outcomes = power_cut_trials(g, int(os.environ.get("MCD_RAWSTORE_NOR_TRIALS", "6")), 3.0)
    assert_round_robin(g.records()[1], NOR_SLOTS)
    # the cuts fell while the flash was written: records or torn slots
    assert any(n or torn for _, n, torn in outcomes), outcomes


def test_nand_bad_blocks(arch, guest_tools, boot_timeout, tmp_path_factory, tmp_path):
    """nandsim (armhf) with erase block 1 bad from the start, block 3 failing its
    second erase and page 128 (block 4's first) its second write: seven crashes into
    five one-block slots go round the good ones, each failing block is marked bad
    and its record goes into the next good slot; mcd names the bad slots, imports
    the records left, gdb-multiarch gets their backtraces."""
    if "nandsim" not in guests.ARCHS[arch]["store_modules"]:
        pytest.skip("%s: the guest kernel has no nandsim (only armhf's)" % arch)
    g = StoreGuest(arch, str(tmp_path_factory.mktemp("nandbad-" + arch)), boot_timeout)
    programs = ["crash3", "threads8", "mycrasher", "crash3", "threads8", "mycrasher",
                "crash3"]
    res = g.boot("crash", programs=" ".join(programs), nand=1, slots=5, nand_badblocks="1",
                 nand_weakblocks="3:1", nand_weakpages="128:1")
    geo, after = geometry(res), geometry(res, "geometry-after.txt")
    assert (geo["type"], geo["erasesize"], geo["bad_blocks"]) == ("nand", "16384", "1"), geo
    with open(os.path.join(res, "crashes.txt")) as f:
        lines = [l.split() for l in f]
    assert [(l[1], l[3]) for l in lines] == [(p, "dumped=1") for p in programs], lines
    # block 1 skipped; the seventh record: block 3's erase fails (marked, sequence 6
    # spent), block 4's page write fails (marked, 7 spent), slot 0 takes sequence 8
    assert dumped_lines(res, "/dev/mtd0") == [
        ("crash3", 0, 0), ("threads8", 2, 1), ("mycrasher", 3, 2), ("crash3", 4, 3),
        ("threads8", 0, 4), ("mycrasher", 2, 5), ("crash3", 0, 8)]
    # the kernel counts the marks it could write into the block (block 4's marker is
    # on the failing page: it is bad in the kernel's table only)
    assert after["bad_blocks"] == "2", after
    # nandsim lives in RAM: listed and imported within the same boot
    with open(os.path.join(res, "list.err")) as f:
        errors = f.read().splitlines()
    assert errors == ["mcd: /dev/mtd0 slot %d: skipped (bad erase block at %#x)" % (i, i * 16384)
                      for i in (1, 3, 4)], errors
    with open(os.path.join(res, "import.txt")) as f:
        text = f.read()
    assert "2 records imported from /dev/mtd0" in text and "rc=0" in text, text
    dumps = imported(res)
    assert sorted(dumps) == ["crash3", "mycrasher"], dumps
    backtraces(g, dumps, tmp_path)


BENCH_BYTES = 3600  # about crash3's record in a 4 KiB slot
BENCH_COUNT = 4  # NOR_SLOTS: each write a record of its own


def test_record_write_times(arch, guest_tools, boot_timeout, tmp_path_factory):
    """The time Store.write takes for a BENCH_BYTES record (the ring's scan, the
    erase, the stamp, payload and header, each on the device before the next) on
    each of the guest's devices: the virtio disk, nandsim's NAND, the CFI NOR flash,
    the I2C EEPROM (one write: some 30 s). Printed for README's raw store table; the
    records written are read back on the host where the device is an image."""
    top = str(tmp_path_factory.mktemp("bench-" + arch))
    a = guests.ARCHS[arch]
    rows = []
    for kind in ("disk", "nor", "eeprom"):
        if kind != "disk" and not a.get(kind):
            continue
        g = StoreGuest(arch, os.path.join(top, kind), boot_timeout, **(
            {kind: a[kind]} if kind != "disk" else {}))
        res = g.boot("bench", bench_bytes=BENCH_BYTES,
                     bench_count=1 if kind == "eeprom" else BENCH_COUNT)
        with open(os.path.join(res, "bench.txt")) as f:
            lines = [l.split() for l in f]
        assert lines and {l[1] for l in lines} <= {"disk", "nand", "nor", "eeprom"}, lines
        records, _ = g.records()
        assert sorted(len(p) for p in records.values()) == [BENCH_BYTES] * len(
            [l for l in lines if l[1] == kind]), (kind, lines)
        for l in lines:
            rows.append((l[1], float(l[4])))
    summary = {}
    for kind, ms in rows:
        summary.setdefault(kind, []).append(ms)
    print("%s record write times, %d-byte payload (ms, each write): %s" % (
        arch, BENCH_BYTES, "; ".join("%s %s" % (k, " ".join("%.1f" % x for x in v))
                                     for k, v in sorted(summary.items()))))
