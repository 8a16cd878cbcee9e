"""The C test programs of tests/programs: how each is built, what gdb must show
for its crash, and doctored copies of a built program (with_strtab_size)."""

import os
import shutil
import subprocess
import tempfile

from lab import ROOT, RUNTIME

SOURCES = os.path.join(ROOT, "tests", "programs")
LIBMCD = os.path.join(RUNTIME, "libminicoredumper")

# name -> compiler command (run in SOURCES; "-o OUT" follows).
BUILDS = {
    "crash3": ["gcc", "-g", "-O0", "-fPIE", "-pie", "crash3.c"],
    "threads8": ["gcc", "-g", "-O0", "-pthread", "threads8.c"],
    "crash3_i386": ["i686-linux-gnu-gcc", "-static", "-g", "-O0", "crash3.c"],
    "crash3_o2": ["gcc", "-g", "-O2", "-fomit-frame-pointer", "-fPIE", "-pie", "crash3.c"],
    "crash3_static": ["gcc", "-static", "-g", "-O0", "crash3.c"],
    "bigheap": ["gcc", "-g", "-O0", "bigheap.c"],
    "robust": ["gcc", "-g", "-O0", "-pthread", "robust.c"],
    "secret": ["gcc", "-g", "-O0", "secret.c"],
    "bigthreads": ["gcc", "-g", "-O0", "-Wall", "-Wextra", "-Werror", "-pthread", "bigthreads.c"],
    # crash3's frames after waiting on stdin, or with a file mapped (test_process_files)
    "procfiles": ["gcc", "-g", "-O0", "-Wall", "-Wextra", "-Werror", "procfiles.c"],
    "overflow": ["gcc", "-g", "-O0", "-pthread", "overflow.c"],
    "altstack": ["gcc", "-g", "-O0", "altstack.c"],
    "altstack_i386": ["i686-linux-gnu-gcc", "-static", "-g", "-O0", "altstack.c"],
    # threads whose thread pointer is a forged descriptor (test_bounded_work)
    "robustring": ["gcc", "-g", "-O0", "-Wall", "-Wextra", "-Werror", "-pthread", "robustring.c"],
    # crash3's frames with its own executable mapped 10,000 times (test_bounded_work)
    "mapself": ["gcc", "-g", "-O0", "-Wall", "-Wextra", "-Werror", "mapself.c"],
    # threads stopped in the vDSO's clock_gettime and gettimeofday (test_unwind)
    "vdsospin": ["gcc", "-g", "-O0", "-Wall", "-Wextra", "-Werror", "-pthread", "vdsospin.c"],
    # crash situations of public bug reports against crash handlers (test_bug_reports)
    "oddcrash": ["gcc", "-g", "-O0", "-Wall", "-Wextra", "-Werror", "-pthread", "oddcrash.c"],
    # an uncaught C++ exception; no -g: gdb names its functions from .symtab, as we do
    "throwing": ["g++", "-O0", "-Wall", "-Wextra", "-Werror", "throwing.cpp"],
}
# Programs linked with libminicoredumper (built into outdir/lib first).
LINKED = {
    "regtypes": ["gcc", "-g", "-O0", "regtypes.c"],
    "hostile": ["gcc", "-g", "-O0", "hostile.c"],
    "regloop": ["gcc", "-g", "-O0", "-Wall", "-Wextra", "-Werror", "-pthread", "regloop.c"],
    "benchcrash": ["gcc", "-g", "-O0", "-Wall", "-Wextra", "-Werror", "-pthread", "benchcrash.c"],
    "regflood": ["gcc", "-g", "-O0", "-Wall", "-Wextra", "-Werror", "regflood.c"],
}

# The crashing thread's frames in gdb's "bt", innermost first: the program's own
# functions. gdb stops at main, so for a crash in the main thread they are the whole
# backtrace; threads8 crashes in a thread, whose frames go on into the C library's
# thread start. The QEMU guests run the same sources (the crashtests recipe builds
# tests/programs) and mycrasher, libminicoredumper's example; the layer's run-ptest
# (meta-minicoredumper/recipes-core/minicoredumper/files) expects these frames in the
# dump's summary, for every program but the host-only crash3_i386 (test_bitbake.py
# compares).
_LEVELS = ["level_c", "level_b", "level_a", "main"]  # crash3.c, also secret.c
FRAMES = {
    "crash3": _LEVELS,
    "crash3_i386": _LEVELS,
    "secret": _LEVELS,
    "threads8": ["worker"],
    "mycrasher": ["main"],
}


def build_programs(outdir, names=None):
    """Compile the crash programs into outdir: name -> path (missing compilers skip).
    "mycrasher" is the library's example; LINKED programs use the library too."""
    built = {}
    for name, cmd in BUILDS.items():
        if names and name not in names or shutil.which(cmd[0]) is None:
            continue
        subprocess.run(cmd + ["-o", os.path.join(outdir, name)], cwd=SOURCES, check=True)
        built[name] = os.path.join(outdir, name)
    if names and not set(names) & (set(LINKED) | {"mycrasher"}):
        return built
    lib = os.path.join(outdir, "lib")
    subprocess.run(["make", "-s", "-C", LIBMCD, "O=" + lib, "WERROR=1"], check=True,
                   stdout=subprocess.DEVNULL)
    built["mycrasher"] = os.path.join(lib, "mycrasher")
    for name, cmd in LINKED.items():
        if names and name not in names:
            continue
        subprocess.run(cmd + ["-I", LIBMCD, "-L", lib, "-Wl,-rpath," + lib, "-lminicoredumper",
                              "-o", os.path.join(outdir, name)], cwd=SOURCES, check=True)
        built[name] = os.path.join(outdir, name)
    return built


def workspace(prefix, names):
    """(work dir, {name: program}) for a demo or benchmark: a fresh directory
    under /tmp (short, as core_pattern holds 127 characters) with the named
    crash programs built into its bin/."""
    work = tempfile.mkdtemp(prefix=prefix)
    os.mkdir(os.path.join(work, "bin"))
    return work, build_programs(os.path.join(work, "bin"), names)


def with_strtab_size(src, dst, size, extend=True):
    """A copy of the ELF file src at dst whose .strtab section header says size
    bytes (pyelftools rewrites the header); with extend the file is extended,
    sparse, to hold them.  Returns dst."""
    from elftools.elf.elffile import ELFFile
    shutil.copy(src, dst)
    with open(dst, "r+b") as f:
        elf = ELFFile(f)
        index = next(i for i, s in enumerate(elf.iter_sections()) if s.name == ".strtab")
        header = elf.get_section(index).header
        header["sh_size"] = size
        f.seek(elf["e_shoff"] + index * elf["e_shentsize"])
        f.write(elf.structs.Elf_Shdr.build(header))
        if extend:
            f.truncate(header["sh_offset"] + size)
    return dst
