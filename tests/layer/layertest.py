"""tests/layer/layertest.py: shared paths and helpers of the layer tests (tests/layer/*):
the skip rules, running the BitBake harness, and an emulation of the package split. The
PyPI packages the tests use are pinned in tests/layer/requirements.txt; a test whose
package or tool is missing skips and says which one and how to get it.

(Not in conftest.py: tests/conftest.py exists too, and "from conftest import" would pick
whichever of the two was imported last.)
"""

import fnmatch
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
LAYER = os.path.join(REPO, "meta-minicoredumper")
RUNTIME = os.path.join(REPO, "runtime")
RECIPES = {
    "runtime": "recipes-core/minicoredumper/minicoredumper_1.0.bb",
    "library": "recipes-core/libminicoredumper/libminicoredumper_1.0.bb",
    "crashtests": "recipes-core/minicoredumper-crashtests/minicoredumper-crashtests_1.0.bb",
    "image": "recipes-core/images/minicoredumper-test-image.bb",
}
INSTALL_HINT = "pip install -r tests/layer/requirements.txt"


def need_distribution(name):
    """Skip unless the PyPI distribution is installed."""
    try:
        importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("%s is not installed (%s)" % (name, INSTALL_HINT))


def need_tool(name, package):
    path = shutil.which(name)
    if path is None:
        pytest.skip("%s is not installed (Debian package %s)" % (name, package))
    return path


def run_harness(outdir, distro_features, shell):
    need_distribution("bitbake-setup")
    need_tool("gcc", "gcc")
    need_tool("make", "make")
    proc = subprocess.run(
        [sys.executable, os.path.join(HERE, "bbharness.py"), str(outdir),
         "--distro-features", distro_features, "--run", shell],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=900)
    if proc.returncode != 0:
        pytest.fail("bbharness.py failed (%d):\n%s" % (proc.returncode, proc.stdout[-8000:]))
    with open(os.path.join(str(outdir), "report.json")) as f:
        return json.load(f)


def harness(outdir, *args):
    """Run bbharness.py with extra arguments (--layer, --extra-layer, --conf; parse only,
    no --run): (exit status, its output, the report)."""
    need_distribution("bitbake-setup")
    proc = subprocess.run([sys.executable, os.path.join(HERE, "bbharness.py"), str(outdir), *args],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=900)
    with open(os.path.join(str(outdir), "report.json")) as f:
        return proc.returncode, proc.stdout, json.load(f)


def target(report, key):
    return report["recipes"][RECIPES[key]]["target"]


def installed_files(dest):
    """{"/path": (mode, symlink target or None)} for every file and link under dest."""
    found = {}
    for root, dirs, files in os.walk(dest):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            path = os.path.join(root, name)
            st = os.lstat(path)
            rel = "/" + os.path.relpath(path, dest)
            found[rel] = (st.st_mode & 0o7777, os.readlink(path) if os.path.islink(path) else None)
    return found


def _claims(pattern, path):
    """A FILES entry claims a path when it matches the path or one of its directories,
    component by component (a * does not cross a slash)."""
    pc = [c for c in pattern.split("/") if c]
    fc = [c for c in path.split("/") if c]
    return len(fc) >= len(pc) and all(fnmatch.fnmatchcase(f, p) for f, p in zip(fc, pc))


def split_packages(variant, dest):
    """The package split of a build: each installed file goes to the first package in
    PACKAGES whose FILES claim it. Returns ({package: [paths]}, [unclaimed paths])."""
    files = installed_files(dest)
    split, unclaimed = {}, []
    for path in sorted(files):
        for pkg in variant["PACKAGES"].split():
            patterns = (variant["packages"][pkg]["FILES"] or "").split()
            if any(_claims(p, path) for p in patterns):
                split.setdefault(pkg, []).append(path)
                break
        else:
            unclaimed.append(path)
    return split, unclaimed


def read(path):
    with open(path) as f:
        return f.read()
