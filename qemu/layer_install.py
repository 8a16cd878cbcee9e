#!/usr/bin/env python3
"""qemu/layer_install.py: install the runtime, libminicoredumper and the crash test
programs for a guest with the layer's own recipes.

    python3 qemu/layer_install.py ARCH OUTDIR

The recipes' do_compile and do_install run exactly as in the layer smoke test
(tests/layer/bbharness.py: BitBake's parser, the stand-in oe-core of tests/layer/stubcore,
each task written out by bb.build and run under sh), with a local.conf that makes it a
cross build for the guest:

  - HOST_CC is the guest's compiler (gcc, arm-linux-gnueabihf-gcc or
    aarch64-linux-gnu-gcc): CC of the recipes, and so of the library's Makefile;
  - CFLAGS -O0 -g: the crash programs and the library debug with every frame;
  - the Python the recipes byte-compile with is the host's python3.11, and the site
    directory is that of python3.11 (the guest's interpreter);
  - DISTRO_FEATURES sysvinit: the guests boot a shell script, so the handler's
    core_pattern wiring is the init script /etc/init.d/minicoredumper;
  - and ptest (as in wrynose's defaults): minicoredumper-ptest, whose run-ptest the
    guests run, is built (the *_ptest_base tasks) and is in the image recipe's
    IMAGE_INSTALL.

Each recipe's ${D} lands in OUTDIR/<recipe>/image. The image recipe's IMAGE_INSTALL then
says which of the split packages the guest gets (FILES as in the recipes, emulated by
tests/layer/layertest.split_packages); OUTDIR/manifest.json lists the packages and
their files.
"""

import json
import os
import shutil
import sys

from guests import ARCHS, PYVER, REPO, host_python

# Run by build_image.py as a script: the layer tests' BitBake harness (bbharness,
# layertest) is imported from tests/layer, where pytest.ini's pythonpath has it for
# the tests.
sys.path.insert(0, os.path.join(REPO, "tests", "layer"))

DISTRO = "mcdguest"


def local_conf_extra(arch):
    a = ARCHS[arch]
    return "\n".join([
        "# qemu/layer_install.py: a cross build for the %s guest" % arch,
        'DISTRO = "%s"' % DISTRO,
        'TARGET_ARCH = "%s"' % a["triplet"].split("-")[0],
        'HOST_CC = "%s"' % a["cc"],
        'HOST_PYTHON3 = "%s"' % host_python(),
        'CFLAGS:%s = "-O0 -g"' % DISTRO,
        'PYTHON_BASEVERSION:%s = "%s"' % (DISTRO, PYVER),
        "",
    ])


def main():
    arch, outdir = sys.argv[1], os.path.abspath(sys.argv[2])
    import bbharness  # BitBake's bb package: tests/layer/requirements.txt
    from layertest import split_packages

    if os.path.exists(outdir):
        shutil.rmtree(outdir)
    topdir = os.path.join(outdir, "build")
    bbharness.write_build_conf(topdir, "sysvinit ptest")
    with open(os.path.join(topdir, "conf", "local.conf"), "a") as f:
        f.write(local_conf_extra(arch))
    builder = bbharness.parse_configuration(topdir)
    parsed = {fn: builder.parseRecipeVariants(fn, [], layername="minicoredumper")
              for fn in bbharness.recipe_files(builder.data)}
    image_install, manifest = [], {"arch": arch, "recipes": {}, "packages": {}}
    for fn in bbharness.build_order(parsed):
        d = parsed[fn][""]
        rel = os.path.relpath(fn, bbharness.LAYER)
        if d.getVar("IMAGE_INSTALL") is not None and "core-image" in (
                " ".join(d.getVar("__inherit_cache", False) or [])):
            image_install = d.getVar("IMAGE_INSTALL").split()
            continue
        result = bbharness.run_recipe(d, "sh")
        if "error" in (result["fetch"] or {}):
            raise SystemExit("%s: fetch failed: %s" % (rel, result["fetch"]["error"]))
        for task, outcome in result["tasks"].items():
            if outcome["returncode"] != 0:
                raise SystemExit("%s: %s failed:\n%s" % (rel, task, outcome["output"]))
        variant = bbharness.variant_report(d)
        split, unclaimed = split_packages(variant, d.getVar("D"))
        manifest["recipes"][rel] = {"D": d.getVar("D"), "PN": d.getVar("PN"),
                                    "unclaimed": unclaimed,
                                    "CC": d.getVar("CC"), "CFLAGS": d.getVar("CFLAGS"),
                                    "PYTHON_SITEPACKAGES_DIR": d.getVar("PYTHON_SITEPACKAGES_DIR")}
        for pkg, files in split.items():
            rdepends = (variant["packages"].get(pkg, {}).get("RDEPENDS") or "").split()
            manifest["packages"][pkg] = {"recipe": rel, "D": d.getVar("D"), "files": files,
                                         "rdepends": [r for r in rdepends if not r.startswith("(")
                                                      and not r.endswith(")")]}
    if not image_install:
        raise SystemExit("no image recipe with IMAGE_INSTALL found in the layer")
    # IMAGE_INSTALL and the RDEPENDS of its packages, as an image build would resolve
    # them. What no recipe of the layer gives is the guest's own base: oe-core's
    # packagegroup-core-boot (an init and a shell) is busybox and qemu/guest/init here,
    # python3-* are the guest's python3.11 with its pruned stdlib.
    wanted, base, todo = [], [], list(image_install)
    while todo:
        pkg = todo.pop(0)
        if pkg in wanted or pkg in base:
            continue
        if pkg in manifest["packages"]:
            wanted.append(pkg)
            todo += manifest["packages"][pkg]["rdepends"]
        else:
            base.append(pkg)
    manifest["image_install"] = wanted
    manifest["provided_by_guest_base"] = base
    with open(os.path.join(outdir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
