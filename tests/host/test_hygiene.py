"""Crash-path hygiene: stdio, logging with the PID, tracebacks not lost, the
launcher's lean start, mcd install/uninstall."""

import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

from lab import ENV
from lab.logs import handler_log
from minicoredumper import corepattern
from minicoredumper import cmd_mcd as mcd


def test_launcher_points_stdio_at_devnull_before_anything(tmp_path):
    """Run the real launcher with only fd 0 open, as the kernel does; the handler
    module is replaced by one that reports fds 1 and 2."""
    pkg = tmp_path / "probe"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "report.py").write_text(
        "import os\n"
        "def main():\n"
        "    fd = os.open(%r, os.O_WRONLY | os.O_CREAT, 0o600)\n"
        "    os.write(fd, ' '.join(os.readlink('/proc/self/fd/%%d' %% n) for n in (1, 2))"
        ".encode())\n"
        "    return 0\n" % str(tmp_path / "out"))
    launcher = tmp_path / "launcher"
    launcher.write_text(mcd.render_launcher(sys.executable, str(tmp_path), "probe.report"))
    launcher.chmod(0o755)
    subprocess.run([str(launcher)], stdin=subprocess.DEVNULL, check=True,
                   preexec_fn=lambda: (os.close(1), os.close(2)), close_fds=True)
    assert (tmp_path / "out").read_text() == "/dev/null /dev/null"


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
    tmp_path = pathlib.Path(tempfile.mkdtemp(prefix="mcdi."))  # core_pattern: 127 chars
    before = (open("/proc/sys/kernel/core_pattern").read(),
              open("/proc/sys/kernel/core_pipe_limit").read())
    env = dict(ENV, MCD_STATE_DIR=str(tmp_path / "state"))
    cfg = tmp_path / "c.json"
    cfg.write_text('{"watch": [{"recept": "missing.json"}], "colour": 1}')
    try:
        p = subprocess.run([sys.executable, "-m", "minicoredumper.cmd_mcd", "install", "--config",
                            str(cfg)], env=env, capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        assert "unknown key colour" in p.stderr and "missing.json" in p.stderr
        pattern = open("/proc/sys/kernel/core_pattern").read().strip()
        assert pattern == "|%s/minicoredumper %%P %%u %%g %%s %%t %%h %%e %s %s" % (
            tmp_path / "state", corepattern.identity_options(), cfg)
        assert open("/proc/sys/kernel/core_pipe_limit").read().strip() == "2147483647"
        # Installing twice keeps the first saved values.
        subprocess.run([sys.executable, "-m", "minicoredumper.cmd_mcd", "install"], env=env,
                       check=True, capture_output=True)
    finally:
        p = subprocess.run([sys.executable, "-m", "minicoredumper.cmd_mcd", "uninstall"], env=env,
                           capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    after = (open("/proc/sys/kernel/core_pattern").read(),
             open("/proc/sys/kernel/core_pipe_limit").read())
    assert after == before
    p = subprocess.run([sys.executable, "-m", "minicoredumper.cmd_mcd", "uninstall"], env=env,
                       capture_output=True, text=True)
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
