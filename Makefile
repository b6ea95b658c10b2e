# mmsb: two commands do everything on a fresh machine (see README).
#   make demo   set up .venv if needed, then train + evaluate on the demo data
#   make test   set up .venv if needed, then run the whole test suite
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup demo test bench evidence lint clean

setup:
	@bash tools/setup_env.sh

demo: setup
	@$(PY) tools/demo.py

test: setup
	@$(PY) -m pytest $(PYTEST_ARGS)

bench: setup
	@$(PY) tools/analysis/benchmark.py

# SB-ResNet against its plain twin, paired and seeded (about 90 min on 2 cores):
# regenerates docs/evidence.md from scratch (it is in git; the tool alone never
# overwrites a report without --force). EVIDENCE_ARGS=--quick: minutes, meaningless.
EVIDENCE_ARGS ?= --force
evidence: setup
	@$(PY) tools/analysis/evidence.py $(EVIDENCE_ARGS)

clean:
	rm -rf work_dirs data/demo .pytest_cache
