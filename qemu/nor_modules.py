"""qemu/nor_modules.py: the CFI NOR flash drivers that Debian's armhf kernel leaves out,
built from Debian's own kernel source for that very kernel.

QEMU's `virt` machine has two CFI parallel NOR flashes (pflash_cfi01, Intel command set,
two x16 devices in a 32-bit bank, 256 KiB erase blocks), described in its device tree as
"cfi-flash". Linux drives them with physmap (CONFIG_MTD_PHYSMAP_OF), cfi_probe,
gen_probe, cfi_util and cfi_cmdset_0001, but linux-image-armmp-lpae is built without
them (CONFIG_MTD_CFI and CONFIG_MTD_PHYSMAP_OF not set; only nandsim among the flash
drivers the guests can use); so are the arm64 kernels (no CFI, no physmap). MTD itself is
built in, so these five modules are all a NOR flash needs.

They are built as out-of-tree modules against the kernel's headers package, from the
files of linux-source-6.1 of the kernel's version, unchanged, with CONFIG_MTD_PHYSMAP_OF
defined for physmap-core.c: the same source Debian compiles, the same compiler (the host's
gcc-12 cross compiler, as Debian's), the kernel's Module.symvers (modversions), so the
kernel loads them (they taint it as unsigned). Debian's linux-kbuild-6.1 of the host's
architecture provides fixdep and the Makefiles; its modpost, though, knows the device
table layouts of 64-bit kernels only (struct of_device_id is 196 bytes on arm), so
modpost is built from the source's scripts/mod with the offsets of the target, which
kbuild itself computes from devicetable-offsets.c.

    python3 qemu/nor_modules.py ARCH      # builds (once) and prints the .ko paths
"""

import glob
import json
import os
import re
import shutil
import subprocess
import sys

import debfetch
from guests import ARCHS, cache_dir

# The modules in load order (each after those it needs) and their source files in the
# kernel tree; physmap.ko is physmap-core.c with the headers physmap-*.h it includes.
MODULES = ["cfi_util", "gen_probe", "cfi_cmdset_0001", "cfi_probe", "physmap"]
SOURCES = ["drivers/mtd/chips/cfi_util.c", "drivers/mtd/chips/gen_probe.c",
           "drivers/mtd/chips/cfi_cmdset_0001.c", "drivers/mtd/chips/fwh_lock.h",
           "drivers/mtd/chips/cfi_probe.c", "drivers/mtd/maps/physmap-core.c",
           "drivers/mtd/maps/physmap-bt1-rom.h", "drivers/mtd/maps/physmap-gemini.h",
           "drivers/mtd/maps/physmap-ixp4xx.h", "drivers/mtd/maps/physmap-versatile.h"]
MODPOST = ["scripts/mod/modpost.c", "scripts/mod/file2alias.c", "scripts/mod/sumversion.c",
           "scripts/mod/modpost.h", "scripts/mod/list.h", "scripts/mod/mk_elfconfig.c",
           "scripts/mod/devicetable-offsets.c", "scripts/mod/empty.c",
           "include/linux/mod_devicetable.h", "include/linux/license.h"]
KBUILD = """obj-m := cfi_util.o gen_probe.o cfi_cmdset_0001.o cfi_probe.o physmap.o
physmap-y := physmap-core.o
ccflags-y := -DCONFIG_MTD_PHYSMAP_OF=1
"""


def host_arch():
    return subprocess.run(["dpkg", "--print-architecture"], check=True, text=True,
                          stdout=subprocess.PIPE).stdout.strip()


def packages(arch, kernel_deb):
    """The .debs the build needs, for the kernel package kernel_deb: the kernel's
    headers and their common part, Debian's kernel source (arch all) and linux-kbuild
    of the host's architecture."""
    apt = debfetch.Apt(arch)
    image = os.path.basename(kernel_deb).split("_")[0]  # linux-image-6.1.0-50-armmp-lpae
    headers = image.replace("linux-image-", "linux-headers-", 1)
    fields = apt.show(headers)
    common = [d for d in debfetch.depends(fields) if d.endswith("-common")]
    kbuild = [d for d in debfetch.depends(fields) if d.startswith("linux-kbuild-")]
    source = kbuild[0].replace("linux-kbuild-", "linux-source-", 1)
    host = debfetch.Apt(host_arch())
    host.update()
    return [apt.download(headers), apt.download(common[0]), apt.download(source),
            host.download(kbuild[0])]


def _extract_source(source_deb, members, dest):
    """members (paths in the kernel tree) of linux-source's tarball, to dest."""
    inner = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", source_deb], stdout=subprocess.PIPE)
    tarball = subprocess.Popen(["tar", "-xO", "--wildcards", "./usr/src/linux-source-*.tar.xz"],
                               stdin=inner.stdout, stdout=subprocess.PIPE)
    inner.stdout.close()
    unpack = subprocess.run(["tar", "-xJ", "-C", dest, "--strip-components=1", "--wildcards"]
                            + ["linux-source-*/" + m for m in members], stdin=tarball.stdout)
    tarball.stdout.close()
    if tarball.wait() or inner.wait() or unpack.returncode:
        raise RuntimeError("cannot take %s from %s" % (" ".join(members), source_deb))


def _make(headers, subdir, cross, *goals):
    p = subprocess.run(["make", "-C", headers, "M=" + subdir, "ARCH=arm",
                        "CROSS_COMPILE=" + cross] + list(goals),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode:
        raise RuntimeError("building %s failed:\n%s" % (subdir, p.stdout[-4000:]))


def build(arch, kernel_deb):
    """The NOR modules of arch's kernel, built once (cached by the package versions):
    [(module name, .ko path)] in load order."""
    debs = packages(arch, kernel_deb)
    tag = "-".join(os.path.basename(d).split("_")[1] for d in debs[:1] + debs[-1:])
    top = os.path.join(cache_dir(), "stage", arch, "nor-" + tag)
    done = os.path.join(top, "modules.json")
    if os.path.exists(done):
        with open(done) as f:
            return [tuple(m) for m in json.load(f)]
    if os.path.exists(top):
        shutil.rmtree(top)
    root, src = os.path.join(top, "root"), os.path.join(top, "src")
    os.makedirs(root)
    os.makedirs(src)
    for deb in debs[:2] + debs[3:]:
        subprocess.run(["dpkg-deb", "-x", deb, root], check=True)
    _extract_source(debs[2], SOURCES + MODPOST, src)
    release = os.path.basename(debs[0]).split("_")[0][len("linux-headers-"):]
    headers = os.path.join(root, "usr/src/linux-headers-" + release)
    # The headers' Makefile includes the common part by its absolute path in /usr/src.
    with open(os.path.join(headers, "Makefile")) as f:
        common = re.search(r"include (\S+)", f.read()).group(1)
    with open(os.path.join(headers, "Makefile"), "w") as f:
        f.write("include %s\n" % os.path.join(root, common.lstrip("/")))
    cross = ARCHS[arch]["cc"][:-len("gcc")]
    # modpost for this target: the device table offsets and ELF class from kbuild's
    # own compile of devicetable-offsets.c and empty.c with the kernel's flags.
    mod = os.path.join(src, "scripts/mod")
    prep = os.path.join(top, "prep")
    os.makedirs(prep)
    for name in ("devicetable-offsets.c", "empty.c"):
        shutil.copy(os.path.join(mod, name), prep)
    with open(os.path.join(prep, "Kbuild"), "w") as f:
        f.write("always-y := devicetable-offsets.s empty.o\n")
    _make(headers, prep, cross)
    lines = ["#ifndef __DEVICETABLE_OFFSETS_H__", "#define __DEVICETABLE_OFFSETS_H__"]
    with open(os.path.join(prep, "devicetable-offsets.s")) as f:
        for line in f:  # .ascii "->SIZE_of_device_id #196 sizeof(struct of_device_id)"
            m = re.search(r'"->(\S+) [#$]?(\S+) (.*)"', line)
            if m:
                lines.append("#define %s %s /* %s */" % m.groups())
    with open(os.path.join(mod, "devicetable-offsets.h"), "w") as f:
        f.write("\n".join(lines + ["#endif", ""]))
    subprocess.run(["gcc", "-o", os.path.join(mod, "mk_elfconfig"),
                    os.path.join(mod, "mk_elfconfig.c")], check=True)
    with open(os.path.join(prep, "empty.o"), "rb") as i, \
            open(os.path.join(mod, "elfconfig.h"), "wb") as o:
        subprocess.run([os.path.join(mod, "mk_elfconfig")], stdin=i, stdout=o, check=True)
    kbuild_mod = glob.glob(os.path.join(root, "usr/lib/linux-kbuild-*/scripts/mod"))[0]
    for old in glob.glob(os.path.join(kbuild_mod, "modpost*")):
        os.unlink(old)
    subprocess.run(["gcc", "-O2", "-o", os.path.join(kbuild_mod, "modpost")]
                   + [os.path.join(mod, n) for n in ("modpost.c", "file2alias.c",
                                                     "sumversion.c")], check=True)
    # The modules themselves.
    out = os.path.join(top, "modules")
    os.makedirs(out)
    for path in SOURCES:
        shutil.copy(os.path.join(src, path), out)
    with open(os.path.join(out, "Kbuild"), "w") as f:
        f.write(KBUILD)
    _make(headers, out, cross, "modules")
    built = [(m, os.path.join(out, m + ".ko")) for m in MODULES]
    with open(done, "w") as f:
        json.dump(built, f)
    return built


def main():
    arch = sys.argv[1]
    apt = debfetch.Apt(arch)
    apt.update()
    image = [d for d in debfetch.depends(apt.show(ARCHS[arch]["kernel_package"]))
             if d.startswith("linux-image-")][0]
    print(json.dumps(build(arch, apt.download(image)), indent=1))


if __name__ == "__main__":
    main()
