"""WRITE: a copy of the crashed process's /proc/PID files (write_proc_info):
proc/PID/ in the dump directory, per-task files, the cwd and fd links as text."""

import os

from .read_process import read_small

PROC_FILES = ("cmdline", "environ", "io", "maps", "smaps", "stack", "stat", "statm", "status")
TASK_FILES = ("io", "maps", "smaps", "stack", "stat", "statm")
PROC_FILE_LIMIT = 4 << 20


def write_proc_info(dd, procdir, pid, omit_environ=False):
    """Copy /proc/PID files, per-task files, and the cwd and fd links as text
    (environ left out when the recept keeps the environment private).  What
    the process no longer has is left out; an error writing the dump (a full
    disk) is raised.  Link targets are bytes, as the kernel gives them."""
    def readlink(path):
        try:
            return os.readlink(os.fsencode(path))
        except OSError:
            return None  # the fd was closed or the process is gone

    def listdir(path):
        try:
            return os.listdir(path)
        except OSError:
            return []  # the process is gone

    base = "proc/%d" % pid
    for name in PROC_FILES:
        if not (omit_environ and name == "environ"):
            data = read_small("%s/%s" % (procdir, name), PROC_FILE_LIMIT)
            if data is not None:
                dd.write_file("%s/%s" % (base, name), data)
    cwd = readlink(procdir + "/cwd")
    if cwd is not None:
        dd.write_file(base + "/cwd", cwd + b"\n")
    fds = sorted(listdir(procdir + "/fd"), key=lambda s: (len(s), s))
    targets = [(fd, readlink("%s/fd/%s" % (procdir, fd))) for fd in fds]
    dd.write_file(base + "/fd", b"".join(b"%s -> %s\n" % (fd.encode(), t)
                                          for fd, t in targets if t is not None))
    for tid in sorted((t for t in listdir(procdir + "/task") if t.isdigit()), key=int):
        for name in TASK_FILES:
            data = read_small("%s/task/%s/%s" % (procdir, tid, name), PROC_FILE_LIMIT)
            if data is not None:
                dd.write_file("%s/task/%s/%s" % (base, tid, name), data)
