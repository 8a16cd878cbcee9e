"""Shared fixtures: built crash programs, a real kernel core_pattern pointed at the
handler (restored afterwards, always), registry daemons. The helpers behind them are
the lab package (tests/lab); pytest.ini puts it and the runtime on sys.path."""

import os
import shutil
import tempfile

import pytest

from lab.crash import Crasher
from lab.programs import build_programs
from lab.regd import Lab
from minicoredumper import deadline


@pytest.fixture(autouse=True)
def no_crash_deadline():
    """Each test starts without a crash deadline: a test that made a crash.Crash
    in this process (test_pipeline, test_identity) leaves its clock behind
    (deadline.py's one clock per process), which would end later tests'
    planning loops early."""
    deadline.stop()


@pytest.fixture(scope="session")
def programs(tmp_path_factory):
    """The crash test programs, built once: name -> path."""
    return build_programs(str(tmp_path_factory.mktemp("programs")))


@pytest.fixture(scope="session")
def crasher(tmp_path_factory):
    """Installs the handler in core_pattern for the host tests; restores on exit."""
    if os.geteuid() != 0:
        pytest.skip("real-kernel tests need root (core_pattern)")
    workdir = tempfile.mkdtemp(prefix="mcdt.")  # short: core_pattern holds 127 chars
    c = Crasher(workdir)
    try:
        c.install()
        yield c
    finally:
        c.restore()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def regd():
    """lab.regd.Lab: registry daemons (start) and registered apps (app) of one test in
    a private network namespace; all stopped after it."""
    if os.geteuid() != 0:
        pytest.skip("registry tests need root (network namespace, ptrace)")
    registry = Lab()
    try:
        yield registry
    finally:
        registry.close()
