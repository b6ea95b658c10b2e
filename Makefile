# mmsb: two commands do everything on a fresh machine (see README).
#   make demo   set up .venv if needed, then train + evaluate on the demo data
#   make test   set up .venv if needed, then run the whole test suite
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup demo test bench lint clean

setup:
	@bash tools/setup_env.sh

demo: setup
	@$(PY) tools/demo.py

test: setup
	@$(PY) -m pytest $(PYTEST_ARGS)

bench: setup
	@$(PY) tools/analysis/benchmark.py

clean:
	rm -rf work_dirs data/demo .pytest_cache
