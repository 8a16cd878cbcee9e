"""tests/layer/test_crashpath_imports.py: the runtime imports only what its packages
declare.

The kernel starts the crash handler for every crash, so the minicoredumper package may
RDEPEND on little (python3-core, python3-json, python3-compression) and above all not on
python3-io: socket there pulls python3-netclient, email and OpenSSL. For each console
script of runtime/pyproject.toml, entry_imports() of qemu/stdlib_closure.py (the reading
of the runtime's imports that also prunes the QEMU guests' stdlib) lists what its module
can import, run the way the launcher runs it (python3 -I -S), both at import time and
along every code path (import statements inside functions count). Each module is mapped
to the oe-core python3-* package that ships it (python3_packages.py), and the packages
must be named in the RDEPENDS of the package that installs the script, or of a package
of the same recipe it RDEPENDS (the daemon and the tools RDEPEND on the handler
package). Imports inside "try: ... except ImportError" are optional and not counted.

RDEPENDS come from BitBake's parse of the recipe (test_bitbake's harness) when
bitbake-setup is installed, else from the recipe text.
"""

import importlib.metadata
import os
import re
import sys

import pytest

from layertest import LAYER, RECIPES, RUNTIME, target
from python3_packages import PULLS_IO, package_of
from stdlib_closure import entry_imports

try:
    import tomllib
except ImportError:  # Python < 3.11
    tomllib = None

PN = "minicoredumper"
SBIN_DAEMON = {"minicoredumper_regd", "minicoredumper_trigger", "minicoredumper_sockd"}


def probe(module):
    try:
        return entry_imports(sys.executable, RUNTIME, module)
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)


def scripts():
    if tomllib is None:
        pytest.skip("tomllib needs Python 3.11")
    with open(os.path.join(RUNTIME, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)["project"]
    optional = set()
    for reqs in project.get("optional-dependencies", {}).values():
        optional |= {re.split(r"[<>=!~;\[ ]", r, 1)[0].lower() for r in reqs}
    return project.get("scripts", {}), optional


def package_of_script(name):
    if name == "minicoredumper":
        return PN
    return PN + "-daemon" if name in SBIN_DAEMON else PN + "-tools"


def recipe_rdepends_from_text():
    """RDEPENDS:${PN}[-suffix] = "..." assignments of the recipe, without BitBake."""
    text = open(os.path.join(LAYER, RECIPES["runtime"])).read().replace("\\\n", " ")
    found = {}
    for m in re.finditer(r'^RDEPENDS:\$\{PN\}(\S*)\s*(\+?=)\s*"([^"]*)"', text, re.M):
        pkg = PN + m.group(1)
        deps = set(m.group(3).replace("${PN}", PN).split())
        found[pkg] = found.get(pkg, set()) | deps if m.group(2) == "+=" else deps
    return found


@pytest.fixture(scope="module")
def rdepends(request):
    try:
        importlib.metadata.version("bitbake-setup")
    except importlib.metadata.PackageNotFoundError:
        return recipe_rdepends_from_text()
    v = target(request.getfixturevalue("bb_systemd"), "runtime")
    return {pkg: set(re.sub(r"\([^)]*\)", "", p["RDEPENDS"] or "").split())
            for pkg, p in v["packages"].items()}


def allowed(pkg, rdepends):
    """python3-* packages available to pkg: its RDEPENDS and those of the recipe's
    packages it RDEPENDS."""
    names, todo = set(), [pkg]
    while todo:
        p = todo.pop()
        if p in names:
            continue
        names.add(p)
        todo.extend(d for d in rdepends.get(p, ()) if d.startswith(PN))
    return {d for p in names for d in rdepends.get(p, ()) if d.startswith("python3")}


def classify(result, optional_dists):
    """({package: [modules]}, [unmapped stdlib modules], [third-party modules])."""
    builtin = set(result["builtin"])
    needed, unmapped, foreign = {}, [], []
    modules = set(result["closure"]) | set(result["startup"]) | set(result["required"])
    for mod in sorted(modules):
        top = mod.split(".")[0]
        if top in ("__main__", "minicoredumper"):
            continue
        pkg = package_of(mod, builtin)
        if pkg:
            needed.setdefault(pkg, []).append(mod)
        elif top in sys.stdlib_module_names or mod in result["unavailable"]:
            unmapped.append(mod)
        elif top.lower() not in optional_dists:
            foreign.append(mod)
    return needed, unmapped, foreign


@pytest.mark.parametrize("kind", ["handler", "daemon", "tools"])
def test_imports_stay_within_rdepends(kind, rdepends):
    entries, optional_dists = scripts()
    chosen = {n: e for n, e in entries.items()
              if {"handler": PN, "daemon": PN + "-daemon", "tools": PN + "-tools"}[kind]
              == package_of_script(n)}
    if not chosen:
        pytest.skip("runtime/pyproject.toml has no %s console script yet" % kind)
    problems = []
    for name, entry in sorted(chosen.items()):
        module = entry.split(":")[0]
        if not os.path.exists(os.path.join(RUNTIME, *module.split(".")) + ".py") and \
                not os.path.isdir(os.path.join(RUNTIME, *module.split("."))):
            problems.append("%s: module %s does not exist" % (name, module))
            continue
        result = probe(module)
        pkg = package_of_script(name)
        needed, unmapped, foreign = classify(result, optional_dists)
        ok = allowed(pkg, rdepends)
        for python_pkg, mods in sorted(needed.items()):
            if python_pkg not in ok:
                importers = sorted({f for m in mods for f in result["required"].get(m, [])})
                problems.append("%s (%s) needs %s for %s%s; %s RDEPENDS only %s%s" % (
                    name, module, python_pkg, ", ".join(mods[:6]),
                    " (imported in %s)" % ", ".join(importers) if importers else "",
                    pkg, " ".join(sorted(ok)),
                    "; note: %s brings socket, ssl, python3-netclient and email"
                    % python_pkg if python_pkg in PULLS_IO else ""))
        if unmapped:
            problems.append("%s: standard modules missing from python3_packages.py: %s"
                            % (name, " ".join(unmapped)))
        if foreign:
            problems.append("%s: imports outside the standard library without an "
                            "ImportError fallback: %s" % (name, " ".join(foreign)))
    assert not problems, "\n".join(problems)


def test_handler_has_no_socket_on_the_crash_path():
    entries, _ = scripts()
    result = probe(entries["minicoredumper"].split(":")[0])
    reachable = set(result["closure"]) | set(result["required"])
    network = {"socket", "_socket", "ssl", "_ssl"} & reachable
    assert not network, "%s imported by %s" % (sorted(network), sorted(
        {f for m in network for f in result["required"].get(m, [])}))

