"""mcd: the command-line front end: install and uninstall here, the dump
verbs (list, info, gdb, extract, verify) in tool_verbs.

`mcd install` points the kernel's core_pattern at the handler and remembers
the previous values; `mcd uninstall` puts them back.  The handler is started
through a lean launcher (python -I -S) generated from launcher.in; the live
dumper's (minicoredumper_trigger) is written next to it.
"""

import argparse
import json
import os
import sys

PROC_SYS = "/proc/sys/kernel"
CORE_PATTERN_MAX = 127
PIPE_LIMIT = 0x7FFFFFFF
SPECIFIERS = "%P %u %g %s %t %h %e"


def state_dir():
    return os.environ.get("MCD_STATE_DIR", "/var/lib/minicoredumper")


def read_sysctl(name):
    """A /proc/sys/kernel value, without the newline."""
    with open("%s/%s" % (PROC_SYS, name)) as f:
        return f.read().rstrip("\n")


def write_sysctl(name, value):
    with open("%s/%s" % (PROC_SYS, name), "w") as f:
        f.write(value)


def render_launcher(python, sitedir, module="minicoredumper.cmd_handler"):
    """The launcher script text from launcher.in (also used by the Yocto recipe via sed)."""
    with open(os.path.join(os.path.dirname(__file__), "launcher.in")) as f:
        text = f.read()
    return (text.replace("@PYTHON@", python).replace("@SITEDIR@", sitedir)
            .replace("@MODULE@", module))


# The trigger prints what it did: its launcher keeps stdout and stderr.
TRIGGER_LAUNCHER = """#!{python} -IS
# minicoredumper_trigger: live dumps; written by mcd install next to the handler's launcher
import sys
sys.path.append("{sitedir}")
from minicoredumper.cmd_trigger import main
sys.exit(main())
"""


def write_launcher(directory):
    """The handler's launcher in directory, and next to it minicoredumper_trigger's,
    where the handler looks for it (live dumps).  Returns the handler's path."""
    sitedir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for name, text in (("minicoredumper", render_launcher(sys.executable, sitedir)),
                       ("minicoredumper_trigger", TRIGGER_LAUNCHER.format(
                           python=sys.executable, sitedir=sitedir))):
        from .files import replace_file
        replace_file(os.path.join(directory, name), text.encode(), 0o755)
    return os.path.join(directory, "minicoredumper")


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
    """The newer specifiers this kernel expands, as handler options (SPEC 1:
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


def check_config(path):
    """Parse the main config and its recepts now (filling the handler's cache);
    returns what is wrong or unknown, so mistakes show at install time."""
    from . import config as C
    cache = C.JsonCache()
    problems = []
    try:
        cfg = C.load_main_config(path or C.DEFAULT_CONFIG, problems, cache)
        for rule in cfg.watch:
            C.load_recept(cfg.recept_path(rule), problems, cache)
    except C.ConfigError as e:
        problems.append("%s (crashes will get a minimal dump until it is fixed)" % e)
    cache.save()
    return problems


def cmd_install(args):
    sd = state_dir()
    os.makedirs(sd, 0o755, exist_ok=True)
    saved = os.path.join(sd, "saved-kernel-settings.json")
    handler = args.handler or write_launcher(sd)
    try:
        pattern = core_pattern(handler, args.config)
    except ValueError as e:
        print("mcd: %s" % e, file=sys.stderr)
        return 2
    problems = check_config(args.config)
    for p in problems:
        print("mcd: warning: %s" % p, file=sys.stderr)
    if not os.path.exists(saved):
        old = {"core_pattern": read_sysctl("core_pattern"), "core_pipe_limit": read_sysctl("core_pipe_limit")}
        with open(saved, "w") as f:
            json.dump(old, f)
    write_sysctl("core_pipe_limit", str(PIPE_LIMIT))
    write_sysctl("core_pattern", pattern)
    if args.mode == "socket":
        if not kernel_has_socket_mode():
            print("mcd: the kernel (%s) has no coredump socket (Linux 6.16+): pipe mode "
                  "instead" % os.uname().release, file=sys.stderr)
        elif not args.no_start:
            return start_socket_server(sd, args.config, pattern)
    print("core_pattern = %s" % pattern)
    return 0


def start_socket_server(sd, config, pipe_pattern):
    """Start minicoredumper_sockd in the background; it points core_pattern at its
    socket while it runs and puts the pipe pattern back when it stops."""
    import subprocess
    import time
    sitedir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    argv = [sys.executable, "-I", "-S", "-c",
            "import sys; sys.path.append(%r); from minicoredumper.cmd_sockd import main; "
            "sys.exit(main())" % sitedir]
    if config:
        argv += ["--config", os.path.abspath(config)]
    with open(os.devnull, "r+b") as null:
        p = subprocess.Popen(argv + ["--socket", SOCKET], stdin=null, stdout=null, stderr=null,
                             start_new_session=True)
    with open(os.path.join(sd, "sockd.pid"), "w") as f:
        f.write("%d\n" % p.pid)
    end = time.monotonic() + 15
    while time.monotonic() < end and p.poll() is None:
        if read_sysctl("core_pattern").startswith("@"):
            print("core_pattern = %s (minicoredumper_sockd, pid %d; the pipe handler "
                  "%s while it is not running)" % (read_sysctl("core_pattern"), p.pid, pipe_pattern))
            return 0
        time.sleep(0.05)
    print("mcd: minicoredumper_sockd did not start (see the log); core_pattern stays %s"
          % pipe_pattern, file=sys.stderr)
    return 1


def stop_socket_server(sd):
    """Stop a server `mcd install --mode socket` started (it restores the pipe pattern)."""
    import signal
    import time
    path = os.path.join(sd, "sockd.pid")
    try:
        with open(path) as f:
            pid = int(f.read().strip())
    except (OSError, ValueError):
        return
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            mine = b"minicoredumper.cmd_sockd" in f.read()
        if mine:
            os.kill(pid, signal.SIGTERM)
            end = time.monotonic() + 10
            while time.monotonic() < end and os.path.exists("/proc/%d" % pid):
                try:
                    if os.waitpid(pid, os.WNOHANG)[0]:
                        break
                except ChildProcessError:
                    pass
                time.sleep(0.05)
    except OSError:
        pass
    os.unlink(path)


def cmd_uninstall(args):
    stop_socket_server(state_dir())
    saved = os.path.join(state_dir(), "saved-kernel-settings.json")
    try:
        with open(saved) as f:
            old = json.load(f)
    except OSError:
        print("mcd: nothing to restore (%s is missing); run `mcd install` first" % saved,
              file=sys.stderr)
        return 1
    write_sysctl("core_pattern", old["core_pattern"])
    write_sysctl("core_pipe_limit", old["core_pipe_limit"])
    os.unlink(saved)
    print("core_pattern restored to %s" % old["core_pattern"])
    return 0


def build_parser():
    from . import __version__
    p = argparse.ArgumentParser(prog="mcd", description="minicoredumper control")
    p.add_argument("--version", action="version", version="%(prog)s " + __version__)
    sub = p.add_subparsers(dest="verb", required=True)
    i = sub.add_parser("install", help="make the kernel pipe cores to minicoredumper")
    i.add_argument("--config", help="main config (default /etc/minicoredumper/minicoredumper.cfg.json)")
    i.add_argument("--handler", help="handler executable (default: a lean launcher in the state dir)")
    i.add_argument("--mode", choices=("pipe", "socket"), default="pipe",
                   help="socket: also start minicoredumper_sockd, the resident handler on "
                        "the kernel's coredump socket (Linux 6.16+; pipe mode on older "
                        "kernels and whenever the server is not running)")
    i.add_argument("--no-start", action="store_true",
                   help="with --mode socket: do not start the server (a service does)")
    i.set_defaults(func=cmd_install)
    u = sub.add_parser("uninstall", help="restore the previous core_pattern and core_pipe_limit")
    u.set_defaults(func=cmd_uninstall)
    from .tool_verbs import add_verbs
    add_verbs(sub)
    return p


def parse_args(argv):
    """mcd's arguments.  "--" is argparse's (what follows is positional: an ID
    that starts with "-"), but for gdb: what follows "--" goes to gdb
    (args.gdb_args) when the ID came before it, else the first word after it
    is the ID and a second "--" starts gdb's arguments."""
    rest = []
    if argv[:1] == ["gdb"] and "--" in argv:
        i = argv.index("--")
        argv, rest = argv[:i], argv[i + 1:]
    args = build_parser().parse_args(argv)
    if args.verb == "gdb":
        if args.id is None:
            if not rest:
                args.usage_error("the following arguments are required: ID")
            args.id, rest = rest[0], rest[1:]
            if rest[:1] not in ([], ["--"]):
                args.usage_error("after `-- ID`, gdb's arguments follow a second --")
            rest = rest[1:]
        args.gdb_args = rest
    return args


def main(argv=None):
    from .tool_verbs import UserError
    args = parse_args(sys.argv[1:] if argv is None else list(argv))
    try:
        return args.func(args)
    except UserError as e:
        print("mcd: %s" % e, file=sys.stderr)
        return 1
    except OSError as e:
        root = "; run as root" if isinstance(e, PermissionError) and os.geteuid() else ""
        where = "%s: " % e.filename if e.filename else ""
        print("mcd: %s%s%s" % (where, e.strerror or e, root), file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C: the shell shows it
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
