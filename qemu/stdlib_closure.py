"""qemu/stdlib_closure.py: what the runtime imports from the standard library, computed
on the host. Two users: the QEMU guest image, whose stdlib is pruned to what the whole
installed package can load (closure(), the command line below, build_image.py), and
the layer's test that each console script imports only what its package RDEPENDS on
(entry_imports(), tests/layer/test_crashpath_imports.py).

    python3 qemu/stdlib_closure.py --python /usr/bin/python3.11 \\
        --stdlib GUEST/usr/lib/python3.11 --sitedir GUEST/usr/lib/python3.11/site-packages \\
        --package minicoredumper --triplet arm-linux-gnueabihf [--script FILE]... > closure.json
    python3 qemu/stdlib_closure.py --python python3 --sitedir runtime \\
        --entry minicoredumper.cmd_handler                           > entry.json

Method (the host's Debian python3.11 is the guests' Python: same version, same Debian
build configuration, so the same modules are built in or frozen):
 1. The runtime's own imports, read statically (ast: every import statement, at module
    level or inside a function, so the lazy ones on rare paths count too: subprocess
    for an external compressor, traceback on failure, _lzma for xz ...). Relative
    imports are resolved within the package. An import inside a try whose handlers
    catch ImportError is optional: the code copes without it. For the image: every
    module of the installed package and every launcher script, optional or not. For an
    entry point: the package modules it can reach, following every import statement
    (a module reached only through optional imports is optional with all it imports).
 2. The import-time closure of those names, measured: the python given, started the
    way the kernel starts the handler (-I -S, empty environment), with the package's
    directory first on sys.path, imports each name; every module then in sys.modules
    is what importing them really pulls in (what `-X importtime` lists). A name that
    does not import (ujson, zstandard, compression.zstd: optional) is reported as
    missing; the runtime has a fallback for each.
 3. What the interpreter imports before running anything, from the same run's initial
    sys.modules: the encodings package, its aliases and the UTF-8 codec.
 4. Built-in modules and frozen modules (os, io, codecs, abc, stat, posixpath ...) are
    inside the interpreter binary and need no file. os.py is kept anyway: getpath
    looks for it as the prefix landmark (without it the interpreter warns that it
    could not find its platform independent libraries), and lib-dynload/ is the
    exec_prefix landmark.
 5. For the image, each module found is mapped to the guest's own file: the same path
    under the guest's stdlib, or for an extension module NAME.cpython-311-<triplet>.so
    in its lib-dynload. A module the guest lacks fails the build.
Stdlib functions may import more when called (a lazy import inside the stdlib): the
guests run every scenario and the tools (mcd, coreinject), so a module missing from
the pruned stdlib shows up as a failure there.
"""

import argparse
import ast
import json
import os
import subprocess
import sys

LANDMARKS = ["os.py"]
IMPORT_ERRORS = {"ImportError", "ModuleNotFoundError"}

# Imports nothing of its own (no json, no importlib): what it finds in sys.modules is
# the interpreter's start-up plus what the named imports pulled in.
PROBE = r"""
import sys
start = sorted(sys.modules)
sys.path.insert(0, SITEDIR)
missing = {}
first = None
for name in NAMES:
    try:
        __import__(name)
    except ImportError as e:
        missing[name] = str(e)
    if first is None:
        first = sorted(sys.modules)
mods = {}
for n, m in sorted(sys.modules.items()):
    spec = getattr(m, "__spec__", None)
    mods[n] = getattr(spec, "origin", None) or getattr(m, "__file__", None)
print(repr({"start": start, "after_first": first, "modules": mods, "missing": missing,
            "builtin": sorted(sys.builtin_module_names), "version": sys.version.split()[0]}))
"""


def package_modules(sitedir, package):
    """Module names and files of the installed package."""
    out = {}
    for root, dirs, files in os.walk(os.path.join(sitedir, package)):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(root, f)
                name = os.path.relpath(path, sitedir)[:-3].replace(os.sep, ".")
                if name.endswith(".__init__"):
                    name = name[:-len(".__init__")]
                out[name] = path
    return out


def _catches_import_error(handler):
    t = handler.type
    if t is None:
        return True
    names = t.elts if isinstance(t, ast.Tuple) else [t]
    return any(isinstance(n, ast.Name) and n.id in IMPORT_ERRORS for n in names)


def import_statements(path, modname, is_package):
    """(absolute module name, optional?) for every import statement in the file, at
    any nesting level; optional: inside a try whose handlers catch ImportError.
    "from X import Y" gives X and X.Y (Y may be a submodule)."""
    with open(path, "rb") as f:
        tree = ast.parse(f.read(), path)
    pkg = modname if is_package else modname.rpartition(".")[0]
    found = []

    def visit(node, optional):
        if isinstance(node, ast.Try):
            guarded = optional or any(_catches_import_error(h) for h in node.handlers)
            for child in node.body:
                visit(child, guarded)
            for child in node.handlers + node.orelse + node.finalbody:
                visit(child, optional)
            return
        if isinstance(node, ast.Import):
            found.extend((a.name, optional) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")
                if node.level > 1:
                    base = base[:-(node.level - 1)]
                mod = ".".join(base) + ("." + node.module if node.module else "")
            else:
                mod = node.module
            found.append((mod, optional))
            found.extend((mod + "." + a.name, optional) for a in node.names if a.name != "*")
        for child in ast.iter_child_nodes(node):
            visit(child, optional)

    visit(tree, False)
    return found


def static_imports(path, modname, is_package):
    """Every module name an import statement in path names (any nesting level)."""
    return {name for name, _ in import_statements(path, modname, is_package)}


def probe(python, sitedir, names):
    """Import names in order under `python -I -S` with an empty environment and
    sitedir first on sys.path: {"start": sys.modules before, "after_first": after the
    first name, "modules": {name: origin} at the end, "missing": {name: error},
    "builtin", "version"}."""
    code = "SITEDIR = %r\nNAMES = %r\n" % (os.path.abspath(sitedir), list(names)) + PROBE
    p = subprocess.run([python, "-I", "-S", "-c", code], env={}, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        raise RuntimeError("importing %s under %s -I -S failed:\n%s"
                           % (", ".join(names), python, p.stderr))
    return ast.literal_eval(p.stdout)


def real_misses(result, names):
    """The names of a probe that did not import, but for "from X import Y" where X
    imported and Y is no module (a function, a class: no import at all)."""
    return {n: e for n, e in result["missing"].items() if n in names and (
        n.rpartition(".")[0] == "" or n.rpartition(".")[0] not in result["modules"])}


def closure(python, stdlib, sitedir, package, triplet, scripts):
    """The image's part of the stdlib: everything the installed package and its
    launcher scripts can import, mapped to the files of the guest's stdlib."""
    pkgmods = package_modules(sitedir, package)
    names = set(pkgmods)
    for name, path in pkgmods.items():
        names |= static_imports(path, name, path.endswith("__init__.py"))
    for script in scripts:
        names |= static_imports(script, "__main__", False)
    host_stdlib = subprocess.run([python, "-I", "-S", "-c",
                                  "import os; print(os.path.dirname(os.__file__))"],
                                 env={}, stdout=subprocess.PIPE, text=True,
                                 check=True).stdout.strip()
    result = probe(python, sitedir, sorted(names))
    missing = real_misses(result, names)
    files, frozen, builtin, own = set(), [], [], []
    for name, origin in sorted(result["modules"].items()):
        if name in pkgmods:
            own.append(name)
            continue
        if origin in (None, "built-in"):
            builtin.append(name)
            continue
        if origin == "frozen":
            frozen.append(name)
            continue
        rel = os.path.relpath(origin, host_stdlib)
        if rel.startswith(".."):
            raise RuntimeError("%s comes from %s, outside the stdlib" % (name, origin))
        if rel.startswith("lib-dynload" + os.sep):
            base = os.path.basename(rel).split(".", 1)[0]
            rel = "lib-dynload/%s.cpython-311-%s.so" % (base, triplet)
        if not os.path.exists(os.path.join(stdlib, rel)):
            raise RuntimeError("the guest's stdlib has no %s (module %s)" % (rel, name))
        files.add(rel)
    files.update(LANDMARKS)
    start_files = sorted(n for n in result["start"] if result["modules"].get(n) not in
                         (None, "built-in", "frozen"))
    return {
        "python": result["version"],
        "imports_named": sorted(names),
        "runtime_modules": own,
        "files": sorted(files),
        "frozen": frozen,
        "builtin": builtin,
        "missing": missing,
        "startup_from_files": start_files,
        "landmarks": LANDMARKS + ["lib-dynload/"],
    }


def entry_imports(python, sitedir, entry):
    """What one entry module of the package (a console script's) can import, under
    `python -I -S` as its launcher runs it:

    - "startup": modules the interpreter loaded before anything else;
    - "eager": sys.modules right after "import ENTRY";
    - "package_modules": the package's own modules the entry can reach, following
      every import statement in them; "optional_package_modules": those reached only
      through optional imports;
    - "required": other modules those statements import, {module: [importing files,
      relative to sitedir]}; "optional": the ones imported optionally, or only by
      optional package modules;
    - "closure": sys.modules after also importing every "required" module, i.e.
      everything a run that takes all code paths can load; "unavailable": required
      modules this interpreter does not have;
    - "builtin": the interpreter's built-in module names.
    """
    top = entry.split(".")[0]
    pkgmods = package_modules(sitedir, top)
    if entry not in pkgmods:
        raise RuntimeError("%s: no module %s" % (sitedir, entry))

    # The package's own modules the entry can reach, and their import statements.
    edges, todo = {}, [entry]
    while todo:
        name = todo.pop()
        if name in edges or name not in pkgmods:
            continue
        path = pkgmods[name]
        edges[name] = []
        if "." in name:  # importing a.b runs a/__init__.py first
            edges[name].append((name.rpartition(".")[0], False))
        for target, optional in import_statements(path, name, path.endswith("__init__.py")):
            if target.split(".")[0] == top and target not in pkgmods:
                continue  # "from .mod import name": name is no module
            edges[name].append((target, optional))
            if target.split(".")[0] == top:
                todo.append(target)

    # A module reached only through optional imports is optional with all it imports.
    must, todo = set(), [entry]
    while todo:
        name = todo.pop()
        if name in must or name not in edges:
            continue
        must.add(name)
        todo.extend(t for t, optional in edges[name] if not optional)

    required, optional = {}, {}
    for name, targets in edges.items():
        rel = os.path.relpath(pkgmods[name], sitedir)
        for target, is_optional in targets:
            if target.split(".")[0] == top:
                continue
            bucket = required if name in must and not is_optional else optional
            bucket.setdefault(target, set()).add(rel)

    result = probe(python, sitedir, [entry] + sorted(required))
    if entry in result["missing"]:
        raise RuntimeError("importing %s under %s -I -S failed: %s"
                           % (entry, python, result["missing"][entry]))
    return {
        "python": result["version"],
        "builtin": result["builtin"],
        "startup": result["start"],
        "eager": result["after_first"],
        "package_modules": sorted(must),
        "optional_package_modules": sorted(set(edges) - must),
        "required": {k: sorted(v) for k, v in sorted(required.items())},
        "optional": {k: sorted(v) for k, v in sorted(optional.items())},
        "closure": sorted(result["modules"]),
        "unavailable": sorted(real_misses(result, required)),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--python", required=True,
                    help="the interpreter to measure with (the guest's version for an image)")
    ap.add_argument("--sitedir", required=True, help="the directory holding the package")
    ap.add_argument("--entry", help="report on this entry module alone (entry_imports())")
    ap.add_argument("--stdlib", help="the guest's stdlib (image)")
    ap.add_argument("--package", help="the package (image)")
    ap.add_argument("--triplet", help="the guest's multiarch triplet (image)")
    ap.add_argument("--script", action="append", default=[], help="a launcher script (image)")
    args = ap.parse_args()
    if args.entry:
        report = entry_imports(args.python, args.sitedir, args.entry)
    else:
        if not (args.stdlib and args.package and args.triplet):
            ap.error("an image's closure needs --stdlib, --package and --triplet")
        report = closure(args.python, args.stdlib, args.sitedir, args.package, args.triplet,
                         args.script)
    json.dump(report, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
