"""tests/layer/python3_packages.py: which oe-core package ships a standard-library module.

oe-core splits the target's Python standard library into python3-* packages (its
python3 recipe reads the split from python3-manifest.json). The crash-path guard
(test_crashpath_imports.py) maps every module the runtime loads to such a package and
compares the result with the RDEPENDS of the recipe. The table below encodes what that
split says for the modules this project can plausibly reach, as read from oe-core's
wrynose branch (Python 3.14), in our own shape: package -> top-level module names.

Facts worth knowing when extending it:
- oe-core gives a file to the first package in manifest order whose FILES match, and the
  manifest is in alphabetical order; so whole directories listed under python3-core
  (collections, encodings, importlib, re, pathlib, sysconfig, urllib) stay in core.
- Modules built into libpython (sys.builtin_module_names of the target) need python3-core.
- Names that exist only on older interpreters (the host may be older than the target)
  are listed with the package their code moved to.
- python3-core itself RDEPENDS python3-compression; python3-io RDEPENDS
  python3-netclient, which pulls email, crypt (OpenSSL) and more. The guard still asks
  each recipe to name what it imports.
"""

PACKAGE_MODULES = {
    "python3-core": [
        "__future__", "_abc", "_ast", "_ast_unparse", "_bisect", "_bootlocale", "_bz2",
        "_codecs", "_collections", "_collections_abc", "_colorize", "_compression", "_csv",
        "_frozen_importlib", "_frozen_importlib_external", "_functools", "_heapq", "_imp",
        "_io", "_locale", "_lzma", "_markupbase", "_opcode", "_opcode_metadata", "_operator",
        "_posixsubprocess", "_py_warnings", "_pyrepl", "_signal", "_sitebuiltins", "_sre",
        "_stat", "_string", "_struct", "_symtable", "_sysconfigdata", "_thread", "_tokenize",
        "_tracemalloc", "_typing", "_warnings", "_weakref", "_weakrefset", "abc",
        "annotationlib", "argparse", "array", "ast", "atexit", "binascii", "bisect",
        "builtins", "bz2", "code", "codecs", "codeop", "collections", "configparser",
        "contextlib", "copy", "copyreg", "csv", "dataclasses", "dis", "encodings", "enum",
        "errno", "faulthandler", "fcntl", "fnmatch", "functools", "gc", "genericpath",
        "getopt", "gettext", "glob", "grp", "heapq", "imp", "importlib", "inspect", "io",
        "ipaddress", "itertools", "keyword", "linecache", "locale", "lzma", "marshal",
        "math", "ntpath", "opcode", "operator", "optparse", "os", "pathlib", "pkgutil",
        "platform", "posix", "posixpath", "pwd", "re", "readline", "reprlib", "rlcompleter",
        "runpy", "select", "selectors", "shutil", "signal", "site", "sitecustomize",
        "sre_compile", "sre_constants", "sre_parse", "stat", "stringprep", "struct",
        "subprocess", "symbol", "sys", "sysconfig", "textwrap", "threading", "time",
        "token", "tokenize", "traceback", "types", "typing", "unicodedata", "urllib",
        "warnings", "weakref", "xreadlines", "zipimport", "zlib",
    ],
    "python3-compression": ["_zstd", "compression", "gzip", "tarfile", "zipfile"],
    "python3-json": ["_json", "json"],
    "python3-io": ["_pyio", "_socket", "_ssl", "socket", "ssl", "tempfile", "termios"],
    "python3-netclient": [
        "_uuid", "base64", "ftplib", "hmac", "http", "mimetypes", "poplib", "secrets",
        "smtplib", "uuid",
    ],
    "python3-netserver": ["socketserver"],
    "python3-email": ["email", "imaplib"],
    "python3-mime": ["quopri"],
    "python3-crypt": [
        "_blake2", "_hashlib", "_md5", "_sha1", "_sha2", "_sha256", "_sha3", "_sha512",
        "hashlib",
    ],
    "python3-math": ["_random", "cmath", "random"],
    "python3-datetime": ["_datetime", "_strptime", "calendar", "datetime"],
    "python3-numbers": [
        "_contextvars", "_decimal", "_pydecimal", "contextvars", "decimal", "fractions",
        "numbers",
    ],
    "python3-threading": ["_queue", "_threading_local", "queue"],
    "python3-stringold": ["string"],
    "python3-shell": ["cmd", "shlex"],
    "python3-pickle": ["_compat_pickle", "_pickle", "pickle", "pickletools", "shelve"],
    "python3-pprint": ["pprint"],
    "python3-logging": ["logging"],
    "python3-ctypes": ["_ctypes", "ctypes"],
    "python3-mmap": ["mmap"],
    "python3-resource": ["resource"],
    "python3-syslog": ["syslog"],
    "python3-unixadmin": ["getpass"],
    "python3-terminal": ["pty", "tty"],
    "python3-difflib": ["difflib"],
    "python3-codecs": ["_multibytecodec"],
    "python3-compile": ["compileall", "filecmp", "py_compile"],
    "python3-asyncio": ["_asyncio", "asyncio", "concurrent"],
    "python3-multiprocessing": ["_multiprocessing", "_posixshmem", "multiprocessing"],
    "python3-xml": ["_elementtree", "pyexpat", "xml"],
    "python3-html": ["html"],
    "python3-statistics": ["_statistics", "statistics"],
    "python3-tomllib": ["tomllib"],
    "python3-zoneinfo": ["_zoneinfo", "zoneinfo"],
    "python3-unittest": ["unittest"],
    "python3-profile": ["_lsprof", "cProfile", "profile", "pstats"],
    "python3-debugger": ["bdb", "pdb"],
    "python3-sqlite3": ["_sqlite3", "sqlite3"],
    "python3-plistlib": ["plistlib"],
    "python3-zipapp": ["zipapp"],
}

# Packages whose RDEPENDS bring in python3-io or python3-netclient (and so socket, ssl,
# email and OpenSSL), directly or one step down.
PULLS_IO = frozenset([
    "python3-asyncio", "python3-ctypes", "python3-email", "python3-io", "python3-logging",
    "python3-mailbox", "python3-modules", "python3-multiprocessing", "python3-netclient",
    "python3-netserver", "python3-terminal", "python3-unittest", "python3-unixadmin",
    "python3-xmlrpc",
])

# Modules from outside the standard library that the runtime imports optionally (inside
# try/except ImportError) and uses when they are there, with the package that would give
# them: not oe-core's, so the recipe cannot RDEPEND on them (the layer depends on core
# only); an image that wants them installs them itself. The crash-path guard fails on an
# optional import that is neither in the standard library nor here.
OUTSIDE_CORE = {
    "ujson": "python3-ujson (meta-python): faster JSON for config.py",
    "zstandard": "python3-zstandard (meta-python): zstd before Python 3.14's compression.zstd",
}

PACKAGE_OF = {mod: pkg for pkg, mods in PACKAGE_MODULES.items() for mod in mods}
assert len(PACKAGE_OF) == sum(len(m) for m in PACKAGE_MODULES.values()), "a module twice"

KNOWN_PACKAGES = frozenset(PACKAGE_MODULES) | {"python3", "python3-modules", "python3-misc"}


def package_of(module, builtin_names=()):
    """The python3-* package for a module name (dotted or not), or None if unknown.

    builtin_names: the interpreter's sys.builtin_module_names; a module built into the
    interpreter that the table does not place elsewhere lives in libpython (core).
    """
    top = module.split(".", 1)[0]
    if top in PACKAGE_OF:
        return PACKAGE_OF[top]
    if top in builtin_names:
        return "python3-core"
    return None
