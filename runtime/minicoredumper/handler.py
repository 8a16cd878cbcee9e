"""The core_pattern pipe handler: read the crash, decide, write, publish.

    |/usr/sbin/minicoredumper %P %u %g %s %t %h %e [CONFIG]

The kernel starts us with only fd 0 (the core stream).  fds 1 and 2 go to
/dev/null before anything else is opened.  The crashed process stays in the
kernel until fd 0 is closed (core_pipe_limit != 0), so /proc/PID/mem is read
first and fd 0 closed as soon as nothing more is needed from the process.
A deadline bounds the whole run: at the soft deadline the core is finished
with what has been read; at the hard deadline (one second later) we exit.
"""

import os
import time

import _signal  # the C module: `signal` would import enum on the crash path

T0 = time.monotonic()
HARD_GRACE = 1.0


def _redirect_stdio():
    """fds 1 and 2 to /dev/null (the launcher has done it already; this covers
    other entry points such as the pip console script)."""
    try:
        null = os.open("/dev/null", os.O_RDWR)
    except OSError:
        return
    for fd in (1, 2):
        if null != fd:
            os.dup2(null, fd)
    if null > 2:
        os.close(null)


class Args:
    """argv: %P %u %g %s %t %h %e [CONFIG]; --key=value options may appear anywhere."""

    def __init__(self, argv):
        self.options = {}
        pos = []
        for a in argv:
            if a.startswith("--") and "=" in a:
                k, _, v = a[2:].partition("=")
                self.options[k] = v
            else:
                pos.append(a)
        if len(pos) < 7:
            raise ValueError("expected %%P %%u %%g %%s %%t %%h %%e [CONFIG], got %d arguments"
                             % len(pos))
        self.pid = int(pos[0])
        self.uid = int(pos[1])
        self.gid = int(pos[2])
        self.signal = int(pos[3])
        self.time = int(pos[4])
        self.hostname = pos[5]
        self.comm = pos[6]
        self.config = pos[7] if len(pos) > 7 else None
        # Newer kernels' specifiers, as options (SPEC 1: accepted, never required):
        # --pidfd=%F (the kernel installs the crashed process's pidfd as that fd)
        # and --dump-mode=%d (1 dumpable, 2 suidsafe: not dumpable, root-only).
        self.pidfd = _int_option(self.options.get("pidfd"))
        self.dump_mode = _int_option(self.options.get("dump-mode"))


def _int_option(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class Crash:
    """One crash: the state shared by the stages.

    The same code serves pipe mode (one process per crash: the stream is fd
    0, closing it releases the crashed process, the hard deadline is a
    SIGALRM) and the resident socket server (sockserver.py: the stream is the
    accepted connection, the server's release closes it, its parsed-config
    cache is kept between crashes and there is no SIGALRM: only the soft
    deadline, which every stage checks).

    pidfd: the crashed process's pidfd (%F in pipe mode, SO_PEERPIDFD in
    socket mode) or None; with it /proc/PID is read only while the pidfd's
    process still has PID (procfs.Process.check_identity).
    """

    def __init__(self, args, log, stream=0, release=None, t0=None, hard_deadline=True,
                 cache=None, pidfd=None, stream_ready=None):
        from .config import DEFAULT_DEADLINE
        self.args = args
        self.log = log
        self.stream = stream
        self._release = release
        self.t0 = T0 if t0 is None else t0
        self.hard_deadline = hard_deadline
        self.deadline = self.t0 + DEFAULT_DEADLINE
        self.released = False
        self.marks = []  # (stage, ms since start) for debug.txt
        self.cache = cache
        self.pidfd = pidfd if pidfd is not None else args.pidfd
        args.pidfd = self.pidfd
        if self.pidfd is not None:
            try:  # not for the live dumper we may spawn
                os.set_inheritable(self.pidfd, False)
            except OSError:
                self.pidfd = -1  # given but not open: check_identity fails, nothing is read
        self.dump_mode = args.dump_mode
        self.stream_ready = stream_ready  # called before the first read of the stream

    def mark(self, stage):
        self.marks.append((stage, (time.monotonic() - self.t0) * 1000))

    def expired(self):
        return time.monotonic() > self.deadline

    def set_deadline(self, seconds):
        self.deadline = self.t0 + seconds
        if self.hard_deadline:
            _signal.signal(_signal.SIGALRM, self._hard_deadline)
            _signal.setitimer(_signal.ITIMER_REAL,
                              max(0.01, self.deadline + HARD_GRACE - time.monotonic()))

    def _hard_deadline(self, signum, frame):
        self.log.error("hard deadline passed after %.1f s: exiting" % (time.monotonic() - self.t0))
        os._exit(3)

    def release(self):
        """Let the kernel reap the crashed process."""
        if not self.released:
            self.released = True
            if self._release is not None:
                self._release()
                return
            try:
                os.close(self.stream)
            except OSError:
                pass

    def same_process(self, proc, when):
        """True if proc's PID is still the crashed process (always without a pidfd)."""
        if proc.check_identity():
            return True
        self.log.error("PID %d is no longer the crashed process (%s): not dumped" % (
            self.args.pid, when))
        return False

    def run(self):
        from .config import (JsonCache, DEFAULT_CONFIG, fallback_recept,
                             main_config_or_defaults, use_cache)
        args, log = self.args, self.log
        warnings = []
        if self.cache is None:
            self.cache = JsonCache()
        use_cache(self.cache)
        cfg, problem = main_config_or_defaults(args.config or DEFAULT_CONFIG, warnings)
        recept = None
        if problem is not None:
            log.error("main config unusable (%s); minimal dump with built-in defaults" % problem)
            recept = fallback_recept()
        self.set_deadline(cfg.deadline)
        from .procfs import Process, ProcessGone
        try:
            proc = Process(args.pid, pidfd=self.pidfd)
        except ProcessGone as e:
            log.error("%s: not dumped" % e)
            return 1
        except OSError as e:
            log.error("/proc/%d: %s: not dumped" % (args.pid, e.strerror))
            return 1
        try:
            return self._decide(cfg, recept, proc, warnings)
        finally:
            proc.close()

    def _decide(self, cfg, recept, proc, warnings):
        from .config import ConfigError, fallback_recept, load_recept
        args, log = self.args, self.log
        exe = proc.exe()
        comm = args.comm or proc.comm()
        if not self.same_process(proc, "after reading exe and comm"):
            return 1
        if recept is None:
            recept_path = cfg.match(exe, comm)
            if recept_path is None:
                log.info("no watch rule matches exe=%s comm=%s: not dumped" % (exe, comm))
                return 0
            try:
                recept = load_recept(recept_path, warnings)
            except ConfigError as e:
                log.error("recept unusable (%s); minimal dump of the crashing thread" % e)
                recept = fallback_recept()
        for w in warnings[:3]:
            log.warning(w)
        return self.dump(cfg, recept, proc, exe, comm, warnings)

    def dump(self, cfg, recept, proc, exe, comm, warnings):
        from .kernelcore import read_kernel_core
        from .dumpdir import DumpDir, clean_leftovers, dump_name
        from .dumpwriter import DumpWriter
        from .policy import StoragePolicy
        args, log = self.args, self.log
        base = cfg.base_dir
        if not os.path.isdir(base):
            try:
                os.makedirs(base, 0o700)
                log.info("created base_dir %s" % base)
            except OSError as e:
                log.error("base_dir %s cannot be created (%s): not dumped" % (base, e.strerror))
                return 1
        policy = StoragePolicy(cfg, log.info)
        admitted, why = policy.admit(exe)
        if not admitted:
            log.warning("%s: not dumped" % why)  # nothing written, released at once
            return 0
        if why:
            log.warning(why)
        self.mark("config")
        if self.dump_mode == SUID_SAFE:
            log.info("%s is not dumpable (setuid or similar; fs.suid_dumpable = 2): "
                     "root-only artefacts" % (exe or comm))
        if self.stream_ready is not None:
            self.stream_ready()
        kc = read_kernel_core(self.stream)
        if not args.signal and kc.siginfo:  # socket mode: the signal is in the notes
            args.signal = kc.siginfo[0]
        self.mark("kernel notes")
        clean_leftovers(base, log.info)
        try:
            policy.make_room(recept["max_dump_size"])
            dd = DumpDir(base, dump_name(comm, args.time, args.pid))
        except OSError as e:
            log.error("base_dir %s is not writable (%s): not dumped" % (base, e.strerror))
            return 1
        live = None
        try:
            writer = DumpWriter(self, recept, proc, kc, dd, exe, comm)
            writer.read_process()
            same = self.same_process(proc, "after reading its memory")
            proc.close()
            self.release()
            if not same:
                _discard(dd)
                return 1
            self.mark("released")
            if recept["live_dumper"]:  # after the release: it competes for the CPUs
                live = self.start_live_dump(cfg, recept, dd)
            writer.after_release()
            self.cache.save()
            problems = [m for lvl, m in writer.plan.log if lvl == "warning"]
            for m in problems[:3]:
                log.warning(m)
            if len(problems) > 3:
                log.warning("%d more warnings (write_debug_log shows all)" % (len(problems) - 3))
            writer.finish(warnings)
            if live is not None:
                pid, live = live, None
                self.finish_live_dump(pid, dd, writer.budget)
            final = dd.publish()
        except OSError as e:
            self.release()
            _kill_live_dump(live, log)
            _discard(dd)
            log.error("writing %s failed (%s): nothing kept" % (dd.name, e.strerror or e))
            return 1
        except BaseException:
            self.release()
            _kill_live_dump(live, log)
            _discard(dd)
            raise
        if self.dump_mode == SUID_SAFE:
            _root_only(final, log)
        policy.enforce_total(final)
        cut = " (deadline cut the dump)" if self.expired() else ""
        log.info("dumped %s to %s in %.0f ms, peak RSS %s kB%s" % (
            comm, final, (time.monotonic() - self.t0) * 1000, _peak_rss_kb(), cut))
        return 0

    def start_live_dump(self, cfg, recept, dd):
        """The PID of the live dumper working on dd beside us, or None (livespawn)."""
        import sys
        from .livespawn import start
        return start(dd.path, recept["dump_scope"], self.args.pid, cfg.path, sys.argv[0],
                     self.log)

    def finish_live_dump(self, pid, dd, budget):
        """Wait for the live dumper until the deadline (killed after it); its
        files join the integrity record, what does not fit the budget (what
        is left of it after the crashed process's own files) is dropped."""
        from .livespawn import wait
        wait(pid, self.deadline, self.log)
        for name in dd.adopt("dumps", budget):
            self.log.warning("live dump of %s dropped: over max_dump_size" % name)

    def fat_core(self, sink, head):
        """Everything the kernel writes: our copy of its header, then the rest of the stream."""
        sink.write(head)
        page = bytes(4096)
        while not self.expired():
            b = os.read(self.stream, 1 << 20)
            if not b:
                break
            for off in range(0, len(b), 4096):
                block = b[off:off + 4096]
                if block == page:
                    sink.skip(4096)
                else:
                    sink.write(block)
        sink.close()


SUID_SAFE = 2  # %d of a process that is not dumpable, under fs.suid_dumpable = 2


def _root_only(path, log):
    """Every file and directory under path owned by root, none readable by group
    or others (they are created 0600/0700 already: this is the check)."""
    fixed = 0
    for top, dirs, files in os.walk(path):
        for name in [""] + dirs + files:
            p = os.path.join(top, name) if name else top
            try:
                st = os.lstat(p)
                if st.st_uid != 0 or st.st_gid != 0:
                    os.lchown(p, 0, 0)
                    fixed += 1
                if st.st_mode & 0o077 and not os.path.islink(p):
                    os.chmod(p, st.st_mode & 0o700)
                    fixed += 1
            except OSError:
                pass
    if fixed:
        log.warning("%s: %d permission(s) tightened to root-only" % (path, fixed))


def _peak_rss_kb():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return line.split()[1]
    except OSError:
        pass
    return "?"


def _kill_live_dump(pid, log):
    """Stop a live dumper still running (the dump is being discarded)."""
    if pid is not None:
        from .livespawn import wait
        wait(pid, 0, log)


def _discard(dd):
    try:
        dd.discard()
    except OSError:
        pass


def main(argv=None):
    import sys
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["--version"]:  # a person asking: the kernel passes 7 or more arguments
        from . import __version__
        print("minicoredumper " + __version__)
        return 0
    _redirect_stdio()
    from .log import Logger
    log = Logger()
    try:
        args = Args(argv)
    except ValueError as e:
        log.error("bad invocation: %s" % e)
        return 2
    log.set_pid(args.pid)
    crash = Crash(args, log)
    try:
        return crash.run()
    except BaseException:
        log.exception("handler failed")
        return 1
    finally:
        crash.release()


if __name__ == "__main__":
    raise SystemExit(main())
