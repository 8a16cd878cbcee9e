"""make demo's steps (scripts/demo.py) on the session's crasher, so the demo cannot rot:
the same crash as the kernel's own core and as our dump, both backtraces, mcd's view."""

import contextlib
import io
import os
import re

import demo  # scripts/demo.py (pytest.ini puts scripts/ on sys.path)
from lab.gdb import assert_frames
from lab.programs import FRAMES


def test_demo_steps(crasher, programs, tmp_path):
    exe = programs["crash3"]
    kcore, dump, base = demo.crash_both(crasher, exe)
    assert dump is not None and os.path.isfile(kcore)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        kernel_bt, our_bt = demo.report(exe, kcore, dump, base, str(tmp_path))
    text = out.getvalue()
    assert_frames(FRAMES["crash3"], kernel_bt)
    assert_frames(FRAMES["crash3"], our_bt)
    core = os.path.join(dump, "core.xz")
    # Ours is the embedded recept's core.xz, a small fraction of the kernel's core even
    # after xz; the whole directory fits the 4 KiB budget.
    assert os.path.getsize(core) * 4 < demo.xz_size(kcore) < os.path.getsize(kcore)
    assert sum(os.path.getsize(os.path.join(dump, n)) for n in os.listdir(dump)) <= 4096
    assert re.search(r"the kernel.s core \(kcore\.\d+\)\s+\d", text)
    assert "from ours:              %s" % " <- ".join(FRAMES["crash3"]) in text
    # mcd list names the dump; mcd info shows its summary.
    assert "$ mcd list" in text and os.path.basename(dump) in text
    assert "killed by SIGSEGV" in text
