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
"""

import os
import random
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
PROGRAMS = ["crash3", "threads8", "mycrasher"]
PTEST_BIN = "usr/lib/minicoredumper/ptest/bin"
TRIALS = int(os.environ.get("MCD_RAWSTORE_TRIALS", "8"))


def host_records(image, slot=SLOT):
    """{(sequence, slot): payload} of the valid records of a store image, and its Slots."""
    with R.Store(image, slot) as s:
        return {(x.sequence, x.index): p for x, p in s.records()}, s.scan()


class StoreGuest:
    """The boots of one architecture against one store image."""

    def __init__(self, arch, top, timeout, eeprom=None):
        self.arch = arch
        self.top = top
        self.timeout = timeout
        self.image_dir = os.path.join(top, arch + "-image")
        build_image.build(arch, copy_to=self.image_dir)
        self.eeprom = eeprom  # guests.py's eeprom settings: the store is the EEPROM
        self.store = os.path.join(top, arch + ("-eeprom.img" if eeprom else "-store.img"))
        with open(self.store, "wb") as f:  # an EEPROM comes erased to 0xff
            f.write(b"\xff" * eeprom["bytes"] if eeprom else bytes(STORE_BYTES))
        self.n = 0

    def job(self, phase, **extra):
        job = dict(phase=phase, slot_size=SLOT, **extra)
        if self.eeprom:
            # at24 instantiated through new_device writes a byte at a time (no page size
            # known), over the versatile controller's bit-banged I2C, under TCG: a 4 KiB
            # record takes about 30 s, so the deadline is raised for it
            job.update(eeprom=1, eeprom_model=self.eeprom["model"],
                       eeprom_address="%#x" % self.eeprom["address"], deadline=300)
        return job

    def disks(self):
        """(drives, eeprom) for qemu_command: the store as a virtio disk or the EEPROM."""
        return ([], self.store) if self.eeprom else ([("mcdstore", self.store)], None)

    def boot(self, phase, **extra):
        self.n += 1
        outdir = os.path.join(self.top, "%s-%d-%s" % (self.arch, self.n, phase))
        drives, eeprom = self.disks()
        rec = qboot.boot(self.arch, outdir, image_dir=self.image_dir, timeout=self.timeout,
                         script="rawstore.sh", drives=drives, eeprom=eeprom,
                         job_extra=self.job(phase, **extra))
        assert rec.get("results") and rec.get("fresh"), rec
        return os.path.join(outdir, "results")

    def cut(self, rng, window, at_stamp=False):
        """One power-cut trial: boot the loop, kill QEMU at a random moment up to window
        seconds after the first crash started, or with at_stamp as soon as the next
        record's stamp is on the store (QEMU writes the image with cache=unsafe: the
        host sees each write as it is made); returns the seconds waited."""
        with R.Store(self.store, SLOT) as s:
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
                                 *self.disks())
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
                        if R.check_stamp(os.pread(fd, R.STAMP.size, slot * SLOT))[0] == seq:
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
        before, slots_before = host_records(g.store)
        torn_before = {(s.index, s.sequence) for s in slots_before if s.state == "torn"}
        wait = g.cut(rng, window, at_stamp=trial % 2 == 1)
        after, slots = host_records(g.store)
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
        g.arch, " EEPROM" if g.eeprom else "", outcomes))
    # the guest itself: import what is there, torn slots named
    res = g.boot("import")
    after, slots = host_records(g.store)
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
