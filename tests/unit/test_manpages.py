"""The man pages (runtime/man): each renders without a groff warning; the section-5
pages document every key of config.py's schema with its default; the wheel installs
them and mcd's bash completion as data files (share/man/manN, share/bash-completion).
mcd(1) names every option of mcd: tests/host/test_mcd_select.py."""

import glob
import inspect
import os
import re
import shutil
import subprocess
import sys
import zipfile

import pytest

from minicoredumper import config as C
from minicoredumper.log import JOURNAL_SOCKET

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUNTIME = os.path.join(ROOT, "runtime")
MAN = os.path.join(RUNTIME, "man")
PAGES = sorted(os.path.basename(p) for p in glob.glob(os.path.join(MAN, "*.[158]")))
CFG_PAGE = "minicoredumper.cfg.json.5"
RECEPT_PAGE = "minicoredumper.recept.json.5"


def render(page):
    """The page as text (no overstriking, ASCII hyphens, no hyphenation, long lines)."""
    if shutil.which("groff") is None:
        pytest.skip("groff missing (Debian package groff-base)")
    p = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-rHY=0", "-rLL=200n",
                        os.path.join(MAN, page)], capture_output=True, text=True,
                       env=dict(os.environ, LC_ALL="C.UTF-8"))
    assert p.returncode == 0 and p.stderr == "", (page, p.stderr)
    return re.sub(r".\x08|\x1b\[[0-9;]*m", "", p.stdout).replace("\u2010", "-").replace(
        "\u2212", "-").replace("\u2019", "'")


def test_the_pages():
    assert PAGES == sorted(["coreinject.1", "mcd.1", CFG_PAGE, RECEPT_PAGE, "minicoredumper.8",
                            "minicoredumper_regd.8", "minicoredumper_sockd.8",
                            "minicoredumper_trigger.8"])


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_without_warnings(page):
    # what `man` runs, with every warning on (the default line length and hyphenation)
    if shutil.which("groff") is None:
        pytest.skip("groff missing (Debian package groff-base)")
    p = subprocess.run(["groff", "-man", "-Tutf8", "-ww", os.path.join(MAN, page)],
                       capture_output=True, text=True, env=dict(os.environ, LC_ALL="C.UTF-8"))
    assert p.returncode == 0 and p.stderr == "", p.stderr
    name, section = page.rsplit(".", 1)
    assert p.stdout.lstrip().startswith("%s(%s)" % (name.upper(), section))
    text = render(page)
    for heading in ("NAME", "SYNOPSIS", "DESCRIPTION", "SEE ALSO"):
        assert re.search(r"^%s$" % heading, text, re.M), (page, heading)
    # every page it cites exists here or is a system page
    ours = {p.rsplit(".", 1)[0] for p in PAGES}
    cited = re.findall(r"(?<![\w.-])([\w.-]*minicoredumper[\w.-]*|mcd)\((\d)\)", text)
    assert cited and all(n in ours for n, _ in cited), cited


def entries(page):
    """{tag: body} of the page's KEYS section (.TP items: tag at indent 7, body at 14,
    on the tag's line when the tag is short)."""
    text = render(page)
    section = text.split("\nKEYS\n", 1)[1]
    section = re.split(r"\n(?=[A-Z][A-Z ]+\n)", section, 1)[0]
    out = {}
    for m in re.finditer(r"^ {7}(\S+)(?:\n| +(.*)\n)((?: {14}.*\n|\n)*)", section, re.M):
        out[m.group(1)] = " ".join(((m.group(2) or "") + " " + m.group(3)).split())
    return out


def default_text(value):
    """How a page writes a schema default."""
    if value is None or value == []:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value == C.U32_MAX:
        return "0xFFFFFFFF"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def schema_leaves(schema, prefix=""):
    """(dotted key, default) of every key of a config.py schema; buffers[] included."""
    for key, spec in schema.items():
        if spec == "buffers":
            yield prefix + key, None
            yield from schema_leaves(C.BUFFER_SCHEMA, prefix + key + "[].")
        elif isinstance(spec, dict):
            yield from schema_leaves(spec, prefix + key + ".")
        else:
            yield prefix + key, spec[1]


def test_recept_page_has_every_key_with_its_default():
    documented = entries(RECEPT_PAGE)
    leaves = dict(schema_leaves(C.RECEPT_SCHEMA))
    assert set(documented) == set(leaves), "documented but not in the schema, or missing"
    for key, default in leaves.items():
        if key == "buffers[].symname":
            assert "required" in documented[key]  # a default of None, but no buffer without
            continue
        assert re.search(r"\bdefault:? %s\b" % re.escape(default_text(default)),
                         documented[key]), (key, default, documented[key])


def main_config_keys():
    """MAIN_KEYS and every key MainConfig reads: obj.get(...) at the top level, the watch
    rules' keys and rate_limit's."""
    source = inspect.getsource(C.MainConfig)
    read = set(re.findall(r'obj\.get\("(\w+)"', source))
    read |= set(re.findall(r'"(\w+)"', re.search(r'for key in \(("max_dumps"[^)]*)\)',
                                                     source).group(1)))
    assert read <= set(C.MAIN_KEYS), "read but not in MAIN_KEYS: %s" % (read - set(C.MAIN_KEYS))
    rule = re.search(r'if key not in \(([^)]*)\)', source).group(1)
    rate = re.search(r'set\(self\.rate_limit\) == \{([^}]*)\}', source).group(1)
    return (set(C.MAIN_KEYS) | {"watch[].%s" % k for k in re.findall(r'"(\w+)"', rule)}
            | {"rate_limit.%s" % k for k in re.findall(r'"(\w+)"', rate)}
            | {"store.%s" % k for k in C.STORE_KEYS})


def test_config_page_has_every_key_with_its_default():
    documented = entries(CFG_PAGE)
    keys = main_config_keys()
    assert {"watch[].exe", "watch[].comm", "watch[].recept", "rate_limit.count",
            "rate_limit.interval_seconds"} <= keys
    assert set(documented) == keys, "documented but not read, or missing"
    defaults = C.MainConfig({}, "/etc/x.json", [])
    expected = {"base_dir": defaults.base_dir, "watch": defaults.watch,
                "deadline_seconds": defaults.deadline,
                "live_max_pause_ms": C.DEFAULT_LIVE_MAX_PAUSE_MS,
                "max_dumps": defaults.max_dumps, "max_total_size": defaults.max_total_size,
                "min_free_space": defaults.min_free_space, "rate_limit": defaults.rate_limit,
                "log_level": defaults.log_level, "journal_socket": JOURNAL_SOCKET,
                "on_dump": defaults.on_dump, "on_dump_timeout_seconds": defaults.on_dump_timeout,
                "rlimit_core": defaults.rlimit_core,
                "fallback_max_dump_size": defaults.fallback_max_dump_size,
                "store": defaults.store, "store.slot_size": 0, "store.slots": 0}
    assert set(k for k in expected if "." not in k) == set(C.MAIN_KEYS)
    assert defaults.live_max_pause * 1000 == C.DEFAULT_LIVE_MAX_PAUSE_MS
    for key, default in expected.items():
        assert re.search(r"\bdefault:? %s\b" % re.escape(default_text(default)),
                         documented[key]), (key, default, documented[key])
    for key in keys - set(expected):
        assert re.search(r"\b(default|required)\b", documented[key]), key
    # the levels, as the config checks them
    assert all(level in documented["log_level"] for level in C.LOG_LEVELS)
    assert all(rule in documented["rlimit_core"] for rule in C.RLIMIT_CORE_RULES)


DATA_FILES = {
    "share/man/man1": ["coreinject.1", "mcd.1"],
    "share/man/man5": [CFG_PAGE, RECEPT_PAGE],
    "share/man/man8": ["minicoredumper.8", "minicoredumper_regd.8", "minicoredumper_sockd.8",
                       "minicoredumper_trigger.8"],
    "share/bash-completion/completions": ["mcd"],
}


def test_wheel_installs_the_man_pages_and_the_completion(tmp_path):
    """pip wheel of runtime/ (a copy: the build leaves build/ and egg-info behind):
    every page of runtime/man in its section's directory, the completion beside them."""
    src = tmp_path / "runtime"
    shutil.copytree(RUNTIME, str(src), ignore=shutil.ignore_patterns(
        "build", "*.egg-info", "__pycache__", "*.o", "*.so*"))
    p = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                        str(tmp_path / "dist"), str(src)], capture_output=True, text=True)
    if p.returncode != 0 and re.search(r"No matching distribution|Could not find a version|"
                                       r"NewConnectionError|Network is unreachable", p.stderr):
        pytest.skip("pip cannot fetch the build backend (setuptools): %s" % p.stderr[-300:])
    assert p.returncode == 0, p.stderr
    (wheel,) = glob.glob(str(tmp_path / "dist" / "*.whl"))
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
    data = sorted(n.split(".data/data/", 1)[1] for n in names if ".data/data/" in n)
    assert data == sorted("%s/%s" % (d, f) for d, files in DATA_FILES.items() for f in files)
    assert sorted(f for d, files in DATA_FILES.items() if d.startswith("share/man")
                  for f in files) == PAGES
    for path in data:
        section = re.match(r"share/man/man(\d)/", path)
        assert section is None or path.endswith("." + section.group(1)), path
