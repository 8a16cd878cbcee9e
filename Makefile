# meta-minicoredumper: the two front-door commands and a few helpers.
#   make demo  - crash a small C program under the handler (embedded recept) beside
#                the kernel's own core of the same crash
#   make test  - install what the tests need and run the whole suite
# Both install into a virtual environment, VENV (made with PYTHON).
PYTHON ?= python3
VENV ?= $(CURDIR)/.venv
VPY := $(VENV)/bin/python
export PYTHON VENV

.PHONY: demo test bench

demo:
	sh scripts/install-deps.sh demo
	$(VPY) scripts/demo.py

test:
	sh scripts/install-deps.sh test
	$(VPY) -m pytest -q tests

bench:
	sh scripts/install-deps.sh test
	$(VPY) tests/bench/bench_handler.py
	$(VPY) tests/bench/bench_live.py
	$(VPY) tests/bench/bench_registered.py
	$(VPY) tests/bench/bench_modes.py
	$(VPY) tests/bench/bench_sockd.py
	$(VPY) tests/bench/bench_mappings.py
	$(VPY) tests/bench/bench_unwind.py
	$(VPY) tests/bench/bench_stacktrace.py
	$(VPY) tests/bench/bench_stacks.py
	$(VPY) tests/bench/bench_hostile.py
	$(VPY) tests/bench/bench_scale.py
	$(VPY) tests/bench/bench_regd.py
