"""tests/layer/test_services.py: the layer's systemd unit and sysvinit scripts.

- shellcheck -s sh on both init scripts and the package test's run-ptest (POSIX sh:
  targets run them with busybox ash);
- systemd-analyze verify on the unit alone (its place in the boot, where an ordering
  cycle would show, is test_systemd_boot.py's);
- the init scripts run for real, under dash, bash and busybox sh (with only busybox
  applets on PATH, as on a busybox image), in a scratch tree: /proc/sys, /etc, /run and
  /usr/lib/sysctl.d of the scripts are pointed into a temporary directory, and the
  registry daemon is a stand-in that sleeps. They never touch the host's core_pattern.

All of this uses the files in meta-minicoredumper/recipes-core/minicoredumper/files with
the @...@ placeholders filled in here as do_install fills them (test_bitbake.py checks
the installed copies), so it needs neither BitBake nor the runtime.
"""

import os
import subprocess
import sys
import time

import pytest

from layertest import LAYER, need_tool, read

FILES = os.path.join(LAYER, "recipes-core", "minicoredumper", "files")
SCRIPTS = ["minicoredumper.init", "minicoredumper-regd.init", "minicoredumper-store-import.init"]
# Run on the target only (it crashes programs under the kernel's core_pattern): checked
# here by shellcheck, run by the QEMU guests (tests/qemu).
PTEST_SCRIPT = "run-ptest"
PATTERN = "|%s/minicoredumper %%P %%u %%g %%s %%t %%h %%e --dump-mode=%%d"


def test_shellcheck_init_scripts():
    shellcheck = need_tool("shellcheck", "shellcheck")
    proc = subprocess.run([shellcheck, "-s", "sh", *SCRIPTS, PTEST_SCRIPT], cwd=FILES,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.returncode == 0, proc.stdout


@pytest.mark.parametrize("unit_name, placeholder, program", [
    ("minicoredumper-regd.service", "@SBINDIR@", "minicoredumper_regd"),
    ("minicoredumper-store-import.service", "@BINDIR@", "mcd")])
def test_systemd_analyze_verify(tmp_path, unit_name, placeholder, program):
    """verify refuses a unit whose ExecStart binary is missing, and the programs are not
    installed on this host: so each unit is verified as a copy whose @SBINDIR@ or
    @BINDIR@ is a scratch directory holding an executable stand-in. --man=no:
    Documentation= names a man page that needs not be installed here. Warnings count as
    failures. A transaction for this unit alone never queues basic.target, so an
    ordering cycle through it cannot show here: test_systemd_boot.py verifies the boot."""
    analyze = need_tool("systemd-analyze", "systemd")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    standin = bindir / program
    standin.write_text("#!/bin/sh\nexit 0\n")
    standin.chmod(0o755)
    unit = tmp_path / unit_name
    unit.write_text(read(os.path.join(FILES, unit_name)).replace(placeholder, str(bindir)))
    proc = subprocess.run([analyze, "verify", "--man=no", str(unit)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.returncode == 0, proc.stdout
    ours = [line for line in proc.stdout.splitlines() if str(tmp_path) in line]
    assert ours == [], proc.stdout


# --- running the init scripts -------------------------------------------------------

@pytest.fixture(params=["dash", "bash", "busybox"])
def shell(request, tmp_path):
    """(argv prefix, PATH) for running a script under one shell."""
    if request.param == "busybox":
        busybox = need_tool("busybox", "busybox-static")
        bindir = tmp_path / "busybox-bin"
        bindir.mkdir()
        applets = subprocess.run([busybox, "--list"], stdout=subprocess.PIPE, text=True).stdout
        for applet in applets.split():
            os.symlink(busybox, bindir / applet)
        return [str(bindir / "sh")], str(bindir)
    path = need_tool(request.param, request.param)
    return [path], os.environ.get("PATH", "/usr/bin:/bin")


class Tree:
    """A scratch root for one init script: placeholders filled, /proc/sys redirected."""

    def __init__(self, root, shell):
        self.root = root
        self.argv, self.path = shell
        self.sbin = root / "usr" / "sbin"
        self.etc = root / "etc"
        self.run = root / "run"
        self.sysctldir = root / "usr" / "lib" / "sysctl.d"
        self.procsys = root / "proc" / "sys"
        for d in (self.sbin, self.etc / "sysctl.d", self.run, self.sysctldir,
                  self.procsys / "kernel"):
            d.mkdir(parents=True, exist_ok=True)
        (self.procsys / "kernel" / "core_pattern").write_text("core\n")
        (self.procsys / "kernel" / "core_pipe_limit").write_text("0\n")

    def fill(self, text):
        return (text.replace("@SBINDIR@", str(self.sbin)).replace("@BINDIR@", str(self.sbin))
                .replace("@SYSCONFDIR@", str(self.etc))
                .replace("@SYSCTLDIR@", str(self.sysctldir))
                .replace("@RUNDIR@", str(self.run))
                .replace("PROC_SYS=/proc/sys", "PROC_SYS=%s" % self.procsys))

    def install(self, name, dest):
        dest.write_text(self.fill(read(os.path.join(FILES, name))))
        dest.chmod(0o755)
        return dest

    def packaged_dropin(self, limit=None):
        text = self.fill(read(os.path.join(FILES, "60-minicoredumper.conf.in")))
        text = text.replace("@CORE_PIPE_LIMIT@", limit or "2147483647")
        (self.sysctldir / "60-minicoredumper.conf").write_text(text)

    def proc(self, key):
        return (self.procsys / key.replace(".", "/")).read_text()

    def __call__(self, script, *args):
        return subprocess.run([*self.argv, str(script), *args], env={"PATH": self.path},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=60)


def test_core_pattern_script_applies_the_dropin(tmp_path, shell):
    t = Tree(tmp_path, shell)
    script = t.install("minicoredumper.init", t.root / "minicoredumper")
    t.packaged_dropin()
    assert t(script, "status").returncode == 3
    res = t(script, "start")
    assert res.returncode == 0, res.stdout
    assert t.proc("kernel.core_pattern") == PATTERN % t.sbin + "\n"
    assert t.proc("kernel.core_pipe_limit") == "2147483647\n"
    res = t(script, "status")
    assert res.returncode == 0 and "handles core dumps" in res.stdout, res.stdout
    # stop leaves core_pattern alone: nothing runs between crashes.
    assert t(script, "stop").returncode == 0
    assert t.proc("kernel.core_pattern") == PATTERN % t.sbin + "\n"


def test_core_pattern_script_prefers_the_admin_copy(tmp_path, shell):
    t = Tree(tmp_path, shell)
    script = t.install("minicoredumper.init", t.root / "minicoredumper")
    t.packaged_dropin()
    (t.etc / "sysctl.d" / "60-minicoredumper.conf").write_text(
        "# admin's copy\n  kernel.core_pipe_limit=4  \n"
        "kernel.core_pattern =  |/opt/handler %P %s\n-kernel.does_not_exist = 1\n")
    res = t(script, "restart")
    assert res.returncode == 0, res.stdout
    assert t.proc("kernel.core_pipe_limit") == "4\n"
    assert t.proc("kernel.core_pattern") == "|/opt/handler %P %s\n"
    assert t(script, "status").returncode == 3, "core dumps no longer go to our handler"


def test_core_pattern_script_failures(tmp_path, shell):
    t = Tree(tmp_path, shell)
    script = t.install("minicoredumper.init", t.root / "minicoredumper")
    res = t(script, "start")
    assert res.returncode == 6 and "no 60-minicoredumper.conf" in res.stdout
    assert t.proc("kernel.core_pattern") == "core\n"
    (t.sysctldir / "60-minicoredumper.conf").write_text("kernel.does_not_exist = 1\n")
    res = t(script, "start")
    assert res.returncode == 1 and "cannot set kernel.does_not_exist" in res.stdout
    assert t(script, "bogus").returncode == 2


def test_regd_script_starts_and_stops_the_daemon(tmp_path, shell):
    t = Tree(tmp_path, shell)
    script = t.install("minicoredumper-regd.init", t.root / "minicoredumper-regd")
    assert t(script, "start").returncode == 5, "no daemon installed"
    daemon = t.sbin / "minicoredumper_regd"
    daemon.write_text("#!%s -IS\nimport time\ntime.sleep(600)\n" % sys.executable)
    daemon.chmod(0o755)
    pidfile = t.run / "minicoredumper_regd.pid"
    pid = None
    try:
        assert t(script, "status").returncode == 3
        res = t(script, "start")
        assert res.returncode == 0, res.stdout
        pid = int(pidfile.read_text())
        deadline = time.monotonic() + 10
        while b"minicoredumper_regd" not in open("/proc/%d/cmdline" % pid, "rb").read():
            assert time.monotonic() < deadline, "daemon did not start"
            time.sleep(0.05)
        res = t(script, "status")
        assert res.returncode == 0 and str(pid) in res.stdout, res.stdout
        res = t(script, "start")
        assert res.returncode == 0 and "already running" in res.stdout
        assert int(pidfile.read_text()) == pid
        res = t(script, "stop")
        assert res.returncode == 0, res.stdout
        assert not pidfile.exists()
        assert t(script, "status").returncode == 3
        assert t(script, "stop").returncode == 0, "stopping a stopped daemon is fine"
    finally:
        if pid is not None:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass


def test_store_import_script_runs_mcd_store_import(tmp_path, shell):
    t = Tree(tmp_path, shell)
    script = t.install("minicoredumper-store-import.init", t.root / "store-import")
    assert t(script, "start").returncode == 5, "no mcd installed"
    mcd = t.sbin / "mcd"
    said = t.root / "argv"
    mcd.write_text("#!/bin/sh\necho \"$@\" > %s\nexit 3\n" % said)
    mcd.chmod(0o755)
    res = t(script, "start")
    assert res.returncode == 3, res.stdout  # mcd's status is the script's
    assert said.read_text() == "store import\n"
    assert t(script, "stop").returncode == 0 and t(script, "status").returncode == 0
    assert t(script, "bogus").returncode == 2
