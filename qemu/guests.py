"""qemu/guests.py: the three guest architectures as data, and where the cache lives.

Everything that differs between the guests is here: the Debian architecture and its
GNU triplet, the kernel package, the cross compiler and the C library it links against,
how QEMU boots it, which kernel modules the init script loads and which ones the raw
store's job loads itself (store_modules), and which guest has a NOR flash (nor).
"""

import os

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

# The Debian release the guests are assembled from (its python3.11 matches the
# runtime's supported versions and the cross toolchains' glibc 2.36).
SUITE = "bookworm"
PYVER = "3.11"

ARCHS = {
    "amd64": {
        "triplet": "x86_64-linux-gnu",
        "kernel_package": "linux-image-cloud-amd64",
        "cc": "gcc",
        # The native compiler links against the host's own libc6 (same glibc 2.36 as
        # bookworm's): the guest gets these very files.
        "libc_dir": "/lib/x86_64-linux-gnu",
        "interp": "/lib64/ld-linux-x86-64.so.2",
        "qemu": "qemu-system-x86_64",
        "machine": ["-M", "pc", "-cpu", "max"],
        "console": "ttyS0",
        "disk_device": "virtio-blk-pci",
        "modules": ["virtio_pci", "virtio_blk"],
        "store_modules": [],  # the cloud kernel has no MTD
        "gdb_arch": "i386:x86-64",
        "elf_machine": "EM_X86_64",
    },
    "armhf": {
        "triplet": "arm-linux-gnueabihf",
        "kernel_package": "linux-image-armmp-lpae",
        "cc": "arm-linux-gnueabihf-gcc",
        # libc6-armhf-cross: what arm-linux-gnueabihf-gcc links against.
        "libc_dir": "/usr/arm-linux-gnueabihf/lib",
        "interp": "/lib/ld-linux-armhf.so.3",
        "qemu": "qemu-system-arm",
        "machine": ["-M", "virt,highmem=off", "-cpu", "cortex-a15"],
        "console": "ttyAMA0",
        "disk_device": "virtio-blk-device",
        "modules": ["virtio_mmio", "virtio_blk"],
        # in the image, loaded by the raw store's job: a simulated NAND flash, and the
        # I2C controller and EEPROM driver of the eeprom machine
        "store_modules": ["nandsim", "i2c_versatile", "at24"],
        # An emulated I2C EEPROM for the raw store: `virt` has no I2C bus; vexpress-a15
        # has the motherboard's versatile I2C controller (the DVI bus, at 0x1c160000,
        # with QEMU's DDC device at 0x50), which the kernel's vexpress device tree names;
        # the EEPROM (QEMU's at24c-eeprom, 8 KiB, backed by an image file) sits at 0x57
        # and is made known to Linux through the bus's new_device.
        "eeprom": {"machine": ["-M", "vexpress-a15", "-cpu", "cortex-a15"],
                   "dtb": "vexpress-v2p-ca15-tc1.dtb", "address": 0x57, "bytes": 8192,
                   "model": "24c64"},
        # A CFI NOR flash for the raw store: virt's second pflash (unit 1, 64 MiB, free
        # when booting with -kernel), the device tree's "cfi-flash" node narrowed to it;
        # the kernel has no CFI drivers, qemu/nor_modules.py builds them from Debian's
        # source of this kernel.
        "nor": {"pflash_unit": 1, "bytes": 64 << 20},
        "gdb_arch": "arm",
        "elf_machine": "EM_ARM",
    },
    "arm64": {
        "triplet": "aarch64-linux-gnu",
        "kernel_package": "linux-image-cloud-arm64",
        "cc": "aarch64-linux-gnu-gcc",
        "libc_dir": "/usr/aarch64-linux-gnu/lib",
        "interp": "/lib/ld-linux-aarch64.so.1",
        "qemu": "qemu-system-aarch64",
        "machine": ["-M", "virt", "-cpu", "cortex-a57"],
        "console": "ttyAMA0",
        "disk_device": "virtio-blk-device",
        "modules": ["virtio_mmio", "virtio_blk"],
        "store_modules": [],  # the cloud kernel has no MTD
        "gdb_arch": "aarch64",
        "elf_machine": "EM_AARCH64",
    },
}

# Debian packages the host needs to build and boot the guests (scripts/apt-packages.txt
# lists them too, for a fresh machine).
HOST_TOOLS = {
    "qemu-system-x86_64": "qemu-system-x86",
    "qemu-system-arm": "qemu-system-arm",
    "qemu-system-aarch64": "qemu-system-arm",
    "gdb-multiarch": "gdb-multiarch",
    "dpkg-deb": "dpkg",
    "apt-get": "apt",
    "gcc": "gcc",
    "arm-linux-gnueabihf-gcc": "gcc-arm-linux-gnueabihf",
    "aarch64-linux-gnu-gcc": "gcc-aarch64-linux-gnu",
    "make": "make",
    "python3.11": "python3.11-minimal",
    "fdtput": "device-tree-compiler",
    "xz": "xz-utils",
}


def cache_dir():
    """Downloads and built images, outside the checkout: $MCD_QEMU_CACHE, else
    $XDG_CACHE_HOME/mcd-qemu, else ~/.cache/mcd-qemu."""
    path = os.environ.get("MCD_QEMU_CACHE")
    if not path:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        path = os.path.join(base, "mcd-qemu")
    return os.path.abspath(path)


def host_python():
    """The host's interpreter of the guests' Python version (Debian's python3.11): it
    compiles the byte code and runs the import-closure analysis."""
    for cand in ("/usr/bin/python" + PYVER, "/usr/local/bin/python" + PYVER):
        if os.access(cand, os.X_OK):
            return cand
    return None
