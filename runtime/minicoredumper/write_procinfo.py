"""WRITE: a copy of the crashed process's /proc/PID files (write_proc_info):
proc/PID/ in the dump directory, per-task files, the cwd and fd links as text.

Bounded: every file is cut at PROC_FILE_LIMIT, the fd list at MAX_FDS links,
per-task files are copied for the first MAX_TASKS tasks (each task's maps and
smaps are the whole process's: for every thread they would make the cost
threads x mappings), and the copy stops once deadline.PLAN_SHARE of the
deadline has gone (it comes before the release, and the core comes first);
what was left out is listed in proc/PID/omitted.
"""

import os

from . import deadline
from .read_process import read_small

PROC_FILES = ("cmdline", "environ", "io", "maps", "smaps", "stack", "stat", "statm", "status")
TASK_FILES = ("io", "maps", "smaps", "stack", "stat", "statm")
PROC_FILE_LIMIT = 4 << 20
MAX_TASKS = 16  # each task's files cost some 6 fsyncs: 1,000 tasks took seconds
MAX_FDS = 4096


def write_proc_info(dd, procdir, pid, omit_environ=False):
    """Copy /proc/PID files, per-task files, and the cwd and fd links as text
    (environ left out when the recept keeps the environment private).  What
    the process no longer has is left out, and so is what the bounds above
    leave out (listed in omitted); an error writing the dump (a full disk) is
    raised.  Link targets are bytes, as the kernel gives them."""
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
    omitted = []

    def copy(rel):
        if deadline.expired(deadline.PLAN_SHARE):
            omitted.append(rel + " (half the deadline gone)")
            return
        data = read_small("%s/%s" % (procdir, rel), PROC_FILE_LIMIT)
        if data is not None:
            dd.write_file("%s/%s" % (base, rel), data)

    for name in PROC_FILES:
        if not (omit_environ and name == "environ"):
            copy(name)
    cwd = readlink(procdir + "/cwd")
    if cwd is not None:
        dd.write_file(base + "/cwd", cwd + b"\n")
    fds = []
    try:
        with os.scandir(procdir + "/fd") as entries:  # the kernel lists them lowest first
            for entry in entries:
                if len(fds) == MAX_FDS:
                    omitted.append("fd links after the first %d" % MAX_FDS)
                    break
                fds.append(entry.name)
    except OSError:
        pass  # the process is gone: no fds
    targets = [(fd, readlink("%s/fd/%s" % (procdir, fd)))
               for fd in sorted(fds, key=lambda s: (len(s), s))]
    dd.write_file(base + "/fd", b"".join(b"%s -> %s\n" % (fd.encode(), t)
                                          for fd, t in targets if t is not None))
    tasks = sorted((t for t in listdir(procdir + "/task") if t.isdigit()), key=int)
    if len(tasks) > MAX_TASKS:
        omitted.append("task files of %d tasks after the first %d"
                       % (len(tasks) - MAX_TASKS, MAX_TASKS))
    for tid in tasks[:MAX_TASKS]:
        for name in TASK_FILES:
            copy("task/%s/%s" % (tid, name))
    if omitted:
        dd.write_file(base + "/omitted", "".join(m + "\n" for m in omitted).encode())
