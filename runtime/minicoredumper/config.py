"""DECIDE (inputs): the main config and recepts, validated against one schema.

The original's files work unchanged (docs/FORMATS.md §2-3).  Every key has a type and a
default in one table; wrong types raise ConfigError with the key's path,
unknown keys become warnings.  JSON comes from ujson when installed, else the
stdlib, and only when the parsed-file cache misses.
"""

import marshal
import os

from .log import JOURNAL_SOCKET

DEFAULT_CONFIG = "/etc/minicoredumper/minicoredumper.cfg.json"
CACHE_DIR = "/var/cache/minicoredumper"
CACHE_ENTRIES = 64
DEFAULT_BASE_DIR = "/var/crash/minicoredumper"
DEFAULT_DEADLINE = 3.0
MAX_IDENT = 255


def valid_ident(ident):
    """An ident usable as the file name dumps/PID/IDENT, of a recept buffer or
    of registered data (docs/FORMATS.md §7's rules, plus no control characters,
    which would also break symbol.map lines)."""
    return (bool(ident) and ident not in (".", "..") and "/" not in ident
            and len(ident) <= MAX_IDENT and ident.isprintable())
U32_MAX = 0xFFFFFFFF


class ConfigError(Exception):
    """A config or recept that cannot be used; the message says where and why."""


def _json():
    """ujson when installed, else the stdlib; imported only on a cache miss."""
    try:
        import ujson as json
    except ImportError:
        import json  # the stdlib parser: same result, slower
    return json


def parse_json_file(path):
    try:
        with open(path, "rb") as f:
            text = f.read(1 << 20)
    except OSError as e:
        raise ConfigError("%s: cannot read: %s" % (path, e.strerror or e)) from None
    try:
        return _json().loads(text)
    except ValueError as e:
        raise ConfigError("%s: malformed JSON: %s" % (path, e)) from None


class JsonCache:
    """Parsed JSON files kept in a marshal file, keyed by each file's stat.

    A crash then costs no JSON import: marshal is built into the interpreter.
    A file whose device, inode, size, mtime or ctime changed is parsed again.
    The cache is trusted only in a root-owned directory nobody else can write.
    """

    def __init__(self, directory=CACHE_DIR):
        self.directory = directory
        self.path = directory + "/parsed-json.marshal"
        self.entries = {}
        self.dirty = False
        try:
            st = os.stat(directory)
            if st.st_uid == os.geteuid() and not st.st_mode & 0o022:
                with open(self.path, "rb") as f:
                    entries = marshal.loads(f.read(4 << 20))
                if isinstance(entries, dict):
                    self.entries = entries
        except (OSError, ValueError, EOFError, TypeError):
            # a missing or damaged cache is an empty one: every file is parsed again
            self.entries = {}

    def load(self, path):
        """The parsed JSON of path (ConfigError if unreadable or malformed)."""
        try:
            st = os.stat(path)
            key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        except OSError:
            key = None  # a file that cannot be stat'ed is parsed (and fails) without the cache
        hit = self.entries.get(path)
        if key is not None and hit is not None and hit[0] == key:
            return hit[1]
        value = parse_json_file(path)
        if key is not None:
            self.entries.pop(path, None)
            self.entries[path] = (key, value)
            while len(self.entries) > CACHE_ENTRIES:
                del self.entries[next(iter(self.entries))]
            self.dirty = True
        return value

    def save(self):
        if not self.dirty:
            return
        try:
            from .files import replace_file
            os.makedirs(self.directory, 0o700, exist_ok=True)
            replace_file(self.path, marshal.dumps(self.entries))
            self.dirty = False
        except (OSError, ValueError):
            pass  # the cache only saves time: the next crash parses the JSON again


def load_json(path, cache=None):
    """The parsed JSON of path, through cache (a JsonCache) when one is given
    (ConfigError if unreadable or malformed)."""
    return cache.load(path) if cache is not None else parse_json_file(path)


def glob_match(pattern, text):
    """The original's glob: '*' matches any run of characters; nothing else is special."""
    parts = pattern.split("*")
    if len(parts) == 1:
        return pattern == text
    head, tail = parts[0], parts[-1]
    if not text.startswith(head) or not text[len(head):].endswith(tail):
        return False
    pos = len(head)
    stop = len(text) - len(tail)
    for mid in parts[1:-1]:
        pos = text.find(mid, pos, stop)
        if pos < 0:
            return False
        pos += len(mid)
    return pos <= stop


# --- schema ------------------------------------------------------------------
# key -> (checker, default); nested dicts are sub-schemas.

def _bool(v):
    return isinstance(v, bool)


def _uint(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _str(v):
    return isinstance(v, str)


def _str_list(v):
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def _layout(v):
    return v in ("compact", "sparse")


def _positive(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0


_TYPE_NAMES = {_bool: "a boolean", _uint: "an integer >= 0", _str: "a string",
               _str_list: "a list of strings", _layout: '"compact" or "sparse"',
               _positive: "a number > 0"}

BUFFER_SCHEMA = {
    "symname": (_str, None),
    "follow_ptr": (_bool, False),
    "data_len": (_uint, 0),
    "ident": (_str, None),
}

RECEPT_SCHEMA = {
    "stacks": {
        "dump_stacks": (_bool, True),
        "first_thread_only": (_bool, False),
        "max_stack_size": (_uint, 0),
    },
    "maps": {
        "dump_by_name": (_str_list, []),
    },
    "buffers": "buffers",
    "compression": {
        "compressor": (_str, None),
        "extension": (_str, "compressed"),
        "in_tar": (_bool, True),
    },
    "dump_auxv_so_list": (_bool, True),
    "dump_pthread_list": (_bool, True),
    "dump_robust_mutex_list": (_bool, True),
    "dump_scope": (_uint, U32_MAX),
    "registered": {
        "max_items": (_uint, 1024),
        "max_item_size": (_uint, 1 << 20),
        "max_total_size": (_uint, 16 << 20),
    },
    "live_dumper": (_bool, False),
    "write_proc_info": (_bool, False),
    "write_debug_log": (_bool, False),
    "dump_fat_core": (_bool, False),
    "core_layout": (_layout, "compact"),
    "max_dump_size": (_uint, 0),
    "omit_environ": (_bool, False),
    "sanitize_stack": (_uint, 0),
}


def _apply(schema, value, path, warnings):
    if not isinstance(value, dict):
        raise ConfigError("%s must be an object" % (path or "recept"))
    out = {}
    for key, spec in schema.items():
        where = "%s.%s" % (path, key) if path else key
        present = key in value and value[key] is not None
        if spec == "buffers":
            out[key] = _buffers(value.get(key), where, warnings)
        elif isinstance(spec, dict):
            out[key] = _apply(spec, value[key] if present else {}, where, warnings)
        else:
            check, default = spec
            if not present:
                out[key] = default
            elif not check(value[key]):
                raise ConfigError("%s must be %s, not %r" % (where, _TYPE_NAMES[check], value[key]))
            else:
                out[key] = value[key]
    for key in value:
        if key not in schema:
            warnings.append("unknown key %s ignored" % ("%s.%s" % (path, key) if path else key))
    return out


def _buffers(value, path, warnings):
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError("%s must be a list" % path)
    out = []
    for i, b in enumerate(value):
        # Each buffer starts from the defaults: an ident never carries over.
        buf = _apply(BUFFER_SCHEMA, b, "%s[%d]" % (path, i), warnings)
        if not buf["symname"]:
            raise ConfigError("%s[%d].symname is missing" % (path, i))
        out.append(buf)
    return out


def parse_recept(obj, warnings):
    """A validated recept dict (defaults filled in) from parsed JSON."""
    return _apply(RECEPT_SCHEMA, obj, "", warnings)


def load_recept(path, warnings, cache=None):
    """The recept at path; "" or None means the built-in defaults.  cache: a
    JsonCache or None (parse the file).  ConfigError "PATH: what is wrong"."""
    if not path:
        return parse_recept({}, warnings)
    obj = load_json(path, cache)  # its ConfigError names path already
    try:
        return parse_recept(obj, warnings)
    except ConfigError as e:
        raise ConfigError("%s: %s" % (path, e)) from None


# The built-in minimal dump's budget when the main config does not say
# (fallback_max_dump_size): the embedded recept's max_dump_size, in which a
# 3-deep crash keeps its whole backtrace (conf/embedded.recept.json).
FALLBACK_MAX_DUMP_SIZE = 4096
FALLBACK_COMPRESSION = {"compressor": "xz", "extension": "xz", "in_tar": False}  # the embedded's


def fallback_recept(max_dump_size=FALLBACK_MAX_DUMP_SIZE):
    """The built-in minimal dump, for a recept or main config that cannot be
    used: the crashing thread, enough for a backtrace, xz-compressed, in at
    most max_dump_size bytes (0: no limit) through the budget ladder
    (decide_budget) as any recept's dump."""
    r = parse_recept({"max_dump_size": max_dump_size, "compression": FALLBACK_COMPRESSION}, [])
    r["stacks"]["first_thread_only"] = True
    r["dump_pthread_list"] = False
    r["dump_robust_mutex_list"] = False
    r["dump_scope"] = 0
    return r



MAIN_KEYS = ("base_dir", "watch", "deadline_seconds", "max_dumps", "max_total_size",
             "min_free_space", "rate_limit", "live_max_pause_ms", "log_level",
             "journal_socket", "on_dump", "on_dump_timeout_seconds", "rlimit_core",
             "store", "fallback_max_dump_size")
STORE_KEYS = ("device", "slot_size", "slots")  # of "store": a raw store (docs/FORMATS.md §12)
DEFAULT_LIVE_MAX_PAUSE_MS = 25
DEFAULT_ON_DUMP_TIMEOUT = 10.0
LOG_LEVELS = ("error", "warning", "info", "debug")
# Which of a crashed process's RLIMIT_CORE limits, below one page, means no dump
# (crash.Crash.choose_recept); "ignore": none, as the original.
RLIMIT_CORE_RULES = ("hard", "soft", "ignore")


class MainConfig:
    """The main config: base_dir, watch rules, deadline, storage limits, logging,
    the on_dump hook, whether a process's RLIMIT_CORE counts, the raw store (store:
    None, or {device, slot_size?, slots?})."""

    def __init__(self, obj, path, warnings):
        if not isinstance(obj, dict):
            raise ConfigError("%s: the main config must be a JSON object" % path)
        self.path = path
        self.dir = path.rpartition("/")[0] or "."
        self.base_dir = obj.get("base_dir", DEFAULT_BASE_DIR)
        if not isinstance(self.base_dir, str) or not self.base_dir:
            raise ConfigError("%s: base_dir must be a non-empty string" % path)
        self.deadline = obj.get("deadline_seconds", DEFAULT_DEADLINE)
        if not _positive(self.deadline):
            raise ConfigError("%s: deadline_seconds must be a number > 0" % path)
        pause = obj.get("live_max_pause_ms", DEFAULT_LIVE_MAX_PAUSE_MS)
        if not _positive(pause):
            raise ConfigError("%s: live_max_pause_ms must be a number > 0" % path)
        self.live_max_pause = pause / 1000.0  # seconds a live dump may stop a process
        for key in ("max_dumps", "max_total_size", "min_free_space"):
            value = obj.get(key, 0)
            if not _uint(value):
                raise ConfigError("%s: %s must be an integer >= 0" % (path, key))
            setattr(self, key, value)
        # the built-in minimal dump's budget, for a recept that cannot be used
        self.fallback_max_dump_size = obj.get("fallback_max_dump_size", FALLBACK_MAX_DUMP_SIZE)
        if not _uint(self.fallback_max_dump_size):
            raise ConfigError("%s: fallback_max_dump_size must be an integer >= 0" % path)
        self.log_level = obj.get("log_level", "info")
        if self.log_level not in LOG_LEVELS:
            raise ConfigError("%s: log_level must be one of %s" % (path, ", ".join(LOG_LEVELS)))
        self.journal_socket = obj.get("journal_socket", JOURNAL_SOCKET)
        if not _str(self.journal_socket):
            raise ConfigError('%s: journal_socket must be a string ("": no journal)' % path)
        self.on_dump = obj.get("on_dump")  # argv without the directory, or None
        if isinstance(self.on_dump, str):
            self.on_dump = [self.on_dump]
        if self.on_dump is not None and not (
                _str_list(self.on_dump) and self.on_dump and self.on_dump[0].startswith("/")):
            raise ConfigError("%s: on_dump must be an absolute program path, or a list of "
                              "strings starting with one" % path)
        self.on_dump_timeout = obj.get("on_dump_timeout_seconds", DEFAULT_ON_DUMP_TIMEOUT)
        if not _positive(self.on_dump_timeout):
            raise ConfigError("%s: on_dump_timeout_seconds must be a number > 0" % path)
        self.rlimit_core = obj.get("rlimit_core", "hard")
        if self.rlimit_core not in RLIMIT_CORE_RULES:
            raise ConfigError("%s: rlimit_core must be one of %s"
                              % (path, ", ".join(RLIMIT_CORE_RULES)))
        self.rate_limit = obj.get("rate_limit")
        if self.rate_limit is not None and not (
                isinstance(self.rate_limit, dict) and set(self.rate_limit) == {
                    "count", "interval_seconds"} and _uint(self.rate_limit["count"])
                and _positive(self.rate_limit["interval_seconds"])):
            raise ConfigError('%s: rate_limit must be {"count": N, "interval_seconds": S}'
                              % path)
        self.store = obj.get("store")  # None: dump directories in base_dir
        if self.store is not None and not (
                isinstance(self.store, dict) and set(self.store) <= set(STORE_KEYS)
                and _str(self.store.get("device")) and self.store["device"].startswith("/")
                and _uint(self.store.get("slot_size", 0)) and _uint(self.store.get("slots", 0))):
            raise ConfigError('%s: store must be {"device": "/dev/...", "slot_size": BYTES, '
                              '"slots": N} (slot_size and slots optional)' % path)
        watch = obj.get("watch", [])
        if not isinstance(watch, list):
            raise ConfigError("%s: watch must be a list" % path)
        self.watch = []
        for i, rule in enumerate(watch):
            if not isinstance(rule, dict):
                raise ConfigError("%s: watch[%d] must be an object" % (path, i))
            for key in ("exe", "comm", "recept"):
                if key in rule and not isinstance(rule[key], str):
                    raise ConfigError("%s: watch[%d].%s must be a string" % (path, i, key))
            for key in rule:
                if key not in ("exe", "comm", "recept"):
                    warnings.append("%s: unknown key watch[%d].%s ignored" % (path, i, key))
            self.watch.append(rule)
        for key in obj:
            if key not in MAIN_KEYS:
                warnings.append("%s: unknown key %s ignored" % (path, key))

    @property
    def storage_limits(self):
        """True if any of max_dumps, max_total_size, min_free_space, rate_limit is set."""
        return bool(self.max_dumps or self.max_total_size or self.min_free_space
                    or self.rate_limit)

    def match(self, exe, comm):
        """The recept path of the first matching watch rule ("" = defaults), or
        None; exe as readlink(/proc/PID/exe) gives it, matched without the
        " (deleted)" of a file deleted or replaced since it was started."""
        from .read_process import exe_path
        exe = exe_path(exe)[0]
        for rule in self.watch:
            if "exe" in rule and not glob_match(rule["exe"], exe):
                continue
            if "comm" in rule and not glob_match(rule["comm"], comm):
                continue
            return self.recept_path(rule)
        return None

    def recept_path(self, rule):
        """A rule's recept: absolute, or relative to the config's directory ("" = defaults)."""
        recept = rule.get("recept", "")
        if recept and not recept.startswith("/"):
            recept = self.dir + "/" + recept
        return recept


def load_main_config(path, warnings, cache=None):
    """The MainConfig at path (ConfigError if it cannot be used); cache: a
    JsonCache or None (parse the file)."""
    return MainConfig(load_json(path, cache), path, warnings)


def main_config_or_defaults(path, warnings, cache=None):
    """(config, problem): the main config at path, or when it cannot be used the
    built-in defaults (the default base_dir, no watch rules) and the ConfigError
    saying why (problem is None for a usable config).  Where the handler writes
    and mcd looks."""
    try:
        return load_main_config(path, warnings, cache), None
    except ConfigError as e:
        return MainConfig({}, path, []), e  # the caller reports e: the handler logs it, mcd warns
