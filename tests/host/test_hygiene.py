"""Crash-path hygiene: stdio, logging with the PID, tracebacks not lost, the
launcher's lean start, mcd install/uninstall."""

import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

from lab import ENV, RUNTIME
from lab.logs import handler_log
from minicoredumper import corepattern
from minicoredumper import cmd_mcd as mcd


def console_scripts():
    """{name: module} of runtime/pyproject.toml's [project.scripts]."""
    import tomllib
    with open(os.path.join(RUNTIME, "pyproject.toml"), "rb") as f:
        scripts = tomllib.load(f)["project"]["scripts"]
    return {name: entry.partition(":")[0] for name, entry in scripts.items()}


def test_every_program_prints_through_its_launcher(tmp_path):
    """One template for every console script: each launcher made from launcher.in
    keeps stdout (--version) and stderr (a wrong option) for a person; the ones mcd
    writes are the same text."""
    from minicoredumper import __version__
    scripts = console_scripts()
    assert set(mcd.LAUNCHED.items()) <= set(scripts.items())
    for name, module in scripts.items():
        launcher = tmp_path / name
        launcher.write_text(mcd.render_launcher(sys.executable, RUNTIME, module))
        launcher.chmod(0o755)
        p = subprocess.run([str(launcher), "--version"], capture_output=True, text=True)
        assert (p.returncode, p.stdout, p.stderr) == (0, "%s %s\n" % (name, __version__), ""), name
        if name != "minicoredumper":  # the handler's arguments are the kernel's
            p = subprocess.run([str(launcher), "--no-such-option"], capture_output=True,
                               text=True)
            assert p.returncode != 0 and p.stderr and p.stdout == "", (name, p)
    state = tmp_path / "state"
    state.mkdir()
    mcd.write_launcher(str(state))
    mcd.write_program(str(state), "minicoredumper_sockd")
    sitedir = os.path.dirname(os.path.dirname(os.path.abspath(mcd.__file__)))
    for name in sorted(os.listdir(state)):
        assert (state / name).read_text() == mcd.render_launcher(
            sys.executable, sitedir, scripts[name]), name
    assert sorted(os.listdir(state)) == sorted(mcd.LAUNCHED)


def test_launcher_opens_nothing_before_main(tmp_path):
    """Run the real launcher with only fd 0 open, as the kernel does; the handler
    module is replaced by one that reports fds 1 and 2 as main() finds them: the
    launcher has not redirected them and no file of its start-up holds them, so
    cmd_handler.main() pointing them at /dev/null first thing is early enough."""
    pkg = tmp_path / "probe"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "report.py").write_text(
        "import os\n"
        "def main():\n"
        "    fds = []\n"
        "    for n in (1, 2):\n"
        "        try:\n"
        "            fds.append(os.readlink('/proc/self/fd/%%d' %% n))\n"
        "        except OSError:\n"
        "            fds.append('closed')\n"
        "    fd = os.open(%r, os.O_WRONLY | os.O_CREAT, 0o600)\n"
        "    os.write(fd, ' '.join(fds).encode())\n"
        "    return 0\n" % str(tmp_path / "out"))
    launcher = tmp_path / "launcher"
    launcher.write_text(mcd.render_launcher(sys.executable, str(tmp_path), "probe.report"))
    launcher.chmod(0o755)
    subprocess.run([str(launcher)], stdin=subprocess.DEVNULL, check=True,
                   preexec_fn=lambda: (os.close(1), os.close(2)), close_fds=True)
    assert (tmp_path / "out").read_text() == "closed closed"


def test_handler_started_by_the_kernel_writes_nothing_into_its_files(crasher, programs,
                                                                      tmp_path):
    """The kernel starts the handler (the launcher mcd writes) with only fd 0 open.
    While the dump is written, fds 1 and 2 are /dev/null: the compressor, a child of
    the handler, reads them from /proc and writes a marker through them, and the
    marker is in no file of the dump."""
    report = tmp_path / "fds"
    compressor = tmp_path / "compressor"
    compressor.write_text(
        "#!/bin/sh\n"
        "for n in 1 2; do readlink /proc/$PPID/fd/$n; done > %s\n"
        "for n in 1 2; do echo MARKER-FD-$n >> /proc/$PPID/fd/$n; done\n"
        "exec gzip\n" % report)
    compressor.chmod(0o755)
    dump = crasher.crash([programs["crash3"]], {
        "compression": {"compressor": str(compressor), "extension": "gz", "in_tar": True}})
    assert report.read_text().split() == ["/dev/null", "/dev/null"]
    for root, _, files in os.walk(dump):
        for f in files:
            with open(os.path.join(root, f), "rb") as fh:
                assert b"MARKER-FD-" not in fh.read(), f


def test_core_pattern_length_is_checked():
    assert corepattern.core_pattern("/usr/sbin/minicoredumper", options="") == \
        "|/usr/sbin/minicoredumper %P %u %g %s %t %h %e"
    assert corepattern.core_pattern("/usr/sbin/minicoredumper") == \
        "|/usr/sbin/minicoredumper %P %u %g %s %t %h %e " + corepattern.identity_options()
    try:
        corepattern.core_pattern("/x" * 70)
    except ValueError as e:
        assert "127" in str(e)
    else:
        raise AssertionError("a 140-character core_pattern was accepted")


def test_mcd_install_and_uninstall_restore_the_kernel_settings(crasher):
    """mcd runs in this process, which holds the core_pattern lock (crasher)."""
    tmp_path = pathlib.Path(tempfile.mkdtemp(prefix="mcdi."))  # core_pattern: 127 chars
    before = (open("/proc/sys/kernel/core_pattern").read(),
              open("/proc/sys/kernel/core_pipe_limit").read())
    env = {"MCD_STATE_DIR": str(tmp_path / "state")}
    cfg = tmp_path / "c.json"
    cfg.write_text('{"watch": [{"recept": "missing.json"}], "colour": 1}')
    try:
        p = crasher.mcd("install", "--config", str(cfg), env=env)
        assert p.returncode == 0, p.stderr
        assert "unknown key colour" in p.stderr and "missing.json" in p.stderr
        pattern = open("/proc/sys/kernel/core_pattern").read().strip()
        assert pattern == "|%s/minicoredumper %%P %%u %%g %%s %%t %%h %%e %s %s" % (
            tmp_path / "state", corepattern.identity_options(), cfg)
        assert open("/proc/sys/kernel/core_pipe_limit").read().strip() == "2147483647"
        assert os.access(tmp_path / "state" / "minicoredumper", os.X_OK)
        # Installing twice keeps the first saved values; without a config file the
        # user is told what crashes get.
        p = crasher.mcd("install", env=env)
        assert p.returncode == 0, p.stderr
        if not os.path.exists("/etc/minicoredumper/minicoredumper.cfg.json"):
            assert "the built-in minimal dump of the crashing thread" in p.stderr, p.stderr
    finally:
        p = crasher.mcd("uninstall", env=env)
    assert p.returncode == 0, p.stderr
    after = (open("/proc/sys/kernel/core_pattern").read(),
             open("/proc/sys/kernel/core_pipe_limit").read())
    assert after == before
    # The launchers install wrote point into this installation: uninstall removes them.
    assert os.listdir(tmp_path / "state") == []
    p = crasher.mcd("uninstall", env=env)
    assert p.returncode == 1 and "mcd install" in p.stderr
    shutil.rmtree(tmp_path)


def test_write_failure_is_logged_with_pid_and_nothing_kept(crasher, programs):
    """A failure while writing (here: the recept's compressor program does not
    exist): logged with the crashed PID and the reason, no half dump left, the
    process released."""
    base = crasher.configure({"compression": {"compressor": "/nonexistent/compressor"}})
    rc, reaped, pid = crasher.run([programs["crash3"]])
    assert reaped < 5
    lines = handler_log(pid)
    assert any("failed (No such file or directory): nothing kept" in l for l in lines), lines
    assert os.listdir(base) == []


def test_unexpected_errors_keep_their_traceback(tmp_path):
    from minicoredumper.log import Logger
    kmsg = tmp_path / "kmsg"
    kmsg.write_text("")
    log = Logger(dev_log=str(tmp_path / "no-syslog"), kmsg=str(kmsg))
    log.set_pid(4242)
    try:
        {}["missing"]
    except KeyError:
        log.exception("handler failed")
    lines = kmsg.read_text().splitlines()
    assert lines[0].startswith("<3>minicoredumper[") and "pid 4242: handler failed" in lines[0]
    assert any("KeyError: 'missing'" in l for l in lines)
    assert any("test_hygiene.py" in l for l in lines)


def test_bad_invocation_is_logged_not_raised():
    p = subprocess.Popen([sys.executable, "-m", "minicoredumper.cmd_handler", "123", "x"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=ENV)
    out, err = p.communicate()
    assert p.returncode == 2 and out == "" and err == ""
    # Before the arguments are read no crashed PID is known: the line names only the
    # handler's own process.
    log = [l for l in handler_log() if "minicoredumper[%d]: " % p.pid in l]
    assert any("bad invocation: expected %P %u %g %s %t %h %e [CONFIG], got 2 arguments" in l
               for l in log), log
