"""The budget ladder's climb (decide_budget.fit) and its smallest rungs' NT_FILE
(write_core.NOTES_CODE_FILES)."""

import itertools
import tempfile

from elftools.elf.elffile import ELFFile

from minicoredumper import decide_budget as B
from minicoredumper import elf as E
from minicoredumper.linux import EM_X86_64
from minicoredumper.write_core import CoreImage, NOTES_CODE_FILES, NOTES_MINIMAL
from minicoredumper.write_sinks import FileSink, OverBudget
from minicoredumper.read_corestream import read_kernel_core
from test_elf import FakeMemory, fake_kernel_core


class Renders:
    """render() for fit over candidates that are sizes; remembers what it rendered."""

    def __init__(self, expire_after=None):
        self.done = []
        self.expire_after = expire_after  # renders before the deadline passes

    def expired(self):
        return self.expire_after is not None and len(self.done) >= self.expire_after

    def __call__(self, size, limit, cut):
        cut()
        self.done.append(size)
        if size > limit:
            raise OverBudget(size)
        return "artefact of %d" % size


def test_fit_finds_the_richest_rung_that_fits_with_few_renders():
    """Any shrinking ladder, any limit: the richest rung that fits, as trying them all
    richest first would find, the smallest rendered first, the richest second, then a
    bisection: at most 2 + ceil(log2(n - 1)) renders."""
    for n in range(1, 12):
        sizes = [1000 - 50 * i for i in range(n)]  # richest first, shrinking
        for limit in range(sizes[-1] - 60, sizes[0] + 60, 7):
            r = Renders()
            i, art = B.fit(sizes, r, limit, r.expired)
            richest = next((k for k, s in enumerate(sizes) if s <= limit), None)
            assert i == richest, (n, limit)
            assert art == (None if i is None else "artefact of %d" % sizes[i])
            assert r.done[0] == sizes[-1]
            if i is not None and n > 1:
                assert r.done[1] == sizes[0]
            assert len(r.done) <= min(n, 2 + max(n - 2, 0).bit_length()), (n, limit, r.done)


def test_fit_keeps_the_smallest_rung_at_the_deadline():
    """The deadline before the climb: the smallest rung alone, rendered whatever the
    time; between renders: the best that fitted so far, no render started after it."""
    sizes = [900, 800, 700, 600, 500, 400, 300, 200, 100, 50]
    r = Renders(expire_after=0)
    assert B.fit(sizes, r, 10000, r.expired) == (9, "artefact of 50")
    assert r.done == [50]
    for after in range(1, 5):
        r = Renders(expire_after=after)
        i, art = B.fit(sizes, r, 650, r.expired)
        assert len(r.done) == after
        best = max(s for s in r.done if s <= 650)
        assert (sizes[i], art) == (best, "artefact of %d" % best)


def test_fit_gives_up_a_render_the_deadline_cuts():
    """The deadline during a render (cut() raises Expired): that rung is given up and
    the best that fitted before it is kept."""
    sizes = [900, 800, 700, 600, 500, 400, 300, 200, 100, 50]
    late = []

    def render(size, limit, cut):
        late.append(size)
        if len(late) == 4:
            late.append("deadline")
        cut()
        if size > limit:
            raise OverBudget(size)
        return size

    i, art = B.fit(sizes, render, 650, lambda: "deadline" in late)
    assert late == [50, 900, 500, 700, "deadline"] and (i, art) == (4, 500)


def test_fit_renders_a_cheap_richest_rung_first():
    """cheap: the richest alone when it fits; else the smallest and the bisection."""
    sizes = [900, 800, 700, 600, 500, 400, 300, 200, 100, 50]
    r = Renders()
    assert B.fit(sizes, r, 1000, r.expired, cheap=True) == (0, "artefact of 900")
    assert r.done == [900]
    for limit in range(40, 1000, 10):
        r = Renders()
        i, _ = B.fit(sizes, r, limit, r.expired, cheap=True)
        assert i == next((k for k, s in enumerate(sizes) if s <= limit), None), limit
        assert len(r.done) <= 2 + (len(sizes) - 2).bit_length() and r.done.count(900) == 1


def test_fit_without_room_for_the_smallest_renders_it_alone():
    r = Renders()
    assert B.fit([300, 200, 100], r, 99, r.expired) == (None, None)
    assert r.done == [100]


class Plan:
    """decide_plan.Plan's ranges(): one range per priority, the top of stack cut."""

    def __init__(self, by_prio):
        self.by_prio = by_prio

    def ranges(self, segments, max_prio=None, stack_top=None):
        out = [r for p, r in self.by_prio if p <= max_prio]
        if stack_top is not None:
            out = [(s, min(e, s + stack_top)) for s, e in out]
        return out


def test_rungs_leave_out_a_step_that_holds_what_the_one_before_holds():
    """A crashing thread's stack of 512 bytes: 'top of stack' is 'crashing thread', and
    the 1024 and 512-byte cuts are the whole top of stack; nothing at priority 3 or 4."""
    ladder = B.rungs(Plan([(1, (0x7000, 0x7200))]), [])
    assert [label for label, _, _ in ladder] == [
        "everything", "crashing thread", "top of stack, minimal notes",
        "top of stack, minimal notes, code files",
        "256 bytes of stack, minimal notes, code files",
        "128 bytes of stack, minimal notes, code files"]
    assert [r for _, r, _ in ladder][-2:] == [[(0x7000, 0x7100)], [(0x7000, 0x7080)]]


def test_code_files_note_keeps_the_files_with_code_mapped(tmp_path):
    """NT_FILE at NOTES_CODE_FILES: the mappings of files with an executable mapping
    (here /bin/app), not those of a data file mapped a thousand times."""
    # (vaddr, memsz, filesz, flags): the ELF header page dumped, the code not
    loads = [(0x400000, 0x1000, 0x1000, E.PF_R), (0x401000, 0x1000, 0, E.PF_R | E.PF_X),
             (0x7000, 0x1000, 0x1000, E.PF_R | E.PF_W)]
    files = [(0x400000, 0x401000, 0, b"/bin/app"), (0x401000, 0x402000, 1, b"/bin/app")]
    for i in range(1000):
        start = 0x10000000 + 0x2000 * i
        loads.append((start, 0x1000, 0, E.PF_R))
        files.append((start, start + 0x1000, 0, b"/var/cache/fonts.data"))
    with tempfile.TemporaryFile() as f:  # more than a pipe holds
        f.write(fake_kernel_core(EM_X86_64, E.ELFCLASS64, loads, files=files))
        f.seek(0)
        kc = read_kernel_core(f.fileno())
    got = {}
    for level in (NOTES_MINIMAL, NOTES_CODE_FILES):
        path = str(tmp_path / level)
        sink = FileSink(path)
        CoreImage(kc, [(0x7000, 0x7100)], "compact", level).write(
            sink, FakeMemory({0x7000: b"S" * 0x1000}), lambda: False)
        sink.close()
        with open(path, "rb") as f:
            desc = [n["n_desc"] for s in ELFFile(f).iter_segments() if s["p_type"] == "PT_NOTE"
                    for n in s.iter_notes() if n["n_type"] == "NT_FILE"][0]
        got[level] = [(e["vm_start"], name) for e, name in
                      zip(desc["Elf_Nt_File_Entry"], desc["filename"])]
    app = [(0x400000, b"/bin/app"), (0x401000, b"/bin/app")]
    assert got[NOTES_MINIMAL][:2] == app and len(got[NOTES_MINIMAL]) == 1002
    assert got[NOTES_CODE_FILES] == app


def test_ladder_labels_are_distinct_and_shrink():
    labels = [label for label, _, _, _ in B.LADDER]
    assert len(set(labels)) == len(labels)
    prios = [p for _, p, _, _ in B.LADDER]
    assert prios == sorted(prios, reverse=True)
    tops = [t or 1 << 30 for _, _, _, t in B.LADDER]
    assert all(a >= b for a, b in itertools.pairwise(tops))


def test_a_compressor_program_is_given_up_past_its_limit():
    """A compressor that is a program (here cat: no compression) under a budget:
    a render past the limit is given up before all its bytes are fed, the program
    reaped; one within the limit returns the program's whole output."""
    import os
    from minicoredumper.write_sinks import MemorySink, core_sink
    compression = {"compressor": "cat", "extension": "raw", "in_tar": False}
    chunk = os.urandom(64 << 10)
    sink = core_sink(MemorySink(1 << 20), compression, 0, 0)
    fed = 0
    try:
        for _ in range(160):  # 10 MiB
            sink.write(chunk)
            fed += len(chunk)
        sink.close()
    except OverBudget:
        pass
    else:
        raise AssertionError("10 MiB through cat fitted 1 MiB")
    assert fed < 2 << 20, fed
    assert sink.c.p.returncode is not None and sink.c.fd == -1
    out = MemorySink(1 << 20)
    sink = core_sink(out, compression, 0, 0)
    sink.write(chunk)
    sink.close()
    assert out.getvalue() == chunk
