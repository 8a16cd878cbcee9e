"""minicoredumper_trigger: live dumps of the registered processes (docs/FORMATS.md §8).

    minicoredumper_trigger [--config=PATH] [--crashed=PID] [--max-pause=MS]
                           [--state=PATH] DIR SCOPE

For every process in the registry daemon's list but --crashed, writes the
data it registered with a dump_scope up to SCOPE to DIR/dumps/PID/; DIR is
created (0700) if missing.  A process's recept comes from the main config by
its own exe and comm (a process no watch rule matches is not dumped; with no
usable main config, built-in defaults) and sets how much of its list is
read.  --max-pause (default: the main config's live_max_pause_ms) bounds how
long each process is stopped.  Prints one line per process, its pause or why
it was skipped, and logs the same.

The handler runs it (os.posix_spawn) when the crashed process's recept sets
live_dumper, with --crashed and the crash's half-built directory, and
publishes the directory after it has finished.
"""

import os
import sys

from . import config as C
from . import live_pidlist as pidlist
from .live_dump import Skip, dump_process, release_stragglers
from .log import Logger


def recept_chooser(cfg, log, json_cache=None):
    """recept_for(exe, comm): the recept of a process per the watch rules, or None."""
    cache = {}

    def recept_for(exe, comm):
        path = cfg.match(exe, comm)
        if path is None:
            return None
        if path not in cache:
            try:
                cache[path] = C.load_recept(path, [], json_cache)
            except C.ConfigError as e:
                log.warning("recept unusable (%s): built-in defaults" % e)
                cache[path] = C.fallback_recept()
        return cache[path]
    return recept_for


USAGE = ("usage: minicoredumper_trigger [--config=PATH] [--crashed=PID] [--max-pause=MS] "
         "[--state=PATH] DIR SCOPE")


def parse_args(argv):
    """(options, DIR, SCOPE); ValueError says what is wrong.  No argparse: the
    handler waits for us, and argparse (with re and gettext) costs ~13 ms."""
    opts = {"config": C.DEFAULT_CONFIG, "crashed": None, "max-pause": None,
            "state": pidlist.STATE}
    pos = []
    args = iter(argv)
    for a in args:
        if not a.startswith("--"):
            pos.append(a)
            continue
        key, eq, value = a[2:].partition("=")
        if key not in opts:
            raise ValueError("unknown option %s" % a)
        opts[key] = value if eq else next(args, None)
        if opts[key] is None:
            raise ValueError("%s needs a value" % a)
    if len(pos) != 2:
        raise ValueError("expected DIR SCOPE")
    scope = int(pos[1], 0)
    if not 0 <= scope <= C.U32_MAX:
        raise ValueError("SCOPE %s is not a 32-bit unsigned number" % pos[1])
    if opts["crashed"] is not None:
        opts["crashed"] = int(opts["crashed"])
    if opts["max-pause"] is not None:
        opts["max-pause"] = float(opts["max-pause"])
        if not opts["max-pause"] > 0:
            raise ValueError("--max-pause must be > 0")
    return opts, pos[0], scope


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["-h"], ["--help"]):
        print(USAGE + "\n\n" + __doc__.split("\n\n")[2])
        return 0
    if argv[:1] == ["--version"]:
        from . import __version__
        print("minicoredumper_trigger " + __version__)
        return 0
    try:
        opts, directory, scope = parse_args(argv)
    except ValueError as e:
        print("minicoredumper_trigger: %s\n%s" % (e, USAGE), file=sys.stderr)
        return 2
    log = Logger("minicoredumper_trigger")
    if opts["crashed"] is not None:
        log.set_pid(opts["crashed"])

    def say(msg, level="info"):
        print(msg)
        log.log(level, msg)

    json_cache = C.JsonCache()  # what the handler parsed: no JSON import
    try:
        cfg = C.load_main_config(opts["config"], [], json_cache)
        recept_for = recept_chooser(cfg, log, json_cache)
        max_pause = cfg.live_max_pause
    except C.ConfigError as e:
        say("main config unusable (%s): built-in defaults for every process" % e, "warning")
        defaults = C.parse_recept({}, [])
        recept_for = lambda exe, comm: defaults  # noqa: E731
        max_pause = C.DEFAULT_LIVE_MAX_PAUSE_MS / 1000.0
    if opts["max-pause"] is not None:
        max_pause = opts["max-pause"] / 1000.0
    try:
        pids = pidlist.registered(opts["state"], exclude=(opts["crashed"],))
    except pidlist.StateError as e:
        say("no registry list (%s): is minicoredumper_regd running?" % e, "warning")
        return 1
    if not pids:
        print("no registered process to dump")
        return 0
    try:
        os.makedirs(directory, 0o700, exist_ok=True)
    except OSError as e:
        say("%s: %s" % (directory, e.strerror), "error")
        return 1
    for pid in pids:
        try:
            say(str(dump_process(pid, directory, scope, recept_for, max_pause)))
        except Skip as e:
            say("live dump of %d skipped: %s" % (pid, e))
        except Exception as e:  # one process's trouble must not cost the others
            print("live dump of %d failed: %s" % (pid, e))
            log.exception("live dump of %d failed" % pid)
        finally:
            release_stragglers()
    release_stragglers(max_pause)
    return 0


if __name__ == "__main__":
    sys.exit(main())
