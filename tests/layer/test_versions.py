"""tests/layer/test_versions.py: one version per piece, written in one place.

- The runtime: __version__ of runtime/minicoredumper/__init__.py. pyproject.toml reads
  it (dynamic version), every program prints it (--version, test_bitbake.py), and the
  minicoredumper recipe's PV is read from it at parse time.
- libminicoredumper keeps its ABI version: VERSION in runtime/libminicoredumper/Makefile
  (libminicoredumper.so.VERSION, SONAME .so.MAJOR, minicoredumper.pc's Version), which
  the libminicoredumper recipe's PV is read from the same way.

A recipe that reads a file at parse time must name it as a parse dependency
(bb.parse.mark_dependency), or BitBake's parse cache keeps the old PV after the file
changes.
"""

import os
import re

from layertest import LAYER, RUNTIME, read, target
import minicoredumper

try:
    import tomllib
except ImportError:  # Python < 3.11
    tomllib = None

INIT = os.path.realpath(os.path.join(RUNTIME, "minicoredumper", "__init__.py"))
MAKEFILE = os.path.realpath(os.path.join(RUNTIME, "libminicoredumper", "Makefile"))


def version_in_init():
    versions = re.findall(r'^__version__ = "([^"]+)"$', read(INIT), re.M)
    assert len(versions) == 1, INIT
    return versions[0]


def makefile_value(name):
    values = re.findall(r"^%s := (\S+)$" % name, read(MAKEFILE), re.M)
    assert len(values) == 1, (MAKEFILE, name)
    return values[0]


def test_the_runtime_has_one_version(bb_systemd, bb_sysvinit):
    version = version_in_init()
    assert minicoredumper.__version__ == version
    if tomllib is not None:
        with open(os.path.join(RUNTIME, "pyproject.toml"), "rb") as f:
            pyproject = tomllib.load(f)
        assert "version" not in pyproject["project"]
        assert "version" in pyproject["project"]["dynamic"]
        assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {
            "attr": "minicoredumper.__version__"}
    for report in (bb_systemd, bb_sysvinit):
        v = target(report, "runtime")
        assert v["PV"] == version
        assert INIT in v["parse_depends"], "the recipe is not parsed again when %s changes" % INIT


def test_the_library_keeps_its_abi_version(bb_systemd):
    version, major = makefile_value("VERSION"), makefile_value("SOMAJOR")
    assert version == "2.0.0" and version.split(".")[0] == major
    for variant in ("target", "native"):
        v = bb_systemd["recipes"]["recipes-core/libminicoredumper/libminicoredumper_1.0.bb"][variant]
        assert v["PV"] == version, variant
        assert MAKEFILE in v["parse_depends"], variant
    files = os.listdir(target(bb_systemd, "library")["D"] + "/usr/lib")
    assert "libminicoredumper.so.%s" % version in files


def test_no_version_is_written_into_the_recipes():
    """PV comes from the sources, never from a literal in a recipe of the layer."""
    for root, _, names in os.walk(LAYER):
        for name in names:
            if name.endswith((".bb", ".bbappend", ".inc", ".bbclass")):
                text = read(os.path.join(root, name))
                assert not re.search(r'^PV\s*[?:]*=\s*"\d', text, re.M), name
