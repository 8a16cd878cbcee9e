"""tests/layer/test_crashpath_imports.py: the packages' RDEPENDS are what the runtime
imports, optional imports included.

The kernel starts the crash handler for every crash, so the minicoredumper package may
RDEPEND on little (python3-core, python3-json, python3-compression, python3-syslog) and
above all not on python3-io: socket there pulls python3-netclient, email and OpenSSL.
For each console script of runtime/pyproject.toml, entry_imports() of
qemu/stdlib_closure.py (the reading of the runtime's imports that also prunes the QEMU
guests' stdlib) lists what its module can import, run the way the launcher runs it
(python3 -I -S), both at import time and along every code path (import statements
inside functions count). Each module is mapped to the oe-core python3-* package that
ships it (python3_packages.py), and the packages must be named in the RDEPENDS of the
package that installs the script, or of a package of the same recipe it RDEPENDS (the
daemon and the tools RDEPEND on the handler package).

Imports inside "try: ... except ImportError" count too: the program uses the module when
it is there (log.py logs to syslog through the syslog module, and without it falls back
to /dev/kmsg although /dev/log exists), so a package that is not installed is a feature
silently lost, not a crash. Their import-time closure (what importing them pulls in) is
measured like the required imports'. An optional import from outside the standard
library must be listed in python3_packages.OUTSIDE_CORE (its package is not oe-core's,
so the recipe cannot RDEPEND on it).

The other way round, RDEPENDS are derived from the imports: a python3-* package in a
package's RDEPENDS that none of its programs imports fails too (python3-core apart: the
launchers' #!/usr/bin/python3 needs it, see test_bitbake.py).

RDEPENDS come from BitBake's parse of the recipe (test_bitbake's harness) when
bitbake-setup is installed, else from the recipe text.
"""

import importlib.metadata
import os
import re
import sys

import pytest

from layertest import LAYER, RECIPES, RUNTIME, target
from python3_packages import OUTSIDE_CORE, PULLS_IO, package_of
from stdlib_closure import entry_imports, probe as probe_imports

try:
    import tomllib
except ImportError:  # Python < 3.11
    tomllib = None

PN = "minicoredumper"
KINDS = {"handler": PN, "daemon": PN + "-daemon", "tools": PN + "-tools"}
SBIN_DAEMON = {"minicoredumper_regd", "minicoredumper_trigger", "minicoredumper_sockd"}


def probe(module):
    """entry_imports() of the module, and in "with_optional" the import-time closure of
    the entry with every required and every optional import."""
    try:
        result = entry_imports(sys.executable, RUNTIME, module)
        names = [module] + sorted(result["required"]) + sorted(result["optional"])
        result["with_optional"] = sorted(probe_imports(sys.executable, RUNTIME, names)["modules"])
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)
    return result


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
    """({package: [modules]}, [unmapped stdlib modules], [third-party modules without a
    fallback], [optional third-party modules not in OUTSIDE_CORE]): every module the
    entry can load, required or optional, and what those pull in when imported."""
    builtin = set(result["builtin"])
    needed, unmapped, foreign, unlisted = {}, [], [], []
    modules = (set(result["closure"]) | set(result["startup"]) | set(result["required"])
               | set(result["optional"]) | set(result["with_optional"]))
    for mod in sorted(modules):
        top = mod.split(".")[0]
        if top in ("__main__", "minicoredumper"):
            continue
        pkg = package_of(mod, builtin)
        if pkg:
            needed.setdefault(pkg, []).append(mod)
        elif top in sys.stdlib_module_names or mod in result["unavailable"]:
            unmapped.append(mod)
        elif any(m.split(".")[0] == top for m in result["optional"]):
            if top not in OUTSIDE_CORE:
                unlisted.append(mod)
        elif top.lower() not in optional_dists:
            foreign.append(mod)
    return needed, unmapped, foreign, unlisted


def analysed(kind):
    """{script: (module, entry_imports() + "with_optional", classify())} of the console
    scripts installed by one package of the recipe; cached per kind."""
    if kind not in _ANALYSED:
        entries, optional_dists = scripts()
        chosen = {}
        for name, entry in sorted(entries.items()):
            if package_of_script(name) != KINDS[kind]:
                continue
            module = entry.split(":")[0]
            if not os.path.exists(os.path.join(RUNTIME, *module.split(".")) + ".py") and \
                    not os.path.isdir(os.path.join(RUNTIME, *module.split("."))):
                chosen[name] = (module, None, None)
                continue
            result = probe(module)
            chosen[name] = (module, result, classify(result, optional_dists))
        _ANALYSED[kind] = chosen
    return _ANALYSED[kind]


_ANALYSED = {}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_imports_stay_within_rdepends(kind, rdepends):
    chosen = analysed(kind)
    if not chosen:
        pytest.skip("runtime/pyproject.toml has no %s console script yet" % kind)
    problems = []
    for name, (module, result, classified) in sorted(chosen.items()):
        if result is None:
            problems.append("%s: module %s does not exist" % (name, module))
            continue
        pkg = package_of_script(name)
        needed, unmapped, foreign, unlisted = classified
        ok = allowed(pkg, rdepends)
        for python_pkg, mods in sorted(needed.items()):
            if python_pkg not in ok:
                importers = sorted({f for m in mods for f in
                                    result["required"].get(m, []) + result["optional"].get(m, [])})
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
        if unlisted:
            problems.append("%s: optional imports outside the standard library, not in "
                            "python3_packages.OUTSIDE_CORE: %s" % (name, " ".join(unlisted)))
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_rdepends_are_derived_from_the_imports(kind, rdepends):
    """Every python3-* package a package RDEPENDS itself is one its programs import
    (python3-core also for the launchers' interpreter), and none of OUTSIDE_CORE's."""
    chosen = analysed(kind)
    if not chosen:
        pytest.skip("runtime/pyproject.toml has no %s console script yet" % kind)
    pkg = KINDS[kind]
    derived = {"python3-core"}
    for name, (module, result, classified) in chosen.items():
        if classified is not None:
            derived |= set(classified[0])
    own = {d for d in rdepends.get(pkg, ()) if d.startswith("python3")}
    assert own - derived == set(), "%s RDEPENDS %s, which none of %s imports" % (
        pkg, " ".join(sorted(own - derived)), " ".join(sorted(chosen)))
    outside = {v.split()[0] for v in OUTSIDE_CORE.values()}
    assert own & outside == set(), "%s: the layer depends on oe-core only" % pkg


def test_handler_has_no_socket_on_the_crash_path():
    entries, _ = scripts()
    result = probe(entries["minicoredumper"].split(":")[0])
    reachable = set(result["closure"]) | set(result["required"])
    network = {"socket", "_socket", "ssl", "_ssl"} & reachable
    assert not network, "%s imported by %s" % (sorted(network), sorted(
        {f for m in network for f in result["required"].get(m, [])}))



def test_the_guard_counts_optional_imports():
    """classify() on a made-up entry: an optional stdlib import (and what it pulls in)
    needs its package; an optional import from outside the stdlib must be listed."""
    result = {"builtin": [], "closure": ["os"], "startup": [], "required": {"os": ["a.py"]},
              "unavailable": [], "with_optional": ["os", "syslog", "getpass", "termios"],
              "optional": {"syslog": ["log.py"], "getpass": ["x.py"], "ujson": ["config.py"],
                           "orjson": ["config.py"]}}
    needed, unmapped, foreign, unlisted = classify(result, set())
    assert needed == {"python3-core": ["os"], "python3-syslog": ["syslog"],
                      "python3-unixadmin": ["getpass"], "python3-io": ["termios"]}
    assert (unmapped, foreign, unlisted) == ([], [], ["orjson"])
