"""Tests of the C shim libminicoredumper (runtime/libminicoredumper/).

Owns the library's unit tests: errno returns, unregistering, duplicate
idents, the docs/FORMATS.md §7 node layout (LP64 and ILP32) read back from the live list,
the printf type codes, concurrent registrations, fork, the registry daemon
handshake of docs/FORMATS.md §8 against a fake daemon, the behaviour with no daemon, the
native and cross builds and `make install`.

The library is built with `make O=<tmp dir>` so the source tree stays clean.
Everything that loads the library runs in a separate Python or C process;
the ones that talk to a daemon run in a private network namespace
(`unshare -n`) when possible, so the abstract socket "\\0minicoredumper" of a
real daemon or of another test run is never touched.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "runtime" / "libminicoredumper"

EINVAL, ENOMEM, EEXIST, ENOKEY = 22, 12, 17, 126

# glibc <printf.h>
PA_INT, PA_CHAR, PA_STRING, PA_POINTER, PA_DOUBLE = 0, 1, 3, 5, 7
PA_FLAG_LONG_LONG, PA_FLAG_LONG, PA_FLAG_SHORT = 1 << 8, 1 << 9, 1 << 10
PA_FLAG_LONG_DOUBLE = PA_FLAG_LONG_LONG

CROSS = [
    ("arm-linux-gnueabihf-gcc", "EM_ARM", 32),
    ("aarch64-linux-gnu-gcc", "EM_AARCH64", 64),
    ("i686-linux-gnu-gcc", "EM_386", 32),
]
I686_LOADER = Path("/usr/i686-linux-gnu/lib/ld-linux.so.2")


# --------------------------------------------------------------------------
# helpers


def make(outdir, *args, cc=None, check=True):
    cmd = ["make", "-C", str(SRC), f"O={outdir}", "WERROR=1", *args]
    if cc:
        cmd.append(f"CC={cc}")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def _netns_prefix():
    """Command prefix that runs a program in a new, empty network namespace."""
    for prefix in (["unshare", "-n"], ["unshare", "-rn"]):
        if not shutil.which(prefix[0]):
            return None
        try:
            if subprocess.run(prefix + ["true"], capture_output=True,
                              timeout=10).returncode == 0:
                return prefix
        except (OSError, subprocess.SubprocessError):
            pass
    return None


NETNS = _netns_prefix()


def source_listing():
    return sorted(str(p.relative_to(SRC)) for p in SRC.rglob("*"))


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    out = tmp_path_factory.mktemp("mcd-native")
    make(out)
    return out


@pytest.fixture(scope="module")
def libpath(build):
    return build / "libminicoredumper.so.2"


# Python run in a child process: loads the library through ctypes and knows
# the docs/FORMATS.md §7 node layout (it reads it at explicit offsets, not via ctypes
# structures) and a fake registry daemon.
PRELUDE = r'''
import ctypes, json, os, socket, struct, sys, threading, time
from ctypes import (byref, c_char_p, c_int, c_size_t, c_uint, c_ulong,
                    c_void_p, POINTER)

LIB = ctypes.CDLL(os.environ["MCD_LIB"], use_errno=True)
reg_bin = LIB.mcd_dump_data_register_bin
reg_bin.argtypes = [c_char_p, c_ulong, POINTER(c_void_p), c_void_p,
                    c_size_t, c_int]
reg_bin.restype = c_int
reg_text = LIB.mcd_dump_data_register_text       # variadic: no argtypes
reg_text.restype = c_int
unreg = LIB.mcd_dump_data_unregister
unreg.argtypes = [c_void_p]
unreg.restype = c_int
HEAD = c_void_p.in_dll(LIB, "mcd_dump_data_head")
VERSION = c_int.in_dll(LIB, "mcd_dump_data_version")

P = ctypes.sizeof(c_void_p)
W = "Q" if P == 8 else "I"
NODE_SIZE, ELEM_SIZE = 7 * P, 4 * P

def text(ident, scope, fmt, *ptrs):
    h = c_void_p()
    args = [c_void_p(p) if isinstance(p, int) else p for p in ptrs]
    r = reg_text(c_char_p(ident), c_ulong(scope), byref(h), c_char_p(fmt),
                 *args)
    return r, h.value

def binr(ident, scope, ptr, size, flags):
    h = c_void_p()
    r = reg_bin(ident, scope, byref(h), ptr, size, flags)
    return r, h.value

def cstr(addr):
    return None if not addr else ctypes.string_at(addr).decode()

def read_node(addr):
    raw = ctypes.string_at(addr, NODE_SIZE)
    n = {
        "addr": addr,
        "type": struct.unpack_from("=i", raw, 0)[0],
        "ident_ptr": struct.unpack_from("=" + W, raw, 1 * P)[0],
        "dump_scope": struct.unpack_from("=" + W, raw, 2 * P)[0],
        "es": struct.unpack_from("=" + W, raw, 3 * P)[0],
        "es_n": struct.unpack_from("=I", raw, 4 * P)[0],
        "fmt_ptr": struct.unpack_from("=" + W, raw, 5 * P)[0],
        "next": struct.unpack_from("=" + W, raw, 6 * P)[0],
    }
    n["ident"] = cstr(n["ident_ptr"])
    n["fmt"] = cstr(n["fmt_ptr"])
    elems = []
    if n["es_n"]:
        eraw = ctypes.string_at(n["es"], n["es_n"] * ELEM_SIZE)
        for k in range(n["es_n"]):
            o = k * ELEM_SIZE
            elems.append({
                "data_ptr": struct.unpack_from("=" + W, eraw, o)[0],
                "flags": struct.unpack_from("=" + W, eraw, o + P)[0],
                "u": struct.unpack_from("=" + W, eraw, o + 2 * P)[0],
                "fmt_type": struct.unpack_from("=i", eraw, o + 3 * P)[0],
            })
    n["elems"] = elems
    return n

def nodes(limit=1000000):
    out, addr = [], HEAD.value
    while addr:
        n = read_node(addr)
        out.append(n)
        addr = n["next"]
        assert len(out) <= limit, "list too long or cyclic"
    return out

DAEMON_ADDR = b"\0minicoredumper".ljust(108, b"\0")

def client_addr(pid):
    return (b"\0minicoredumper.%d" % pid).ljust(108, b"\0")

class Daemon:
    """Fake minicoredumper_regd: records every datagram and answers ~data."""
    def __init__(self, addr=DAEMON_ADDR, reply=True):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind(addr)
        self.reply = reply
        self.msgs = []
        self.lock = threading.Lock()
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        while True:
            data, anc, _, addr = self.sock.recvmsg(
                64, socket.CMSG_SPACE(struct.calcsize("=iII")))
            pid = None
            for level, kind, cdata in anc:
                if level == socket.SOL_SOCKET and \
                   kind == socket.SCM_CREDENTIALS:
                    pid = struct.unpack_from("=iII", cdata)[0]
            rec = {"pid": pid, "len": len(data),
                   "addr": addr.hex() if isinstance(addr, bytes) else addr}
            if len(data) == 8:
                req, val = struct.unpack("=II", data)
                rec.update(req=req, data=val)
                if self.reply:
                    try:
                        self.sock.sendto(
                            struct.pack("=II", req, ~val & 0xffffffff), addr)
                    except OSError:
                        pass
            with self.lock:
                self.msgs.append(rec)

    def wait(self, n, timeout=5.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.lock:
                if len(self.msgs) >= n:
                    break
            time.sleep(0.005)
        time.sleep(0.05)
        with self.lock:
            return list(self.msgs)

def done(result):
    print("RESULT " + json.dumps(result))
'''


def run_py(libpath, body, netns=False, timeout=25):
    """Runs PRELUDE + body in a fresh Python; returns what body passed to done()."""
    cmd = [sys.executable, "-c", PRELUDE + textwrap.dedent(body)]
    if netns:
        if NETNS is None:
            pytest.skip("no network namespace (unshare -n) available to "
                        "isolate the abstract socket \\0minicoredumper")
        cmd = NETNS + cmd
    env = dict(os.environ, MCD_LIB=str(libpath))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert lines, proc.stdout + proc.stderr
    return json.loads(lines[-1][len("RESULT "):])


def compile_c(build, name, source, cc="gcc", extra=()):
    src = build / f"{name}.c"
    src.write_text(textwrap.dedent(source))
    exe = build / f"{name}-{cc}"
    cmd = [cc, "-Wall", "-Wextra", "-Werror", "-O1", f"-I{SRC}", "-o",
           str(exe), str(src), f"-L{build}", "-lminicoredumper", "-pthread",
           f"-Wl,-rpath,{build}", *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return exe


# --------------------------------------------------------------------------
# build, symbols, install


def test_build_outputs_and_exports(build):
    elftools = pytest.importorskip("elftools.elf.elffile")
    real = build / "libminicoredumper.so.2.0.0"
    assert real.is_file()
    assert os.readlink(build / "libminicoredumper.so.2") == \
        "libminicoredumper.so.2.0.0"
    assert os.readlink(build / "libminicoredumper.so") == \
        "libminicoredumper.so.2"
    assert (build / "mycrasher").is_file()

    with open(real, "rb") as f:
        elf = elftools.ELFFile(f)
        dyn = elf.get_section_by_name(".dynamic")
        tags = [(t.entry.d_tag, getattr(t, "needed", None) or
                 getattr(t, "soname", None)) for t in dyn.iter_tags()]
        assert ("DT_SONAME", "libminicoredumper.so.2") in tags
        needed = {v for k, v in tags if k == "DT_NEEDED"}
        assert needed <= {"libc.so.6", "libpthread.so.0"}, needed
        exported = {}
        for sym in elf.get_section_by_name(".dynsym").iter_symbols():
            if sym["st_info"]["bind"] in ("STB_GLOBAL", "STB_WEAK") and \
               sym["st_shndx"] != "SHN_UNDEF":
                exported[sym.name] = (sym["st_info"]["type"], sym["st_size"])
    assert exported == {
        "mcd_dump_data_register_bin": ("STT_FUNC", exported[
            "mcd_dump_data_register_bin"][1]),
        "mcd_dump_data_register_text": ("STT_FUNC", exported[
            "mcd_dump_data_register_text"][1]),
        "mcd_vdump_data_register_text": ("STT_FUNC", exported[
            "mcd_vdump_data_register_text"][1]),
        "mcd_dump_data_unregister": ("STT_FUNC", exported[
            "mcd_dump_data_unregister"][1]),
        "mcd_dump_data_version": ("STT_OBJECT", 4),
        "mcd_dump_data_head": ("STT_OBJECT", 8),
    }

    with open(build / "mycrasher", "rb") as f:
        elf = elftools.ELFFile(f)
        dyn = elf.get_section_by_name(".dynamic")
        needed = [t.needed for t in dyn.iter_tags() if t.entry.d_tag ==
                  "DT_NEEDED"]
        runpath = [getattr(t, "runpath", None) or getattr(t, "rpath", None)
                   for t in dyn.iter_tags()
                   if t.entry.d_tag in ("DT_RUNPATH", "DT_RPATH")]
    assert "libminicoredumper.so.2" in needed
    assert runpath == ["$ORIGIN"]


def test_version_symbol_and_empty_list(libpath):
    res = run_py(libpath, """
        done({"version": VERSION.value, "head": HEAD.value})
    """)
    assert res == {"version": 2, "head": None}


def test_source_tree_stays_clean(tmp_path):
    before = source_listing()
    make(tmp_path / "b")
    make(tmp_path / "b", "clean")
    assert source_listing() == before
    assert not (tmp_path / "b" / "libminicoredumper.so.2.0.0").exists()


@pytest.mark.parametrize("cc,machine,bits", CROSS)
def test_cross_build_werror(tmp_path, cc, machine, bits):
    if not shutil.which(cc):
        pytest.skip(f"{cc} is not installed")
    elftools = pytest.importorskip("elftools.elf.elffile")
    proc = make(tmp_path, cc=cc)
    assert "-Werror" in proc.stdout and "-Wall" in proc.stdout
    assert "-Wextra" in proc.stdout
    assert "warning" not in proc.stderr.lower(), proc.stderr
    for name in ("libminicoredumper.so.2.0.0", "mycrasher"):
        with open(tmp_path / name, "rb") as f:
            elf = elftools.ELFFile(f)
            assert elf["e_machine"] == machine
            assert elf.elfclass == bits
            if name.startswith("lib"):
                dyn = elf.get_section_by_name(".dynamic")
                sonames = [t.soname for t in dyn.iter_tags()
                           if t.entry.d_tag == "DT_SONAME"]
                assert sonames == ["libminicoredumper.so.2"]
                syms = {s.name: s["st_size"] for s in
                        elf.get_section_by_name(".dynsym").iter_symbols()
                        if s["st_shndx"] != "SHN_UNDEF"}
                assert syms["mcd_dump_data_version"] == 4
                assert syms["mcd_dump_data_head"] == bits // 8


def test_werror_only_on_request(tmp_path):
    """-Werror is the project's own CI's (WERROR=1), not a default that a newer
    compiler's new warnings would turn into a broken distribution build."""
    def dry(*args):
        return subprocess.run(["make", "-n", "-C", str(SRC), f"O={tmp_path}", *args],
                              capture_output=True, text=True, check=True).stdout
    assert "-Wall -Wextra" in dry() and "-Werror" not in dry()
    assert "-Werror" in dry("WERROR=1")


def test_install(build, tmp_path):
    dest = tmp_path / "root"
    make(build, "install", f"DESTDIR={dest}", "PREFIX=/opt/mcd")
    lib = dest / "opt/mcd/lib"
    assert (lib / "libminicoredumper.so.2.0.0").is_file()
    assert os.readlink(lib / "libminicoredumper.so.2") == \
        "libminicoredumper.so.2.0.0"
    assert os.readlink(lib / "libminicoredumper.so") == \
        "libminicoredumper.so.2"
    assert (dest / "opt/mcd/include/minicoredumper.h").is_file()
    # The crashing example is installed only on request.
    assert not (dest / "opt/mcd/bin").exists()
    make(build, "install-examples", f"DESTDIR={dest}", "BINDIR=/opt/mcd/bin")
    assert (dest / "opt/mcd/bin/mycrasher").is_file()
    pc = (lib / "pkgconfig/minicoredumper.pc").read_text()
    assert "prefix=/opt/mcd" in pc and "@" not in pc
    assert "Version: 2.0.0" in pc

    if shutil.which("pkg-config"):
        env = dict(os.environ, PKG_CONFIG_PATH=str(lib / "pkgconfig"),
                   PKG_CONFIG_SYSROOT_DIR=str(dest),
                   PKG_CONFIG_LIBDIR=str(lib / "pkgconfig"))
        flags = subprocess.run(
            ["pkg-config", "--cflags", "--libs", "minicoredumper"],
            capture_output=True, text=True, env=env, check=True).stdout.split()
        assert "-lminicoredumper" in flags
        src = tmp_path / "user.c"
        src.write_text("#include <minicoredumper.h>\n"
                       "int main(void) { return mcd_dump_data_unregister"
                       "((mcd_dump_data_t)0) == 22 ? 0 : 1; }\n")
        exe = tmp_path / "user"
        subprocess.run(["gcc", "-Wall", "-Werror", "-o", str(exe), str(src),
                        *flags, f"-Wl,-rpath,{lib}"], check=True)
        assert subprocess.run([str(exe)]).returncode == 0


# --------------------------------------------------------------------------
# argument checking and the list


def test_errno_for_invalid_arguments(libpath):
    res = run_py(libpath, r"""
        buf = ctypes.create_string_buffer(16)
        p = ctypes.addressof(buf)
        size = c_size_t(4)
        D, I = 1 | 4, 2 | 8
        r = {}
        for ident in [b"", b".", b"..", b"a/b", b"/", b"x/", b"x\ny",
                      b"t\tab", b"x" * 256]:
            r["bin ident %r" % ident] = binr(ident, 1, p, 4, D)[0]
            r["text ident %r" % ident] = text(ident, 1, b"%d", p)[0]
        r["bin NULL data"] = binr(b"a", 1, None, 4, D)[0]
        r["bin size 0"] = binr(b"a", 1, p, 0, D)[0]
        r["bin NULL size ptr"] = binr(b"a", 1, p, 0, 1 | 8)[0]
        r["bin ptr both"] = binr(b"a", 1, p, 4, 1 | 2 | 4)[0]
        r["bin len both"] = binr(b"a", 1, p, 4, 1 | 4 | 8)[0]
        r["bin unknown flag"] = binr(b"a", 1, p, 4, D | 32)[0]
        r["bin negative flags"] = binr(b"a", 1, p, 4, -1)[0]
        r["text NULL ident"] = text(None, 1, b"%d", p)[0]
        r["text NULL fmt"] = text(b"t", 1, None, p)[0]
        for fmt in [b"%n", b"%*d", b"%.*f", b"%1$d", b"%lc", b"%ls", b"%Ld",
                    b"%hf", b"%llf", b"%zf", b"%hs", b"%lp", b"%hc", b"%a",
                    b"%q", b"%", b"abc%", b"%'d", b"%jd", b"%td",
                    b"%1234567890d", b"%.1234567890f", b"%d %k", b"%5%",
                    b"%-%", b"%F", b"%C", b"%S", b"%m", b"%Z", b"%qd"]:
            r["text fmt %r" % fmt] = text(b"t", 1, fmt, p, p)[0]
        r["text NULL arg"] = text(b"t", 1, b"%d %d", p, None)[0]
        r["text NULL str"] = text(b"t", 1, b"%s", None)[0]
        r["unregister NULL"] = unreg(None)
        # the caller's errno is left alone
        ctypes.set_errno(1234)
        binr(b"", 1, p, 4, D)
        unreg(p)
        r["errno kept"] = ctypes.get_errno()
        # accepted edge cases
        ok = {}
        ok["ident 255"] = binr(b"y" * 255, 1, p, 4, D)[0]
        ok["ident ..."] = binr(b"...", 1, p, 4, D)[0]
        ok["ident .x"] = binr(b".x", 1, p, 4, D)[0]
        ok["flags 0 = direct"] = binr(b"f0", 1, p, 4, 0)[0]
        ok["nodump"] = binr(b"nd", 1, p, 4, D | 16)[0]
        ok["indirect"] = binr(b"ind", 1, p, ctypes.addressof(size), I)[0]
        ok["text literal"] = text(b"lit", 1, b"no directives\n")[0]
        ok["text %%"] = text(b"lit", 1, b"100%% %d%%\n", p)[0]
        flags0 = [n["elems"][0]["flags"] for n in nodes()
                  if n["ident"] == "f0"]
        done({"r": r, "ok": ok, "flags0": flags0, "n": len(nodes()),
              "head_before_ok": None})
    """)
    for case, err in res["r"].items():
        if case == "errno kept":
            assert err == 1234
        else:
            assert err == EINVAL, case
    assert all(v == 0 for v in res["ok"].values()), res["ok"]
    assert res["flags0"] == [1 | 4]        # "neither" is stored as direct
    assert res["n"] == len(res["ok"])      # no failed call left a node


def test_failed_calls_leave_list_empty(libpath):
    res = run_py(libpath, r"""
        p = ctypes.addressof(ctypes.create_string_buffer(8))
        binr(b"", 1, p, 4, 5); text(b"t", 1, b"%n", p); text(b"t", 1, b"%d", None)
        done({"head": HEAD.value})
    """)
    assert res["head"] is None


def test_unregister(libpath):
    res = run_py(libpath, r"""
        buf = ctypes.create_string_buffer(16)
        p = ctypes.addressof(buf)
        r = {}
        _, a = binr(b"a", 1, p, 4, 5)
        _, b = text(b"t", 1, b"%d", p)
        _, c = binr(None, 1, p, 4, 5)
        r["order"] = [n["ident"] for n in nodes()]
        r["mid"] = unreg(b)
        r["after mid"] = [n["ident"] for n in nodes()]
        r["twice"] = unreg(b)
        r["unknown"] = unreg(p)
        r["a"] = unreg(a)
        r["a twice"] = unreg(a)
        r["re-register a"] = binr(b"a", 1, p, 4, 5)[0]
        r["c"] = unreg(c)
        r["left"] = [n["ident"] for n in nodes()]
        # a NULL save_ptr is allowed: the registration just has no handle
        r["no save_ptr"] = reg_bin(b"nosave", 1, None, p, 4, 5)
        done(r)
    """)
    assert res["order"] == ["a", "t", None]
    assert res["mid"] == 0
    assert res["after mid"] == ["a", None]
    assert res["twice"] == ENOKEY
    assert res["unknown"] == ENOKEY
    assert res["a"] == 0 and res["c"] == 0
    assert res["re-register a"] == 0
    assert res["left"] == ["a"]
    assert res["a twice"] == ENOKEY
    assert res["no save_ptr"] == 0


def test_duplicate_idents(libpath):
    res = run_py(libpath, r"""
        p = ctypes.addressof(ctypes.create_string_buffer(16))
        r = {}
        r["first"] = binr(b"first.bin", 1, p, 4, 5)[0]
        r["mid"] = binr(b"mid.bin", 1, p, 4, 5)[0]
        r["last"] = binr(b"last.bin", 1, p, 4, 5)[0]
        r["dup last"] = binr(b"last.bin", 1, p, 4, 5)[0]
        r["dup first"] = binr(b"first.bin", 1, p, 4, 5)[0]
        r["dup mid"] = binr(b"mid.bin", 2, p, 8, 5)[0]
        r["null 1"] = binr(None, 1, p, 4, 5)[0]
        r["null 2"] = binr(None, 1, p, 4, 5)[0]
        r["text 1"] = text(b"out.txt", 1, b"a=%d\n", p)[0]
        r["text 2"] = text(b"out.txt", 1, b"b=%d\n", p)[0]
        r["text 3"] = text(b"out.txt", 1, b"c=%d\n", p)[0]
        r["text on bin ident"] = text(b"mid.bin", 1, b"%d", p)[0]
        r["bin on text ident"] = binr(b"out.txt", 1, p, 4, 5)[0]
        r["list"] = [[n["ident"], n["fmt"]] for n in nodes()]
        done(r)
    """)
    assert res.pop("list") == [
        ["first.bin", None], ["mid.bin", None], ["last.bin", None],
        [None, None], [None, None],
        ["out.txt", "a=%d\n"], ["out.txt", "b=%d\n"], ["out.txt", "c=%d\n"],
    ]
    expected = {k: 0 for k in res}
    expected.update({"dup last": EEXIST, "dup first": EEXIST,
                     "dup mid": EEXIST, "text on bin ident": EEXIST,
                     "bin on text ident": EEXIST})
    assert res == expected


def test_enomem_leaves_list_unchanged(build):
    """Fails the n-th allocation in turn: ENOMEM and no half-built node."""
    exe = compile_c(build, "enomem", r"""
        #include <errno.h>
        #include <stdio.h>
        #include <stdlib.h>
        #include <string.h>
        #include "minicoredumper.h"

        extern void *__libc_malloc(size_t);
        extern void *__libc_calloc(size_t, size_t);
        extern void *mcd_dump_data_head;
        static int fail_after = -1;

        static int fail_now(void)
        {
            if (fail_after < 0)
                return 0;
            if (fail_after == 0)
                return 1;
            fail_after--;
            return 0;
        }
        void *malloc(size_t n) { return fail_now() ? NULL : __libc_malloc(n); }
        void *calloc(size_t n, size_t m)
        {
            return fail_now() ? NULL : __libc_calloc(n, m);
        }

        static int count(void)
        {
            int n = 0;
            char *p = mcd_dump_data_head;
            while (p) {
                n++;
                memcpy(&p, p + 6 * sizeof(void *), sizeof(p));
            }
            return n;
        }

        int main(void)
        {
            static int i = 42;
            static char s[] = "str";
            mcd_dump_data_t h = NULL, keep;
            int k, r, enomem = 0, bad = 0;

            if (mcd_dump_data_register_bin("keep", 1, &keep, &i, 4, 5))
                return 2;
            for (k = 0; k < 20; k++) {
                fail_after = k;
                r = mcd_dump_data_register_text("x.txt", 1, &h, "%d %s",
                                                &i, s);
                fail_after = -1;
                if (r == ENOMEM) { enomem++; if (count() != 1) bad++; continue; }
                if (r != 0 || count() != 2) bad++;
                mcd_dump_data_unregister(h);
                break;
            }
            printf("text %d %d\n", enomem, bad);
            enomem = bad = 0;
            for (k = 0; k < 20; k++) {
                fail_after = k;
                r = mcd_dump_data_register_bin("y.bin", 1, &h, &i, 4, 5);
                fail_after = -1;
                if (r == ENOMEM) { enomem++; if (count() != 1) bad++; continue; }
                if (r != 0 || count() != 2) bad++;
                break;
            }
            printf("bin %d %d\n", enomem, bad);
            return 0;
        }
    """, extra=["-rdynamic"])
    out = subprocess.run(NETNS + [str(exe)] if NETNS else [str(exe)],
                         capture_output=True, text=True, timeout=20)
    assert out.returncode == 0, out.stderr
    lines = dict((ln.split()[0], ln.split()[1:]) for ln in
                 out.stdout.splitlines())
    # text: node, ident, fmt, elements = 4 allocations; bin: 3
    assert lines["text"] == ["4", "0"]
    assert lines["bin"] == ["3", "0"]


# --------------------------------------------------------------------------
# the node layout (docs/FORMATS.md §7)


def test_layout_bin_and_text_lp64(libpath):
    res = run_py(libpath, r"""
        assert P == 8
        s = ctypes.create_string_buffer(b"my string")
        i = c_int(42)
        ip = ctypes.pointer(i)
        length = c_size_t(4)
        r1, h1 = binr(None, 1024, ctypes.addressof(s), 10, 1 | 4)
        r2, h2 = binr(b"i.bin", 1025, ctypes.addressof(ip),
                      ctypes.addressof(length), 2 | 8 | 16)
        r3, h3 = text(b"out.txt", 1026, b's=\"%s\" *i=%d\n',
                      ctypes.addressof(s), ctypes.addressof(i))
        raw = ctypes.string_at(h1, 56).hex()
        done({"r": [r1, r2, r3], "h": [h1, h2, h3], "head": HEAD.value,
              "nodes": nodes(), "s": ctypes.addressof(s),
              "i": ctypes.addressof(i), "ip": ctypes.addressof(ip),
              "len": ctypes.addressof(length), "raw": raw})
    """)
    assert res["r"] == [0, 0, 0]
    n1, n2, n3 = res["nodes"]
    assert res["head"] == res["h"][0] == n1["addr"]
    assert [n1["next"], n2["next"], n3["next"]] == [res["h"][1], res["h"][2], 0]

    assert (n1["type"], n1["ident_ptr"], n1["dump_scope"], n1["es_n"],
            n1["fmt_ptr"]) == (0, 0, 1024, 1, 0)
    assert n1["elems"] == [{"data_ptr": res["s"], "flags": 5, "u": 10,
                            "fmt_type": 0}]
    # padding after type and es_n is zero: the node was fully initialised
    raw = bytes.fromhex(res["raw"])
    assert raw[4:8] == b"\0\0\0\0" and raw[36:40] == b"\0\0\0\0"

    assert (n2["type"], n2["ident"], n2["dump_scope"], n2["es_n"],
            n2["fmt_ptr"]) == (0, "i.bin", 1025, 1, 0)
    assert n2["elems"] == [{"data_ptr": res["ip"], "flags": 2 | 8 | 16,
                            "u": res["len"], "fmt_type": 0}]

    assert (n3["type"], n3["ident"], n3["dump_scope"], n3["es_n"],
            n3["fmt"]) == (1, "out.txt", 1026, 2, 's="%s" *i=%d\n')
    # %s: the string's size with its NUL at registration (the original's rule:
    # its handler takes a length below 1 as bogus and writes "%s" itself)
    assert n3["elems"] == [
        {"data_ptr": res["s"], "flags": 5, "u": len(b"my string") + 1, "fmt_type": PA_STRING},
        {"data_ptr": res["i"], "flags": 5, "u": 4, "fmt_type": PA_INT},
    ]


PROBE_C = r"""
    /* Registers known data, then prints the list read at docs/FORMATS.md §7 offsets. */
    #include <printf.h>
    #include <stdint.h>
    #include <stdio.h>
    #include <string.h>
    #include "minicoredumper.h"

    extern int mcd_dump_data_version;
    extern void *mcd_dump_data_head;
    #define P sizeof(void *)

    static void hex(const char *tag, const void *p, size_t n)
    {
        const unsigned char *c = p;
        printf("%s ", tag);
        while (n--)
            printf("%02x", *c++);
        printf("\n");
    }

    static void *ptr_at(const char *base, size_t off)
    {
        void *v;
        memcpy(&v, base + off, sizeof(v));
        return v;
    }

    int main(void)
    {
        static char s[] = "my string";
        static int i = 42;
        static int *ip = &i;
        static size_t len = 4;
        static unsigned long ul = 7;
        static unsigned char uc = 9;
        static long double ld = 1.5L;
        static size_t z = 3;
        static long long ll = 5;
        mcd_dump_data_t d[4];
        const char *node;
        unsigned int es_n;

        if (mcd_dump_data_register_bin(NULL, 1024, &d[0], s, sizeof(s),
                MCD_DATA_PTR_DIRECT | MCD_LENGTH_DIRECT) ||
            mcd_dump_data_register_bin("i.bin", 1025, &d[1], &ip,
                (size_t)&len, MCD_DATA_PTR_INDIRECT | MCD_LENGTH_INDIRECT) ||
            mcd_dump_data_register_text("out.txt", 1026, &d[2],
                "s=\"%s\" *i=%d\n", s, &i) ||
            mcd_dump_data_register_text("out.txt", 1027, &d[3],
                "%lu %hhx %Lg %zu %lld\n", &ul, &uc, &ld, &z, &ll))
            return 1;

        printf("P %u\nversion %d\n", (unsigned)P, mcd_dump_data_version);
        printf("addr s %jx\naddr i %jx\naddr ip %jx\naddr len %jx\n",
               (uintmax_t)(uintptr_t)s, (uintmax_t)(uintptr_t)&i,
               (uintmax_t)(uintptr_t)&ip, (uintmax_t)(uintptr_t)&len);
        printf("addr ul %jx\naddr uc %jx\naddr ld %jx\naddr z %jx\n",
               (uintmax_t)(uintptr_t)&ul, (uintmax_t)(uintptr_t)&uc,
               (uintmax_t)(uintptr_t)&ld, (uintmax_t)(uintptr_t)&z);
        printf("addr ll %jx\n", (uintmax_t)(uintptr_t)&ll);
        printf("sizes %u %u\n", (unsigned)sizeof(long double),
               (unsigned)sizeof(size_t));
        for (node = mcd_dump_data_head; node; node = ptr_at(node, 6 * P)) {
            hex("node", node, 7 * P);
            memcpy(&es_n, node + 4 * P, sizeof(es_n));
            hex("elems", ptr_at(node, 3 * P), es_n * 4 * P);
            printf("ident %s\n", ptr_at(node, P) ? (char *)ptr_at(node, P)
                                                  : "(NULL)");
            if (ptr_at(node, 5 * P)) {
                /* glibc's own codes for this format, to compare with */
                int types[16];
                size_t k, n = parse_printf_format(ptr_at(node, 5 * P), 16,
                                                  types);
                printf("glibc");
                for (k = 0; k < n && k < 16; k++)
                    printf(" %d", types[k]);
                printf("\n");
            }
        }
        return 0;
    }
"""


def _parse_probe(out):
    import struct
    info = {"addr": {}, "nodes": []}
    for line in out.splitlines():
        key, _, rest = line.partition(" ")
        if key == "P":
            info["P"] = int(rest)
        elif key == "version":
            info["version"] = int(rest)
        elif key == "addr":
            name, val = rest.split()
            info["addr"][name] = int(val, 16)
        elif key == "sizes":
            info["ldsize"], info["zsize"] = map(int, rest.split())
        elif key == "node":
            info["nodes"].append({"raw": bytes.fromhex(rest)})
        elif key == "elems":
            info["nodes"][-1]["eraw"] = bytes.fromhex(rest)
        elif key == "ident":
            info["nodes"][-1]["ident"] = rest
        elif key == "glibc":
            info["nodes"][-1]["glibc"] = [int(x) for x in rest.split()]
    p = info["P"]
    w = "<Q" if p == 8 else "<I"
    for n in info["nodes"]:
        raw = n["raw"]
        assert len(raw) == (56 if p == 8 else 28)
        n["type"] = struct.unpack_from("<i", raw, 0)[0]
        n["ident_ptr"] = struct.unpack_from(w, raw, p)[0]
        n["dump_scope"] = struct.unpack_from(w, raw, 2 * p)[0]
        n["es_n"] = struct.unpack_from("<I", raw, 4 * p)[0]
        n["fmt_ptr"] = struct.unpack_from(w, raw, 5 * p)[0]
        elems = []
        for k in range(n["es_n"]):
            o = k * 4 * p
            elems.append((struct.unpack_from(w, n["eraw"], o)[0],
                          struct.unpack_from(w, n["eraw"], o + p)[0],
                          struct.unpack_from(w, n["eraw"], o + 2 * p)[0],
                          struct.unpack_from("<i", n["eraw"], o + 3 * p)[0]))
        n["elems"] = elems
    return info


@pytest.mark.parametrize("arch", ["native", "i686"])
def test_layout_probe(build, tmp_path, arch):
    """The same C probe on LP64 and on ILP32 (i686 build, run by its loader)."""
    if arch == "native":
        libdir = build
        exe = compile_c(build, "probe", PROBE_C)
        cmd = [str(exe)]
    else:
        cc = "i686-linux-gnu-gcc"
        if not shutil.which(cc) or not I686_LOADER.exists():
            pytest.skip("no i686 compiler or i686 loader to run ILP32 code")
        libdir = tmp_path / "i686"
        make(libdir, cc=cc)
        exe = compile_c(libdir, "probe", PROBE_C, cc=cc)
        cmd = [str(I686_LOADER), "--library-path",
               f"{libdir}:/usr/i686-linux-gnu/lib", str(exe)]
    proc = subprocess.run((NETNS or []) + cmd, capture_output=True,
                          text=True, timeout=20)
    assert proc.returncode == 0, proc.stderr
    info = _parse_probe(proc.stdout)
    p = info["P"]
    assert p == (8 if arch == "native" else 4)
    assert info["version"] == 2
    a = info["addr"]
    n0, n1, n2, n3 = info["nodes"]
    # glibc: %zu is "long" only on LP64, %lld is "long" on LP64
    z_type = PA_INT | (PA_FLAG_LONG if p == 8 else 0)
    ll_type = PA_INT | (PA_FLAG_LONG if p == 8 else PA_FLAG_LONG_LONG)

    assert (n0["type"], n0["ident_ptr"], n0["dump_scope"], n0["es_n"],
            n0["fmt_ptr"], n0["ident"]) == (0, 0, 1024, 1, 0, "(NULL)")
    assert n0["elems"] == [(a["s"], 5, 10, 0)]
    assert (n1["type"], n1["ident"], n1["dump_scope"], n1["es_n"],
            n1["fmt_ptr"]) == (0, "i.bin", 1025, 1, 0)
    assert n1["elems"] == [(a["ip"], 2 | 8, a["len"], 0)]
    assert (n2["type"], n2["ident"], n2["dump_scope"], n2["es_n"]) == \
        (1, "out.txt", 1026, 2)
    assert n2["fmt_ptr"] != 0
    assert n2["elems"] == [(a["s"], 5, 10, PA_STRING), (a["i"], 5, 4, PA_INT)]
    assert (n3["type"], n3["ident"], n3["dump_scope"], n3["es_n"]) == \
        (1, "out.txt", 1027, 5)
    assert n3["elems"] == [
        (a["ul"], 5, p, PA_INT | PA_FLAG_LONG),
        (a["uc"], 5, 1, PA_CHAR),
        (a["ld"], 5, info["ldsize"], PA_DOUBLE | PA_FLAG_LONG_DOUBLE),
        (a["z"], 5, info["zsize"], z_type),
        (a["ll"], 5, 8, ll_type),
    ]
    for n in (n2, n3):
        assert [e[3] for e in n["elems"]] == n["glibc"]


def test_fmt_types_match_glibc(libpath):
    """fmt_type of every supported directive equals glibc's parse_printf_format."""
    res = run_py(libpath, r"""
        libc = ctypes.CDLL(None)
        ppf = libc.parse_printf_format
        ppf.argtypes = [c_char_p, c_size_t, POINTER(c_int)]
        ppf.restype = c_size_t
        buf = ctypes.create_string_buffer(64)
        p = ctypes.addressof(buf)
        fmts = [b"%d %i %u %x %X %o", b"%c %s %p", b"%f %e %g",
                b"%hd %hi %hu %hx %hX %ho", b"%hhd %hhi %hhu %hhx %hhX %hho",
                b"%ld %li %lu %lx %lX %lo", b"%lld %lli %llu %llx %llX %llo",
                b"%zd %zi %zu %zx %zX %zo", b"%Lf %Le %Lg %lf %le %lg",
                b"%-8d|%+d|% d|%#x|%08.3f|%.2s|%10p|%-#5o|%%|%.d|%0-+ #12.8llx",
                b"a %% b", b""]
        out = []
        for fmt in fmts:
            types = (c_int * 32)()
            n = ppf(fmt, 32, types)
            r, h = text(b"t.txt", 1, fmt, *([p] * n))
            if r:
                out.append({"fmt": fmt.decode(), "r": r})
                continue
            node = read_node(h)
            out.append({"fmt": fmt.decode(), "r": r,
                        "glibc": list(types[:n]),
                        "lib": [e["fmt_type"] for e in node["elems"]],
                        "len": [e["u"] for e in node["elems"]],
                        "es_n": node["es_n"], "es": node["es"]})
        done({"out": out, "ld": ctypes.sizeof(ctypes.c_longdouble)})
    """)
    # every argument is the same 64 zero bytes: %s is "", 1 byte with its NUL
    sizes = {PA_INT: 4, PA_CHAR: 1, PA_STRING: 1, PA_POINTER: 8,
             PA_DOUBLE: 8, PA_INT | PA_FLAG_SHORT: 2,
             PA_INT | PA_FLAG_LONG: 8, PA_INT | PA_FLAG_LONG_LONG: 8,
             PA_DOUBLE | PA_FLAG_LONG_DOUBLE: res["ld"]}
    for case in res["out"]:
        assert case["r"] == 0, case
        assert case["lib"] == case["glibc"], case
        assert case["es_n"] == len(case["glibc"])
        assert case["len"] == [sizes[t] for t in case["lib"]], case
        if not case["glibc"]:
            assert case["es"] == 0


# --------------------------------------------------------------------------
# threads and fork


def test_concurrent_registrations(libpath):
    res = run_py(libpath, r"""
        NT, NR = 8, 500
        buf = ctypes.create_string_buffer(64)
        p = ctypes.addressof(buf)
        errors = []
        kept = [[] for _ in range(NT)]

        def worker(t):
            mine = []
            for j in range(NR):
                r, h = binr(b"t%d.%d" % (t, j), 1, p, 8, 5)
                if r:
                    errors.append(("bin", t, j, r))
                mine.append(h)
                r, h = text(b"shared.txt", 1, b"%d %s\n", p, p)
                if r:
                    errors.append(("text", t, j, r))
                mine.append(h)
                if j % 2:
                    # drop the previous pair again, keep every even one
                    for old in mine[-4:-2]:
                        r = unreg(old)
                        if r:
                            errors.append(("unreg", t, j, r))
                    del mine[-4:-2]
            kept[t] = mine

        start = time.monotonic()
        threads = [threading.Thread(target=worker, args=(t,))
                   for t in range(NT)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        elapsed = time.monotonic() - start
        ns = nodes()
        idents = sorted(n["ident"] for n in ns if n["type"] == 0)
        handles = sorted(h for m in kept for h in m)
        res = {"errors": errors, "count": len(ns),
               "bins": len(idents), "unique": len(set(idents)),
               "texts": sum(1 for n in ns if n["type"] == 1),
               "same_handles": sorted(n["addr"] for n in ns) == handles,
               "elapsed": elapsed}
        for h in handles:
            if unreg(h):
                errors.append(("final", h))
        res["after"] = HEAD.value
        done(res)
    """, netns=True)
    assert res["errors"] == []
    # per thread: 500 (bin, text) pairs registered, each odd j removes the
    # pair of j - 1 again -> 250 pairs kept per thread
    assert res["bins"] == res["unique"] == 8 * 250
    assert res["texts"] == 8 * 250
    assert res["count"] == 8 * 500
    assert res["same_handles"]
    assert res["after"] is None


FORKSTRESS_C = r"""
    /* Threads register and unregister while the main thread forks; every
     * child must be able to use the library (no mutex left locked). */
    #include <pthread.h>
    #include <signal.h>
    #include <stdio.h>
    #include <stdlib.h>
    #include <string.h>
    #include <sys/wait.h>
    #include <unistd.h>
    #include "minicoredumper.h"

    extern void *mcd_dump_data_head;
    static volatile int stop;
    static int value = 1;

    static void *worker(void *arg)
    {
        char ident[32];
        mcd_dump_data_t a, b;
        long n = 0;

        while (!stop) {
            snprintf(ident, sizeof(ident), "w%ld.%ld", (long)arg, n++);
            if (mcd_dump_data_register_bin(ident, 1, &a, &value, 4, 5) ||
                mcd_dump_data_register_text("w.txt", 1, &b, "%d", &value) ||
                mcd_dump_data_unregister(a) || mcd_dump_data_unregister(b))
                abort();
        }
        return NULL;
    }

    int main(void)
    {
        pthread_t th[4];
        mcd_dump_data_t base, c;
        int i, status, bad = 0;
        long t;

        if (mcd_dump_data_register_bin("base", 1, &base, &value, 4, 5))
            return 2;
        for (t = 0; t < 4; t++)
            pthread_create(&th[t], NULL, worker, (void *)t);
        for (i = 0; i < 60; i++) {
            pid_t pid = fork();
            if (pid == 0) {
                alarm(5);
                if (mcd_dump_data_register_bin("child", 1, &c, &value, 4, 5)
                    || mcd_dump_data_unregister(c)
                    || mcd_dump_data_unregister(base)
                    || mcd_dump_data_unregister(base) == 0)
                    _exit(3);
                _exit(0);
            }
            if (pid < 0 || waitpid(pid, &status, 0) != pid ||
                !WIFEXITED(status) || WEXITSTATUS(status) != 0)
                bad++;
            usleep(1000);
        }
        stop = 1;
        for (t = 0; t < 4; t++)
            pthread_join(th[t], NULL);
        printf("bad %d\n", bad);
        return mcd_dump_data_unregister(base) == 0 &&
               mcd_dump_data_head == NULL ? 0 : 4;
    }
"""


def test_fork_with_busy_threads(build):
    exe = compile_c(build, "forkstress", FORKSTRESS_C)
    proc = subprocess.run((NETNS or []) + [str(exe)], capture_output=True,
                          text=True, timeout=25)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == "bad 0"


def test_fork_child_is_not_registered(libpath):
    res = run_py(libpath, r"""
        d = Daemon()
        p = ctypes.addressof(ctypes.create_string_buffer(16))
        parent = os.getpid()
        r, a = binr(b"a", 1, p, 4, 5)
        assert r == 0
        d.wait(1)
        # child 1 registers something of its own, then clears the list
        c1 = os.fork()
        if c1 == 0:
            r1, b = binr(b"b", 1, p, 4, 5)
            r2 = unreg(b)
            r3 = unreg(a)
            os._exit(0 if (r1, r2, r3) == (0, 0, 0) else 1)
        assert os.waitpid(c1, 0)[1] == 0
        d.wait(3)
        # child 2 only removes the inherited registration: it never was
        # registered with the daemon, so it must not unregister
        c2 = os.fork()
        if c2 == 0:
            os._exit(0 if unreg(a) == 0 else 1)
        assert os.waitpid(c2, 0)[1] == 0
        # child 3 registers, then exits without unregistering: the exit
        # handler tells the daemon
        c3 = os.fork()
        if c3 == 0:
            binr(b"c", 1, p, 4, 5)
            sys.stdout.flush()
            sys.exit(0)
        assert os.waitpid(c3, 0)[1] == 0
        d.wait(5)
        r = unreg(a)
        msgs = d.wait(6)
        seq = []
        for m in msgs:
            who = {parent: "parent", c1: "c1", c2: "c2", c3: "c3"}[m["pid"]]
            seq.append([who, m["req"]])
        done({"r": r, "seq": seq})
    """, netns=True)
    assert res["r"] == 0
    assert res["seq"] == [["parent", 1], ["c1", 1], ["c1", 2],
                          ["c3", 1], ["c3", 2], ["parent", 2]]


# --------------------------------------------------------------------------
# the registry daemon handshake (docs/FORMATS.md §8)


def test_daemon_protocol(libpath):
    res = run_py(libpath, r"""
        d = Daemon()
        p = ctypes.addressof(ctypes.create_string_buffer(16))
        pid = os.getpid()
        hs = []
        for k in range(3):
            hs.append(binr(b"b%d" % k, 1, p, 4, 5)[1])
        hs.append(text(b"t.txt", 1, b"%d", p)[1])
        after_reg = len(d.wait(1))
        for h in hs[:-1]:
            unreg(h)
        before_last = len(d.wait(1, timeout=0.2))
        unreg(hs[-1])
        msgs = d.wait(2)
        # a second round registers and unregisters again
        r, h = binr(b"again", 1, p, 4, 5)
        unreg(h)
        msgs = d.wait(4)
        done({"pid": pid, "msgs": msgs, "after_reg": after_reg,
              "before_last": before_last,
              "client": client_addr(pid).hex()})
    """, netns=True)
    pid = res["pid"]
    assert res["after_reg"] == 1 and res["before_last"] == 1
    msgs = res["msgs"]
    assert [m["req"] for m in msgs] == [1, 2, 1, 2]
    for m in msgs:
        assert m["len"] == 8
        assert m["data"] == 0x55555555
        assert m["pid"] == pid
        assert m["addr"] == res["client"]          # padded to 108 bytes
        assert len(bytes.fromhex(m["addr"])) == 108


def test_unpadded_daemon_address_is_not_used(libpath):
    res = run_py(libpath, r"""
        d = Daemon(addr=b"\0minicoredumper")     # short address: different
        p = ctypes.addressof(ctypes.create_string_buffer(16))
        t0 = time.monotonic()
        r, h = binr(b"x", 1, p, 4, 5)
        dt = time.monotonic() - t0
        unreg(h)
        done({"r": r, "dt": dt, "msgs": d.wait(1, timeout=0.3)})
    """, netns=True)
    assert res["r"] == 0
    assert res["msgs"] == []
    assert res["dt"] < 0.05


def test_no_daemon_registrations_are_quick(libpath):
    res = run_py(libpath, r"""
        p = ctypes.addressof(ctypes.create_string_buffer(16))
        rs, hs = [], []
        t0 = time.monotonic()
        for k in range(100):
            r, h = binr(b"n%d" % k, 1, p, 4, 5)
            rs.append(r); hs.append(h)
            r, h = text(b"n.txt", 1, b"%d", p)
            rs.append(r); hs.append(h)
        dt = time.monotonic() - t0
        t0 = time.monotonic()
        urs = [unreg(h) for h in hs]
        dt2 = time.monotonic() - t0
        # no socket is left open
        fds = []
        for f in os.listdir("/proc/self/fd"):
            try:
                fds.append(os.readlink("/proc/self/fd/" + f))
            except OSError:
                pass
        done({"rs": rs, "urs": urs, "dt": dt, "dt2": dt2,
              "sockets": [f for f in fds if f.startswith("socket:")],
              "head": HEAD.value})
    """, netns=True)
    assert set(res["rs"]) == {0} and set(res["urs"]) == {0}
    assert res["dt"] < 0.5, res["dt"]
    assert res["dt2"] < 0.5, res["dt2"]
    assert res["sockets"] == []
    assert res["head"] is None


def test_silent_daemon_does_not_block(libpath):
    """A daemon that never answers costs one short reply timeout, once."""
    res = run_py(libpath, r"""
        d = Daemon(reply=False)
        p = ctypes.addressof(ctypes.create_string_buffer(16))
        t0 = time.monotonic()
        r, h = binr(b"first", 1, p, 4, 5)
        first = time.monotonic() - t0
        t0 = time.monotonic()
        hs = [binr(b"m%d" % k, 1, p, 4, 5)[1] for k in range(50)]
        more = time.monotonic() - t0
        for x in hs:
            unreg(x)
        t0 = time.monotonic()
        unreg(h)
        last = time.monotonic() - t0
        done({"r": r, "first": first, "more": more, "last": last,
              "reqs": [m["req"] for m in d.wait(2)]})
    """, netns=True)
    assert res["r"] == 0
    assert 0.05 <= res["first"] < 0.5, res["first"]
    assert res["more"] < 0.2, res["more"]
    assert res["last"] < 0.5
    assert res["reqs"] == [1, 2]


def test_daemon_started_later_gets_registration(libpath):
    """No daemon at the first registration: the next one registers."""
    res = run_py(libpath, r"""
        p = ctypes.addressof(ctypes.create_string_buffer(16))
        r1, a = binr(b"early", 1, p, 4, 5)
        d = Daemon()
        r2, b = binr(b"late", 1, p, 4, 5)
        r3, c = binr(b"later", 1, p, 4, 5)
        for h in (a, b, c):
            unreg(h)
        done({"r": [r1, r2, r3], "reqs": [m["req"] for m in d.wait(2)]})
    """, netns=True)
    assert res["r"] == [0, 0, 0]
    assert res["reqs"] == [1, 2]
