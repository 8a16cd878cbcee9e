"""Our ELF code against pyelftools: synthetic kernel cores in both classes,
the cores we write from them, symbol lookup in real libraries, tar headers."""

import os
import tarfile

import pytest
from elftools.elf.elffile import ELFFile

from minicoredumper.formats import elf as E
from minicoredumper.formats.arch import ARCHES, EM_386, EM_X86_64, EM_ARM, EM_AARCH64
from minicoredumper.write.sinks import FileSink, TarMember
from minicoredumper.write.core import CoreImage
from minicoredumper.read.modules import SymbolFile
from minicoredumper.read.corestream import read_kernel_core, CoreFormatError
from minicoredumper.decide.plan import Plan

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
    sf = SymbolFile(path)
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
    from minicoredumper.write.core import NOTES_CRASHING_THREAD, NOTES_MINIMAL
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
