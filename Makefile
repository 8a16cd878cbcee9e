# meta-minicoredumper: the two front-door commands and a few helpers.
#   make demo  - crash a small C program under the handler (embedded recept)
#   make test  - install what the tests need and run the whole suite
PYTHON ?= python3

.PHONY: deps demo test bench

deps:
	sh scripts/install-deps.sh

demo: deps
	$(PYTHON) scripts/demo.py

test: deps
	$(PYTHON) -m pytest -q tests

bench: deps
	$(PYTHON) tests/bench/bench_handler.py
	$(PYTHON) tests/bench/bench_live.py
	$(PYTHON) tests/bench/bench_registered.py
	$(PYTHON) tests/bench/bench_modes.py
