"""Crash programs under the real kernel with the handler in core_pattern.

Shared by the host tests (through conftest fixtures), the demo and the
benchmarks.  Whoever installs also restores: see restore().
"""

import json
import os
import resource
import subprocess
import sys
import time

from lab import ENV
from lab.logs import handler_log
from minicoredumper import corepattern
from minicoredumper.corepattern import LOCK, read_sysctl, write_sysctl


def _handler_running(launcher):
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                if launcher.encode() in f.read():
                    return True
        except OSError:
            continue
    return False


class Crasher:
    """Crashes programs under the real kernel with our handler installed."""

    def __init__(self, workdir):
        self.workdir = str(workdir)
        self.state = os.path.join(self.workdir, "state")
        self.cfg = os.path.join(self.workdir, "cfg.json")
        self.launcher = None
        self.saved = None
        self.lock = None
        self.n = 0

    def install(self):
        """Point core_pattern at the handler; remember the old values for restore().

        Holds LOCK (corepattern.CorePatternLock) until restore(): two users of
        core_pattern (test sessions, the demo, benchmarks, mcd install) never
        overlap; a second one waits."""
        from minicoredumper import cmd_mcd as mcd

        def say(holder):
            print("waiting for %s: core_pattern is in use by %s (a test session, the demo, a "
                  "benchmark or mcd install); it is released when that one restores "
                  "core_pattern" % (LOCK, holder), file=sys.stderr, flush=True)
        self.lock = corepattern.CorePatternLock(on_wait=say).acquire()
        self.saved = (read_sysctl("core_pattern"), read_sysctl("core_pipe_limit"))
        os.makedirs(self.state, exist_ok=True)
        self.launcher = mcd.write_launcher(self.state)
        self.pattern = corepattern.core_pattern(self.launcher, self.cfg)
        write_sysctl("core_pipe_limit", str(corepattern.PIPE_LIMIT))
        write_sysctl("core_pattern", self.pattern)

    def restore(self):
        if self.saved:
            write_sysctl("core_pattern", self.saved[0])
            write_sysctl("core_pipe_limit", self.saved[1])
            self.saved = None
        if self.lock:
            self.lock.release()
            self.lock = None

    def mcd(self, *argv, env=None):
        """mcd ARGV run in this process, which holds the core_pattern lock (a child
        process would wait for it: mcd install and uninstall take it); env:
        variables set meanwhile.  Returns a subprocess.CompletedProcess (text)."""
        import contextlib
        import io
        from minicoredumper import cmd_mcd
        out, err = io.StringIO(), io.StringIO()
        saved = {k: os.environ.get(k) for k in env or {}}
        os.environ.update(env or {})
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    rc = cmd_mcd.main(list(argv))
                except SystemExit as e:  # a usage error
                    rc = e.code
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        return subprocess.CompletedProcess(["mcd"] + list(argv), rc, out.getvalue(),
                                           err.getvalue())

    def configure(self, recept=None, config=None, recept_text=None, settings=None):
        """Write the main config (and recept) for the next crash; returns base_dir.
        settings: more keys of the main config (deadline_seconds ...)."""
        self.n += 1
        base = os.path.join(self.workdir, "crash%d" % self.n)
        rpath = os.path.join(self.workdir, "recept%d.json" % self.n)
        with open(rpath, "w") as f:
            f.write(recept_text if recept_text is not None else json.dumps(recept or {}))
        cfg = config if config is not None else dict({"base_dir": base,
                                                       "watch": [{"recept": rpath}]},
                                                      **(settings or {}))
        with open(self.cfg, "w") as f:
            f.write(cfg if isinstance(cfg, str) else json.dumps(cfg))
        return base

    def run(self, argv, timeout=20, core_limit=resource.RLIM_INFINITY, handler=None):
        """Run a program that crashes, its RLIMIT_CORE soft limit core_limit (the
        hard limit unlimited); returns (returncode, seconds until reaped, pid).
        handler: the path of the core_pattern handler to wait for (default ours)."""
        t0 = time.monotonic()
        p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             preexec_fn=lambda: resource.setrlimit(
                                 resource.RLIMIT_CORE, (core_limit, resource.RLIM_INFINITY)))
        rc = p.wait(timeout=timeout)
        reaped = time.monotonic() - t0
        self.wait_idle(handler=handler)
        return rc, reaped, p.pid

    def wait_idle(self, timeout=20, handler=None):
        end = time.monotonic() + timeout
        while _handler_running(handler or self.launcher) and time.monotonic() < end:
            time.sleep(0.02)

    def crash(self, argv, recept=None, **kw):
        """Crash argv with recept; returns the published dump directory."""
        __tracebackhide__ = True  # pytest: the failure is the caller's line
        base = self.configure(recept, **kw)
        _, _, pid = self.run(argv)
        return self.dump_of(base, pid)

    def dump_of(self, base, pid):
        """The one dump directory in base, of the crash of pid; when there is none
        (or more) the assertion shows the handler's own log lines about pid."""
        __tracebackhide__ = True
        dumps = sorted(d for d in os.listdir(base) if not d.startswith(".")) \
            if os.path.isdir(base) else []
        if len(dumps) != 1:
            lines = handler_log(pid)
            raise AssertionError(
                "expected one dump of pid %d in %s, found %r; the handler's log about "
                "pid %d:\n%s" % (pid, base, dumps, pid, "\n".join("    " + l for l in lines)
                                  or "    (none: was the handler started? core_pattern "
                                  "is %r)" % read_sysctl("core_pattern")))
        return os.path.join(base, dumps[0])

    def start_socket_server(self, protocol="auto", install=False, extra=()):
        """minicoredumper_sockd on a socket in the work directory; with install
        False core_pattern is pointed at it here (restored by stop_socket_server
        to the pipe pattern), else the server does it itself.  Returns the Popen."""
        sock = os.path.join(self.workdir, "cd.sock")
        argv = [sys.executable, "-m", "minicoredumper.cmd_sockd", "--socket", sock,
                "--config", self.cfg, "--protocol", protocol] + list(extra)
        if not install:
            argv.append("--no-install")
        if os.path.exists(sock):
            os.unlink(sock)  # a killed server's
        p = subprocess.Popen(argv, env=ENV)
        end = time.monotonic() + 20
        while time.monotonic() < end:
            if os.path.exists(sock) and (not install or
                                         read_sysctl("core_pattern").endswith(sock)):
                time.sleep(0.05)  # from bind to listen
                break
            assert p.poll() is None, "the socket server exited with %s" % p.returncode
            time.sleep(0.02)
        if not install:
            request = protocol == "request" or (
                protocol == "auto" and corepattern.kernel_has_request_protocol())
            write_sysctl("core_pattern", ("@@" if request else "@") + sock)
        self.server = p
        return p

    def stop_socket_server(self, timeout=20):
        p, self.server = getattr(self, "server", None), None
        try:
            if p is not None and p.poll() is None:
                p.terminate()
                p.wait(timeout=timeout)
        finally:
            write_sysctl("core_pattern", self.pattern)

    def kernel_core(self, argv):
        """The kernel's own full core of argv (core_pattern to a file for one run)."""
        pattern = os.path.join(self.workdir, "kcore.%p")
        pid = self.run_under(pattern, argv)
        return pattern.replace("%p", str(pid))

    def run_under(self, pattern, argv, handler=None):
        """Crash argv with core_pattern set to pattern for this one run (the
        kernel's own file, or another pipe handler, whose path is handler);
        returns the crashed PID."""
        write_sysctl("core_pattern", pattern)
        try:
            _, _, pid = self.run(argv, handler=handler)
        finally:
            write_sysctl("core_pattern", self.pattern)
        return pid


