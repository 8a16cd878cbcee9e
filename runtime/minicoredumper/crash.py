"""The crash pipeline, READ -> DECIDE -> WRITE -> PUBLISH, for one crash.

Shared by the pipe handler (cmd_handler.py: the kernel starts one process per
crash) and the socket server (cmd_sockd.py: resident workers, one crash at a
time each).  They differ only in how the crash arrived, which an Arrival
says: who crashed, which config, the stream the core comes on, how the
crashed process is let go, and whether a SIGALRM bounds the run.

Crash.dump() is one call per stage.  Every reason a crash is not dumped is a
NotDumped raised where it is found and logged once, with the PID, by
Crash.run(); whatever happens, the crashed process is released.
"""

import os
import time

import _signal  # the C module: `signal` would import enum on the crash path

from . import deadline

HARD_GRACE = 1.0  # seconds past the deadline before the pipe handler stops (HardDeadline)
SALVAGE_GRACE = 0.5  # seconds after that to publish what is complete, then it exits
SUID_SAFE = 2  # dump mode (%d) of a process that is not dumpable, fs.suid_dumpable = 2
HOOK_ENV = "MINICOREDUMPER_ON_DUMP"  # in the environment of on_dump hooks (publish_hook)


class NotDumped(Exception):
    """This crash gets no dump; str() says why.  level: how loud the one log
    line is; status: the handler's exit status (0: nothing went wrong)."""

    def __init__(self, reason, level="error", status=1):
        Exception.__init__(self, reason)
        self.level = level
        self.status = status


class HardDeadline(BaseException):
    """Raised by the SIGALRM handler HARD_GRACE seconds past the deadline, wherever
    the pipe handler is; write_dump catches it and publishes what is complete
    (a BaseException: no `except Exception` on the way swallows it)."""


class Arrival:
    """How one crash reached us: the kernel's facts about it and its transport.

    pid, uid, gid, signal, time (seconds since the epoch), hostname, comm: as
    core_pattern's %P %u %g %s %t %h %e (signal 0: read it from the core's
    NT_SIGINFO); time_given: %t's text as the kernel gave it (None: no %t).
    config: the main config's path or None (the default).
    pidfd: the crashed process's pidfd or None; dump_mode: %d or None.
    stream: the fd the core comes on; release(): let the kernel reap the
    process (default: close stream); stream_ready(): called before the first
    read of the stream.  t0: time.monotonic() at arrival; hard_deadline: a
    SIGALRM stops the run HARD_GRACE seconds past the deadline (HardDeadline:
    what is complete is published), and ends the process SALVAGE_GRACE later."""

    def __init__(self, pid, uid, gid, signal, time, hostname, comm, config=None,
                 pidfd=None, dump_mode=None, stream=0, release=None, stream_ready=None,
                 t0=None, hard_deadline=True, time_given=None):
        self.pid, self.uid, self.gid, self.signal = pid, uid, gid, signal
        self.time, self.hostname, self.comm, self.config = time, hostname, comm, config
        self.time_given = time_given
        self.pidfd, self.dump_mode = pidfd, dump_mode
        self.stream, self.release, self.stream_ready = stream, release, stream_ready
        self.t0 = t0
        self.hard_deadline = hard_deadline


class Crash:
    """One crash on its way through the stages; cache: the parsed-config cache
    (config.JsonCache) kept by a resident server between crashes, or None."""

    def __init__(self, arrival, log, cache=None):
        from .config import DEFAULT_DEADLINE
        self.arrival = arrival
        self.log = log
        self.t0 = time.monotonic() if arrival.t0 is None else arrival.t0
        self.deadline = self.t0 + DEFAULT_DEADLINE
        deadline.start(self.t0, DEFAULT_DEADLINE)
        self.late = None  # the stage in which the deadline passed
        self.no_core = None  # why the dump has no core, when the budget left it none
        self.no_core_rung = None  # what stands in for it (the stack-trace record), or None
        self.released = False
        self.marks = []  # (stage, ms since arrival) for debug.txt
        self.cmdline = ""  # the crashed process's, once read (the journal entry)
        self.hook_crashed = False  # the crashed process is an on_dump hook's (no hook then)
        self.cache = cache
        self.base_fd = None  # base_dir's fd once admit() opened it (closed by run())
        self.pidfd = arrival.pidfd
        if self.pidfd is not None:
            try:  # not for the live dumper we may spawn
                os.set_inheritable(self.pidfd, False)
            except OSError:
                self.pidfd = -1  # given but not open: check_identity fails, nothing is read

    # --- the run --------------------------------------------------------------
    def run(self):
        """Dump the crash; returns the exit status.  The crashed process is
        released whatever happens."""
        try:
            self.dump()
            return 0
        except NotDumped as e:
            self.log.log(e.level, "not dumped: %s" % e)
            return e.status
        except HardDeadline:  # before the dump directory: nothing to keep
            self.log.error("hard deadline passed after %.1f s: nothing kept"
                           % (time.monotonic() - self.t0))
            return 3
        finally:
            self.release()
            if self.base_fd is not None:
                os.close(self.base_fd)
                self.base_fd = None
            deadline.stop()  # a process that handles more crashes starts afresh

    def dump(self):
        """One call per stage."""
        cfg, recept, warnings = self.load_config()                   # DECIDE: inputs
        with self.open_process() as proc:                            # READ: /proc/PID
            exe, comm, recept = self.choose_recept(cfg, recept, proc, warnings)  # DECIDE
            policy = self.admit(cfg, recept, exe, comm)              # DECIDE: storage
            kc = self.read_kernel_notes()                            # READ: the stream
            dd = self.open_dump_dir(cfg, policy, recept, comm)       # PUBLISH: .part
            final = self.write_dump(cfg, recept, proc, kc, dd, exe, comm, warnings)
        self.after_publish(final, policy, exe, comm)                 # PUBLISH: policy
        if cfg.on_dump and cfg.store is None:  # a raw store has no directory to give it
            self.start_hook(cfg, final)                              # PUBLISH: on_dump

    # --- the stages -----------------------------------------------------------
    def load_config(self):
        """(main config, recept or None, warnings); a config that cannot be
        used gives the built-in defaults and the minimal recept."""
        from .config import DEFAULT_CONFIG, JsonCache, fallback_recept, main_config_or_defaults
        if self.cache is None:
            self.cache = JsonCache()
        warnings = []
        cfg, problem = main_config_or_defaults(self.arrival.config or DEFAULT_CONFIG, warnings,
                                               self.cache)
        recept = None
        if problem is not None:
            self.log.error("main config unusable (%s); minimal dump with built-in defaults"
                           % problem)
            recept = fallback_recept()
        self.log.set_level(cfg.log_level)
        self.log.use_journal(cfg.journal_socket)
        self.set_deadline(cfg.deadline)
        return cfg, recept, warnings

    def open_process(self):
        """The crashed process's /proc/PID (read_process.Process, a context manager)."""
        from .read_process import Process, ProcessGone
        try:
            return Process(self.arrival.pid, pidfd=self.pidfd)
        except ProcessGone as e:
            raise NotDumped(str(e)) from None
        except OSError as e:
            raise NotDumped("/proc/%d: %s" % (self.arrival.pid, e.strerror)) from None

    def choose_recept(self, cfg, recept, proc, warnings):
        """(exe, comm, recept): a process whose RLIMIT_CORE forbids a core (the
        main config's rlimit_core says which limit counts) gets none; else the
        watch rule that matches the process decides."""
        from .config import ConfigError, fallback_recept, load_recept
        exe = proc.exe()
        comm = self.arrival.comm or proc.comm()
        limits = (proc.rlimits() or {}).get("core") if cfg.rlimit_core != "ignore" else None
        self.check_identity(proc, "after reading exe and comm")
        if limits:
            limit = limits[cfg.rlimit_core == "hard"]  # [soft, hard], each int or "unlimited"
            if isinstance(limit, int) and limit < os.sysconf("SC_PAGE_SIZE"):
                raise NotDumped("the %s RLIMIT_CORE of %s is %d, less than a page: no core "
                                "wanted (rlimit_core in the main config)"
                                % (cfg.rlimit_core, exe or comm, limit), level="info", status=0)
        if recept is None:
            recept_path = cfg.match(exe, comm)
            if recept_path is None:
                raise NotDumped("no watch rule matches exe=%s comm=%s" % (exe, comm),
                                level="info", status=0)
            try:
                recept = load_recept(recept_path, warnings, self.cache)
            except ConfigError as e:
                self.log.error("recept unusable (%s); minimal dump of the crashing thread" % e)
                recept = fallback_recept(cfg.fallback_max_dump_size)
        for w in warnings[:3]:
            self.log.warning(w)
        return exe, comm, recept

    def admit(self, cfg, recept, exe, comm):
        """The storage policy (decide_storage.StoragePolicy; None when the config
        sets no limit) once base_dir exists and the rate limit lets this
        executable dump; with a raw store neither (its ring is its limit)."""
        policy = None
        if cfg.store is None:  # a raw store needs neither (docs/FORMATS.md §12)
            self.base_fd = self.open_base_dir(cfg.base_dir)
            if cfg.storage_limits:  # imported only when there is a limit to keep
                from .decide_storage import StoragePolicy
                policy = StoragePolicy(cfg, self.log.info, self.base_fd)
                admitted, why = policy.admit(exe, self.deadline)
                if not admitted:  # nothing written, released at once
                    raise NotDumped(why, level="warning", status=0)
                if why:
                    self.log.warning(why)
        self.mark("config")
        if self.arrival.dump_mode == SUID_SAFE:
            self.log.info("%s is not dumpable (setuid or similar; fs.suid_dumpable = 2): "
                          "root-only artefacts" % (exe or comm))
        return policy

    def open_base_dir(self, base):
        """base_dir's fd, the directory created (0700) when missing; NotDumped
        when it cannot be, or when someone other than root could change it
        (publish_dumpdir.open_base_dir: then nothing is written at all)."""
        from .files import Untrusted
        from .publish_dumpdir import open_base_dir
        try:
            fd, made = open_base_dir(base)
        except Untrusted as e:
            raise NotDumped("base_dir %s refused: %s (it and every directory above it must "
                            "be root's and writable by nobody else)" % (base, e)) from None
        except OSError as e:
            raise NotDumped("base_dir %s cannot be opened or created (%s)"
                            % (base, e.strerror or e)) from None
        if made:
            self.log.info("created base_dir %s" % base)
        return fd

    def read_kernel_notes(self):
        """The kernel's ELF header, program headers and notes (read_corestream.KernelCore)."""
        from .read_corestream import CoreFormatError, read_kernel_core
        try:
            if self.arrival.stream_ready is not None:
                self.arrival.stream_ready()
            kc = read_kernel_core(self.arrival.stream)
        except CoreFormatError as e:
            raise NotDumped("the kernel's core stream: %s" % e) from None
        except OSError as e:  # a refused acknowledgement, a read timed out at the deadline
            raise NotDumped("the kernel's core stream: %s" % (e.strerror or e)) from None
        if not self.arrival.signal and kc.siginfo:  # socket mode: the signal is in the notes
            self.arrival.signal = kc.siginfo[0]
        self.mark("kernel notes")
        return kc

    def open_dump_dir(self, cfg, policy, recept, comm):
        """The dump's half-built directory (publish_dumpdir.DumpDir), after what a killed
        handler left behind is gone and old dumps made room; with a raw store, the
        record on its way there (publish_rawstore.RawDump)."""
        from .publish_dumpdir import DumpDir, clean_leftovers, dump_name
        name = dump_name(comm, self.arrival.time, self.arrival.pid)
        if cfg.store is not None:
            from .publish_rawstore import RawDump
            from .rawstore import StoreError
            try:
                return RawDump(cfg.store, name)
            except StoreError as e:
                raise NotDumped("raw store %s" % e) from None
        clean_leftovers(self.base_fd, self.log.info)
        try:
            if policy is not None:
                policy.make_room(recept["max_dump_size"])
            return DumpDir(cfg.base_dir, name, self.base_fd)
        except OSError as e:
            raise NotDumped("base_dir %s is not writable (%s)" % (cfg.base_dir, e.strerror)) \
                from None

    def write_dump(self, cfg, recept, proc, kc, dd, exe, comm, warnings):
        """Read the process, release it, write every artefact and publish dd;
        returns the published path.  dd is discarded if anything fails."""
        from .write_artefacts import DumpWriter
        live = None
        modules = None
        writer = None
        try:
            modules = self.find_modules(proc)                              # READ
            plan = self.plan_dump(recept, proc, kc, modules)               # DECIDE
            writer = DumpWriter(self, recept, kc, dd, exe, comm, plan, modules)
            writer.before_release(proc)                                    # READ (+ WRITE)
            skipped = proc.mem.skip_report()
            if skipped:
                self.log.warning(skipped)
            self.cmdline = writer.cmdline
            if cfg.on_dump:
                self.hook_crashed = from_hook(proc)
            same = proc.check_identity()
            proc.close()
            self.release()
            if not same:
                raise NotDumped("PID %d is no longer the crashed process (after reading "
                                "its memory)" % self.arrival.pid)
            self.mark("released")
            if recept["live_dumper"] and dd.live_dumps:  # after the release: it competes
                live = self.start_live_dump(cfg, recept, dd)  # for the CPUs
            writer.after_release(warnings)
            from .write_summary import no_core
            self.no_core = no_core(writer.dumped.get("core"))
            if self.no_core is not None:
                self.no_core_rung = writer.dumped.get("core_content")
            self.cache.save()
            if live is not None:
                pid, live = live, None
                self.finish_live_dump(pid, dd, writer.budget)
            return dd.publish()
        except BaseException as e:
            self.release()
            self.kill_live_dump(live)
            if isinstance(e, HardDeadline):
                return self.publish_at_hard_deadline(dd, writer, kc)
            dd.discard()
            if isinstance(e, OSError):
                raise NotDumped("writing %s failed (%s): nothing kept"
                                % (dd.name, e.strerror or e)) from None
            raise
        finally:
            if modules is not None:
                modules.close()

    def find_modules(self, proc):
        """The ELF objects the process has mapped (read_modules.Modules), their
        files opened now, while the process is held; closed by write_dump."""
        from .read_modules import find_modules
        modules = find_modules(proc, proc.mem, self.deadline, self.log.warning)
        self.mark("modules")
        return modules

    def plan_dump(self, recept, proc, kc, modules):
        """What to dump of the process (decide_plan.Plan)."""
        from .decide_plan import Planner
        plan = Planner(kc, proc, modules, recept).build()
        self.mark("plan")
        return plan

    def after_publish(self, final, policy, exe, comm):
        """Root-only artefacts for a process that is not dumpable; the storage
        policy's total limits; the one line that says where the dump went (with
        journald, its structured entry: docs/FORMATS.md §11)."""
        from .linux import SIGNAL_NAMES
        from .log import DUMP_MESSAGE_ID
        if self.arrival.dump_mode == SUID_SAFE and os.path.isdir(final):  # not a raw store's
            root_only(final, self.log)
        if policy is not None:
            policy.enforce_total(final)
        self.mark("published")
        cut = " (deadline cut the dump: passed in stage %s)" % self.late if self.late else ""
        if self.no_core:
            cut += "; no core: %s (%s)" % (self.no_core, "the summaries and the %s" %
                                           self.no_core_rung if self.no_core_rung else
                                           "the summaries alone")
        a = self.arrival
        fields = [("MESSAGE_ID", DUMP_MESSAGE_ID), ("COREDUMP_PID", a.pid),
                  ("COREDUMP_UID", a.uid), ("COREDUMP_GID", a.gid),
                  ("COREDUMP_SIGNAL", a.signal),
                  ("COREDUMP_SIGNAL_NAME", SIGNAL_NAMES.get(a.signal, "")),
                  ("COREDUMP_EXE", exe), ("COREDUMP_COMM", comm),
                  ("COREDUMP_CMDLINE", self.cmdline),
                  ("COREDUMP_TIMESTAMP", a.time * 1000000),  # microseconds, as systemd's
                  ("COREDUMP_HOSTNAME", a.hostname), ("MINICOREDUMPER_DIRECTORY", final)]
        self.log.log("info", "dumped %s to %s in %.0f ms, peak RSS %s kB%s" % (
            comm, final, (time.monotonic() - self.t0) * 1000, peak_rss_kb(), cut),
            [(k, v) for k, v in fields if v != ""])  # what is not known is left out

    def start_hook(self, cfg, final):
        """The main config's on_dump program on the published dump, in a process
        of its own that this one does not wait for (publish_hook); not on the dump
        of a hook's own crash, which would start the hook again and again."""
        if self.hook_crashed:
            self.log.warning("on_dump not run: the crashed process was started by an "
                             "on_dump hook (%s in its environment)" % HOOK_ENV)
            return
        from .publish_hook import start
        start(cfg.on_dump, final, cfg.on_dump_timeout, self.log)

    # --- helpers of the stages ---------------------------------------------
    def mark(self, stage):
        """Stage done: its time for debug.txt; the first stage that ends past the
        deadline is the one the "dumped" line names."""
        self.marks.append((stage, (time.monotonic() - self.t0) * 1000))
        if self.late is None and deadline.expired():
            self.late = stage

    def expired(self):
        return deadline.expired()

    def set_deadline(self, seconds):
        self.deadline = self.t0 + seconds
        deadline.start(self.t0, seconds)
        if self.arrival.hard_deadline:
            _signal.signal(_signal.SIGALRM, self._hard_deadline)
            _signal.setitimer(_signal.ITIMER_REAL,
                              max(0.01, self.deadline + HARD_GRACE - time.monotonic()))

    def _hard_deadline(self, signum, frame):
        """SIGALRM at the hard deadline: HardDeadline where the handler is, and
        SALVAGE_GRACE seconds later (publishing what is complete took too long) exit."""
        _signal.signal(_signal.SIGALRM, self._exit_now)
        _signal.setitimer(_signal.ITIMER_REAL, SALVAGE_GRACE)
        raise HardDeadline()

    def _exit_now(self, signum, frame):
        self.log.error("hard deadline passed after %.1f s: exiting" % (time.monotonic() - self.t0))
        os._exit(3)

    def publish_at_hard_deadline(self, dd, writer, kc):
        """Publish dd with what is complete: the files closed so far (half-written
        ones removed), summary.txt from what was read when it is not written yet
        (write_artefacts.DumpWriter.salvage_summary, else the arrival's facts),
        the integrity record.  Returns the published path."""
        self.log.error("hard deadline passed after %.1f s: publishing what was read"
                       % (time.monotonic() - self.t0))
        if self.late is None:
            self.late = "hard deadline"
        drop = getattr(dd, "drop_unrecorded", None)  # a raw store's RawDump has no files
        if drop is not None:                         # until its record is written
            drop()
        if "summary.txt" not in dd.records and not (writer and writer.salvage_summary()):
            from .write_summary import one_line
            a = self.arrival
            dd.write_file("summary.txt", (
                "%s (pid %d, uid %d, gid %d) killed by signal %d\ntime %d, host %s; "
                "the hard deadline passed before more was read\n" % (
                    one_line(a.comm), a.pid, a.uid, a.gid, a.signal or (kc.siginfo or [0])[0],
                    a.time, one_line(a.hostname))).encode("utf-8", "replace"))
        return dd.publish()

    def release(self):
        """Let the kernel reap the crashed process (once)."""
        if self.released:
            return
        self.released = True
        if self.arrival.release is not None:
            self.arrival.release()
            return
        try:
            os.close(self.arrival.stream)
        except OSError:
            pass  # already closed: the process is released either way

    def check_identity(self, proc, when):
        """NotDumped unless proc's PID is still the crashed process (always
        true without a pidfd: core_pipe_limit keeps the PID then)."""
        if not proc.check_identity():
            raise NotDumped("PID %d is no longer the crashed process (%s)"
                            % (self.arrival.pid, when))

    def start_live_dump(self, cfg, recept, dd):
        """The PID of the live dumper working on dd beside us, or None (live_spawn)."""
        import sys
        from .live_spawn import start
        return start(dd.path, recept["dump_scope"], self.arrival.pid, cfg.path, sys.argv[0],
                     self.log)

    def finish_live_dump(self, pid, dd, budget):
        """Wait for the live dumper until the deadline (killed after it); its
        files join the integrity record, what does not fit the budget (what
        is left of it after the crashed process's own files) is dropped."""
        from .live_spawn import wait
        wait(pid, self.deadline, self.log)
        for name in dd.adopt("dumps", budget):
            self.log.warning("live dump of %s dropped: over max_dump_size" % name)

    def kill_live_dump(self, pid):
        """Stop a live dumper still running (the dump is being discarded)."""
        if pid is not None:
            from .live_spawn import wait
            wait(pid, 0, self.log)

    def fat_core(self, sink, head):
        """Everything the kernel writes: our copy of its header, then the rest of the stream."""
        sink.write(head)
        page = bytes(4096)
        while not self.expired():
            b = os.read(self.arrival.stream, 1 << 20)
            if not b:
                break
            for off in range(0, len(b), 4096):
                block = b[off:off + 4096]
                if block == page:
                    sink.skip(4096)
                else:
                    sink.write(block)
        sink.close()


def root_only(path, log):
    """Every file and directory under path owned by root, none readable by group
    or others (they are created 0600/0700 already: this is the check); what
    could not be tightened is logged."""
    fixed, failed = 0, []
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
            except OSError as e:
                failed.append("%s (%s)" % (p, e.strerror))
    if fixed:
        log.warning("%s: %d permission(s) tightened to root-only" % (path, fixed))
    if failed:
        log.error("%s: %d file(s) could not be made root-only: %s"
                  % (path, len(failed), ", ".join(failed[:3])))


def from_hook(proc):
    """True if the process's environment has HOOK_ENV: an on_dump hook or a
    process it started (publish_hook sets it)."""
    try:
        with open(proc.dir + "/environ", "rb") as f:
            env = f.read(1 << 20)
    except OSError:
        return False  # gone or unreadable: taken for no hook's
    key = HOOK_ENV.encode() + b"="
    return env.startswith(key) or b"\0" + key in env


def peak_rss_kb():
    """VmHWM of this process in kB, as text ("?" if /proc cannot tell)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return line.split()[1]
    except OSError:
        pass  # only the log line's figure is missing
    return "?"
