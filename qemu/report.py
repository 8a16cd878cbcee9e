#!/usr/bin/env python3
"""qemu/report.py: read what a guest boot brought back, and print the figures.

    python3 qemu/report.py [--boot-dir DIR] [--budget BYTES] [ARCH...]

Builds (cached) and boots each architecture into DIR/ARCH (default: a new temporary
directory), then prints, as markdown:
  - boot-to-poweroff time per architecture (host wall clock, QEMU start to exit) and
    the guest's own milestones (kernel to init, init to poweroff);
  - handler time per crash inside each guest: the handler's own figure from its log
    line ("dumped ... in N ms": from its module import to the published directory) and
    crash to published directory as the scenario script saw it (including the
    interpreter's start-up; /proc/uptime, 10 ms resolution);
  - artefact sizes per architecture and recept: the core artefact and the whole dump
    directory, against the EEPROM budget;
  - the package test (minicoredumper-ptest's run-ptest): its PASS, FAIL and SKIP
    counts and how long it ran;
  - the size of the guest runtime: our package, the pruned stdlib, the interpreter and
    the libraries it needs (glibc apart).
The test session (tests/qemu) uses load() and the same tables.
"""

import argparse
import json
import os
import re
import sys
import tempfile

from guests import ARCHS, cache_dir

LABELS = ["embedded", "debug", "generic", "live"]
PROGRAMS = ["crash3", "threads8", "mycrasher"]
DUMPED = re.compile(r"minicoredumper\[\d+\]: pid (\d+): dumped (\S+) to (\S+) in (\d+) ms")
PTEST_LINE = re.compile(r"^(PASS|FAIL|SKIP): (\S+)$")


def ptest_results(log):
    """[(verdict, test name)] of run-ptest's output, in order."""
    return [m.groups() for m in map(PTEST_LINE.match, log.splitlines()) if m]


def keyvalues(path):
    out = {}
    try:
        with open(path) as f:
            for line in f:
                k, sep, v = line.rstrip("\n").partition("=")
                if sep:
                    out[k.strip()] = v
    except OSError:
        pass
    return out


def dir_bytes(path):
    total = 0
    for root, dirs, files in os.walk(path):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    return total


def load(boot_dir, image_dir=None):
    """Everything one boot brought back, as a dict (see the keys below)."""
    image_dir = image_dir or os.path.join(cache_dir(), "images", os.path.basename(boot_dir))
    res = os.path.join(boot_dir, "results")
    with open(os.path.join(boot_dir, "boot.json")) as f:
        boot = json.load(f)
    with open(os.path.join(image_dir, "image.json")) as f:
        image = json.load(f)
    crashes = {}
    try:
        with open(os.path.join(res, "crashes.txt")) as f:
            for line in f:
                m = re.match(r"(\S+) (\S+) rc=(\d+) ms=(\d+)", line)
                if m:
                    crashes[(m.group(1), m.group(2))] = {"rc": int(m.group(3)),
                                                         "ms": int(m.group(4))}
    except OSError:
        pass
    handler_ms = {}
    try:
        with open(os.path.join(res, "dmesg.txt"), errors="replace") as f:
            for line in f:
                m = DUMPED.search(line)
                if m:
                    handler_ms[os.path.basename(m.group(3))] = int(m.group(4))
    except OSError:
        pass
    dumps = {}
    top = os.path.join(res, "dumps")
    for label in sorted(os.listdir(top)) if os.path.isdir(top) else []:
        for name in sorted(os.listdir(os.path.join(top, label))):
            d = os.path.join(top, label, name)
            if name == "trigger":
                continue
            dirs = sorted(os.listdir(d))
            entry = {"dirs": [os.path.join(d, x) for x in dirs]}
            if len(dirs) == 1:
                path = entry["dirs"][0]
                arts = [n for n in os.listdir(path) if n == "core" or n.startswith("core.")]
                entry["dir"] = path
                entry["artefact"] = os.path.join(path, arts[0]) if len(arts) == 1 else None
                entry["artefact_bytes"] = (os.path.getsize(entry["artefact"])
                                           if entry["artefact"] else None)
                entry["dir_bytes"] = dir_bytes(path)
                entry["files"] = sorted(os.path.relpath(os.path.join(r, f), path)
                                        for r, _, fs in os.walk(path) for f in fs)
                entry["handler_ms"] = handler_ms.get(dirs[0])
            entry.update(crashes.get((label, name), {}))
            dumps[(label, name)] = entry
    return {
        "arch": boot["arch"], "boot": boot, "image": image, "image_dir": image_dir,
        "rootfs": os.path.join(image_dir, "rootfs"), "results": res,
        "boot_txt": keyvalues(os.path.join(res, "boot.txt")),
        "sysctl": keyvalues(os.path.join(res, "sysctl.txt")),
        "python": _read(os.path.join(res, "python.txt")),
        "live": keyvalues(os.path.join(res, "live.txt")),
        "crashes": crashes, "dumps": dumps, "handler_ms": handler_ms,
        "ptest": dict(keyvalues(os.path.join(res, "ptest.txt")),
                      log=_read(os.path.join(res, "ptest.log")),
                      dumps=os.path.join(res, "ptest-dumps")),
    }


def _read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def figures(data, budget):
    """The figures of one architecture, JSON-ready."""
    bt = data["boot_txt"]
    out = {
        "arch": data["arch"],
        "boot_to_poweroff_s": data["boot"]["seconds"],
        "kernel_to_init_ms": _int(bt.get("init_start_ms")),
        "init_to_poweroff_ms": (_int(bt.get("init_finish_ms")) or 0) - (_int(bt.get("init_start_ms")) or 0),
        "kernel": data["image"]["kernel_release"],
        "crashes": [],
        "sizes": data["image"]["sizes"],
        "budget": budget,
    }
    m = re.search(r"python_start_rc=0 ms=(\d+)", data["python"])
    out["python_start_ms"] = int(m.group(1)) if m else None
    pt = data.get("ptest", {})
    verdicts = [v for v, _ in ptest_results(pt.get("log", ""))]
    out["ptest"] = {"rc": _int(pt.get("rc")), "ms": _int(pt.get("ms")),
                    **{v.lower(): verdicts.count(v) for v in ("PASS", "FAIL", "SKIP")}}
    for (label, name), d in sorted(data["dumps"].items(), key=lambda kv: (
            LABELS.index(kv[0][0]) if kv[0][0] in LABELS else 9, kv[0][1])):
        out["crashes"].append({
            "recept": label, "program": name, "handler_ms": d.get("handler_ms"),
            "crash_to_published_ms": d.get("ms"), "artefact": os.path.basename(d.get("artefact") or "") or None,
            "artefact_bytes": d.get("artefact_bytes"), "dir_bytes": d.get("dir_bytes")})
    return out


def _int(v):
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def markdown(figs):
    """The closing-note tables for a list of figures() results."""
    lines = ["### Boot to poweroff (QEMU TCG, host wall clock)", "",
             "| arch | kernel | boot to poweroff | kernel to init | init to poweroff | python3 -I -S -c pass |",
             "|---|---|---|---|---|---|"]
    for f in figs:
        lines.append("| %s | %s | %.1f s | %s ms | %s ms | %s ms |" % (
            f["arch"], f["kernel"], f["boot_to_poweroff_s"], f["kernel_to_init_ms"],
            f["init_to_poweroff_ms"], f["python_start_ms"]))
    lines += ["", "### Handler time per crash inside the guests", "",
              "handler: the handler's own log line (module import to published dump); "
              "crash to dump: the scenario's clock (10 ms steps), interpreter start-up included.", "",
              "| arch | recept | program | handler | crash to dump |", "|---|---|---|---|---|"]
    for f in figs:
        for c in f["crashes"]:
            lines.append("| %s | %s | %s | %s ms | %s ms |" % (
                f["arch"], c["recept"], c["program"], c["handler_ms"], c["crash_to_published_ms"]))
    lines += ["", "### Artefact sizes (bytes)", "",
              "| arch | recept | program | artefact | artefact bytes | dump directory | artefact within %d |"
              % (figs[0]["budget"] if figs else 0), "|---|---|---|---|---|---|---|"]
    for f in figs:
        for c in f["crashes"]:
            ok = ""
            if c["recept"] == "embedded":
                ok = "yes" if (c["artefact_bytes"] or 0) <= f["budget"] else "NO"
                ok += ", directory %s" % ("too" if (c["dir_bytes"] or 0) <= f["budget"] else "not")
            lines.append("| %s | %s | %s | %s | %s | %s | %s |" % (
                f["arch"], c["recept"], c["program"], c["artefact"], c["artefact_bytes"],
                c["dir_bytes"], ok))
    lines += ["", "### Package test (run-ptest of minicoredumper-ptest, in the guest)", "",
              "| arch | PASS | FAIL | SKIP | exit status | time |", "|---|---|---|---|---|---|"]
    for f in figs:
        p = f.get("ptest") or {}
        lines.append("| %s | %s | %s | %s | %s | %s ms |" % (
            f["arch"], p.get("pass"), p.get("fail"), p.get("skip"), p.get("rc"), p.get("ms")))
    lines += ["", "### Guest runtime size (bytes on the guest's root file system)", "",
              "our package: .py and byte code, launchers; stdlib: the kept .py files with their "
              "byte code and extension modules (Debian's whole stdlib without byte code, for comparison); "
              "its libraries: what the interpreter and those modules link, glibc apart.", "",
              "| arch | our package | pruned stdlib (files) | Debian's stdlib | interpreter | its libraries | total | glibc | libminicoredumper | whole root fs |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for f in figs:
        s = f["sizes"]
        lines.append("| %s | %d | %d (%d) | %s | %d | %d | %d | %d | %d | %d |" % (
            f["arch"], s["runtime_package"], s["stdlib_pruned"], s["stdlib_files"],
            s.get("stdlib_debian_unpruned", "?"), s["interpreter"], s["interpreter_libs"],
            s["guest_runtime_total"], s["glibc"], s["libminicoredumper"], s["rootfs_total"]))
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("arch", nargs="*", default=sorted(ARCHS))
    ap.add_argument("--boot-dir", help="where the boots go (default: a temporary directory)")
    ap.add_argument("--budget", type=int, default=int(os.environ.get("MCD_EEPROM_BUDGET", 4096)))
    ap.add_argument("--timeout", type=float, default=900)
    args = ap.parse_args()
    import boot as bootmod
    import build_image
    top = args.boot_dir or tempfile.mkdtemp(prefix="mcd-qemu-report.")
    figs = []
    for arch in args.arch:
        build_image.build(arch)
        rec = bootmod.boot(arch, os.path.join(top, arch), timeout=args.timeout)
        if not rec.get("results"):
            print("%s: no results (%s)" % (arch, rec.get("results_error")), file=sys.stderr)
            continue
        figs.append(figures(load(os.path.join(top, arch)), args.budget))
    with open(os.path.join(top, "figures.json"), "w") as f:
        json.dump(figs, f, indent=1)
    print(markdown(figs))
    print("(boots and figures.json in %s)" % top)


if __name__ == "__main__":
    main()
