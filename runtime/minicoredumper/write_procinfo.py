"""WRITE: a copy of the crashed process's /proc/PID files (write_proc_info):
proc/PID/ in the dump directory, per-task files, the cwd and fd links as text."""

import os

PROC_FILES = ("cmdline", "environ", "io", "maps", "smaps", "stack", "stat", "statm", "status")
TASK_FILES = ("io", "maps", "smaps", "stack", "stat", "statm")
PROC_FILE_LIMIT = 4 << 20


def write_proc_info(dd, procdir, pid, omit_environ=False):
    """Copy /proc/PID files, per-task files, and the cwd and fd links as text
    (environ left out when the recept keeps the environment private)."""
    def copy(src, rel):
        try:
            with open(src, "rb") as f:
                data = f.read(PROC_FILE_LIMIT)
        except OSError:
            return
        dd.write_file(rel, data)

    def links(src_dir, rel):
        try:
            lines = []
            for name in sorted(os.listdir(src_dir), key=lambda s: (len(s), s)):
                try:
                    lines.append("%s -> %s\n" % (name, os.readlink(src_dir + "/" + name)))
                except OSError:
                    continue
            dd.write_file(rel, "".join(lines).encode("utf-8", "replace"))
        except OSError:
            return

    base = "proc/%d" % pid
    for name in PROC_FILES:
        if omit_environ and name == "environ":
            continue
        copy("%s/%s" % (procdir, name), "%s/%s" % (base, name))
    try:
        dd.write_file(base + "/cwd", (os.readlink(procdir + "/cwd") + "\n").encode())
    except OSError:
        pass
    links(procdir + "/fd", base + "/fd")
    try:
        tids = sorted(os.listdir(procdir + "/task"), key=int)
    except OSError:
        tids = []
    for tid in tids:
        for name in TASK_FILES:
            copy("%s/task/%s/%s" % (procdir, tid, name), "%s/task/%s/%s" % (base, tid, name))
