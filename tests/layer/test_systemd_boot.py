"""tests/layer/test_systemd_boot.py: the layer's systemd units in the boot transaction.

`systemd-analyze verify` of one unit file (test_services.py) checks its syntax and what
it names, but not its place in the boot: an ordering cycle exists only between the jobs
of one transaction, and a transaction for the unit alone never queues basic.target (a
service reaches it only through the After= of its default dependencies). At boot,
systemd starts default.target, and every unit an image enables joins that transaction.

So, as an image would have them: systemd's own units (the host's, standing in for the
target's systemd) in a scratch root; over them the do_install tree of every recipe of
the layer (the BitBake harness's, tests/layer/bbharness.py), without the init scripts
systemd.bbclass deletes; each unit of a package's
SYSTEMD_SERVICE enabled as systemd.bbclass enables it (`systemctl --root enable`,
SYSTEMD_AUTO_ENABLE "enable"); multi-user.target as default.target, as on oe-core's
images. Then `systemd-analyze --root verify` of default.target and of every unit the
layer installs: no ordering cycle, no message about our units, and each enabled unit gets
its start job in the transaction that boots default.target.
"""

import os
import re
import shutil
import subprocess

import pytest

from layertest import need_tool

UNIT_DIRS = ("/usr/lib/systemd/system", "/lib/systemd/system", "/etc/systemd/system")
UNIT_SUFFIXES = (".service", ".socket", ".timer", ".path", ".mount", ".target")
DEFAULT_TARGET = "multi-user.target"


def host_unit_dir():
    for path in ("/usr/lib/systemd/system", "/lib/systemd/system"):
        if os.path.isfile(os.path.join(path, DEFAULT_TARGET)):
            return path
    pytest.skip("no systemd units on this host (Debian package systemd)")


def installed_trees(report):
    """The ${D} of every recipe the harness built, failing on a failed build."""
    trees = []
    for name, variants in sorted(report["recipes"].items()):
        v = variants["target"]
        if "run" not in v:
            continue  # the image: no do_install
        run = v["run"]
        assert "error" not in (run["fetch"] or {}), (name, run["fetch"])
        for task, outcome in run["tasks"].items():
            assert outcome["returncode"] == 0, "%s %s failed:\n%s" % (name, task, outcome["output"])
        trees.append(v)
    return trees


def layer_units(trees):
    """{unit name: installed path} of every unit file in the recipes' trees."""
    units = {}
    for v in trees:
        for unit_dir in UNIT_DIRS:
            path = v["D"] + unit_dir
            if os.path.isdir(path):
                for name in sorted(os.listdir(path)):
                    if name.endswith(UNIT_SUFFIXES):
                        assert name not in units, "%s installed twice" % name
                        units[name] = os.path.join(unit_dir, name)
    return units


def enabled_units(trees):
    """The units systemd.bbclass enables: SYSTEMD_SERVICE of each of SYSTEMD_PACKAGES,
    when SYSTEMD_AUTO_ENABLE is "enable"."""
    enabled = []
    for v in trees:
        if (v["SYSTEMD_AUTO_ENABLE"] or "enable") != "enable":
            continue
        for pkg in (v["SYSTEMD_PACKAGES"] or "").split():
            enabled += (v["packages"].get(pkg, {}).get("SYSTEMD_SERVICE") or "").split()
    return enabled


def boot_root(tmp_path, trees, units, enabled):
    """The scratch root: systemd's units, the layer's trees, the units enabled."""
    systemctl = need_tool("systemctl", "systemd")
    root = tmp_path / "root"
    shutil.copytree(host_unit_dir(), root / "usr/lib/systemd/system", symlinks=True)
    (root / "etc/systemd/system").mkdir(parents=True)
    (root / "lib").symlink_to("usr/lib")  # usrmerge, as the layer's distros have it
    for v in trees:
        shutil.copytree(v["D"], root, symlinks=True, dirs_exist_ok=True)
        # systemd.bbclass deletes ${INIT_D_DIR} on systemd images (the stub keeps it)
        if v["INIT_D_DIR"]:
            shutil.rmtree(str(root) + v["INIT_D_DIR"], ignore_errors=True)
    for unit in enabled:
        assert unit in units, "SYSTEMD_SERVICE names %s, which no recipe installs" % unit
        proc = subprocess.run([systemctl, "--root=%s" % root, "enable", unit],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.returncode == 0, proc.stdout
    proc = subprocess.run([systemctl, "--root=%s" % root, "set-default", DEFAULT_TARGET],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.returncode == 0, proc.stdout
    return root


def verify(root, *units, debug=False):
    analyze = need_tool("systemd-analyze", "systemd")
    env = dict(os.environ, SYSTEMD_LOG_LEVEL="debug" if debug else "info")
    return subprocess.run([analyze, "verify", "--root=%s" % root, "--man=no", *units],
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=120)


def test_units_in_the_boot_transaction(bb_systemd, tmp_path):
    trees = installed_trees(bb_systemd)
    units = layer_units(trees)
    assert "minicoredumper-regd.service" in units, "the registry daemon's unit is installed"
    enabled = enabled_units(trees)
    assert "minicoredumper-regd.service" in enabled
    root = boot_root(tmp_path, trees, units, enabled)

    proc = verify(root, "default.target", *sorted(units))
    ours = [line for line in proc.stdout.splitlines()
            if re.search(r"ordering cycle|cyclic|break cycle", line, re.I)
            or any(u in line for u in units)]
    assert proc.returncode == 0 and ours == [], proc.stdout

    # Only default.target named: the start jobs below come from its transaction.
    proc = verify(root, "default.target", debug=True)
    assert proc.returncode == 0, proc.stdout[-6000:]
    for unit in enabled:
        assert re.search(r"Installed new job %s/start" % re.escape(unit), proc.stdout), (
            "%s is enabled but gets no start job when %s boots" % (unit, DEFAULT_TARGET))
