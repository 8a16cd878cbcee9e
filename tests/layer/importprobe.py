"""tests/layer/importprobe.py: lists what an entry module of the runtime imports.

    python3 -I -S importprobe.py RUNTIME_DIR MODULE

Runs the way the launchers run the runtime on a target (-I -S: no site, no user or
environment paths; RUNTIME_DIR appended to sys.path by hand) and prints JSON:

- "startup": modules the interpreter itself loaded before anything else;
- "eager": sys.modules right after "import MODULE";
- "package_modules": the runtime's own modules the entry can reach, following every
  import statement in them (at module level or inside functions, so imports made only
  when a code path runs count too);
- "required": non-runtime modules those statements import, with the importing files;
- "optional": the ones inside a try whose handlers catch ImportError (the code copes
  without them), and all imports of runtime modules reached only that way
  ("optional_package_modules");
- "closure": sys.modules after also importing every "required" module, i.e. everything
  a run that takes all code paths can load; "unavailable": required modules this
  interpreter does not have (mapped by name only).
"""

import ast
import json
import os
import sys

IMPORT_ERRORS = {"ImportError", "ModuleNotFoundError"}


def handler_catches_import_error(handler):
    t = handler.type
    if t is None:
        return True
    names = t.elts if isinstance(t, ast.Tuple) else [t]
    return any(isinstance(n, ast.Name) and n.id in IMPORT_ERRORS for n in names)


def module_file(runtime, name):
    base = os.path.join(runtime, *name.split("."))
    if os.path.isfile(base + ".py"):
        return base + ".py"
    if os.path.isfile(os.path.join(base, "__init__.py")):
        return os.path.join(base, "__init__.py")
    return None


def imports_of(path, modname, is_package):
    """(absolute name, optional?) for every import statement in the file."""
    with open(path, "rb") as f:
        tree = ast.parse(f.read(), path)
    found = []

    def visit(node, optional):
        if isinstance(node, ast.Try):
            guarded = optional or any(handler_catches_import_error(h) for h in node.handlers)
            for child in node.body:
                visit(child, guarded)
            for child in node.handlers + node.orelse + node.finalbody:
                visit(child, optional)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append((alias.name, optional))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = modname.split(".")
                keep = len(parts) - node.level + (1 if is_package else 0)
                base = ".".join(parts[:keep])
                target = base + ("." + node.module if node.module else "")
            else:
                target = node.module
            found.append((target, optional))
            for alias in node.names:
                found.append((target + "." + alias.name, optional))
        for child in ast.iter_child_nodes(node):
            visit(child, optional)

    visit(tree, False)
    return found


def main():
    runtime, entry = os.path.abspath(sys.argv[1]), sys.argv[2]
    startup = sorted(sys.modules)
    sys.path.append(runtime)
    top = entry.split(".")[0]
    __import__(entry)
    eager = sorted(sys.modules)

    # The runtime's own modules the entry can reach, and their import statements.
    edges, todo = {}, [entry]
    while todo:
        name = todo.pop()
        if name in edges:
            continue
        path = module_file(runtime, name)
        if path is None:
            continue
        edges[name] = []
        if "." in name:  # importing a.b runs a/__init__.py first
            edges[name].append((name.rsplit(".", 1)[0], False))
        for target, is_optional in imports_of(path, name, path.endswith("__init__.py")):
            if target.split(".")[0] == top and module_file(runtime, target) is None:
                continue  # "from .mod import name": name is no module
            edges[name].append((target, is_optional))
            if target.split(".")[0] == top:
                todo.append(target)

    # A module reached only through optional imports is optional with all it imports.
    must, todo = set(), [entry]
    while todo:
        name = todo.pop()
        if name in must or name not in edges:
            continue
        must.add(name)
        todo.extend(t for t, is_optional in edges[name] if not is_optional)

    required, optional = {}, {}
    for name, targets in edges.items():
        rel = os.path.relpath(module_file(runtime, name), runtime)
        for target, is_optional in targets:
            if target.split(".")[0] == top:
                continue
            bucket = required if name in must and not is_optional else optional
            bucket.setdefault(target, []).append(rel)

    unavailable = []
    for target in sorted(required):
        try:
            __import__(target)
        except ImportError:
            # "from X import name" yields X.name, which may be no module: X counts then.
            if "." in target and target.rsplit(".", 1)[0] in sys.modules:
                continue
            unavailable.append(target)
    json.dump({
        "python": sys.version.split()[0],
        "builtin": sorted(sys.builtin_module_names),
        "startup": startup,
        "eager": eager,
        "package_modules": sorted(must),
        "optional_package_modules": sorted(set(edges) - must),
        "required": {k: sorted(set(v)) for k, v in sorted(required.items())},
        "optional": {k: sorted(set(v)) for k, v in sorted(optional.items())},
        "closure": sorted(sys.modules),
        "unavailable": unavailable,
    }, sys.stdout, indent=1)


if __name__ == "__main__":
    main()
