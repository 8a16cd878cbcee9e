"""qemu/stdlib_closure.py: the part of the guest's standard library that the installed
runtime imports, computed on the host.

    python3 qemu/stdlib_closure.py --python /usr/bin/python3.11 \
        --stdlib GUEST/usr/lib/python3.11 --sitedir GUEST/usr/lib/python3.11/site-packages \
        --package minicoredumper --triplet arm-linux-gnueabihf [--script FILE]... > closure.json

Method (the host's Debian python3.11 is the guests' Python: same version, same Debian
build configuration, so the same modules are built in or frozen):
 1. The runtime's own imports, read statically from every module of the installed
    package and every launcher script (ast: every import statement, at module level or
    inside a function, so the lazy ones on rare paths count too: subprocess for an
    external compressor, traceback on failure, _lzma for xz ...). Relative imports are
    resolved within the package.
 2. The import-time closure of those names, measured: the host's python3.11, started
    the way the kernel starts the handler (-I -S, empty environment), with the
    installed package first on sys.path, imports each name; every module then in
    sys.modules is what importing them really pulls in (what `-X importtime` lists).
    A name that does not import (ujson, zstandard, compression.zstd: optional) is
    reported as missing; the runtime has a fallback for each.
 3. What the interpreter imports before running anything, from the same run's initial
    sys.modules: the encodings package, its aliases and the UTF-8 codec.
 4. Built-in modules and frozen modules (os, io, codecs, abc, stat, posixpath ...) are
    inside the interpreter binary and need no file. os.py is kept anyway: getpath
    looks for it as the prefix landmark (without it the interpreter warns that it
    could not find its platform independent libraries), and lib-dynload/ is the
    exec_prefix landmark.
 5. Each module found is mapped to the guest's own file: the same path under the
    guest's stdlib, or for an extension module NAME.cpython-311-<triplet>.so in its
    lib-dynload. A module the guest lacks fails the build.
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

# Imports nothing of its own (no json, no importlib): what it finds in sys.modules is
# the interpreter's start-up plus what the named imports pulled in.
PROBE = r"""
import sys
start = sorted(sys.modules)
sys.path.insert(0, SITEDIR)
missing = {}
for name in NAMES:
    try:
        __import__(name)
    except ImportError as e:
        missing[name] = str(e)
mods = {}
for n, m in sorted(sys.modules.items()):
    spec = getattr(m, "__spec__", None)
    mods[n] = getattr(spec, "origin", None) or getattr(m, "__file__", None)
print(repr({"start": start, "modules": mods, "missing": missing,
            "version": sys.version.split()[0]}))
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


def static_imports(path, modname, is_package):
    """Every module name an import statement in path names (any nesting level)."""
    with open(path, "rb") as f:
        tree = ast.parse(f.read(), path)
    names = set()
    pkg = modname if is_package else modname.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")
                if node.level > 1:
                    base = base[:-(node.level - 1)]
                base = ".".join(base)
                mod = base + ("." + node.module if node.module else "")
            else:
                mod = node.module
            names.add(mod)
            # from X import Y: Y may be a submodule.
            names.update(mod + "." + a.name for a in node.names if a.name != "*")
    return names


def closure(python, stdlib, sitedir, package, triplet, scripts):
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
    code = "SITEDIR = %r\nNAMES = %r\n" % (os.path.abspath(sitedir), sorted(names)) + PROBE
    probe = ast.literal_eval(subprocess.run([python, "-I", "-S", "-c", code], env={},
                                            stdout=subprocess.PIPE, check=True,
                                            text=True).stdout)
    # "from X import Y" where Y is not a module is no import: only report real misses.
    missing = {n: e for n, e in probe["missing"].items()
               if n.rpartition(".")[0] not in probe["modules"] or n.rpartition(".")[0] == ""}
    files, frozen, builtin, own = set(), [], [], []
    for name, origin in sorted(probe["modules"].items()):
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
    start_files = sorted(n for n in probe["start"] if probe["modules"].get(n) not in
                         (None, "built-in", "frozen"))
    return {
        "python": probe["version"],
        "imports_named": sorted(names),
        "runtime_modules": own,
        "files": sorted(files),
        "frozen": frozen,
        "builtin": builtin,
        "missing": missing,
        "startup_from_files": start_files,
        "landmarks": LANDMARKS + ["lib-dynload/"],
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--python", required=True, help="the host's python of the guest's version")
    ap.add_argument("--stdlib", required=True)
    ap.add_argument("--sitedir", required=True)
    ap.add_argument("--package", required=True)
    ap.add_argument("--triplet", required=True)
    ap.add_argument("--script", action="append", default=[])
    args = ap.parse_args()
    json.dump(closure(args.python, args.stdlib, args.sitedir, args.package, args.triplet,
                      args.script), sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
