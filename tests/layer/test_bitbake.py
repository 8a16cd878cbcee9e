"""tests/layer/test_bitbake.py: the BitBake smoke test of meta-minicoredumper.

BitBake's own parser (the bb package of the bitbake-setup wheel) reads the layer
against tests/layer/stubcore, and each recipe's do_configure/do_compile/do_install runs
on the real sources of this repository (see bbharness.py). The tests check the layer
configuration, the variables that make up the packaging contract, and the installed
trees: files, modes, the package each file lands in, and the contents of the launcher,
the configuration, the sysctl drop-in, the systemd unit and the init scripts.
"""

import json
import os
import re
import subprocess
import sys

import pytest

from lab.programs import FRAMES
from layertest import (LAYER, REPO, RECIPES, RUNTIME, harness, installed_files, read,
                       split_packages, target)
from minicoredumper import __version__
from python3_packages import KNOWN_PACKAGES

try:
    import tomllib
except ImportError:  # Python < 3.11
    tomllib = None

PN = "minicoredumper"
HANDLER_PATTERN = "|/usr/sbin/minicoredumper %P %u %g %s %t %h %e --dump-mode=%d"
SITEDIR = "/usr/lib/python3.14/site-packages"
PTEST_PATH = "/usr/lib/minicoredumper/ptest"


def console_scripts():
    if tomllib is None:
        pytest.skip("tomllib needs Python 3.11")
    with open(os.path.join(RUNTIME, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)["project"].get("scripts", {})


def words(value):
    """RDEPENDS-style list without version constraints."""
    return set(re.sub(r"\([^)]*\)", "", value or "").split())


def image_dir(variant):
    return variant["D"]


def ran(variant):
    """The task results of a recipe; fails with the task output if a task failed."""
    run = variant["run"]
    assert "error" not in (run["fetch"] or {}), run["fetch"]
    for task, outcome in run["tasks"].items():
        assert outcome["returncode"] == 0, "%s failed:\n%s" % (task, outcome["output"])
    return run


# --- layer.conf ---------------------------------------------------------------------

def test_layer_conf_values(bb_systemd):
    layer = bb_systemd["layer"]
    assert "minicoredumper" in layer["BBFILE_COLLECTIONS"]
    conf = layer["layers"]["minicoredumper"]
    assert conf["LAYERSERIES_COMPAT"] == "wrynose"
    assert conf["LAYERDEPENDS"] == "core"
    assert set(conf["LAYERDEPENDS"].split()) <= set(layer["BBFILE_COLLECTIONS"])
    assert conf["LAYERSERIES_COMPAT"] in layer["LAYERSERIES_CORENAMES"].split()
    assert int(conf["BBFILE_PRIORITY"]) > 0
    assert conf["BBFILE_PATTERN"] == "^%s/" % LAYER
    assert [f for f in layer["BBFILES"] if f.startswith(LAYER)] == [LAYER + "/recipes-*/*/*.bb"]
    assert LAYER in layer["BBPATH"]


def test_layer_conf_sets_nothing_global():
    """layer.conf may only register the layer: BBPATH, BBFILES, the collection and
    variables namespaced with _minicoredumper."""
    allowed = {"BBPATH", "BBFILES", "BBFILE_COLLECTIONS"}
    for line in read(os.path.join(LAYER, "conf", "layer.conf")).splitlines():
        m = re.match(r"\s*([A-Za-z0-9_:${}\-]+)\s*(\?\?=|\?=|:=|\+=|=\+|\.=|=\.|=)", line)
        if not m or line.lstrip().startswith("#"):
            continue
        name = m.group(1)
        assert name in allowed or name.endswith("_minicoredumper"), line


def test_layer_has_no_bbappend():
    appends = [os.path.join(r, f) for r, _, fs in os.walk(LAYER) for f in fs
               if f.endswith(".bbappend")]
    assert appends == []


def test_every_recipe_parses(bb_systemd, bb_sysvinit):
    for report in (bb_systemd, bb_sysvinit):
        assert sorted(report["recipes"]) == sorted(RECIPES.values())
        for name, variants in report["recipes"].items():
            for variant, v in variants.items():
                assert v["skipped"] is None, (name, variant, v["skipped"])
    native = bb_systemd["recipes"][RECIPES["library"]]["native"]
    assert native["PN"] == "libminicoredumper-native"


def test_sources_are_this_repository(bb_systemd):
    """Only file:// sources, found in this checkout through FILESPATH."""
    for key in ("runtime", "library", "crashtests"):
        v = target(bb_systemd, key)
        uris = v["SRC_URI"].split()
        assert uris and all(u.startswith("file://") for u in uris), uris
        assert v["S"].startswith(v["UNPACKDIR"])
        paths = ran(v)["fetch"]["localpaths"]
        for uri, path in zip(uris, paths):
            real = os.path.realpath(path)
            assert real.startswith(REPO + os.sep), (uri, real)
            assert os.path.exists(real)
    assert target(bb_systemd, "runtime")["SRC_URI"].split()[:3] == [
        "file://LICENSE", "file://runtime/", "file://conf/"]


def test_licences(bb_systemd):
    """Every recipe names the project's own LICENSE (unpacked from its SRC_URI) with
    the checksum of that file: its copyright line reaches licence manifests."""
    import hashlib
    with open(os.path.join(REPO, "LICENSE"), "rb") as f:
        md5 = hashlib.md5(f.read()).hexdigest()
    for key in ("runtime", "library", "crashtests"):
        v = target(bb_systemd, key)
        assert v["LICENSE"] == "BSD-2-Clause"
        assert v["LIC_FILES_CHKSUM"] == "file://%s/LICENSE;md5=%s" % (v["UNPACKDIR"], md5)
        assert "file://LICENSE" in v["SRC_URI"].split()


# --- the runtime recipe ----------------------------------------------------------------

def test_runtime_is_a_plain_install(bb_systemd):
    v = target(bb_systemd, "runtime")
    assert {"python3-dir", "python3native", "systemd", "update-rc.d", "ptest"} <= set(v["inherits"])
    assert not {"setuptools3", "python_setuptools_build_meta", "python_pep517"} & set(v["inherits"])
    assert {"do_configure", "do_compile"} <= set(v["noexec"])


def test_runtime_packages_and_dependencies(bb_systemd, bb_sysvinit):
    v = target(bb_systemd, "runtime")
    packages = v["PACKAGES"].split()
    # ptest.bbclass puts ${PN}-ptest first, so that it claims ${PTEST_PATH} before
    # ${PN}'s ${libdir}/${BPN}/*.
    assert packages[0] == PN + "-ptest"
    for pkg in (PN + "-daemon", PN + "-tools"):
        assert packages.index(pkg) < packages.index(PN)
    pk = v["packages"]
    # python3-io (for _socket: the journald entry) on systemd distros only
    assert words(pk[PN]["RDEPENDS"]) == {"python3-core", "python3-json", "python3-compression",
                                         "python3-syslog", "python3-io"}
    assert "python3-io" not in words(
        target(bb_sysvinit, "runtime")["packages"][PN]["RDEPENDS"])
    assert PN in words(pk[PN + "-daemon"]["RDEPENDS"])
    assert PN in words(pk[PN + "-tools"]["RDEPENDS"])
    assert words(pk[PN + "-ptest"]["RDEPENDS"]) == {PN, "minicoredumper-crashtests"}
    assert words(pk[PN + "-ptest"]["RRECOMMENDS"]) == {"ptest-runner"}
    for pkg in packages:
        for dep in words(pk[pkg]["RDEPENDS"]) | words(pk[pkg]["RRECOMMENDS"]):
            if dep.startswith("python3"):
                assert dep in KNOWN_PACKAGES, (pkg, dep)


def test_runtime_service_variables(bb_systemd, bb_sysvinit):
    v = target(bb_systemd, "runtime")
    pk = v["packages"]
    assert v["SYSTEMD_PACKAGES"].split() == [PN + "-daemon", PN + "-tools"]
    assert pk[PN + "-daemon"]["SYSTEMD_SERVICE"] == "minicoredumper-regd.service"
    # the raw store's import: installed, off by default (MINICOREDUMPER_STORE_IMPORT)
    assert pk[PN + "-tools"]["SYSTEMD_SERVICE"] == "minicoredumper-store-import.service"
    assert pk[PN + "-tools"]["SYSTEMD_AUTO_ENABLE"] == "disable"
    assert v["INITSCRIPT_PACKAGES"].split() == [PN, PN + "-daemon"]
    assert pk[PN]["INITSCRIPT_NAME"] == "minicoredumper"
    assert pk[PN + "-daemon"]["INITSCRIPT_NAME"] == "minicoredumper-regd"
    for pkg in (PN, PN + "-daemon"):
        params = pk[pkg]["INITSCRIPT_PARAMS"].split()
        assert params[0] == "start" and " S " in " %s " % " ".join(params), params
    # On a systemd distro update-rc.d stays out of the way; on sysvinit it does not.
    assert v["INHIBIT_UPDATERCD_BBCLASS"] == "1"
    assert target(bb_sysvinit, "runtime")["INHIBIT_UPDATERCD_BBCLASS"] is None


def test_runtime_install_tree(bb_systemd):
    v = target(bb_systemd, "runtime")
    ran(v)
    split, unclaimed = split_packages(v, image_dir(v))
    assert unclaimed == [], "installed but in no package: %s" % unclaimed
    files = installed_files(image_dir(v))

    handler = split[PN]
    assert "/usr/sbin/minicoredumper" in handler
    assert "/usr/lib/sysctl.d/60-minicoredumper.conf" in handler
    assert "/etc/init.d/minicoredumper" in handler
    for name in ("minicoredumper.cfg.json", "generic.recept.json", "embedded.recept.json"):
        assert "/etc/minicoredumper/" + name in handler
    pkgdir = SITEDIR + "/minicoredumper/"
    top = os.path.join(RUNTIME, "minicoredumper")
    sources = sorted(os.path.relpath(os.path.join(d, f), top) for d, _, names in os.walk(top)
                     for f in names if f.endswith(".py"))
    assert sorted(p[len(pkgdir):] for p in handler
                  if p.startswith(pkgdir) and p.endswith(".py")) == sources
    assert not any(p.endswith(".in") for p in handler), "launcher.in is no target file"
    assert set(split[PN + "-daemon"]) >= {
        "/etc/init.d/minicoredumper-regd", "/usr/lib/systemd/system/minicoredumper-regd.service"}
    assert set(split.get(PN + "-tools", [])) == {p for p in files if p.startswith("/usr/bin/")} | {
        "/etc/init.d/minicoredumper-store-import",
        "/usr/lib/systemd/system/minicoredumper-store-import.service"}
    assert split[PN + "-ptest"] == [PTEST_PATH + "/run-ptest"]
    # the man pages in ${PN}-doc, section by section; mcd's completion in
    # ${PN}-bash-completion (bash-completion.bbclass), which needs bash-completion
    pages = sorted(os.listdir(os.path.join(RUNTIME, "man")))
    assert split[PN + "-doc"] == sorted(
        "/usr/share/man/man%s/%s" % (p.rsplit(".", 1)[1], p) for p in pages)
    assert {"/usr/share/man/man1/mcd.1", "/usr/share/man/man8/minicoredumper.8",
            "/usr/share/man/man5/minicoredumper.cfg.json.5"} <= set(split[PN + "-doc"])
    assert split[PN + "-bash-completion"] == ["/usr/share/bash-completion/completions/mcd"]
    assert words(v["packages"][PN + "-bash-completion"]["RDEPENDS"]) == {"bash-completion"}

    for path, (mode, link) in files.items():
        executable = path.startswith(("/usr/bin/", "/usr/sbin/", "/etc/init.d/")) or (
            path == PTEST_PATH + "/run-ptest")
        assert mode == (0o755 if executable else 0o644), (path, oct(mode))

    conffiles = set(v["packages"][PN]["CONFFILES"].split())
    assert conffiles == {p for p in files if p.startswith("/etc/minicoredumper/")}

    # oe-core's file-rdeps check: a script's interpreter must come from a package the
    # script's package RDEPENDS directly (/bin/sh is exempt).
    providers = {"/usr/bin/python3": "python3-core"}
    for pkg, paths in split.items():
        for path in paths:
            with open(image_dir(v) + path, "rb") as f:
                first = f.readline()
            if first.startswith(b"#!"):
                interpreter = first[2:].split()[0].decode()
                if interpreter != "/bin/sh":
                    assert providers[interpreter] in words(v["packages"][pkg]["RDEPENDS"]), (
                        pkg, path, interpreter)


def test_runtime_byte_code(bb_systemd):
    """Every module comes with byte code, and no byte code names the build's ${D}."""
    v = target(bb_systemd, "runtime")
    ran(v)
    pkg = os.path.join(image_dir(v) + SITEDIR, "minicoredumper")
    cache = os.listdir(os.path.join(pkg, "__pycache__"))
    for f in os.listdir(pkg):
        if f.endswith(".py"):
            assert any(c.startswith(f[:-3] + ".") and c.endswith(".pyc") for c in cache), f
    for c in cache:
        with open(os.path.join(pkg, "__pycache__", c), "rb") as fh:
            data = fh.read()
        assert image_dir(v).encode() not in data, c
        assert (SITEDIR + "/minicoredumper/").encode() in data, c


def test_no_build_paths_in_runtime_files(bb_systemd):
    v = target(bb_systemd, "runtime")
    ran(v)
    tmp = os.path.dirname(os.path.dirname(v["WORKDIR"]))
    for root, _, files in os.walk(image_dir(v)):
        for f in files:
            with open(os.path.join(root, f), "rb") as fh:
                assert tmp.encode() not in fh.read(), os.path.join(root, f)


def test_runtime_launchers(bb_systemd, tmp_path):
    """Every console script of runtime/pyproject.toml gets its launcher from the one
    template, runtime/minicoredumper/launcher.in (as mcd install does), in sbindir or
    bindir; run from ${D}, each answers --version on stdout."""
    v = target(bb_systemd, "runtime")
    ran(v)
    sbin = {"minicoredumper", "minicoredumper_regd", "minicoredumper_trigger",
            "minicoredumper_sockd"}
    assert set(v["MINICOREDUMPER_SBIN_SCRIPTS"].split()) == sbin
    scripts = console_scripts()
    assert scripts.get("minicoredumper") == "minicoredumper.cmd_handler:main"
    template = read(os.path.join(RUNTIME, "minicoredumper", "launcher.in"))
    programs = [p for p in installed_files(image_dir(v))
                if p.startswith(("/usr/bin/", "/usr/sbin/"))]
    assert sorted(programs) == sorted(
        "/usr/%s/%s" % ("sbin" if name in sbin else "bin", name) for name in scripts)
    for name, entry in scripts.items():
        module, _, function = entry.partition(":")
        assert function == "main", name
        path = "%s/usr/%s/%s" % (image_dir(v), "sbin" if name in sbin else "bin", name)
        text = read(path)
        assert text == (template.replace("@PYTHON@", "/usr/bin/python3")
                        .replace("@SITEDIR@", SITEDIR).replace("@MODULE@", module)), name
        local = tmp_path / name
        local.write_text(text.replace(SITEDIR, image_dir(v) + SITEDIR))
        proc = subprocess.run([sys.executable, "-I", "-S", str(local), "--version"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              timeout=60)
        assert (proc.returncode, proc.stdout) == (0, "%s %s\n" % (name, __version__)), (
            name, proc.stdout, proc.stderr)


def test_runtime_configuration(bb_systemd):
    v = target(bb_systemd, "runtime")
    ran(v)
    confdir = image_dir(v) + "/etc/minicoredumper"
    main = json.loads(read(confdir + "/minicoredumper.cfg.json"))
    recepts = [rule.get("recept") for rule in main["watch"]]
    assert recepts and all(r and os.path.basename(r) == "embedded.recept.json" for r in recepts)
    assert "store" not in main  # dump directories unless MINICOREDUMPER_STORE_DEVICE is set
    for name in os.listdir(confdir):
        json.loads(read(os.path.join(confdir, name)))
    for r in recepts:
        assert os.path.exists(os.path.join(confdir, os.path.basename(r)))


def test_sysctl_dropin(bb_systemd):
    v = target(bb_systemd, "runtime")
    ran(v)
    settings = {}
    for line in read(image_dir(v) + "/usr/lib/sysctl.d/60-minicoredumper.conf").splitlines():
        if line.strip() and not line.lstrip().startswith(("#", ";")):
            key, _, value = line.partition("=")
            settings[key.strip()] = value.strip()
    assert set(settings) == {"kernel.core_pattern", "kernel.core_pipe_limit"}
    assert settings["kernel.core_pattern"] == HANDLER_PATTERN
    assert "%P" in settings["kernel.core_pattern"]
    assert int(settings["kernel.core_pipe_limit"], 0) > 0
    # Sorts after systemd's own drop-in, so its values win.
    assert "60-minicoredumper.conf" > "50-coredump.conf"


def unit_sections(text):
    """{section: {key: [values]}} of a systemd unit file."""
    sections, current = {}, None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def test_systemd_unit(bb_systemd):
    v = target(bb_systemd, "runtime")
    ran(v)
    text = read(image_dir(v) + "/usr/lib/systemd/system/minicoredumper-regd.service")
    unit = unit_sections(text)
    assert unit["Service"]["ExecStart"] == ["/usr/sbin/minicoredumper_regd"]
    assert unit["Service"]["Type"] == ["simple"]
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]
    assert not re.search(r"@[A-Z]+@", text)
    # The abstract socket is per network namespace; the PID list is in /run/minicoredumper.
    assert "PrivateNetwork" not in unit["Service"] and "PrivateDevices" not in unit["Service"]
    text = read(image_dir(v) + "/usr/lib/systemd/system/minicoredumper-store-import.service")
    unit = unit_sections(text)
    assert unit["Service"]["ExecStart"] == ["/usr/bin/mcd store import"]
    assert unit["Service"]["Type"] == ["oneshot"]
    assert unit["Unit"]["After"] == ["local-fs.target"]
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]
    # it reads the device: no PrivateDevices
    assert not re.search(r"@[A-Z]+@", text) and "PrivateDevices" not in unit["Service"]


def test_init_scripts(bb_systemd):
    v = target(bb_systemd, "runtime")
    ran(v)
    handler = read(image_dir(v) + "/etc/init.d/minicoredumper")
    regd = read(image_dir(v) + "/etc/init.d/minicoredumper-regd")
    store = read(image_dir(v) + "/etc/init.d/minicoredumper-store-import")
    for text in (handler, regd, store):
        assert text.startswith("#!/bin/sh\n")
        assert not re.search(r"@[A-Z]+@", text)
        assert "### BEGIN INIT INFO" in text
    assert "HANDLER=/usr/sbin/minicoredumper\n" in handler
    assert "/etc/sysctl.d /run/sysctl.d /usr/lib/sysctl.d" in handler
    assert "DAEMON=/usr/sbin/minicoredumper_regd\n" in regd
    assert "PIDFILE=/run/minicoredumper_regd.pid\n" in regd
    assert "MCD=/usr/bin/mcd\n" in store and '"$MCD" store import' in store


def test_raw_store_variables(tmp_path):
    """MINICOREDUMPER_STORE_DEVICE and friends go into the installed main config's
    store; MINICOREDUMPER_STORE_IMPORT = "1" enables the import at boot (systemd, and
    sysvinit's rcS.d links through update-rc.d)."""
    conf = ['MINICOREDUMPER_STORE_DEVICE = "/sys/bus/nvmem/devices/0-00500/nvmem"',
            'MINICOREDUMPER_STORE_SLOT_SIZE = "1024"', 'MINICOREDUMPER_STORE_IMPORT = "1"']
    args = ["--distro-features", "systemd usrmerge", "--run", "bash"]
    for line in conf:
        args += ["--conf", line]
    status, output, report = harness(tmp_path / "systemd", *args)
    assert status == 0, output[-4000:]
    v = target(report, "runtime")
    ran(v)
    main = json.loads(read(image_dir(v) + "/etc/minicoredumper/minicoredumper.cfg.json"))
    assert main["store"] == {"device": "/sys/bus/nvmem/devices/0-00500/nvmem",
                             "slot_size": 1024, "slots": 0}
    from minicoredumper.config import MainConfig
    assert MainConfig(main, "/etc/x.json", []).store == main["store"]
    assert v["packages"][PN + "-tools"]["SYSTEMD_AUTO_ENABLE"] == "enable"
    status, output, report = harness(tmp_path / "sysvinit", "--distro-features", "sysvinit",
                                     "--conf", conf[-1])
    assert status == 0, output[-4000:]
    v = target(report, "runtime")
    assert v["INITSCRIPT_PACKAGES"].split() == [PN, PN + "-daemon", PN + "-tools"]
    params = v["packages"][PN + "-tools"]["INITSCRIPT_PARAMS"].split()
    assert params[:2] == ["start", "40"] and params[2] == "S", params


def test_install_is_shell_neutral(bb_systemd, bb_sysvinit):
    """do_install under dash gives the same tree as under bash (but for the package
    test, which only the systemd distro, with ptest, installs)."""
    for key in ("runtime", "library", "crashtests"):
        a, b = target(bb_systemd, key), target(bb_sysvinit, key)
        ran(a)
        ran(b)
        tree = {p: m for p, m in installed_files(image_dir(a)).items()
                if key != "runtime" or not p.startswith(PTEST_PATH + "/")}
        assert tree == installed_files(image_dir(b)), key


# --- the package test (ptest) ------------------------------------------------------------

RUN_PTEST = os.path.join(LAYER, "recipes-core", "minicoredumper", "files", "run-ptest")


def ptest_table():
    """run-ptest's PROGRAMS and, per program, the frames of its expected_frames()."""
    text = read(RUN_PTEST)
    programs = re.search(r'^PROGRAMS="([^"]*)"$', text, re.M).group(1).split()
    body = re.search(r"^expected_frames\(\) \{\n(.*?)^\}$", text, re.M | re.S).group(1)
    frames = {m.group(1): m.group(2).split()
              for m in re.finditer(r'^\s*(\w+)\) echo "([^"]*)" ;;$', body, re.M)}
    return programs, frames


def test_ptest_package(bb_systemd):
    """With DISTRO_FEATURES ptest: minicoredumper-ptest holds ${PTEST_PATH}/run-ptest
    (ptest.bbclass installed it from the unpacked sources) with the target's paths
    filled in; the crash programs it runs come from minicoredumper-crashtests, installed
    into ${PTEST_PATH}/bin."""
    v = target(bb_systemd, "runtime")
    run = ran(v)
    assert v["PTEST_ENABLED"] == "1" and v["PTEST_PATH"] == PTEST_PATH
    assert {"do_configure_ptest_base", "do_compile_ptest_base",
            "do_install_ptest_base"} <= set(run["tasks"])
    assert "file://run-ptest" in v["SRC_URI"].split()
    text = read(image_dir(v) + PTEST_PATH + "/run-ptest")
    assert text.startswith("#!/bin/sh\n")
    assert not re.search(r"@[A-Z]+@", text)
    assert "HANDLER=/usr/sbin/minicoredumper\n" in text
    assert "ETC=/etc/minicoredumper\n" in text
    assert "/etc/sysctl.d /run/sysctl.d /usr/lib/sysctl.d" in text
    assert read(RUN_PTEST).replace("@SBINDIR@", "/usr/sbin").replace("@BINDIR@", "/usr/bin") \
        .replace("@SYSCONFDIR@", "/etc").replace("@RUNDIR@", "/run") \
        .replace("@SYSCTLDIR@", "/usr/lib/sysctl.d") == text
    crashtests = target(bb_systemd, "crashtests")
    assert v["PTEST_PATH"] + "/bin" in crashtests["packages"]["minicoredumper-crashtests"][
        "FILES"].split()


def test_no_ptest_without_the_distro_feature(bb_sysvinit):
    """Without DISTRO_FEATURES ptest there is no -ptest package and no ptest task."""
    v = target(bb_sysvinit, "runtime")
    run = ran(v)
    assert v["PTEST_ENABLED"] == "0"
    assert PN + "-ptest" not in v["PACKAGES"].split()
    assert not any("ptest" in t for t in run["tasks"])
    assert not any("ptest" in t for t in v["tasks"])
    assert not os.path.exists(image_dir(v) + PTEST_PATH)
    split, unclaimed = split_packages(v, image_dir(v))
    assert unclaimed == []
    assert "minicoredumper-ptest" not in target(bb_sysvinit, "image")["IMAGE_INSTALL"].split()


def test_ptest_frames_are_the_labs():
    """run-ptest crashes the programs of tests/lab/programs.py FRAMES (those the
    crashtests recipe builds: crash3_i386 is a host build of crash3) and expects their
    frames."""
    programs, frames = ptest_table()
    assert set(programs) == set(frames)
    assert frames == {name: f for name, f in FRAMES.items() if name != "crash3_i386"}


def test_ptest_programs_exist(bb_systemd):
    """Every program run-ptest crashes is one the crashtests recipe installs."""
    programs, _ = ptest_table()
    v = target(bb_systemd, "crashtests")
    ran(v)
    installed = {os.path.basename(p) for p in installed_files(image_dir(v))}
    assert set(programs) <= installed


# --- libminicoredumper -------------------------------------------------------------------

def readelf(path, *args):
    proc = subprocess.run(["readelf", *args, path], stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        pytest.skip("readelf (binutils) is not usable")
    return proc.stdout


def test_library_install_tree(bb_systemd):
    v = target(bb_systemd, "library")
    ran(v)
    assert v["BBCLASSEXTEND"] == "native"
    files = installed_files(image_dir(v))
    assert files == {
        "/usr/lib/libminicoredumper.so.2.0.0": (0o755, None),
        "/usr/lib/libminicoredumper.so.2": (0o777, "libminicoredumper.so.2.0.0"),
        "/usr/lib/libminicoredumper.so": (0o777, "libminicoredumper.so.2"),
        "/usr/include/minicoredumper.h": (0o644, None),
        "/usr/lib/pkgconfig/minicoredumper.pc": (0o644, None),
        "/usr/bin/mycrasher": (0o755, None),
    }
    split, unclaimed = split_packages(v, image_dir(v))
    assert unclaimed == []
    assert split["libminicoredumper"] == [
        "/usr/lib/libminicoredumper.so.2", "/usr/lib/libminicoredumper.so.2.0.0"]
    assert split["libminicoredumper-dev"] == [
        "/usr/include/minicoredumper.h", "/usr/lib/libminicoredumper.so",
        "/usr/lib/pkgconfig/minicoredumper.pc"]
    assert split["libminicoredumper-examples"] == ["/usr/bin/mycrasher"]
    pc = read(image_dir(v) + "/usr/lib/pkgconfig/minicoredumper.pc")
    assert "libdir=/usr/lib\n" in pc and "includedir=/usr/include\n" in pc
    assert "-lminicoredumper" in pc


def test_library_binaries_use_the_build_flags(bb_systemd):
    """SONAME as the ABI says, and LDFLAGS reached the linker (BIND_NOW from -z now):
    a build that drops LDFLAGS fails oe-core's ldflags QA check."""
    v = target(bb_systemd, "library")
    ran(v)
    lib = readelf(image_dir(v) + "/usr/lib/libminicoredumper.so.2.0.0", "-d")
    assert "Library soname: [libminicoredumper.so.2]" in lib
    assert "BIND_NOW" in lib or "NOW" in lib
    assert "NOW" in readelf(image_dir(v) + "/usr/bin/mycrasher", "-d")


# --- crash test programs and the image ---------------------------------------------------

def test_crashtests(bb_systemd):
    """One program per tests/programs/*.c and mycrasher (the library's example, built
    from its source), off PATH in the runtime's ${PTEST_PATH}/bin, not stripped."""
    v = target(bb_systemd, "crashtests")
    ran(v)
    sources = {f[:-2]: os.path.join(REPO, "tests", "programs", f)
               for f in os.listdir(os.path.join(REPO, "tests", "programs")) if f.endswith(".c")}
    sources["mycrasher"] = os.path.join(RUNTIME, "libminicoredumper", "mycrasher.c")
    assert {"crash3", "threads8"} <= set(sources)
    bindir = PTEST_PATH + "/bin/"
    files = installed_files(image_dir(v))
    assert files == {bindir + p: (0o755, None) for p in sources}
    for p, source in sources.items():
        dynamic = readelf(image_dir(v) + bindir + p, "-d")
        assert "NOW" in dynamic, p
        if "<minicoredumper.h>" in read(source):
            assert "Shared library: [libminicoredumper.so.2]" in dynamic, p
    # The dump's summary names functions from .symtab: packaging must not strip it.
    assert v["INHIBIT_PACKAGE_STRIP"] == "1" and v["INHIBIT_PACKAGE_DEBUG_SPLIT"] == "1"
    assert " level_c" in readelf(image_dir(v) + bindir + "crash3", "-s")
    split, unclaimed = split_packages(v, image_dir(v))
    assert unclaimed == [] and sorted(split["minicoredumper-crashtests"]) == sorted(files)
    assert "libminicoredumper" in words(v["DEPENDS"])
    assert not words(v["packages"]["minicoredumper-crashtests"]["RDEPENDS"])


def test_image(bb_systemd):
    v = target(bb_systemd, "image")
    assert "core-image" in v["inherits"]
    install = v["IMAGE_INSTALL"].split()
    assert "packagegroup-core-boot" in install, "core-image-minimal's list is kept"
    ours = {"minicoredumper", "minicoredumper-daemon", "minicoredumper-tools",
            "libminicoredumper", "minicoredumper-crashtests", "minicoredumper-ptest"}
    assert ours <= set(install)
    produced = set()
    for key in ("runtime", "library", "crashtests"):
        produced |= set(target(bb_systemd, key)["PACKAGES"].split())
    assert ours <= produced
