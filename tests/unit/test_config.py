"""Main config and recept parsing: types, defaults, globs, the parsed-JSON cache."""

import fnmatch
import json
import os

import pytest

from minicoredumper import config as C


@pytest.mark.parametrize("pattern,text", [
    ("*/real_example_app", "/usr/bin/real_example_app"),
    ("*/real_example_app", "/usr/bin/real_example_apps"),
    ("/bin/*", "/bin/sh"), ("/bin/*", "/usr/bin/sh"), ("*", ""), ("a*b*c", "abc"),
    ("a*b*c", "aXbYc"), ("a*b*c", "acb"), ("ab", "ab"), ("ab", "abc"), ("*a*a*", "aa"),
    ("*a*a*", "a"), ("[vdso]", "[vdso]"), ("*.so*", "/lib/libc.so.6"), ("a**b", "ab"),
])
def test_glob_matches_like_fnmatch_for_star_only(pattern, text):
    # fnmatch treats [ ] specially; escape them so both mean the same thing.
    escaped = pattern.replace("[", "[[]").replace("]", "[]]").replace("[[[]]", "[[]")
    assert C.glob_match(pattern, text) == fnmatch.fnmatchcase(text, escaped)


def test_recept_defaults():
    r = C.parse_recept({}, [])
    assert r["stacks"] == {"dump_stacks": True, "first_thread_only": False, "max_stack_size": 0}
    assert r["compression"] == {"compressor": None, "extension": "compressed", "in_tar": True}
    assert r["dump_scope"] == 0xFFFFFFFF and r["core_layout"] == "compact"
    assert r["buffers"] == [] and r["maps"]["dump_by_name"] == []


@pytest.mark.parametrize("recept,message", [
    ({"stacks": {"max_stack_size": -1}}, "stacks.max_stack_size must be an integer >= 0"),
    ({"stacks": {"max_stack_size": True}}, "stacks.max_stack_size must be"),
    ({"stacks": []}, "stacks must be an object"),
    ({"maps": {"dump_by_name": "[vdso]"}}, "maps.dump_by_name must be a list of strings"),
    ({"buffers": {}}, "buffers must be a list"),
    ({"buffers": [{"follow_ptr": True}]}, "buffers[0].symname is missing"),
    ({"buffers": [{"symname": "x", "data_len": "4"}]}, "buffers[0].data_len must be"),
    ({"compression": {"in_tar": "yes"}}, "compression.in_tar must be a boolean"),
    ({"core_layout": "dense"}, 'core_layout must be "compact" or "sparse"'),
])
def test_recept_type_errors_name_the_key(recept, message):
    with pytest.raises(C.ConfigError) as e:
        C.parse_recept(recept, [])
    assert message in str(e.value)


def test_recept_type_error_names_the_file(tmp_path):
    path = tmp_path / "app.recept.json"
    path.write_text('{"max_dump_size": "4096"}')
    with pytest.raises(C.ConfigError) as e:
        C.load_recept(str(path), [])
    assert str(e.value) == "%s: max_dump_size must be an integer >= 0, not '4096'" % path


def test_unknown_keys_are_warnings():
    warnings = []
    C.parse_recept({"stacks": {"colour": 1}, "x": 2, "buffers": [{"symname": "a", "y": 3}]},
                   warnings)
    assert sorted(warnings) == ["unknown key buffers[0].y ignored",
                                "unknown key stacks.colour ignored", "unknown key x ignored"]


def test_buffer_ident_does_not_carry_over():
    r = C.parse_recept({"buffers": [{"symname": "a", "ident": "a.bin"}, {"symname": "b"}]}, [])
    assert [b["ident"] for b in r["buffers"]] == ["a.bin", None]


def test_watch_rules_first_match_and_relative_recepts(tmp_path):
    cfg = C.MainConfig({"watch": [{"exe": "*/app", "comm": "app", "recept": "a.json"},
                                  {"comm": "other"},
                                  {"exe": "/bin/*", "recept": "/abs/b.json"}]},
                       str(tmp_path / "main.json"), [])
    assert cfg.match("/usr/bin/app", "app") == str(tmp_path / "a.json")
    assert cfg.match("/usr/bin/app", "nope") is None  # exe and comm are AND
    assert cfg.match("/x", "other") == ""  # defaults
    assert cfg.match("/bin/sh", "sh") == "/abs/b.json"
    assert cfg.base_dir == C.DEFAULT_BASE_DIR and cfg.deadline == C.DEFAULT_DEADLINE


@pytest.mark.parametrize("obj,message", [
    ([], "must be a JSON object"), ({"base_dir": ""}, "base_dir"),
    ({"watch": {}}, "watch must be a list"), ({"watch": [{"exe": 1}]}, "watch[0].exe"),
    ({"deadline_seconds": 0}, "deadline_seconds"),
    ({"log_level": "verbose"}, "log_level must be one of"),
    ({"journal_socket": None}, "journal_socket must be a string"),
    ({"on_dump": "upload.sh"}, "on_dump must be an absolute program path"),
    ({"on_dump": []}, "on_dump must be"), ({"on_dump": ["/bin/up", 1]}, "on_dump must be"),
    ({"on_dump_timeout_seconds": 0}, "on_dump_timeout_seconds"),
    ({"fallback_max_dump_size": "4k"}, "fallback_max_dump_size must be an integer >= 0"),
    ({"fallback_max_dump_size": -1}, "fallback_max_dump_size must be an integer >= 0"),
])
def test_main_config_errors(obj, message):
    with pytest.raises(C.ConfigError) as e:
        C.MainConfig(obj, "/etc/x.json", [])
    assert message in str(e.value)


def test_logging_and_on_dump_keys():
    cfg = C.MainConfig({}, "/etc/x.json", [])
    assert (cfg.log_level, cfg.journal_socket) == ("info", "/run/systemd/journal/socket")
    assert cfg.on_dump is None and cfg.on_dump_timeout == C.DEFAULT_ON_DUMP_TIMEOUT
    warnings = []
    cfg = C.MainConfig({"log_level": "debug", "journal_socket": "", "on_dump": "/bin/up",
                        "on_dump_timeout_seconds": 2.5}, "/etc/x.json", warnings)
    assert (cfg.log_level, cfg.journal_socket, cfg.on_dump, cfg.on_dump_timeout) == (
        "debug", "", ["/bin/up"], 2.5)
    assert warnings == []
    cfg = C.MainConfig({"on_dump": ["/bin/up", "--to", "x"]}, "/etc/x.json", [])
    assert cfg.on_dump == ["/bin/up", "--to", "x"]


def test_shipped_configs_parse_without_warnings():
    root = os.path.join(os.path.dirname(__file__), "..", "..", "conf")
    warnings = []
    cfg = C.MainConfig(json.load(open(os.path.join(root, "minicoredumper.cfg.json"))),
                       os.path.join(root, "minicoredumper.cfg.json"), warnings)
    for rule in cfg.watch:
        C.parse_recept(json.load(open(cfg.recept_path(rule))), warnings)
    C.parse_recept(json.load(open(os.path.join(root, "embedded.recept.json"))), warnings)
    assert warnings == []


@pytest.fixture
def cache_dir(tmp_path):
    """(a cache directory as the handler makes it, 0700; a JSON file's path beside it)."""
    d = tmp_path / "cache"
    os.mkdir(d, 0o700)
    return d, tmp_path / "r.json"


def test_json_cache_hits_and_invalidates(cache_dir):
    d, f = cache_dir
    f.write_text('{"a": 1}')
    cache = C.JsonCache(str(d))
    assert cache.load(str(f)) == {"a": 1}
    cache.save()
    assert oct(os.stat(cache.path).st_mode & 0o777) == "0o600"
    again = C.JsonCache(str(d))
    assert str(f) in again.entries and again.load(str(f)) == {"a": 1} and not again.dirty
    f.write_text('{"a": 22}')
    assert again.load(str(f)) == {"a": 22} and again.dirty
    f.write_text('{"a": ')
    with pytest.raises(C.ConfigError):
        again.load(str(f))


def test_json_cache_ignores_a_directory_others_can_write(cache_dir):
    d, f = cache_dir
    f.write_text("{}")
    c = C.JsonCache(str(d))
    c.load(str(f))
    c.save()
    os.chmod(d, 0o777)
    assert C.JsonCache(str(d)).entries == {}


def _policy(tmp_path, rate):
    from minicoredumper.decide_storage import StoragePolicy
    cfg = C.MainConfig({"base_dir": str(tmp_path), "rate_limit": rate}, "/x.json", [])
    return StoragePolicy(cfg, lambda msg: None, _dir_fd(tmp_path))


def _dir_fd(path):
    """path's fd, as the handler gives the storage policy (a few per test run, left
    open until the run ends)."""
    return os.open(str(path), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def test_rate_limit_within_a_boot_ignores_the_wall_clock(tmp_path, monkeypatch):
    import time as T
    p = _policy(tmp_path, {"count": 2, "interval_seconds": 100})
    assert p.admit("/bin/app") == (True, "") and p.admit("/bin/app") == (True, "")
    assert p.admit("/bin/app")[0] is False
    # The wall clock jumps a day ahead: within this boot the events still count.
    real = T.time
    monkeypatch.setattr(T, "time", lambda: real() + 86400)
    assert _policy(tmp_path, {"count": 2, "interval_seconds": 100}).admit("/bin/app")[0] is False
    # Another executable has its own count.
    assert p.admit("/bin/other") == (True, "")


def test_rate_limit_across_boots(tmp_path, monkeypatch):
    import marshal
    import time as T
    from minicoredumper import decide_storage as P
    p = _policy(tmp_path, {"count": 1, "interval_seconds": 3600})
    now_boot = T.clock_gettime(T.CLOCK_BOOTTIME)
    # An event from another boot whose wall time is "in the future" (the clock
    # went back): it is at least as old as this boot's uptime, no older.
    events = {"/bin/app": [("another-boot", 5.0, T.time() + 500)]}
    with open(tmp_path / P.RATE_FILE, "wb") as f:
        f.write(marshal.dumps(events))
    expected = now_boot < 3600  # counted while the uptime is under the interval
    assert p.admit("/bin/app")[0] is not expected
    # An event from another boot an hour and more ago by the wall clock: expired.
    with open(tmp_path / P.RATE_FILE, "wb") as f:
        f.write(marshal.dumps({"/bin/app": [("another-boot", 5.0, T.time() - 7200)]}))
    assert _policy(tmp_path, {"count": 1, "interval_seconds": 3600}).admit("/bin/app")[0]


def test_min_free_space_evicts_oldest_first(tmp_path, monkeypatch):
    from minicoredumper.decide_storage import StoragePolicy
    names = []
    for i in range(3):
        d = tmp_path / ("app.20260101.00000%d+0000.%d" % (i, 100 + i))
        d.mkdir()
        (d / "core").write_bytes(b"x" * 100)
        os.utime(d, (1000 + i, 1000 + i))
        names.append(d.name)
    cfg = C.MainConfig({"base_dir": str(tmp_path), "min_free_space": 850}, "/x.json", [])
    policy = StoragePolicy(cfg, lambda m: None, _dir_fd(tmp_path))
    # A file system with 1000 bytes, each dump taking 100.
    monkeypatch.setattr(policy, "_free", lambda: 1000 - 100 * len(
        [n for n in os.listdir(tmp_path) if not n.startswith(".")]))
    policy.make_room()
    assert os.listdir(tmp_path) == [names[-1]]  # the two oldest went


def test_store_setting():
    """The raw store (docs/FORMATS.md §12): absent is the directory store; an object
    with an absolute device, optional slot_size and slots; anything else refused."""
    assert C.MainConfig({}, "/x.json", []).store is None
    w = []
    cfg = C.MainConfig({"store": {"device": "/dev/mtd3", "slot_size": 65536}}, "/x.json", w)
    assert cfg.store == {"device": "/dev/mtd3", "slot_size": 65536} and w == []
    for bad in ({"device": "mtd3"}, {"slot_size": 4096}, {"device": "/dev/x", "slots": -1},
                {"device": "/dev/x", "size": 1}, "/dev/mtd3", {"device": "/dev/x",
                                                               "slot_size": True}):
        with pytest.raises(C.ConfigError, match="store must be"):
            C.MainConfig({"store": bad}, "/x.json", [])


def test_the_minimal_dump_has_a_budget():
    """The built-in minimal dump is bounded as a recept's dump (4096 by default,
    the main config's fallback_max_dump_size when it sets one) and compressed."""
    assert C.fallback_recept()["max_dump_size"] == C.FALLBACK_MAX_DUMP_SIZE == 4096
    assert C.MainConfig({}, "/etc/x.json", []).fallback_max_dump_size == 4096
    cfg = C.MainConfig({"fallback_max_dump_size": 0}, "/etc/x.json", [])
    r = C.fallback_recept(cfg.fallback_max_dump_size)
    assert r["max_dump_size"] == 0 and r["compression"]["compressor"] == "xz"
    assert r["stacks"]["first_thread_only"] and r["dump_scope"] == 0
