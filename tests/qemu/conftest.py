"""tests/qemu/conftest.py: build (cached) and boot each QEMU guest once per test session.

Settings (environment variables; a pytest option would need the top-level conftest):
  MCD_EEPROM_BUDGET   bytes an embedded-recept dump may take (default 4096; the guest's
                      run-ptest gets it too, through job.json)
  MCD_QEMU_ARCHS      which guests, e.g. "armhf arm64" (default: all three)
  MCD_QEMU_TIMEOUT    seconds one boot may take before QEMU is killed (default 600)
  MCD_QEMU_CACHE      downloads and images (default ~/.cache/mcd-qemu)

The figures (boot time, handler time per crash, artefact sizes, guest runtime size) are
printed at the end of the session and written to qemu-summary.json and qemu-summary.md
in the session's temporary directory.
"""

import importlib.metadata
import json
import os
import shutil
import time
import traceback

import pytest

import boot as qboot  # qemu/ (pytest.ini's pythonpath)
import build_image
import guests
import report

BUDGET = int(os.environ.get("MCD_EEPROM_BUDGET", "4096"))
TIMEOUT = float(os.environ.get("MCD_QEMU_TIMEOUT", "600"))


def selected_archs():
    names = os.environ.get("MCD_QEMU_ARCHS", "").split()
    return names or sorted(guests.ARCHS)


def missing_tools(arch):
    """(tool, how to get it) for everything building and booting arch needs."""
    a = guests.ARCHS[arch]
    missing = []
    nor = ("fdtput", "xz") if a.get("nor") else ()  # its NOR flash (qemu/nor_modules.py)
    for tool in (a["qemu"], a["cc"], "gdb-multiarch", "dpkg-deb", "apt-get", "make") + nor:
        if shutil.which(tool) is None:
            missing.append((tool, "Debian package %s" % guests.HOST_TOOLS.get(tool, tool)))
    if guests.host_python() is None:
        missing.append(("python%s" % guests.PYVER, "Debian package python3.11-minimal"))
    for dist, what in (("bitbake-setup", "tests/layer/requirements.txt"),
                       ("pyelftools", "scripts/requirements.txt")):
        try:
            importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            missing.append((dist, "pip install -r %s" % what))
    if not os.path.isdir(a["libc_dir"]):
        missing.append((a["libc_dir"], "the cross libc of Debian package %s" % guests.HOST_TOOLS.get(a["cc"])))
    return missing


class GuestSession:
    """One build and one boot per architecture, on first use."""

    def __init__(self, top):
        self.top = str(top)
        self.done = {}
        self.timings = {}

    def get(self, arch):
        if arch not in self.done:
            self.done[arch] = self._run(arch)
        kind, value = self.done[arch]
        if kind == "skip":
            pytest.skip(value)
        if kind == "fail":
            pytest.fail(value, pytrace=False)
        return value

    def _run(self, arch):
        missing = missing_tools(arch)
        if missing:
            return "skip", "%s guest: missing %s" % (arch, "; ".join("%s (%s)" % m for m in missing))
        t0 = time.monotonic()
        image = os.path.join(self.top, arch + "-image")
        try:
            info = build_image.build(arch, copy_to=image)
        except Exception:
            return "fail", "%s guest: image build failed:\n%s" % (arch, traceback.format_exc()[-6000:])
        t1 = time.monotonic()
        outdir = os.path.join(self.top, arch)
        rec = qboot.boot(arch, outdir, image_dir=image, timeout=TIMEOUT)
        self.timings[arch] = {"build_s": round(t1 - t0, 1), "boot_s": rec["seconds"],
                              "image_cached": info.get("cached", False)}
        if not rec.get("results"):
            console = _tail(os.path.join(outdir, "console.log"))
            return "fail", "%s guest: no results (%s; timed out: %s; QEMU exit %s)\n%s\n%s" % (
                arch, rec.get("results_error"), rec["timed_out"], rec["returncode"],
                rec.get("qemu_output", ""), console)
        return "ok", report.load(outdir, image)


def _tail(path, n=4000):
    try:
        with open(path, errors="replace") as f:
            return f.read()[-n:]
    except OSError:
        return ""


_SESSION = {}


@pytest.fixture(scope="session")
def guest_session(tmp_path_factory):
    s = GuestSession(tmp_path_factory.mktemp("qemu"))
    _SESSION["session"] = s
    return s


def pytest_generate_tests(metafunc):
    if "arch" in metafunc.fixturenames:
        metafunc.parametrize("arch", selected_archs(), scope="session")


@pytest.fixture(scope="session")
def guest(guest_session, arch):
    """What the arch guest brought back (report.load())."""
    return guest_session.get(arch)


@pytest.fixture(scope="session")
def budget():
    return BUDGET


@pytest.fixture(scope="session")
def boot_timeout():
    """Seconds one boot may take (MCD_QEMU_TIMEOUT)."""
    return TIMEOUT


@pytest.fixture
def guest_tools(arch):
    """Skips the test when the host lacks what building and booting arch needs."""
    missing = missing_tools(arch)
    if missing:
        pytest.skip("%s guest: missing %s" % (arch, "; ".join("%s (%s)" % m for m in missing)))


def pytest_terminal_summary(terminalreporter):
    s = _SESSION.get("session")
    if not s:
        return
    figs = [report.figures(v, BUDGET) for k, (kind, v) in sorted(s.done.items()) if kind == "ok"]
    if not figs:
        return
    for f in figs:
        f["session"] = s.timings.get(f["arch"])
    md = report.markdown(figs)
    with open(os.path.join(s.top, "qemu-summary.json"), "w") as f:
        json.dump(figs, f, indent=1)
    with open(os.path.join(s.top, "qemu-summary.md"), "w") as f:
        f.write(md)
    terminalreporter.write_sep("-", "QEMU guests (%s)" % os.path.join(s.top, "qemu-summary.md"))
    terminalreporter.write_line("per arch: build (cached) and boot, seconds: " + ", ".join(
        "%s %s+%s" % (a, t["build_s"], t["boot_s"]) for a, t in sorted(s.timings.items())))
    terminalreporter.write(md)
