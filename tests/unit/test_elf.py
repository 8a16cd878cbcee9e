"""Our ELF code against pyelftools: synthetic kernel cores in both classes,
the cores we write from them, symbol lookup in real libraries, tar headers."""

import os
import tarfile

import pytest
from elftools.elf.elffile import ELFFile

from minicoredumper import elf as E
from minicoredumper.linux import ARCHES, EM_386, EM_X86_64, EM_ARM, EM_AARCH64
from minicoredumper.write_sinks import FileSink, TarMember
from minicoredumper.write_core import CoreImage
from minicoredumper.read_modules import MappedFile
from minicoredumper.read_corestream import read_kernel_core, CoreFormatError
from minicoredumper.decide_plan import Plan

PAGE = 4096


class FakeMemory:
    """Memory of a fake process: address -> bytes, with holes."""

    def __init__(self, regions):
        self.regions = regions

    def read(self, addr, size):
        for start, data in self.regions.items():
            if start <= addr < start + len(data):
                return data[addr - start:addr - start + size]
        return b""


def symbols_of(path):
    """The SymbolFile of the ELF file at path (its fd closed when collected)."""
    fd = os.open(path, os.O_RDONLY)
    f = MappedFile(fd, path)
    import weakref
    weakref.finalize(f, os.close, fd)
    return f.symbols


def fake_kernel_core(machine, elfclass, loads, tids=(100, 101), files=()):
    """A core as the kernel streams it: ehdr, phdrs (NOTE first), notes, data."""
    L = E.Layout(elfclass)
    a = ARCHES[machine]
    notes = []
    for i, tid in enumerate(tids):
        regs = [0] * len(a.regs)
        regs[a.sp_index] = 0x7000 + i * 0x100
        regs[a.pc_index] = 0x1234
        pr = bytearray(a.prstatus_reg + len(regs) * L.wordsize + 16)
        L.s32.pack_into(pr, a.prstatus_pid, tid)
        L.words(len(regs)).pack_into(pr, a.prstatus_reg, *regs)
        notes.append(L.note(b"CORE", E.NT_PRSTATUS, bytes(pr)))
        if i == 0:
            auxv = L.auxv.pack(E.AT_PHDR, 0x400040) + L.auxv.pack(E.AT_NULL, 0)
            notes.append(L.note(b"CORE", E.NT_AUXV, auxv))
            fdesc = L.words(2).pack(len(files), PAGE) + b"".join(
                L.words(3).pack(s, e, o) for s, e, o, _ in files) + b"".join(
                p + b"\0" for *_, p in files)
            notes.append(L.note(b"CORE", E.NT_FILE, fdesc))
    notes = b"".join(notes)
    phnum = 1 + len(loads)
    notes_off = L.ehdr.size + phnum * L.phdr.size
    off = (notes_off + len(notes) + PAGE - 1) // PAGE * PAGE
    phdrs = [E.Record(type=E.PT_NOTE, flags=0, offset=notes_off, vaddr=0, paddr=0,
                      filesz=len(notes), memsz=0, align=4)]
    for vaddr, memsz, filesz, flags in loads:
        phdrs.append(E.Record(type=E.PT_LOAD, flags=flags, offset=off, vaddr=vaddr, paddr=0,
                              filesz=filesz, memsz=memsz, align=PAGE))
        off += filesz
    ident = E.ELFMAG + bytes([elfclass, 1, 1, 0]) + bytes(8)
    ehdr = E.Record(ident=ident, type=E.ET_CORE, machine=machine, version=1, entry=0,
                    phoff=L.ehdr.size, shoff=0, flags=0, ehsize=L.ehdr.size,
                    phentsize=L.phdr.size, phnum=phnum, shentsize=0, shnum=0, shstrndx=0)
    return L.ehdr.pack(ehdr) + b"".join(L.phdr.pack(p) for p in phdrs) + notes


def _read_core(stream):
    r, w = os.pipe()
    os.write(w, stream + b"\0" * 100)  # the memory that follows is never read
    os.close(w)
    try:
        return read_kernel_core(r)
    finally:
        os.close(r)


CASES = [(EM_X86_64, E.ELFCLASS64), (EM_AARCH64, E.ELFCLASS64), (EM_386, E.ELFCLASS32),
         (EM_ARM, E.ELFCLASS32)]
LOADS = [(0x400000, 0x2000, 0x1000, E.PF_R), (0x600000, 0x1000, 0x1000, E.PF_R | E.PF_W),
         (0x7000, 0x1000, 0x1000, E.PF_R | E.PF_W)]
FILES = [(0x400000, 0x402000, 0, b"/bin/app"), (0x600000, 0x601000, 2, b"/bin/app")]


@pytest.mark.parametrize("machine,elfclass", CASES)
def test_kernel_core_reader(machine, elfclass):
    kc = _read_core(fake_kernel_core(machine, elfclass, LOADS, files=FILES))
    assert [t.tid for t in kc.threads] == [100, 101]
    assert [t.sp for t in kc.threads] == [0x7000, 0x7100]
    assert kc.threads[0].pc == 0x1234
    assert kc.auxv == {E.AT_PHDR: 0x400040}
    assert kc.files == list(FILES)
    assert kc.encode_files(kc.files) == [d for n, t, d in kc.notes if t == E.NT_FILE][0]


@pytest.mark.parametrize("machine,elfclass", CASES)
@pytest.mark.parametrize("layout", ["compact", "sparse"])
def test_written_core_reads_back_in_pyelftools(tmp_path, machine, elfclass, layout):
    kc = _read_core(fake_kernel_core(machine, elfclass, LOADS, files=FILES))
    mem = FakeMemory({0x400000: b"\x7fELF" + b"A" * 60, 0x600000: b"B" * 0x1000,
                      0x7000: b"S" * 0x1000})
    plan = Plan()
    plan.add(0x400000, 64, "header", 1)
    plan.add(0x600100, 0x20, "data", 4)
    plan.add(0x7000 - 16, 0x200, "stack (starts below the mapping)", 1)
    plan.add(0x600ff0, 0x100, "crosses into unmapped memory", 4)
    segments = [(p.vaddr, p.vaddr + p.memsz) for p in kc.loads]
    img = CoreImage(kc, plan.ranges(segments), layout)
    path = str(tmp_path / "core")
    sink = FileSink(path)
    present = img.write(sink, mem, lambda: False)
    sink.close()
    assert os.path.getsize(path) == img.size
    with open(path, "rb") as f:
        data = f.read()
        f.seek(0)
        elf = ELFFile(f)
        assert elf.elfclass == (64 if elfclass == E.ELFCLASS64 else 32)
        assert elf["e_machine"] == {EM_X86_64: "EM_X86_64", EM_AARCH64: "EM_AARCH64",
                                    EM_386: "EM_386", EM_ARM: "EM_ARM"}[machine]
        notes = [n for s in elf.iter_segments() if s["p_type"] == "PT_NOTE"
                 for n in s.iter_notes()]
        assert [n["n_type"] for n in notes].count("NT_PRSTATUS") == 2
        nt_file = [n for n in notes if n["n_type"] == "NT_FILE"][0]["n_desc"]
        mapped = [(e.vm_start, e.vm_end) for e in nt_file["Elf_Nt_File_Entry"]]
        loads = [s for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"]
        sec = elf.get_section_by_name(".note.minicoredumper.dumplist")
        assert sec["sh_type"] == "SHT_NOTE"
        assert sec["sh_offset"] >= max(s["p_offset"] + s["p_filesz"] for s in loads)
        w = elf.elfclass // 8
        desc = list(sec.iter_notes())[0]["n_descdata"]
        pairs = [(int.from_bytes(desc[i:i + w], "little"),
                  int.from_bytes(desc[i + w:i + 2 * w], "little"))
                 for i in range(0, len(desc), 2 * w)]
    assert pairs[0][0] == 0 and pairs[1:] == present
    assert sorted(present) == [(0x7000, 0x1f0), (0x400000, 64), (0x600100, 0x20), (0x600ff0, 0x10)]
    if layout == "compact":
        # Only the read-only file mapping stays in NT_FILE.
        assert mapped == [(0x400000, 0x402000)]
        assert [(s["p_vaddr"], s["p_filesz"], s["p_memsz"]) for s in loads] == [
            (a, n, n) for a, n in present]
        for s, (a, n) in zip(loads, present):
            assert data[s["p_offset"]:s["p_offset"] + n] == mem.read(a, n)
    else:
        assert mapped == [(0x400000, 0x402000), (0x600000, 0x601000)]
        assert [(s["p_vaddr"], s["p_memsz"]) for s in loads] == [(v, m) for v, m, _, _ in LOADS]
        for a, n in present:
            seg = [s for s in loads if s["p_vaddr"] <= a < s["p_vaddr"] + s["p_filesz"]][0]
            off = seg["p_offset"] + a - seg["p_vaddr"]
            assert data[off:off + n] == mem.read(a, n)


def test_deadline_cuts_the_dump_but_keeps_the_file_valid(tmp_path):
    kc = _read_core(fake_kernel_core(EM_X86_64, E.ELFCLASS64, LOADS))
    img = CoreImage(kc, [(0x600000, 0x601000)])
    sink = FileSink(str(tmp_path / "core"))
    assert img.write(sink, FakeMemory({0x600000: b"B" * 0x1000}), lambda: True) == [
        (0x600000, 0)]
    sink.close()
    with open(tmp_path / "core", "rb") as f:
        assert len(list(ELFFile(f).iter_segments())) == 2


def test_not_a_core_is_rejected():
    with pytest.raises(CoreFormatError):
        _read_core(b"\x7fELF\x02\x01\x01" + bytes(57))
    with pytest.raises(CoreFormatError):
        _read_core(b"hello world, no ELF here" + bytes(64))


def test_ranges_merge_close_and_clip_to_segments():
    p = Plan()
    p.add(100, 10, "a", 1)
    p.add(150, 10, "b", 1)   # 40 bytes away: merged
    p.add(400, 10, "c", 1)   # far: separate
    p.add(990, 20, "d", 1)   # crosses a segment edge
    assert p.ranges([(0, 1000), (1005, 2000)]) == [(100, 160), (400, 410), (990, 1000),
                                                   (1005, 1010)]


LIBS = ["/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2",
        "/lib/x86_64-linux-gnu/libm.so.6"]


@pytest.mark.parametrize("path", [p for p in LIBS if os.path.exists(p)])
def test_symbol_lookup_matches_pyelftools(path):
    with open(path, "rb") as f:
        elf = ELFFile(f)
        tables = [s for s in (elf.get_section_by_name(".symtab"),
                              elf.get_section_by_name(".dynsym")) if s is not None]
        expected = {}
        undefined_only = set()
        for t in tables:
            for sym in t.iter_symbols():
                name = sym.name
                if not name or name in expected:
                    continue
                if sym["st_shndx"] == "SHN_UNDEF":
                    undefined_only.add(name)
                else:
                    expected[name] = (sym["st_value"], sym["st_size"])
    undefined_only -= set(expected)
    sf = symbols_of(path)
    names = sorted(expected)[::max(1, len(expected) // 300)]
    for name in names:
        value, size, _ = sf.lookup(name.encode())
        assert (value, size) == expected[name], name
    for name in sorted(undefined_only)[:20]:
        assert sf.lookup(name.encode()) is None, name
    assert sf.lookup(b"no_such_symbol_anywhere") is None


def test_tar_member_reads_back_with_tarfile(tmp_path):
    path = str(tmp_path / "core.tar")
    payload = os.urandom(1000)
    m = TarMember(FileSink(path), "core", len(payload) + 3000, 1700000000)
    m.write(payload)
    m.skip(3000)
    m.close()
    assert os.path.getsize(path) % 512 == 0
    with tarfile.open(path) as t:
        info = t.getmember("core")
        assert (info.size, info.mode, info.mtime, info.uid) == (4000, 0o600, 1700000000, 0)
        assert t.extractfile(info).read() == payload + bytes(3000)


@pytest.mark.parametrize("layout", ["compact", "sparse"])
def test_note_levels_and_privacy(tmp_path, layout):
    from minicoredumper.write_core import NOTES_CRASHING_THREAD, NOTES_MINIMAL
    stream = fake_kernel_core(EM_X86_64, E.ELFCLASS64, LOADS, files=FILES)
    kc = _read_core(stream)
    # A vector-register note after each thread's registers, as the kernel writes them.
    kc.notes = [n for t in kc.notes for n in ([t, (b"LINUX", 0x202, b"SECRET" * 10)]
                                               if t[1] == E.NT_PRSTATUS else [t])]
    for level, private, want in [
            (NOTES_CRASHING_THREAD, False, ["NT_PRSTATUS", 0x202, "NT_AUXV", "NT_FILE"]),
            (NOTES_MINIMAL, False, ["NT_PRSTATUS", "NT_AUXV", "NT_FILE"]),
            ("all", True, ["NT_PRSTATUS", "NT_AUXV", "NT_FILE", "NT_PRSTATUS"])]:
        img = CoreImage(kc, [(0x7000, 0x7100)], layout, level, private)
        path = str(tmp_path / ("core-%s-%s" % (level, private)))
        sink = FileSink(path)
        img.write(sink, FakeMemory({0x7000: b"S" * 0x1000}), lambda: False)
        sink.close()
        with open(path, "rb") as f:
            elf = ELFFile(f)
            notes = [n["n_type"] for s in elf.iter_segments() if s["p_type"] == "PT_NOTE"
                     for n in s.iter_notes()]
            loads = [s for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"]
            data = open(path, "rb").read()
        assert notes == want, (level, private)
        assert (b"SECRET" in data) == (0x202 in notes)
        if layout == "sparse":  # the kernel's offsets, whatever the notes
            assert [s["p_offset"] for s in loads] == [p.offset for p in kc.loads]


# --- one reader of ELF, program and section headers --------------------------------

import re
import shutil
import struct
import subprocess

from elftools.elf import enums as elf_enums

from minicoredumper import linux
from minicoredumper.read_modules import MAX_PHNUM_IN_MEMORY, read_module
from minicoredumper.read_process import Mapping
from minicoredumper.tool_corefile import CoreFile

CROSS = {"i686-linux-gnu-gcc": (E.ELFCLASS32, "EM_386"),
         "arm-linux-gnueabihf-gcc": (E.ELFCLASS32, "EM_ARM"),
         "aarch64-linux-gnu-gcc": (E.ELFCLASS64, "EM_AARCH64"),
         "gcc": (E.ELFCLASS64, None)}
SMALL_C = "".join("int f%d(int x) { return x * %d + 1; }\nint v%d = %d;\n" % (i, i, i, i)
                  for i in range(200)) + "int main(void) { return f1(2); }\n"


def _file_pread(path):
    data = open(path, "rb").read()
    return lambda offset, size: data[offset:offset + size]


def _enum_value(value, prefix):
    """The number behind a name pyelftools decoded (it leaves unknown ones as numbers)."""
    if isinstance(value, int):
        return value
    for name in dir(elf_enums):
        table = getattr(elf_enums, name)
        if name.startswith(prefix) and isinstance(table, dict) and value in table:
            return table[value]
    raise KeyError(value)


@pytest.fixture(scope="module")
def elf_files(tmp_path_factory):
    """Real ELF files of both classes: the host's, and programs from each cross compiler."""
    d = tmp_path_factory.mktemp("elf")
    files = [p for p in ["/bin/ls", "/lib/x86_64-linux-gnu/libc.so.6",
                         "/lib64/ld-linux-x86-64.so.2"] if os.path.exists(p)]
    (d / "small.c").write_text(SMALL_C)
    for cc in CROSS:
        if cc != "gcc" and shutil.which(cc):
            out = str(d / ("small-" + cc))
            subprocess.run([cc, "-O0", "-o", out, str(d / "small.c")], check=True)
            files.append(out)
    return files


def test_cross_compilers_give_both_classes(elf_files):
    if not shutil.which("i686-linux-gnu-gcc"):
        pytest.skip("no i686-linux-gnu-gcc")
    classes = {E.read_ehdr(_file_pread(p))[0].elfclass for p in elf_files}
    assert classes == {E.ELFCLASS32, E.ELFCLASS64}


def test_header_reader_matches_pyelftools(elf_files):
    for path in elf_files:
        pread = _file_pread(path)
        L, ehdr, phdrs = E.read_headers(pread)
        shdrs = E.read_section_headers(pread, L, ehdr)
        names = E.section_names(pread, shdrs, ehdr.shstrndx)
        with open(path, "rb") as f:
            elf = ELFFile(f)
            assert L.elfclass == {32: E.ELFCLASS32, 64: E.ELFCLASS64}[elf.elfclass], path
            for field in ("entry", "phoff", "shoff", "flags", "ehsize", "phentsize", "phnum",
                          "shentsize", "shnum", "shstrndx"):
                assert ehdr[field] == elf["e_" + field], (path, field)
            assert ehdr.type == _enum_value(elf["e_type"], "ENUM_E_TYPE")
            assert ehdr.machine == _enum_value(elf["e_machine"], "ENUM_E_MACHINE")
            assert len(phdrs) == elf.num_segments() > 0
            for p, seg in zip(phdrs, elf.iter_segments()):
                for field in ("offset", "vaddr", "paddr", "filesz", "memsz", "flags", "align"):
                    assert p[field] == seg["p_" + field], (path, field)
                assert p.type == _enum_value(seg["p_type"], "ENUM_P_TYPE")
            assert len(shdrs) == elf.num_sections() > 0
            for s, name, sec in zip(shdrs, names, elf.iter_sections()):
                assert name.decode() == sec.name, path
                for field in ("offset", "addr", "size", "link", "info", "addralign", "entsize",
                              "flags"):
                    assert s[field] == sec["sh_" + field], (path, sec.name, field)
                assert s.type == _enum_value(sec["sh_type"], "ENUM_SH_TYPE")


def test_truncated_or_garbage_files_raise_elf_format_error(tmp_path):
    data = open("/bin/ls", "rb").read()
    L, ehdr = E.read_ehdr(_file_pread("/bin/ls"))
    assert issubclass(E.ElfFormatError, ValueError)
    for cut in (0, 10, 16, 40, ehdr.phoff + 10):
        with pytest.raises(E.ElfFormatError):
            E.read_headers(lambda o, n: data[:cut][o:o + n])
    cut = data[:ehdr.shoff + 10]
    with pytest.raises(E.ElfFormatError, match="section headers"):
        E.read_section_headers(lambda o, n: cut[o:o + n], L, ehdr)
    bad = [b"hello world, no ELF here" + bytes(64),
           b"\x7fELF\x07\x01\x01" + bytes(57),            # no such class
           b"\x7fELF\x02\x03\x01" + bytes(57),            # no such byte order
           data[:0x36] + b"\x20\x00" + data[0x38:]]      # e_phentsize 32, not 56
    bad.append(data[:0x38] + b"\x00\x00" + data[0x3a:])  # e_phnum 0
    bad.append(data[:0x20] + bytes(8) + data[0x28:])     # e_phoff 0: overlaps the header
    bad.append(data[:0x20] + b"\xff" * 8 + data[0x28:])  # e_phoff beyond any file
    for b in bad:
        with pytest.raises(E.ElfFormatError):
            E.read_headers(lambda o, n: b[o:o + n])
    with pytest.raises(E.ElfFormatError, match="ET_DYN is not ET_CORE"):
        E.read_headers(lambda o, n: data[o:o + n], etype=E.ET_CORE)
    with pytest.raises(E.ElfFormatError, match="no section name table"):
        E.section_names(lambda o, n: data[o:o + n], [], 3)
    # The readers that sit on top keep their own ways of saying no.
    path = tmp_path / "truncated"
    path.write_bytes(data[:ehdr.phoff + 10])
    for p in (str(path), "/bin/ls"):
        with pytest.raises(CoreFormatError):
            CoreFile(p)
    assert symbols_of(str(path)).lookup(b"main") is None
    path.write_bytes(data[:ehdr.shoff + 10])
    assert symbols_of(str(path)).lookup(b"main") is None


def test_kernel_core_stream_is_read_to_the_end_of_its_notes_and_no_further():
    stream = fake_kernel_core(EM_386, E.ELFCLASS32, LOADS, files=FILES)
    r, w = os.pipe()
    os.write(w, stream + b"MEMORY")
    os.close(w)
    try:
        kc = read_kernel_core(r)
        assert kc.header_bytes == stream
        assert os.read(r, 100) == b"MEMORY"
    finally:
        os.close(r)
    for cut in (10, 60, len(stream) - 1):
        r, w = os.pipe()
        os.write(w, stream[:cut])
        os.close(w)
        try:
            with pytest.raises(CoreFormatError, match="ended early"):
                read_kernel_core(r)
        finally:
            os.close(r)
    L = E.Layout(E.ELFCLASS32)
    ehdr = L.ehdr.unpack(stream).replace(phoff=0x7fff0000)
    with pytest.raises(CoreFormatError, match="exceed"):
        _read_core(L.ehdr.pack(ehdr) + stream[L.ehdr.size:])


class FakeProcessMemory(FakeMemory):
    def read_exact(self, addr, size):
        data = self.read(addr, size)
        return data if len(data) == size else None


def test_module_headers_read_from_memory_within_the_mapping():
    data = open("/bin/ls", "rb").read()
    base = 0x555555554000
    mem = FakeProcessMemory({base: data[:PAGE]})
    whole = Mapping(base, base + 0x20000, "r--p", 0, 1, "/bin/ls")
    mod = read_module(mem, base, "[vdso]", whole)
    with open("/bin/ls", "rb") as f:
        assert [(p.type, p.vaddr, p.memsz) for p in mod.phdrs] == [
            (_enum_value(s["p_type"], "ENUM_P_TYPE"), s["p_vaddr"], s["p_memsz"])
            for s in ELFFile(f).iter_segments()]
    L, ehdr = E.read_ehdr(_file_pread("/bin/ls"))
    short = Mapping(base, base + ehdr.phoff + L.phdr.size, "r--p", 0, 1, "/bin/ls")
    assert read_module(mem, base, "/bin/ls", short) is None
    many = bytearray(data[:PAGE])
    L.u16.pack_into(many, 0x38, MAX_PHNUM_IN_MEMORY + 1)  # e_phnum
    assert read_module(FakeProcessMemory({base: bytes(many)}), base, "/bin/ls",
                       whole) is None
    assert read_module(FakeProcessMemory({base: b"\0" * PAGE}), base, "/bin/ls",
                       whole) is None


def test_a_data_segment_mapped_at_offset_0_is_no_second_module(tmp_path):
    """A small armhf PIE's RW PT_LOAD (file offset 0xf08, vaddr 0x1f08) is
    mapped from page offset 0: that mapping starts with a copy of the ELF
    header.  find_modules makes one module of the file, at its code mapping
    with the right bias, none at the data mapping (the armhf guest's second
    module with a wrong bias; gone with one module per mapped file)."""
    from minicoredumper.read_modules import find_modules
    if not shutil.which("arm-linux-gnueabihf-gcc"):
        pytest.skip("no arm-linux-gnueabihf-gcc")
    (tmp_path / "s.c").write_text("int main(void) { return 0; }\n")
    exe = str(tmp_path / "small")
    subprocess.run(["arm-linux-gnueabihf-gcc", "-O0", "-o", exe, str(tmp_path / "s.c")],
                   check=True)
    data = open(exe, "rb").read()
    L, ehdr, phdrs = E.read_headers(_file_pread(exe))
    rw = [p for p in phdrs if p.type == E.PT_LOAD and p.flags & E.PF_W][0]
    assert rw.offset & ~(PAGE - 1) == 0 and rw.vaddr >= PAGE  # the case: offset 0, a page up
    base = 0x00400000
    data_page = base + (rw.vaddr & ~(PAGE - 1))
    maps = [Mapping(base, base + PAGE, "r-xp", 0, 77, exe, (8, 1)),
            Mapping(data_page, data_page + PAGE, "rw-p", 0, 77, exe, (8, 1))]

    class Memory(FakeProcessMemory):
        def may_stall(self, addr):
            return False

    class Proc:
        dir = "/nonexistent"  # no map_files: no file is opened

    Proc.maps = maps
    modules = find_modules(Proc(), Memory({base: data[:PAGE], data_page: data[:PAGE]}))
    assert [(m.path, m.base, m.bias) for m in modules] == [(exe, base, base)]


# --- layouts against the C headers they come from ----------------------------------

def _field_offsets(st):
    """{field: offset} of a StructType, from its struct format."""
    out, off, fields = {}, 0, iter(st.fields)
    for count, code in re.findall(r"(\d*)([a-zA-Z?])", st.struct.format.lstrip("<>=!@")):
        n = int(count or 1)
        if code == "x":
            off += n
        elif code == "s":
            out[next(fields)] = off
            off += n
        else:
            for _ in range(n):
                out[next(fields)] = off
                off += struct.calcsize("<" + code)
    assert off == st.size and len(out) == len(st.fields)
    return out


def _c_checks(cc, elfclass):
    """C source asserting at compile time that our tables are the headers' structs."""
    L = E.Layout(elfclass)
    K = linux.structs(L)
    x86 = cc in ("gcc", "i686-linux-gnu-gcc")
    lines = ["#include <stddef.h>", "#include <elf.h>", "#include <link.h>",
             "#include <signal.h>", "#include <linux/futex.h>"]
    lines += ["#include <asm/ldt.h>"] if x86 else []

    def check(expr, value):
        lines.append('_Static_assert((%s) == %d, "%s");' % (expr, value, expr))

    def struct_checks(ctype, st, cfields, whole=True):
        offsets = _field_offsets(st)
        for field, cfield in zip(st.fields, cfields):
            if cfield:
                check("offsetof(%s, %s)" % (ctype, cfield), offsets[field])
        if whole:
            check("sizeof(%s)" % ctype, st.size)

    bits = 64 if L.is64 else 32
    for name, prefix in (("ehdr", "e_"), ("phdr", "p_"), ("shdr", "sh_"), ("sym", "st_")):
        st = getattr(L, name)
        struct_checks("Elf%d_%s" % (bits, name.capitalize()), st, [prefix + f for f in st.fields])
    struct_checks("struct r_debug", L.r_debug, ["r_" + f for f in L.r_debug.fields])
    struct_checks("struct r_debug_extended", L.r_debug_extended,
                  [None] * len(E.R_DEBUG_FIELDS) + ["r_next"])
    struct_checks("struct link_map", L.link_map, ["l_" + f for f in L.link_map.fields])
    struct_checks("siginfo_t", K.siginfo, ["si_" + f for f in K.siginfo.fields], whole=False)
    struct_checks("struct robust_list_head", K.robust_list_head, K.robust_list_head.fields)
    if x86:
        struct_checks("struct user_desc", K.user_desc, K.user_desc.fields[:3] + (None,))
    for n, (name, _) in linux.SIGNALS.items():
        check(name, n)
    for name in dir(E):
        if re.match(r"(ET|PT|PF|SHT|SHN|NT|DT|AT|STT|ELFCLASS|ELFDATA)[0-9]*_|EI_NIDENT$|"
                    r"ELF(CLASS|DATA)", name) and isinstance(getattr(E, name), int) and \
                name != "NT_MCD_DUMPLIST":
            check(name, getattr(E, name))
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("cc", sorted(CROSS))
def test_layouts_are_the_c_headers(cc, tmp_path):
    elfclass = CROSS[cc][0]
    if not shutil.which(cc):
        pytest.skip("no " + cc)
    src = tmp_path / "check.c"
    src.write_text(_c_checks(cc, elfclass))
    proc = subprocess.run([cc, "-fsyntax-only", str(src)], stderr=subprocess.PIPE, text=True)
    assert proc.returncode == 0, proc.stderr
    assert src.read_text().count("_Static_assert") > 100


def test_signal_table_and_note_names():
    import signal
    for n, (name, _) in linux.SIGNALS.items():
        assert signal.Signals(n).name == name
    assert linux.FAULT_SIGNALS == {signal.SIGILL, signal.SIGTRAP, signal.SIGBUS, signal.SIGFPE,
                                   signal.SIGSEGV}
    from minicoredumper.write_core import PRIVATE_NOTES
    assert PRIVATE_NOTES == (2, 0x202, 0x400, 0x405, 0x46E62B7F)


@pytest.mark.parametrize("machine,elfclass", CASES)
def test_siginfo_and_tls_notes_read_through_the_tables(machine, elfclass):
    L = E.Layout(elfclass)
    K = linux.structs(L)
    stream = fake_kernel_core(machine, elfclass, LOADS)
    kc = _read_core(stream)
    si = K.siginfo.pack(E.Record(signo=11, errno=0, code=-6, addr=0xdead0))
    kc.notes.append((b"CORE", E.NT_SIGINFO, si + bytes(128 - len(si))))
    kc.notes.append((b"CORE", E.NT_SIGINFO, K.siginfo.pack(E.Record(signo=6, errno=0, code=0,
                                                                     addr=0x1234))))
    kc.threads, kc.siginfo = [], None
    kc._decode_notes()
    assert kc.siginfo == (6, 0, None)  # the last note wins; SIGABRT has no fault address
    kc.notes.pop()
    kc.threads = []
    kc._decode_notes()
    # SI_TKILL: sent by a process, so no fault address; the union is its pid and uid
    assert kc.siginfo == (11, -6, None)
    kw = K.siginfo_kill.unpack(si + bytes(128 - len(si)))
    assert kc.sender == (kw.pid, kw.uid)


def test_i386_thread_pointer_from_user_desc():
    from minicoredumper.read_corestream import _thread_pointer_from_note
    L = E.Layout(E.ELFCLASS32)
    a = ARCHES[EM_386]
    ud = linux.structs(L).user_desc
    desc = b"".join(ud.pack(E.Record(entry_number=n, base_addr=0x1000 * n, limit=0xfffff,
                                     flags=0x51)) for n in (6, 7, 8))
    regs = [0] * len(a.regs)
    regs[a.regs.index("gs")] = (7 << 3) | 3

    class T:
        pass
    t = T()
    t.regs = regs
    assert _thread_pointer_from_note(L, a, t, desc) == 0x7000
    regs[a.regs.index("gs")] = 9 << 3
    assert _thread_pointer_from_note(L, a, t, desc) is None


def test_tar_header_table():
    from minicoredumper.write_sinks import USTAR_HEADER, tar_header
    assert sum(w for _, w in USTAR_HEADER) == 500
    assert sum(w for _, w in USTAR_HEADER[:[f for f, _ in USTAR_HEADER].index("chksum")]) == 148
    hdr = tar_header("core", 8 ** 11, 1700000000, 0o600)  # base-256 size
    assert len(hdr) == 512 and hdr[124] == 0x80 and hdr[257:263] == b"ustar\0"


@pytest.mark.parametrize("layout", ["compact", "sparse"])
@pytest.mark.parametrize("machine,elfclass", CASES)
def test_core_file_reads_our_cores_headers_and_sections(tmp_path, machine, elfclass, layout):
    kc = _read_core(fake_kernel_core(machine, elfclass, LOADS, files=FILES))
    img = CoreImage(kc, [(0x600100, 0x600120)], layout)
    path = str(tmp_path / "core")
    sink = FileSink(path)
    present = img.write(sink, FakeMemory({0x600000: b"B" * 0x1000}), lambda: False)
    sink.close()
    core = CoreFile(path)
    try:
        assert set(core.sections) == {b"", b".shstrtab", E.DUMPLIST_SECTION, E.COVER_SECTION}
        assert core.dumplist() == present == [(0x600100, 0x20)]
        assert core.read(0x600100, 0x20) == b"B" * 0x20
        if layout == "compact":
            assert [p.type for p in core.phdrs] == [E.PT_NOTE, E.PT_LOAD]
        # The cover: every byte from the end of the program header table (just
        # after the ELF header) to the dumplist, so libelf's rewrite keeps them.
        cover, dl = core.sections[E.COVER_SECTION], core.sections[E.DUMPLIST_SECTION]
        assert core.ehdr.phoff == core.ehdr.ehsize
        assert (cover.type, cover.flags, cover.addr) == (E.SHT_PROGBITS, 0, 0)
        assert cover.offset == core.ehdr.phoff + core.ehdr.phnum * core.ehdr.phentsize
        assert cover.offset + cover.size == dl.offset
        assert all(cover.offset <= p.offset and p.offset + p.filesz <= dl.offset
                   for p in core.phdrs if p.filesz)
        assert core.ehdr.shoff + core.ehdr.shnum * core.ehdr.shentsize == core.size
    finally:
        core.close()


@pytest.mark.parametrize("layout", ["compact", "sparse"])
def test_symbol_map_offset_never_points_at_other_data(tmp_path, layout):
    """symbol.map's column 1: where the core has the bytes, else the end of the
    file; a tool that writes a dump there (the original's coreinject) never
    overwrites other data (docs/FORMATS.md §6)."""
    kc = _read_core(fake_kernel_core(EM_X86_64, E.ELFCLASS64, LOADS, files=FILES))
    img = CoreImage(kc, [(0x7000, 0x7010), (0x600100, 0x600120)], layout)
    path = str(tmp_path / "core")
    sink = FileSink(path)
    img.write(sink, FakeMemory({0x600000: bytes(range(256)) * 16,
                                0x7000: b"S" * 0x1000}), lambda: False)
    sink.close()
    with open(path, "rb") as f:
        data = f.read()
    assert img.size == len(data)
    off = img.symbol_map_offset(0x600110, 8, "D")
    assert data[off:off + 8] == bytes(range(0x10, 0x18))
    assert img.symbol_map_offset(0x7004, 4, "N") < img.size
    # Not all of it in one PT_LOAD's file data: the end, in both layouts (the
    # sparse core has 0x400000's first page in its file data, not the second).
    for vaddr, size in ((0x600ff8, 16), (0x401ff0, 32), (0x900000, 4)):
        assert img.symbol_map_offset(vaddr, size, "D") == img.size
    # compact: only what was dumped is in the file; sparse: the kernel's layout
    # (bytes not dumped are a hole that an injection fills)
    assert (img.symbol_map_offset(0x600180, 4, "D") == img.size) == (layout == "compact")
    # an indirect line's file (pointer, then data) has no one place
    assert img.symbol_map_offset(0x600110, 8, "I") == img.size


def test_loads_in_is_the_brute_force_overlap():
    """KernelCore.loads_in (the binary search that keeps NT_FILE's per-mapping check
    linear in the mappings) finds exactly the PT_LOADs a scan over all of them finds."""
    import random
    rng = random.Random(7)
    loads, addr = [], 0x10000
    for _ in range(300):
        addr += rng.choice((0, 0x1000, 0x5000))
        size = rng.choice((0x1000, 0x3000, 0x10000))
        loads.append((addr, size, size if rng.random() < 0.5 else 0, E.PF_R))
        addr += size
    kc = _read_core(fake_kernel_core(EM_X86_64, E.ELFCLASS64, loads))
    for _ in range(2000):
        start = rng.randrange(0x8000, addr + 0x8000)
        end = start + rng.choice((1, 0x1000, 0x20000, 0x200000))
        brute = [p for p in sorted(kc.loads, key=lambda p: p.vaddr)
                 if p.vaddr < end and start < p.vaddr + p.memsz]
        assert kc.loads_in(start, end) == brute
