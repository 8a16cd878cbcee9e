"""mcd: the command-line front end: install and uninstall here, the dump
verbs (list, info, gdb, extract, verify, trace) in tool_verbs, their selection of
dumps in tool_select.

`mcd install` points the kernel's core_pattern at the handler and remembers
the previous values; `mcd uninstall` puts them back.  Both write core_pattern
under the lock its other users take (corepattern.CorePatternLock: the test
sessions, the demo, the benchmarks), waiting --wait seconds at most.  The
handler is started through a lean launcher (python -I -S) generated from
launcher.in; the live dumper's (minicoredumper_trigger) is written next to it.
"""

import argparse
import json
import os
import sys

from .corepattern import (PIPE_LIMIT, SOCKET, core_pattern, kernel_has_socket_mode,
                          read_sysctl, write_sysctl)

def state_dir():
    return os.environ.get("MCD_STATE_DIR", "/var/lib/minicoredumper")


# The programs mcd starts, each through a launcher made from launcher.in (the console
# scripts of runtime/pyproject.toml of the same names).
LAUNCHED = {"minicoredumper": "minicoredumper.cmd_handler",
            "minicoredumper_trigger": "minicoredumper.cmd_trigger",
            "minicoredumper_sockd": "minicoredumper.cmd_sockd"}


def render_launcher(python, sitedir, module="minicoredumper.cmd_handler"):
    """The launcher script text from launcher.in (the Yocto recipe fills it in with sed)."""
    with open(os.path.join(os.path.dirname(__file__), "launcher.in")) as f:
        text = f.read()
    return (text.replace("@PYTHON@", python).replace("@SITEDIR@", sitedir)
            .replace("@MODULE@", module))


def write_program(directory, name):
    """The launcher of program name (of LAUNCHED) in directory, for this Python and
    this package; returns its path."""
    from .files import replace_file
    sitedir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.path.join(directory, name)
    replace_file(path, render_launcher(sys.executable, sitedir, LAUNCHED[name]).encode(), 0o755)
    return path


def write_launcher(directory):
    """The handler's launcher in directory, and next to it minicoredumper_trigger's,
    where the handler looks for it (live dumps).  Returns the handler's path."""
    handler = write_program(directory, "minicoredumper")
    write_program(directory, "minicoredumper_trigger")
    return handler


def check_config(path):
    """Parse the main config and its recepts now (filling the handler's cache);
    returns the warnings (unknown keys, an on_dump that cannot run).  A config
    or recept that cannot be used raises UserError "FILE: what is wrong", so
    install refuses before it writes anything."""
    from .tool_verbs import UserError
    from . import config as C
    if not os.path.exists(path or C.DEFAULT_CONFIG):  # README: the built-in minimal dump
        return ["no %s: every crash gets the built-in minimal dump of the crashing thread "
                "in %s (give a config with --config)" % (path or C.DEFAULT_CONFIG,
                                                          C.DEFAULT_BASE_DIR)]
    cache = C.JsonCache()
    problems = []
    try:
        cfg = C.load_main_config(path or C.DEFAULT_CONFIG, problems, cache)
        if cfg.on_dump and not (os.path.isfile(cfg.on_dump[0])
                                and os.access(cfg.on_dump[0], os.X_OK)):
            problems.append("on_dump: %s is not an executable file (each dump logs that it "
                            "could not run it)" % cfg.on_dump[0])
        for rule in cfg.watch:
            recept = cfg.recept_path(rule)
            if not os.path.exists(recept):  # as the handler: the built-in minimal dump
                problems.append("%s: no such recept; crashes its rule matches get the "
                                "built-in minimal dump" % recept)
                continue
            C.load_recept(recept, problems, cache)
    except C.ConfigError as e:
        raise UserError("%s; nothing installed" % e) from None
    cache.save()
    return problems


def core_pattern_lock(args):
    """The lock of core_pattern's users (corepattern.CorePatternLock), taken: a
    test session, the demo or another mcd may hold it for a while; after
    --wait seconds UserError names the holder."""
    from .corepattern import CorePatternLock, LockBusy
    from .tool_verbs import UserError
    try:
        return CorePatternLock(wait=args.wait).acquire()
    except LockBusy as e:
        raise UserError(str(e)) from None


def cmd_install(args):
    problems = check_config(args.config)
    for p in problems:
        print("mcd: warning: %s" % p, file=sys.stderr)
    sd = state_dir()
    saved = os.path.join(sd, "saved-kernel-settings.json")
    with core_pattern_lock(args):  # nothing written before it is ours
        os.makedirs(sd, 0o755, exist_ok=True)
        handler = args.handler or write_launcher(sd)
        try:
            pattern = core_pattern(handler, args.config)
        except ValueError as e:
            print("mcd: %s" % e, file=sys.stderr)
            return 2
        if not os.path.exists(saved):
            old = {"core_pattern": read_sysctl("core_pattern"),
                   "core_pipe_limit": read_sysctl("core_pipe_limit")}
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
    argv = [write_program(sd, "minicoredumper_sockd")]
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
            cmdline = f.read()
        # Its launcher in sd (python -IS LAUNCHER ...), or the python -c of older mcds.
        mine = (os.path.join(sd, "minicoredumper_sockd").encode() in cmdline.split(b"\0")
                or b"minicoredumper.cmd_sockd" in cmdline)
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
    with core_pattern_lock(args):
        write_sysctl("core_pattern", old["core_pattern"])
        write_sysctl("core_pipe_limit", old["core_pipe_limit"])
        os.unlink(saved)
    for name in LAUNCHED:  # the launchers install wrote: they point into this installation
        try:
            os.unlink(os.path.join(state_dir(), name))
        except FileNotFoundError:
            pass  # never written (no --mode socket, say)
    print("core_pattern restored to %s" % old["core_pattern"])
    return 0


LOCK_WAIT = 10.0  # seconds install and uninstall wait for the core_pattern lock


def _seconds(text):
    try:
        n = float(text)
    except ValueError:
        n = -1
    if not n >= 0:
        raise argparse.ArgumentTypeError("%r is not a number of seconds (0 or more)" % text)
    return n


def build_parser():
    from . import __version__
    p = argparse.ArgumentParser(
        prog="mcd", description="minicoredumper control: install the crash handler, and "
        "list, show, debug, extract, verify and trace the dumps it writes (as coredumpctl does "
        "for systemd-coredump)", epilog="`mcd VERB --help` tells more; man mcd tells all.")
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
    for verb in (i, u):
        verb.add_argument("--wait", metavar="SECONDS", type=_seconds, default=LOCK_WAIT,
                          help="how long to wait for another user of core_pattern (a test "
                               "session, the demo, another mcd) to finish (default %g)"
                               % LOCK_WAIT)
    from .tool_verbs import add_verbs
    from .tool_rawstore import add_store_verb
    add_verbs(sub)
    add_store_verb(sub)
    return p


# Options that take a value: a value that starts with "-" ("--since -1h", "-A
# '-batch -ex bt'") is joined to its option, as getopt would take it.
VALUE_OPTIONS = {"--config", "--base-dir", "-S", "--since", "-U", "--until", "-n", "-F",
                 "--field", "-o", "--output", "--symbol-map", "-b", "--buffer", "--exe",
                 "--sysroot", "--debugger", "-A", "--debugger-arguments", "--handler",
                 "--mode", "--store", "--slot-size", "--debug-dir", "--wait"}


def _join_values(argv):
    out = []
    i = 0
    while i < len(argv):
        if argv[i] == "--":
            return out + argv[i:]
        if argv[i] in VALUE_OPTIONS and i + 1 < len(argv) and argv[i + 1].startswith("-") \
                and argv[i + 1] != "--":
            out.append(argv[i] + "=" + argv[i + 1])
            i += 2
            continue
        out.append(argv[i])
        i += 1
    return out


def parse_args(argv):
    """mcd's arguments.  "--" is argparse's (what follows is positional: an ID
    that starts with "-"), but for gdb: what follows "--" goes to the debugger
    (args.gdb_args) when matches came before it, else the first word after it
    is the ID and a second "--" starts the debugger's arguments.  Matches may
    come between options (mcd list crash3 -r 4242)."""
    rest = []
    dashdash = argv[:1] in (["gdb"], ["debug"]) and "--" in argv
    if dashdash:
        i = argv.index("--")
        argv, rest = argv[:i], argv[i + 1:]
    parser = build_parser()
    argv = _join_values(argv)
    verbs = parser._subparsers._group_actions[0].choices
    for word in argv:  # options before the verb are mcd's own: name an unknown one
        if word in verbs or not word.startswith("-") or word == "--":
            break
        if word not in parser._option_string_actions:
            parser.error("unrecognized arguments: %s" % word)
    args, extra = parser.parse_known_args(argv)
    if extra:
        error = getattr(args, "usage_error", parser.error)
        if not hasattr(args, "matches") or any(e.startswith("-") for e in extra):
            error("unrecognized arguments: %s" % " ".join(extra))
        args.matches += extra
    if args.func.__name__ == "cmd_gdb":
        if dashdash and not args.matches:
            if not rest:
                args.usage_error("the following arguments are required: ID")
            args.matches, rest = rest[:1], rest[1:]
            if rest[:1] not in ([], ["--"]):
                args.usage_error("after `-- ID`, the debugger's arguments follow a second --")
            rest = rest[1:]
        args.gdb_args = rest
    return args


def main(argv=None):
    from .tool_verbs import UserError
    args = parse_args(sys.argv[1:] if argv is None else list(argv))
    try:
        if getattr(args, "store", None) and hasattr(args, "matches"):  # a dump verb
            from .tool_rawstore import run_on_store
            return run_on_store(args)
        return args.func(args)
    except UserError as e:
        print("mcd: %s" % e, file=sys.stderr)
        return 1
    except BrokenPipeError:  # `mcd info ID | head -1`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        return 141  # as a C tool killed by SIGPIPE reports it to the shell
    except OSError as e:
        root = "; run as root" if isinstance(e, PermissionError) and os.geteuid() else ""
        where = "%s: " % e.filename if e.filename else ""
        print("mcd: %s%s%s" % (where, e.strerror or e, root), file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C: the shell shows it
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
