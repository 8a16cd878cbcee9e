"""Bad configs and recepts: a logged reason, and the dump or refusal docs/FORMATS.md asks for.
The crashed process is always reaped within 5 s."""

import os
import shutil

import pytest

from lab.gdb import assert_frames, backtrace, extract_core
from lab.logs import handler_log
from lab.programs import FRAMES
from test_storage import dir_bytes

from minicoredumper.config import FALLBACK_MAX_DUMP_SIZE

DEFAULT_BASE = "/var/crash/minicoredumper"


@pytest.mark.parametrize("text,reason", [
    ('{"stacks": {"max_stack_size": "big"}', "malformed JSON"),
    ('{"stacks": {"max_stack_size": "big"}}', "stacks.max_stack_size must be"),
    ('{"buffers": [{"symname": 42}]}', "buffers[0].symname must be"),
    ('[1, 2]', "must be an object"),
])
def test_bad_recept_gives_minimal_dump_and_reason(crasher, programs, text, reason):
    base = crasher.configure(recept_text=text)
    rc, reaped, pid = crasher.run([programs["threads8"]])
    assert reaped < 5
    logs = handler_log(pid)
    recept = os.path.join(crasher.workdir, "recept%d.json" % crasher.n)
    assert any("recept unusable" in l and reason in l and recept in l for l in logs), logs
    d = crasher.dump_of(base, pid)
    assert dir_bytes(d) <= FALLBACK_MAX_DUMP_SIZE  # the main config says nothing else
    core = extract_core(d, crasher.workdir)
    assert_frames(FRAMES["threads8"], backtrace(programs["threads8"], core), whole=False)


@pytest.mark.parametrize("budget", [2048, 8192, 0])
def test_the_main_config_sets_the_minimal_dumps_budget(crasher, programs, budget):
    """fallback_max_dump_size: the budget ladder of any recept (0: no limit).
    Before: the minimal dump of crash3 took 22 KB whatever the budget."""
    base = crasher.configure(recept_text='{"max_dump_size": "4k"}')
    crasher.configure(config={"base_dir": base, "fallback_max_dump_size": budget, "watch": [
        {"recept": os.path.join(crasher.workdir, "recept%d.json" % crasher.n)}]})
    _, _, pid = crasher.run([programs["crash3"]])
    d = crasher.dump_of(base, pid)
    size = dir_bytes(d)
    with open(os.path.join(d, "summary.txt")) as f:
        summary = f.read()
    if budget == 2048:  # no core fits: the summaries' frames from the unwinder
        assert size <= budget and not any(n.startswith("core") for n in os.listdir(d))
        assert "level_c" in summary, summary
        return
    assert size <= budget if budget else size > FALLBACK_MAX_DUMP_SIZE, size
    assert_frames(FRAMES["crash3"], backtrace(programs["crash3"],
                                              extract_core(d, crasher.workdir)))


def test_missing_recept(crasher, programs):
    base = crasher.configure()
    crasher.configure(config={"base_dir": base,
                              "watch": [{"recept": "/nonexistent/x.recept.json"}]})
    rc, reaped, pid = crasher.run([programs["crash3"]])
    assert reaped < 5
    logs = handler_log(pid)
    assert any("cannot read" in l for l in logs), logs
    d = crasher.dump_of(base, pid)
    assert dir_bytes(d) <= FALLBACK_MAX_DUMP_SIZE
    assert_frames(FRAMES["crash3"], backtrace(programs["crash3"],
                                              extract_core(d, crasher.workdir)))


@pytest.mark.parametrize("config", ['{"base_dir": ', '{"base_dir": 7}', '{"watch": {}}'])
def test_bad_main_config_dumps_minimal_to_default_base_dir(crasher, programs, config):
    before = set(os.listdir(DEFAULT_BASE)) if os.path.isdir(DEFAULT_BASE) else set()
    crasher.configure(config=config)
    rc, reaped, pid = crasher.run([programs["crash3"]])
    assert reaped < 5
    logs = handler_log(pid)
    assert any("main config unusable" in l for l in logs), logs
    new = [d for d in os.listdir(DEFAULT_BASE) if d not in before and d.endswith(".%d" % pid)]
    try:
        assert len(new) == 1, (new, logs)
        d = os.path.join(DEFAULT_BASE, new[0])
        assert dir_bytes(d) <= FALLBACK_MAX_DUMP_SIZE  # the main config's cannot be read
        assert_frames(FRAMES["crash3"], backtrace(programs["crash3"],
                                                  extract_core(d, crasher.workdir)))
    finally:
        for d in new:
            shutil.rmtree(os.path.join(DEFAULT_BASE, d))


def test_no_matching_rule_leaves_no_directory(crasher, programs):
    base = crasher.configure()
    cfg = {"base_dir": base, "watch": [{"comm": "someone_else"}, {"exe": "/bin/*"}]}
    crasher.configure(config=cfg)
    rc, reaped, pid = crasher.run([programs["crash3"]])
    assert reaped < 5
    assert not os.path.exists(base)
    logs = handler_log(pid)
    assert any("no watch rule matches" in l for l in logs), logs


def test_missing_base_dir_is_created(crasher, programs):
    base = crasher.configure()
    nested = os.path.join(base, "deeper", "still")
    crasher.configure(config={"base_dir": nested, "watch": [{}]})
    _, _, pid = crasher.run([programs["crash3"]])
    assert os.stat(nested).st_mode & 0o777 == 0o700, handler_log(pid)
    crasher.dump_of(nested, pid)


def test_unwritable_base_dir_is_refused_with_reason(crasher, programs):
    base = crasher.configure()
    os.makedirs(os.path.dirname(base), exist_ok=True)
    with open(base, "w") as f:  # a file where the directory should be
        f.write("not a directory")
    crasher.configure(config={"base_dir": base, "watch": [{}]})
    rc, reaped, pid = crasher.run([programs["crash3"]])
    assert reaped < 5
    logs = handler_log(pid)
    assert any("not dumped" in l for l in logs), logs
    assert open(base).read() == "not a directory"


def test_unknown_keys_are_warnings_not_errors(crasher, programs):
    base = crasher.configure({"stacks": {"dump_stacks": True, "colour": "blue"},
                              "frobnicate": 1})
    rc, reaped, pid = crasher.run([programs["crash3"]])
    logs = handler_log(pid)
    assert any("unknown key stacks.colour" in l for l in logs), logs
    assert not any("unusable" in l for l in logs), logs
    crasher.dump_of(base, pid)


def test_hard_deadline_releases_the_process(crasher, programs):
    """A dump too big for the deadline is cut, still published, and the process reaped."""
    base = crasher.configure()
    rpath = os.path.join(os.path.dirname(base), "big.recept.json")
    with open(rpath, "w") as f:
        f.write('{"maps": {"dump_by_name": ["*"]}, "core_layout": "sparse",'
                ' "compression": {"compressor": "bzip2"}}')
    crasher.configure(config={"base_dir": base, "deadline_seconds": 0.3,
                              "watch": [{"recept": rpath}]})
    rc, reaped, pid = crasher.run([programs["bigheap"], "512"])
    assert reaped < 0.3 + 1.0 + 1.5  # deadline + hard grace + start-up and heap touch
    logs = handler_log(pid)
    assert any("deadline" in l for l in logs), logs
