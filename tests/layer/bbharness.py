#!/usr/bin/env python3
"""tests/layer/bbharness.py: parses meta-minicoredumper with BitBake's own parser and
runs the recipes' tasks, for tests/layer/test_bitbake.py.

It runs in a process of its own (BitBake keeps global state: event handlers, parse
caches, loggers), so pytest sees only its JSON report.

    python3 bbharness.py OUTDIR [--distro-features "systemd usrmerge"] [--run SHELL]
                         [--layer DIR] [--extra-layer DIR]... [--conf LINE]...

The build in OUTDIR/build has a conf/bblayers.conf naming two layers: tests/layer/stubcore
(a small stand-in for oe-core: bitbake.conf, base.bbclass and the classes the recipes
inherit, all written for this test) and the real meta-minicoredumper. BitBake's
CookerDataBuilder reads them as bitbake would (bblayers.conf, each layer.conf with its
LAYERSERIES_COMPAT check, bitbake.conf, base.bbclass), then every recipe matched by the
layer's BBFILES is parsed with all its BBCLASSEXTEND variants.

--layer names another copy of the layer to test instead (a copy outside the checkout,
test_layer_copy.py); --extra-layer adds a layer to bblayers.conf (tests/layer/stubmetaoe,
a stand-in for meta-oe, test_provider_choice.py); --conf appends a line to local.conf.
The report's "providers" says, per recipe name (PN), which recipe file BitBake would
build: bb.providers.findProviders over the recipes of every layer, with the layer
priorities bb.cooker computes from BBFILE_PRIORITY, as `bitbake -s` reports them.
A configuration that does not parse (a layer.conf calling bb.fatal) gives a report with
its "configuration_error" and exit status 1; BitBake's messages are on stderr.

With --run, the target recipes are built in DEPENDS order: each one's SRC_URI is
fetched and unpacked by bb.fetch2 (the file:// entries resolve through FILESPATH,
exactly as in a build) and its do_configure, do_compile and do_install run (each
followed by its *_ptest_base task under ptest.bbclass and DISTRO_FEATURES "ptest"): each as
BitBake writes a task script (bb.build's trap code, then bb.data.emit_func: the exported
variables, the task and the shell functions it calls), with the task's [cleandirs] and
[dirs] handled, under SHELL with an empty environment. Then its ${D} is copied into a
shared sysroot, which the stub's CC searches, as a cross compiler searches its
--sysroot. D, WORKDIR etc. live under OUTDIR/build/tmp.

The report (OUTDIR/report.json) holds the layer configuration, per recipe and variant
the variables the tests check, and per task the exit code and output.
"""

import argparse
import glob
import json
import logging
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
LAYER = os.path.join(REPO, "meta-minicoredumper")
STUBCORE = os.path.join(HERE, "stubcore")

sys.path.insert(0, os.path.join(HERE, "pystubs"))

import bb  # noqa: E402
import bb.build  # noqa: E402
import bb.cookerdata  # noqa: E402
import bb.data  # noqa: E402
import bb.fetch2  # noqa: E402
import bb.parse  # noqa: E402

# Variables reported for every recipe variant, and per package.
RECIPE_VARS = [
    "PN", "PV", "BPN", "SUMMARY", "DESCRIPTION", "LICENSE", "LIC_FILES_CHKSUM", "SECTION",
    "SRC_URI", "FILESPATH", "S", "B", "D", "T", "WORKDIR", "UNPACKDIR", "DEPENDS",
    "PACKAGES", "EXTRA_OEMAKE", "BBCLASSEXTEND", "IMAGE_INSTALL",
    "SYSTEMD_PACKAGES", "SYSTEMD_AUTO_ENABLE", "INITSCRIPT_PACKAGES",
    "INHIBIT_UPDATERCD_BBCLASS", "INIT_D_DIR", "PYTHON_SITEPACKAGES_DIR", "PYTHON",
    "prefix", "bindir", "sbindir", "libdir", "nonarch_libdir", "includedir", "sysconfdir",
    "runtimedir", "systemd_system_unitdir", "MINICOREDUMPER_SBIN_SCRIPTS",
    "PTEST_ENABLED", "PTEST_PATH", "INHIBIT_PACKAGE_STRIP", "INHIBIT_PACKAGE_DEBUG_SPLIT",
]
PACKAGE_VARS = [
    "FILES", "RDEPENDS", "RRECOMMENDS", "CONFFILES", "SYSTEMD_SERVICE", "INITSCRIPT_NAME",
    "INITSCRIPT_PARAMS", "ALLOW_EMPTY", "SYSTEMD_AUTO_ENABLE",
]
# In the order BitBake runs them; the *_ptest_base tasks exist only with ptest.bbclass
# and DISTRO_FEATURES "ptest".
TASKS = ["do_configure", "do_configure_ptest_base", "do_compile", "do_compile_ptest_base",
         "do_install", "do_install_ptest_base"]


def write_build_conf(topdir, distro_features, layers=(STUBCORE, LAYER), extra_conf=()):
    confdir = os.path.join(topdir, "conf")
    os.makedirs(confdir, exist_ok=True)
    with open(os.path.join(confdir, "bblayers.conf"), "w") as f:
        f.write('BBPATH = "${TOPDIR}"\n')
        f.write('BBFILES ?= ""\n')
        f.write('BBLAYERS = "%s"\n' % " ".join(layers))
    with open(os.path.join(confdir, "local.conf"), "w") as f:
        f.write('TMPDIR = "%s"\n' % os.path.join(topdir, "tmp"))
        f.write('DISTRO_FEATURES = "%s"\n' % distro_features)
        f.write('HOST_CC = "%s"\n' % (shutil.which("gcc") or shutil.which("cc") or "cc"))
        f.write('HOST_PYTHON3 = "%s"\n' % sys.executable)
        f.write('PATH = "%s"\n' % os.environ.get("PATH", "/usr/bin:/bin"))
        for line in extra_conf:
            f.write(line + "\n")


def parse_configuration(topdir):
    os.chdir(topdir)
    cfg = bb.cookerdata.CookerConfiguration()
    cfg.env = dict(os.environ)
    builder = bb.cookerdata.CookerDataBuilder(cfg)
    builder.parseBaseConfiguration()
    return builder


def layer_report(data):
    collections = (data.getVar("BBFILE_COLLECTIONS") or "").split()
    report = {"BBFILE_COLLECTIONS": collections, "BBFILES": (data.getVar("BBFILES") or "").split(),
              "LAYERSERIES_CORENAMES": data.getVar("LAYERSERIES_CORENAMES"), "layers": {}}
    for c in collections:
        report["layers"][c] = {
            name: data.getVar("%s_%s" % (name, c))
            for name in ("LAYERSERIES_COMPAT", "LAYERDEPENDS", "BBFILE_PRIORITY",
                         "BBFILE_PATTERN", "LAYERVERSION")
        }
    report["BBPATH"] = (data.getVar("BBPATH") or "").split(":")
    return report


def recipe_files(data, layer=LAYER):
    """The recipe files of BBFILES in layer (None: in every layer)."""
    found = []
    for pattern in (data.getVar("BBFILES") or "").split():
        found.extend(glob.glob(pattern))
    return sorted(f for f in set(found) if layer is None or f.startswith(layer + os.sep))


def provider_report(builder, parsed):
    """{PN: {"preferred": file, "version": PV, "candidates": {file: [PV, priority]}}}:
    which recipe file BitBake builds for each name, by its own code: the layer
    priorities of bb.cooker (BBFILE_PRIORITY_*, BBFILE_PATTERN_*), the recipe cache's
    view of each parsed variant and bb.providers.findProviders (PREFERRED_VERSION,
    DEFAULT_PREFERENCE, then the highest version among the highest priority)."""
    import types
    import bb.cache
    import bb.cooker
    import bb.providers

    data = builder.data
    cooker = types.SimpleNamespace(data=data)  # handleCollections reads only self.data
    bb.cooker.BBCooker.handleCollections(cooker, data.getVar("BBFILE_COLLECTIONS"))
    collections = bb.cooker.CookerCollectFiles(cooker.bbfile_config_priorities)
    cache = bb.cache.CacheData([bb.cache.CoreRecipeInfo])
    for fn, stores in parsed.items():
        for variant, d in stores.items():
            info = bb.cache.CoreRecipeInfo(fn, d)
            if info.skipped:
                continue
            vfn = bb.cache.realfn2virtual(fn, variant, "") if variant else fn
            cache.add_from_recipeinfo(vfn, [info])
            cache.bbfile_priority[vfn] = collections.calc_bbfile_priority(fn)[0]
    _, preferred, _ = bb.providers.findProviders(data, cache, cache.pkg_pn)
    return {pn: {"preferred": preferred[pn][1],
                 "version": preferred[pn][0][1] if preferred[pn][0] else None,
                 "candidates": {f: [cache.pkg_pepvpr[f][1], cache.bbfile_priority[f]]
                                for f in files}}
            for pn, files in cache.pkg_pn.items()}


def variant_report(d):
    rep = {name: d.getVar(name) for name in RECIPE_VARS}
    rep["inherits"] = sorted(os.path.splitext(os.path.basename(f))[0]
                             for f in (d.getVar("__inherit_cache", False) or []))
    rep["tasks"] = list(d.getVar("__BBTASKS", False) or [])
    rep["noexec"] = sorted(t for t in rep["tasks"] if d.getVarFlag(t, "noexec"))
    rep["skipped"] = d.getVar("__SKIPPED", False) or None
    # The files whose change makes BitBake parse the recipe again (its parse cache).
    rep["parse_depends"] = sorted(f for f, _ in d.getVar("__depends", False) or [])
    rep["packages"] = {}
    for pkg in (d.getVar("PACKAGES") or "").split():
        rep["packages"][pkg] = {name: d.getVar("%s:%s" % (name, pkg)) for name in PACKAGE_VARS}
    rep["functions"] = {t: d.getVar(t, False) for t in TASKS if d.getVar(t, False) is not None}
    return rep


def run_task(d, task, shell):
    """Write the task script the way bb.build does and run it under shell."""
    for flag in ("cleandirs",):
        for path in (d.expand(d.getVarFlag(task, flag) or "")).split():
            if os.path.exists(path):
                shutil.rmtree(path)
            os.makedirs(path, exist_ok=True)
    dirs = d.expand(d.getVarFlag(task, "dirs") or "").split()
    for path in dirs:
        os.makedirs(path, exist_ok=True)
    cwd = dirs[-1] if dirs else d.getVar("B")
    tmp = d.getVar("T")
    os.makedirs(tmp, exist_ok=True)
    os.makedirs(cwd, exist_ok=True)
    runfile = os.path.join(tmp, "run.%s.sh" % task)
    with open(runfile, "w") as script:
        script.write(bb.build.shell_trap_code())
        bb.data.emit_func(task, script, d)
        script.write("cd '%s'\n%s\n" % (cwd, task))
    proc = subprocess.run([shell, runfile], cwd=cwd, env={}, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=600)
    return {"returncode": proc.returncode, "output": proc.stdout[-20000:], "runfile": runfile}


def build_order(stores):
    """Recipe files ordered so that each comes after the layer recipes it DEPENDS on."""
    pn_of = {fn: s[""].getVar("PN") for fn, s in stores.items()}
    fn_of = {pn: fn for fn, pn in pn_of.items()}
    done, order = set(), []

    def visit(fn, path=()):
        if fn in done:
            return
        if fn in path:
            raise RuntimeError("DEPENDS cycle: %s" % " -> ".join(path + (fn,)))
        for dep in (stores[fn][""].getVar("DEPENDS") or "").split():
            if dep in fn_of:
                visit(fn_of[dep], path + (fn,))
        done.add(fn)
        order.append(fn)

    for fn in sorted(stores):
        visit(fn)
    return order


def stage(d):
    """What do_populate_sysroot does for the compiler: ${D} into the shared sysroot."""
    shutil.copytree(d.getVar("D"), d.getVar("STAGING_DIR_TARGET"), symlinks=True,
                    dirs_exist_ok=True)


def run_recipe(d, shell):
    result = {"fetch": None, "tasks": {}}
    src_uri = (d.getVar("SRC_URI") or "").split()
    unpackdir = d.getVar("UNPACKDIR")
    if os.path.exists(d.getVar("WORKDIR")):
        shutil.rmtree(d.getVar("WORKDIR"))
    os.makedirs(unpackdir)
    try:
        if src_uri:
            fetcher = bb.fetch2.Fetch(src_uri, d)
            fetcher.download()
            fetcher.unpack(unpackdir)
            result["fetch"] = {"localpaths": [fetcher.localpath(u) for u in src_uri]}
    except Exception as exc:  # report, the test decides
        result["fetch"] = {"error": "%s: %s" % (type(exc).__name__, exc)}
        return result
    tasks = d.getVar("__BBTASKS", False) or []
    for task in TASKS:
        if task not in tasks or d.getVar(task, False) is None or d.getVarFlag(task, "noexec"):
            continue
        if d.getVarFlag(task, "python"):
            result["tasks"][task] = {"returncode": None, "output": "python task not run"}
            continue
        result["tasks"][task] = outcome = run_task(d, task, shell)
        if outcome["returncode"] != 0:
            return result
    stage(d)
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("outdir")
    ap.add_argument("--distro-features", default="systemd usrmerge")
    ap.add_argument("--run", metavar="SHELL", help="run configure/compile/install under SHELL")
    ap.add_argument("--layer", default=LAYER, help="the layer to test (default: this checkout's)")
    ap.add_argument("--extra-layer", action="append", default=[], metavar="DIR",
                    help="another layer for bblayers.conf")
    ap.add_argument("--conf", action="append", default=[], metavar="LINE",
                    help="a line for local.conf")
    args = ap.parse_args()
    layer = os.path.abspath(args.layer)

    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING)
    logging.getLogger("BitBake").addHandler(handler)

    outdir = os.path.abspath(args.outdir)
    topdir = os.path.join(outdir, "build")
    write_build_conf(topdir, args.distro_features, [STUBCORE, layer] + args.extra_layer,
                     args.conf)
    try:
        builder = parse_configuration(topdir)
    except Exception as exc:  # bb.fatal in a layer.conf: BitBake has logged why
        with open(os.path.join(outdir, "report.json"), "w") as f:
            json.dump({"configuration_error": "%s: %s" % (type(exc).__name__, exc)}, f)
        sys.exit(1)
    report = {"bitbake_version": bb.__version__, "layer": layer_report(builder.data),
              "recipes": {}}
    parsed = {}
    for fn in recipe_files(builder.data, layer):
        parsed[fn] = stores = builder.parseRecipeVariants(fn, [], layername="minicoredumper")
        entry = report["recipes"][os.path.relpath(fn, layer)] = {}
        for variant, d in stores.items():
            entry[variant or "target"] = variant_report(d)
    others = {fn: builder.parseRecipeVariants(fn, [], layername=None)
              for fn in recipe_files(builder.data, None) if fn not in parsed}
    report["providers"] = provider_report(builder, {**parsed, **others})
    if args.run:
        for fn in build_order(parsed):
            entry = report["recipes"][os.path.relpath(fn, layer)]["target"]
            if "core-image" not in entry["inherits"]:
                entry["run"] = run_recipe(parsed[fn][""], args.run)
    with open(os.path.join(outdir, "report.json"), "w") as f:
        json.dump(report, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
