#!/usr/bin/env python3
"""qemu/build_image.py: assemble a guest image (kernel + initramfs) from Debian packages.

    python3 qemu/build_image.py [--force] ARCH...      # ARCH: amd64 armhf arm64

For each architecture, into <cache>/images/ARCH/ (see guests.cache_dir()):
  vmlinuz        the Debian kernel (linux-image-cloud-amd64, -armmp-lpae, -cloud-arm64)
  initrd.cpio    the whole root file system as a newc cpio (uncompressed: under TCG the
                 kernel would spend longer inflating it than QEMU spends loading it)
  rootfs/        the same tree, for gdb-multiarch's sysroot on the host
  image.json     what went in: package versions, kernel modules, the stdlib closure,
                 sizes

The root file system:
  - busybox (busybox-static of the guest's architecture) as /bin/sh and every tool;
  - python3.11 of the guest's architecture (python3.11-minimal, libpython3.11-minimal,
    libpython3.11-stdlib) with its stdlib pruned to the runtime's import closure
    (qemu/stdlib_closure.py explains the method), byte-compiled;
  - the layer's packages of the test image (minicoredumper, -daemon, -tools,
    libminicoredumper, minicoredumper-crashtests, minicoredumper-ptest), installed by
    the recipes' own do_install (qemu/layer_install.py), cross-compiled with -O0 -g;
  - the shared libraries all of that needs (DT_NEEDED closure): glibc from the
    directory the compiler links against (the cross toolchain's libc6-*-cross, or the
    host's libc6 for amd64), so the guest runs and gdb reads the very files the
    programs were linked with; the others from the Debian packages;
  - the kernel modules for the virtio disks (and what they depend on);
  - /init (qemu/guest/init).
The image is rebuilt when any input changes (a hash of the sources, the scripts and the
package versions); downloads stay in the cache.
"""

import argparse
import fcntl
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import time

import debfetch
import nor_modules
from guests import ARCHS, PYVER, REPO, cache_dir, host_python

HERE = os.path.dirname(os.path.abspath(__file__))

PYTHON_PACKAGES = ["python%s-minimal" % PYVER, "libpython%s-minimal" % PYVER,
                   "libpython%s-stdlib" % PYVER]
SITEDIR = "/usr/lib/python%s/site-packages" % PYVER
STDLIB = "/usr/lib/python%s" % PYVER
# Inputs from the checkout whose change rebuilds the image.
SOURCE_INPUTS = ["qemu/guests.py", "qemu/debfetch.py", "qemu/build_image.py",
                 "qemu/layer_install.py", "qemu/stdlib_closure.py", "qemu/cpio.py",
                 "qemu/nor_modules.py",
                 "qemu/guest/init", "runtime/minicoredumper", "runtime/libminicoredumper",
                 "runtime/pyproject.toml", "conf", "meta-minicoredumper", "tests/programs",
                 "tests/layer/bbharness.py", "tests/layer/layertest.py", "tests/layer/stubcore"]


def log(msg):
    print("[build %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def sources_hash():
    h = hashlib.sha256()
    for rel in SOURCE_INPUTS:
        path = os.path.join(REPO, rel)
        files = []
        if os.path.isdir(path):
            for root, dirs, names in os.walk(path):
                dirs[:] = sorted(d for d in dirs if d not in ("__pycache__", "build"))
                files += [os.path.join(root, n) for n in names if not n.endswith(".pyc")]
        elif os.path.exists(path):
            files = [path]
        for f in sorted(files):
            h.update(os.path.relpath(f, REPO).encode() + b"\0")
            with open(f, "rb") as fh:
                h.update(hashlib.sha256(fh.read()).digest())
    return h.hexdigest()


# --- packages -------------------------------------------------------------------------

def fetch_packages(arch):
    """Download (once) what the guest is made of: {role: [deb paths]}."""
    apt = debfetch.Apt(arch)
    for problem in apt.update():
        log("%s: apt: %s" % (arch, problem))
    a = ARCHS[arch]
    meta = apt.show(a["kernel_package"])
    kernel_pkgs = [d for d in debfetch.depends(meta) if d.startswith("linux-image-")]
    if not kernel_pkgs:
        raise RuntimeError("%s depends on no linux-image package" % a["kernel_package"])
    debs = {"kernel": [apt.download(kernel_pkgs[0])], "busybox": [apt.download("busybox-static")],
            "python": [apt.download(p) for p in PYTHON_PACKAGES], "libs": []}
    # Shared libraries the interpreter and its extension modules may need: the library
    # packages the python packages depend on (glibc itself comes from the toolchain).
    libs = set()
    for p in PYTHON_PACKAGES:
        fields = apt.show(p)
        for dep in debfetch.depends(fields) + debfetch.depends(fields, "Pre-Depends"):
            if dep.startswith(("lib", "zlib")) and not dep.startswith(("libc6", "libpython")):
                libs.add(dep)
    debs["libs"] = [apt.download(p) for p in sorted(libs)]
    if a.get("nor"):  # what the NOR flash drivers are built from (nor_modules.py)
        debs["nor"] = nor_modules.packages(arch, debs["kernel"][0])
    return debs


def deb_versions(debs):
    """{package: version} from the names apt-get download gives (NAME_VERSION_ARCH.deb)."""
    out = {}
    for paths in debs.values():
        for p in paths:
            name, version, _ = os.path.basename(p).split("_")
            out[name] = version.replace("%3a", ":")
    return out


# --- kernel ---------------------------------------------------------------------------

def _modinfo(data, key):
    """Values of key in a kernel module's .modinfo strings ("key=value\\0")."""
    out, needle = [], b"\0" + key.encode() + b"="
    pos = data.find(needle)
    while pos >= 0:
        end = data.index(b"\0", pos + 1)
        out.append(data[pos + len(needle):end].decode())
        pos = data.find(needle, end)
    return out


def kernel_stage(arch, deb):
    """vmlinuz and the wanted modules with their dependencies, taken from the kernel
    package once (cached by the .deb's name): the stage directory and its info.

    The package has no modules.dep (depmod runs at install time): dependencies come
    from each module's own .modinfo "depends=" list, looked up through modules.order;
    modules.builtin says which wanted drivers need no module at all."""
    stage = os.path.join(cache_dir(), "stage", arch, "kernel-" + os.path.basename(deb)[:-4])
    info_path = os.path.join(stage, "info.json")
    every = ARCHS[arch]["modules"] + ARCHS[arch]["store_modules"] + [
        e["dtb"] for e in [ARCHS[arch].get("eeprom")] if e]  # a new one: stage again
    if os.path.exists(info_path):
        with open(info_path) as f:
            info = json.load(f)
        if info.get("wanted") == every:
            return stage, info
    if os.path.exists(stage):
        shutil.rmtree(stage)
    os.makedirs(stage)
    wanted = set(ARCHS[arch]["modules"] + ARCHS[arch]["store_modules"])
    # the device tree of the eeprom machine (guests.py), if the arch has one
    dtbs = tuple("/" + e["dtb"] for e in [ARCHS[arch].get("eeprom")] if e)
    meta, kos = {}, {}
    # Pass 1: the kernel, the module lists, and every module whose name may be wanted
    # (the wanted ones and those in the same directories: their usual dependencies).
    dirs = ("/kernel/drivers/virtio/", "/kernel/drivers/block/")
    for m, data in debfetch.stream_members(
            deb, lambda n: n.startswith("./boot/vmlinuz-") or n.endswith(dtbs) or n.endswith(
                ("/modules.order", "/modules.builtin")) or (n.endswith(".ko") and any(d in n for d in dirs))):
        if data is None:
            continue
        if m.name.startswith("./boot/vmlinuz-"):
            meta["release"] = m.name[len("./boot/vmlinuz-"):]
            with open(os.path.join(stage, "vmlinuz"), "wb") as f:
                f.write(data)
        elif m.name.endswith(dtbs):
            with open(os.path.join(stage, os.path.basename(m.name)), "wb") as f:
                f.write(data)
        elif m.name.endswith(".ko"):
            kos[m.name.split("/kernel/", 1)[1]] = data
        else:
            meta[os.path.basename(m.name)] = data.decode()
    release = meta["release"]

    def modname(path):
        return os.path.basename(path)[:-3].replace("-", "_")

    by_name = {modname(p): p[len("kernel/"):] for p in meta["modules.order"].split()}
    builtin = {modname(p) for p in meta["modules.builtin"].split()}
    # Further passes only if a dependency lives elsewhere.
    while True:
        need = set()
        for name in list(wanted):
            if name in builtin:
                continue
            path = by_name.get(name)
            if path is None:
                raise RuntimeError("kernel %s has no module %s" % (release, name))
            if path not in kos:
                need.add(path)
                continue
            for dep in _modinfo(kos[path], "depends"):
                wanted.update(d.replace("-", "_") for d in dep.split(",") if d)
        if not need:
            if all(by_name[n] in kos for n in wanted if n not in builtin):
                break
            continue
        for m, data in debfetch.stream_members(
                deb, lambda n: n.split("/kernel/", 1)[-1] in need):
            if data is not None:
                kos[m.name.split("/kernel/", 1)[1]] = data
    builtin_wanted = sorted(n for n in wanted if n in builtin)

    def visit(name, load, loaded):
        if name in builtin:
            return
        path = by_name[name]
        if path in load or path in loaded:
            return
        for dep in _modinfo(kos[path], "depends"):
            for d in dep.split(","):
                if d:
                    visit(d.replace("-", "_"), load, loaded)
        load.append(path)

    load, store_load = [], []
    for name in ARCHS[arch]["modules"]:
        visit(name, load, ())
    for name in ARCHS[arch]["store_modules"]:
        visit(name, store_load, load)
    for path in load + store_load:
        dest = os.path.join(stage, "modules", path)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with open(dest, "wb") as f:
            f.write(kos[path])
    info = {"release": release, "load_order": load, "store_load_order": store_load,
            "builtin": builtin_wanted, "deb": os.path.basename(deb), "wanted": every}
    with open(info_path, "w") as f:
        json.dump(info, f, indent=1)
    return stage, info


def kernel_and_modules(arch, deb, rootfs, outdir):
    """vmlinuz to outdir, the modules into rootfs with their load order in
    /etc/mcd-guest/modules (loaded at boot) and /etc/mcd-guest/store-modules (by the
    raw store's job); on a guest with a NOR flash its drivers (nor_modules.py) in
    extra/, their load order in /etc/mcd-guest/nor-modules."""
    stage, info = kernel_stage(arch, deb)
    shutil.copy(os.path.join(stage, "vmlinuz"), os.path.join(outdir, "vmlinuz"))
    eeprom = ARCHS[arch].get("eeprom")
    if eeprom:
        shutil.copy(os.path.join(stage, eeprom["dtb"]), os.path.join(outdir, eeprom["dtb"]))
    moddir = os.path.join(rootfs, "usr/lib/modules", info["release"])
    for path in info["load_order"] + info["store_load_order"]:
        copy_into(os.path.join(stage, "modules", path), moddir, path)
    os.makedirs(os.path.join(rootfs, "etc/mcd-guest"), exist_ok=True)
    nor = []
    if ARCHS[arch].get("nor"):
        for name, ko in nor_modules.build(arch, deb):
            nor.append("extra/%s.ko" % name)
            copy_into(ko, moddir, nor[-1])
    for name, order in (("modules", info["load_order"]),
                        ("store-modules", info["store_load_order"]), ("nor-modules", nor)):
        with open(os.path.join(rootfs, "etc/mcd-guest", name), "w") as f:
            f.write("".join(p + "\n" for p in order))
    return info["release"], info["load_order"], info["builtin"]


# --- root file system -----------------------------------------------------------------

def usr_path(path):
    """Debian paths in a merged-/usr root: /bin, /sbin, /lib go under /usr."""
    path = "/" + path.lstrip("./").lstrip("/")
    for top in ("/bin/", "/sbin/", "/lib/", "/lib64/"):
        if path.startswith(top):
            return "/usr" + path
    return path


def copy_into(src, rootfs, dest):
    """Copy file or symlink src to rootfs+dest, making directories."""
    target = os.path.join(rootfs, dest.lstrip("/"))
    os.makedirs(os.path.dirname(target), exist_ok=True)
    if os.path.lexists(target):
        os.unlink(target)
    if os.path.islink(src):
        os.symlink(os.readlink(src), target)
    else:
        shutil.copy2(src, target)
    return target


def skeleton(rootfs, arch):
    for d in ("dev", "proc", "sys", "tmp", "run", "root", "etc", "var/crash", "usr/bin",
              "usr/sbin", "usr/lib", "results"):
        os.makedirs(os.path.join(rootfs, d), exist_ok=True)
    for link, target in (("bin", "usr/bin"), ("sbin", "usr/sbin"), ("lib", "usr/lib")):
        os.symlink(target, os.path.join(rootfs, link))
    if ARCHS[arch]["interp"].startswith("/lib64/"):
        os.makedirs(os.path.join(rootfs, "usr/lib64"))
        os.symlink("usr/lib64", os.path.join(rootfs, "lib64"))
    with open(os.path.join(rootfs, "etc/passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\n")
    with open(os.path.join(rootfs, "etc/group"), "w") as f:
        f.write("root:x:0:\n")


def install_layer(arch, workdir, rootfs):
    """The layer's packages, built and installed by the recipes (layer_install.py)."""
    out = os.path.join(workdir, "layer")
    subprocess.run([sys.executable, os.path.join(HERE, "layer_install.py"), arch, out],
                   check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    with open(os.path.join(out, "manifest.json")) as f:
        manifest = json.load(f)
    for pkg in manifest["image_install"]:
        info = manifest["packages"][pkg]
        for path in info["files"]:
            copy_into(os.path.join(info["D"], path.lstrip("/")), rootfs, path)
    return manifest


def install_python(pystage, rootfs, arch):
    """The interpreter and the pruned stdlib; returns the closure report."""
    copy_into(os.path.join(pystage, "usr/bin/python" + PYVER), rootfs, "/usr/bin/python" + PYVER)
    os.symlink("python" + PYVER, os.path.join(rootfs, "usr/bin/python3"))
    launchers = []
    for d in ("usr/bin", "usr/sbin"):
        for name in sorted(os.listdir(os.path.join(rootfs, d))):
            path = os.path.join(rootfs, d, name)
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as f:
                    if f.read(2 + len("/usr/bin/python")) == b"#!/usr/bin/python":
                        launchers.append(path)
    cmd = [sys.executable, os.path.join(HERE, "stdlib_closure.py"), "--python", host_python(),
           "--stdlib", os.path.join(pystage, STDLIB.lstrip("/")),
           "--sitedir", os.path.join(rootfs, SITEDIR.lstrip("/")),
           "--package", "minicoredumper", "--triplet", ARCHS[arch]["triplet"]]
    for l in launchers:
        cmd += ["--script", l]
    report = json.loads(subprocess.run(cmd, check=True, stdout=subprocess.PIPE).stdout)
    report["launchers"] = ["/" + os.path.relpath(l, rootfs) for l in launchers]
    dest = os.path.join(rootfs, STDLIB.lstrip("/"))
    os.makedirs(os.path.join(dest, "lib-dynload"), exist_ok=True)
    for rel in report["files"]:
        copy_into(os.path.join(pystage, STDLIB.lstrip("/"), rel), rootfs, STDLIB + "/" + rel)
    # Byte code now, as the recipe does for the runtime: a crash must not compile. The
    # stdlib never changes in the image, so unchecked hash-based pycs.
    subprocess.run([host_python(), "-I", "-m", "compileall", "-q", "-j", "0",
                    "--invalidation-mode", "unchecked-hash", "-d", STDLIB, dest], check=True)
    return report


def elf_needed(path):
    """(DT_NEEDED list, PT_INTERP or None) of an ELF file, or None if not ELF."""
    from elftools.elf.elffile import ELFFile
    from elftools.common.exceptions import ELFError
    with open(path, "rb") as f:
        if f.read(4) != b"\x7fELF":
            return None
        f.seek(0)
        try:
            elf = ELFFile(f)
        except ELFError:
            return None
        needed, interp = [], None
        for seg in elf.iter_segments():
            if seg["p_type"] == "PT_INTERP":
                interp = seg.get_interp_name()
        dyn = elf.get_section_by_name(".dynamic")
        if dyn is not None:
            needed = [t.needed for t in dyn.iter_tags() if t.entry.d_tag == "DT_NEEDED"]
        return needed, interp


def install_libraries(arch, rootfs, libstage):
    """Copy the DT_NEEDED closure of every ELF file in rootfs; returns {soname: source}."""
    a = ARCHS[arch]
    libdir = os.path.join("/usr/lib", a["triplet"])
    search = [os.path.join(libstage, "usr/lib", a["triplet"]), os.path.join(libstage, "lib", a["triplet"]),
              a["libc_dir"]]
    placed, queue = {}, []
    for root, dirs, files in os.walk(rootfs):
        for name in files:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                queue.append(path)
    interp = a["interp"]
    src = os.path.join(a["libc_dir"], os.path.basename(interp))
    copy_into(os.path.realpath(src), rootfs, os.path.join(libdir, os.path.basename(interp)))
    link = os.path.join(rootfs, usr_path(interp).lstrip("/"))
    os.makedirs(os.path.dirname(link), exist_ok=True)
    os.symlink(os.path.relpath(os.path.join(rootfs, libdir.lstrip("/"), os.path.basename(interp)),
                               os.path.dirname(link)), link)
    placed[os.path.basename(interp)] = src
    while queue:
        path = queue.pop()
        info = elf_needed(path)
        if info is None:
            continue
        for soname in info[0]:
            if soname in placed or os.path.exists(os.path.join(rootfs, "usr/lib", soname)):
                continue
            for d in search:
                cand = os.path.join(d, soname)
                if os.path.exists(cand):
                    placed[soname] = cand
                    queue.append(copy_into(os.path.realpath(cand), rootfs,
                                           os.path.join(libdir, soname)))
                    break
            else:
                raise RuntimeError("%s needs %s, found in none of %s" % (path, soname, search))
    return placed


def dir_size(root, paths=None):
    total = 0
    for r, dirs, files in os.walk(root):
        for n in files:
            p = os.path.join(r, n)
            if not os.path.islink(p):
                total += os.path.getsize(p)
    return total


def build(arch, force=False, copy_to=None):
    """Build the image of arch if out of date; returns its image.json. With copy_to,
    also copies the image there, under the same lock, so that a concurrent build (of
    other sources) cannot change it while it is in use."""
    os.makedirs(os.path.join(cache_dir(), "images"), exist_ok=True)
    with open(os.path.join(cache_dir(), "images", arch + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        info = _build(arch, force)
        if copy_to:
            if os.path.exists(copy_to):
                shutil.rmtree(copy_to)
            shutil.copytree(os.path.join(cache_dir(), "images", arch), copy_to, symlinks=True,
                            ignore=lambda d, names: ["layer"] if d.endswith(arch) else [])
        return info


def stage_dir(arch, role, debs):
    """Where the .debs of one role are unpacked: one directory per set of package
    versions (older sets are removed), so no file of an older version lingers."""
    tag = hashlib.sha256(" ".join(sorted(os.path.basename(d) for d in debs)).encode()).hexdigest()[:12]
    top = os.path.join(cache_dir(), "stage", arch)
    os.makedirs(top, exist_ok=True)
    for old in os.listdir(top):
        if old.startswith(role + "-") and old != role + "-" + tag:
            shutil.rmtree(os.path.join(top, old))
    return os.path.join(top, role + "-" + tag)


def _build(arch, force=False):
    t0 = time.monotonic()
    top = os.path.join(cache_dir(), "images", arch)
    debs = fetch_packages(arch)
    versions = deb_versions(debs)
    key = hashlib.sha256((sources_hash() + json.dumps(versions, sort_keys=True) +
                          host_python()).encode()).hexdigest()
    stamp = os.path.join(top, "image.json")
    if not force and os.path.exists(stamp):
        with open(stamp) as f:
            old = json.load(f)
        if old.get("key") == key and os.path.exists(os.path.join(top, "initrd.cpio")):
            old["cached"] = True
            return old
    log("%s: building the image" % arch)
    work = os.path.join(cache_dir(), "work", arch)
    if os.path.exists(work):
        shutil.rmtree(work)
    os.makedirs(work)
    pystage = stage_dir(arch, "python", debs["python"])
    libstage = stage_dir(arch, "libs", debs["libs"])
    bbstage = stage_dir(arch, "busybox", debs["busybox"])
    for d in debs["python"]:
        debfetch.extract(d, pystage)
    for d in debs["libs"]:
        debfetch.extract(d, libstage)
    debfetch.extract(debs["busybox"][0], bbstage)

    rootfs = os.path.join(work, "rootfs")
    skeleton(rootfs, arch)
    release, modules, builtin = kernel_and_modules(arch, debs["kernel"][0], rootfs, work)
    log("%s: kernel %s, modules %s" % (arch, release, " ".join(os.path.basename(m) for m in modules)))
    copy_into(os.path.join(bbstage, "bin/busybox"), rootfs, "/usr/bin/busybox")
    os.symlink("busybox", os.path.join(rootfs, "usr/bin/sh"))
    layer = install_layer(arch, work, rootfs)
    closure = install_python(pystage, rootfs, arch)
    libs = install_libraries(arch, rootfs, libstage)
    init = copy_into(os.path.join(HERE, "guest", "init"), rootfs, "/init")
    os.chmod(init, 0o755)

    import cpio
    cpio.write_tree(rootfs, os.path.join(work, "initrd.cpio"),
                    devices={"/dev/console": (stat.S_IFCHR | 0o600, 5, 1)})
    sizes = guest_sizes(rootfs, arch, layer, closure, libs)
    # For comparison: Debian's whole stdlib (sources and extension modules, no byte code).
    sizes["stdlib_debian_unpruned"] = dir_size(os.path.join(pystage, STDLIB.lstrip("/")))
    info = {
        "arch": arch, "key": key, "kernel_release": release, "modules": modules,
        "builtin_modules": builtin, "packages": versions, "libraries": libs,
        "layer_packages": layer["image_install"],
        "provided_by_guest_base": layer["provided_by_guest_base"],
        "stdlib_closure": closure, "sizes": sizes,
        "initrd_bytes": os.path.getsize(os.path.join(work, "initrd.cpio")),
        "build_seconds": round(time.monotonic() - t0, 1),
    }
    with open(os.path.join(work, "image.json"), "w") as f:
        json.dump(info, f, indent=1, sort_keys=True)
    # Publish: replace the previous image as a whole.
    if os.path.exists(top):
        shutil.rmtree(top)
    shutil.move(work, top)
    log("%s: image ready in %.0f s (initrd %.1f MB)" % (arch, info["build_seconds"],
                                                        info["initrd_bytes"] / 1e6))
    info["cached"] = False
    return info


def guest_sizes(rootfs, arch, layer, closure, libs):
    """Bytes on the guest's root file system, by part."""
    def size(rel):
        p = os.path.join(rootfs, rel.lstrip("/"))
        if os.path.isdir(p):
            return dir_size(p)
        return 0 if os.path.islink(p) else os.path.getsize(p)

    a = ARCHS[arch]
    libdir = "/usr/lib/" + a["triplet"]
    glibc = sum(size(os.path.join(libdir, s)) for s, src in libs.items()
                if src.startswith(a["libc_dir"]))
    other_libs = sum(size(os.path.join(libdir, s)) for s, src in libs.items()
                     if not src.startswith(a["libc_dir"]))
    package = size(SITEDIR + "/minicoredumper") + sum(
        size(p) for p in ("/usr/sbin/minicoredumper", "/usr/bin/mcd", "/usr/bin/coreinject")
        if os.path.exists(os.path.join(rootfs, p.lstrip("/"))))
    stdlib = dir_size(os.path.join(rootfs, STDLIB.lstrip("/"))) - size(SITEDIR)
    interpreter = size("/usr/bin/python" + PYVER)
    return {
        "runtime_package": package,
        "stdlib_pruned": stdlib,
        "stdlib_files": len(closure["files"]),
        "interpreter": interpreter,
        "interpreter_libs": other_libs,
        "glibc": glibc,
        "guest_runtime_total": package + stdlib + interpreter + other_libs,
        "libminicoredumper": size("/usr/lib/libminicoredumper.so.2.0.0"),
        "busybox": size("/usr/bin/busybox"),
        "kernel_modules": size("/usr/lib/modules"),
        "rootfs_total": dir_size(rootfs),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("arch", nargs="+", choices=sorted(ARCHS))
    ap.add_argument("--force", action="store_true", help="rebuild even if up to date")
    args = ap.parse_args()
    for arch in args.arch:
        info = build(arch, args.force)
        print(json.dumps({"arch": arch, "dir": os.path.join(cache_dir(), "images", arch),
                          "sizes": info["sizes"]}))


if __name__ == "__main__":
    main()
