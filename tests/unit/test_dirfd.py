"""Operations inside base_dir relative to its fd, never through a symlink (issue 17),
and the trusted-path rule for base_dir (files.open_trusted_dir).  The host tests
(test_hostile_basedir.py) show the handler refusing such a base_dir; these show
that, even inside one, a planted symlink redirects no write, removal or eviction."""

import os

import pytest

from minicoredumper import config as C
from minicoredumper.decide_storage import StoragePolicy
from minicoredumper.files import Untrusted, open_trusted_dir, remove_tree
from minicoredumper.publish_dumpdir import DumpDir, clean_leftovers

NOBODY = 65534
DEAD = ".app.20200101.000000+0000.1.part.4194305"  # a leftover of a handler long gone


@pytest.fixture
def place(tmp_path):
    """(base_dir, its fd, a victim directory with a file, that file's content)."""
    base = tmp_path / "base"
    base.mkdir()
    victim = tmp_path / "victim"
    (victim / "sub").mkdir(parents=True)
    (victim / "sub" / "precious").write_text("mine\n")
    fd = os.open(str(base), os.O_RDONLY | os.O_DIRECTORY)
    yield base, fd, victim
    os.close(fd)


def intact(victim):
    return (victim / "sub" / "precious").read_text() == "mine\n" and \
        sorted(os.listdir(victim)) == ["sub"]


def test_leftover_cleanup_removes_a_planted_symlink_not_its_target(place):
    base, fd, victim = place
    os.symlink(str(victim), str(base / DEAD))
    clean_leftovers(fd, lambda m: None)
    assert intact(victim) and os.listdir(base) == []


def test_eviction_skips_a_symlink_named_like_a_dump(place):
    base, fd, victim = place
    os.symlink(str(victim), str(base / "app.20200101.000000+0000.1"))
    (base / "app.20200102.000000+0000.2").mkdir()
    cfg = C.MainConfig({"base_dir": str(base), "max_dumps": 1}, "/x.json", [])
    StoragePolicy(cfg, lambda m: None, fd).make_room()
    assert intact(victim)
    assert os.listdir(base) == ["app.20200101.000000+0000.1"]  # the real dump went


def test_rate_limit_lock_is_never_created_through_a_symlink(place):
    base, fd, victim = place
    os.symlink(str(victim / "planted"), str(base / ".rate-limit.lock"))
    cfg = C.MainConfig({"base_dir": str(base), "rate_limit": {"count": 1,
                        "interval_seconds": 60}}, "/x.json", [])
    admitted, why = StoragePolicy(cfg, lambda m: None, fd).admit("/bin/app")
    assert admitted and "rate limit not checked" in why
    assert intact(victim)


def test_a_part_directory_swapped_for_a_symlink_is_not_written_through(place):
    base, fd, victim = place
    dd = DumpDir(str(base), "app.20200101.000000+0000.7", fd)
    os.rename(dd.path, str(base / ".moved"))
    os.symlink(str(victim), dd.path)
    dd.write_file("proc/7/maps", b"x")
    with pytest.raises(OSError, match="was replaced"):
        dd.publish()
    dd.discard()
    assert intact(victim)
    assert sorted(os.listdir(base / ".moved")) == ["manifest", "proc"]  # where it went


def test_remove_tree_never_follows_a_symlink(place):
    base, fd, victim = place
    (base / "d" / "e").mkdir(parents=True)
    os.symlink(str(victim), str(base / "d" / "link"))
    os.symlink(str(victim), str(base / "d" / "e" / "link"))
    remove_tree("d", fd)
    assert intact(victim) and os.listdir(base) == []


def test_trusted_path_rules(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to give files to nobody")
    ok = tmp_path / "ok"
    ok.mkdir()
    fd, made = open_trusted_dir(str(ok / "new" / "deeper"), create=0o700)
    os.close(fd)
    assert made == [str(ok / "new"), str(ok / "new" / "deeper")]
    assert os.stat(ok / "new" / "deeper").st_mode & 0o777 == 0o700
    sticky = tmp_path / "sticky"
    sticky.mkdir()
    os.chmod(sticky, 0o1777)
    (sticky / "root").mkdir()
    os.close(open_trusted_dir(str(sticky / "root"))[0])  # a sticky parent is fine
    os.symlink(str(ok), str(sticky / "rootlink"))
    os.close(open_trusted_dir(str(sticky / "rootlink"))[0])  # root's symlink is followed
    os.symlink(str(ok), str(sticky / "theirs"))
    os.lchown(str(sticky / "theirs"), NOBODY, NOBODY)
    (sticky / "owned").mkdir()
    os.chown(sticky / "owned", NOBODY, NOBODY)
    open_world = ok / "open"
    open_world.mkdir()
    os.chmod(open_world, 0o777)
    group = ok / "group"
    group.mkdir()
    os.chmod(group, 0o770)
    for path, why in [(sticky, "can be written by others (mode 1777)"),
                      (sticky / "theirs", "theirs is a symlink owned by uid 65534"),
                      (sticky / "owned" / "x", "owned is owned by uid 65534"),
                      (open_world / "below", "open can be written by others"),
                      (group, "group can be written by its group")]:
        with pytest.raises(Untrusted, match=why.replace("(", r"\(").replace(")", r"\)")):
            open_trusted_dir(str(path), create=0o700)
    assert not os.path.exists(sticky / "owned" / "x")
    (ok / "file").write_text("")
    with pytest.raises(Untrusted, match="is not a directory"):
        open_trusted_dir(str(ok / "file"))
