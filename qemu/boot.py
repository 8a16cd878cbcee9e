#!/usr/bin/env python3
"""qemu/boot.py: boot a guest image under QEMU (TCG) with a job, collect its results.

    python3 qemu/boot.py ARCH OUTDIR [--timeout SECONDS]

The guest gets two virtio disks, both raw image files: the job (serial "mcdjob": a tar
of qemu/guest/run.sh and job.json) and the results (serial "mcdresults": zeroed; the
guest's init writes a tar of its /results straight onto it). No network. The console
goes to OUTDIR/console.log. QEMU is killed at the timeout; the results disk is read
either way, and OUTDIR/boot.json says what happened.
"""

import argparse
import io
import json
import os
import shutil
import subprocess
import tarfile
import time
import uuid

from guests import ARCHS, cache_dir

HERE = os.path.dirname(os.path.abspath(__file__))

RESULTS_DISK_MB = 64
DEFAULT_TIMEOUT = 900


def make_job(path, job, script="run.sh"):
    """The job disk: a tar of run.sh (qemu/guest/SCRIPT), job.json and the job's
    timeout, padded to 1 MiB."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as t:
        def add(name, data, mode=0o644):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, int(time.time())
            t.addfile(info, io.BytesIO(data))
        with open(os.path.join(HERE, "guest", script), "rb") as f:
            add("run.sh", f.read(), 0o755)
        add("job.json", json.dumps(job).encode())
        add("timeout", b"%d\n" % job["guest_timeout"])
    data = buf.getvalue()
    with open(path, "wb") as f:
        f.write(data + b"\0" * ((1 << 20) - len(data) % (1 << 20)))


MEMORY_MB = 512


def nor_dtb(arch, image_dir):
    """The device tree of arch's machine with its "cfi-flash" node narrowed to the NOR
    flash of the raw store (guests.py's nor): `virt` describes both pflash devices in
    one node, which physmap would concatenate, and the first one, free of a drive when
    booting with -kernel, is QEMU's volatile memory. QEMU's own tree (dumpdtb), its
    flash node's reg set to the second bank with fdtput (Debian's device-tree-compiler);
    made once into image_dir/nor.dtb.  Returns its path."""
    path = os.path.join(image_dir, "nor.dtb")
    if os.path.exists(path):
        return path
    a = ARCHS[arch]
    machine = list(a["machine"])
    machine[1] += ",dumpdtb=" + path + ".part"
    subprocess.run([a["qemu"], *machine, "-m", str(MEMORY_MB), "-smp", "1", "-nodefaults",
                    "-no-user-config", "-display", "none"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    bank = a["nor"]["bytes"]
    node = [n for n in subprocess.run(["fdtget", "-l", path + ".part", "/"], check=True,
                                      text=True, stdout=subprocess.PIPE).stdout.split()
            if n.startswith("flash@")][0]
    # #address-cells and #size-cells are 2: reg = <0 start 0 size>
    subprocess.run(["fdtput", "-t", "x", path + ".part", "/" + node, "reg",
                    "0", "%x" % (a["nor"]["pflash_unit"] * bank), "0", "%x" % bank],
                   check=True)
    os.rename(path + ".part", path)
    return path


def qemu_command(arch, image_dir, job_img, results_img, console, drives=(), eeprom=None,
                 nor=None):
    """QEMU's argv; drives: more (serial, raw image path) disks (the raw store's);
    eeprom: an EEPROM's image file, on the arch's eeprom machine (guests.py); nor: a
    NOR flash's image file (guests.py's nor: exactly its bytes), as its pflash."""
    a = ARCHS[arch]
    append = "console=%s panic=-1 quiet loglevel=4" % a["console"]
    machine = a["machine"]
    if nor:
        machine = machine + [
            "-dtb", nor_dtb(arch, image_dir),
            "-drive", "if=pflash,unit=%d,format=raw,file=%s" % (a["nor"]["pflash_unit"], nor)]
    if eeprom:
        e = a["eeprom"]
        machine = e["machine"] + [
            "-dtb", os.path.join(image_dir, e["dtb"]),
            "-drive", "file=%s,format=raw,if=none,id=mcdeeprom" % eeprom,
            "-device", "at24c-eeprom,address=%#x,rom-size=%d,drive=mcdeeprom"
            % (e["address"], e["bytes"])]
    cmd = [a["qemu"], *machine, "-accel", "tcg", "-smp", "1", "-m", str(MEMORY_MB),
           "-nodefaults", "-no-user-config", "-no-reboot", "-display", "none",
           "-monitor", "none", "-serial", "file:" + console, "-nic", "none",
           "-kernel", os.path.join(image_dir, "vmlinuz"),
           "-initrd", os.path.join(image_dir, "initrd.cpio"),
           "-append", append]
    disks = [("mcdjob", job_img), ("mcdresults", results_img)] + list(drives)
    if a["disk_device"] == "virtio-blk-device":
        # virtio-mmio transports are probed last-created first: reversed, the job is
        # vda and the results vdb on every guest (init finds them by serial anyway).
        disks.reverse()
    for name, path in disks:
        cmd += ["-drive", "file=%s,format=raw,if=none,id=%s,cache=unsafe" % (path, name),
                "-device", "%s,drive=%s,serial=%s" % (a["disk_device"], name, name)]
    return cmd


def boot(arch, outdir, image_dir=None, timeout=DEFAULT_TIMEOUT, script="run.sh", drives=(),
         job_extra=None, eeprom=None, nor=None):
    """Boot once; returns the boot record (also written to OUTDIR/boot.json).
    script: the job (qemu/guest/SCRIPT); drives: more (serial, raw image) disks;
    job_extra: more keys for job.json; eeprom, nor: an EEPROM's or a NOR flash's
    image (qemu_command)."""
    image_dir = image_dir or os.path.join(cache_dir(), "images", arch)
    if os.path.exists(outdir):
        shutil.rmtree(outdir)
    os.makedirs(outdir)
    job = {"id": uuid.uuid4().hex, "arch": arch, "guest_timeout": max(60, int(timeout) - 60),
           # for the guest's run-ptest, as for the host's checks (tests/qemu/conftest.py)
           "eeprom_budget": int(os.environ.get("MCD_EEPROM_BUDGET", "4096"))}
    job.update(job_extra or {})
    job_img = os.path.join(outdir, "job.img")
    results_img = os.path.join(outdir, "results.img")
    make_job(job_img, job, script)
    with open(results_img, "wb") as f:
        f.truncate(RESULTS_DISK_MB << 20)
    console = os.path.join(outdir, "console.log")
    cmd = qemu_command(arch, image_dir, job_img, results_img, console, drives, eeprom, nor)
    record = {"arch": arch, "command": cmd, "job_id": job["id"], "timeout": timeout}
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        out, _ = proc.communicate(timeout=timeout)
        record["timed_out"] = False
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        record["timed_out"] = True
    record["seconds"] = round(time.monotonic() - t0, 2)
    record["returncode"] = proc.returncode
    record["qemu_output"] = out.decode(errors="replace")[-4000:]
    results = os.path.join(outdir, "results")
    os.makedirs(results)
    try:
        with tarfile.open(results_img) as t:
            if hasattr(tarfile, "data_filter"):  # Python 3.12, and 3.11.4 on
                t.extractall(results, filter="data")
            else:
                t.extractall(results)
        record["results"] = True
    except tarfile.TarError as e:
        record["results"] = False
        record["results_error"] = str(e)
    try:
        with open(os.path.join(results, "job.json")) as f:
            record["fresh"] = json.load(f).get("id") == job["id"]
    except (OSError, ValueError):
        record["fresh"] = False
    os.unlink(results_img)
    with open(os.path.join(outdir, "boot.json"), "w") as f:
        json.dump(record, f, indent=1)
    return record


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("arch", choices=sorted(ARCHS))
    ap.add_argument("outdir")
    ap.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT)
    args = ap.parse_args()
    rec = boot(args.arch, os.path.abspath(args.outdir), timeout=args.timeout)
    print(json.dumps({k: rec[k] for k in ("arch", "seconds", "returncode", "timed_out",
                                           "results", "fresh")}))


if __name__ == "__main__":
    main()
