"""The kernel's core_pattern interface: its sysctls, the handler's
core_pattern line, and what the running kernel supports (newer specifiers,
the coredump socket).  Used by mcd install, the socket server and the tests.
Sources: core(5) and the kernel's Documentation/admin-guide/sysctl/kernel.rst."""

import os

PROC_SYS = "/proc/sys/kernel"
CORE_PATTERN_MAX = 127
PIPE_LIMIT = 0x7FFFFFFF
SPECIFIERS = "%P %u %g %s %t %h %e"


def read_sysctl(name):
    """A /proc/sys/kernel value, without the newline."""
    with open("%s/%s" % (PROC_SYS, name)) as f:
        return f.read().rstrip("\n")


def write_sysctl(name, value):
    """Set a /proc/sys/kernel value (root only: PermissionError otherwise)."""
    with open("%s/%s" % (PROC_SYS, name), "w") as f:
        f.write(value)


def kernel_version(release=None):
    """(major, minor) of the running kernel (or of a uname release string)."""
    release = release or os.uname().release
    parts = []
    for p in release.split(".")[:2]:
        digits = ""
        for ch in p:
            if not ch.isdigit():
                break
            digits += ch
        parts.append(int(digits or 0))
    return tuple(parts + [0] * (2 - len(parts)))


def identity_options(version=None):
    """The newer specifiers this kernel expands, as handler options (docs/FORMATS.md §1:
    accepted, never required): the dump mode %d (Linux 3.7) and the pidfd %F
    (Linux 6.16: the kernel installs the crashed process's pidfd as fd 3 of
    the helper and %F expands to that number)."""
    version = version or kernel_version()
    opts = []
    if version >= (3, 7):
        opts.append("--dump-mode=%d")
    if version >= (6, 16):
        opts.append("--pidfd=%F")
    return " ".join(opts)


SOCKET = "/run/minicoredumper/coredump.socket"  # minicoredumper_sockd's (cmd_sockd.py)


def kernel_has_socket_mode(version=None):
    """core_pattern "@PATH": the kernel writes cores to a listening socket (Linux 6.16)."""
    return (version or kernel_version()) >= (6, 16)


def kernel_has_request_protocol(version=None):
    """core_pattern "@@PATH": the request/ack protocol (Linux 6.17)."""
    return (version or kernel_version()) >= (6, 17)


def core_pattern(handler, config=None, options=None):
    """The core_pattern line for handler; ValueError if the kernel would truncate it.
    options: extra handler options (default: identity_options() of this kernel)."""
    options = identity_options() if options is None else options
    pattern = "|%s %s" % (handler, SPECIFIERS)
    if options:
        pattern += " " + options
    if config:
        pattern += " " + os.path.abspath(config)
    if len(pattern) > CORE_PATTERN_MAX:
        raise ValueError("core_pattern would be %d characters, the kernel takes %d; use a "
                         "shorter --config or --handler path" % (len(pattern), CORE_PATTERN_MAX))
    return pattern
