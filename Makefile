# mmsb: two commands do everything on a fresh machine (see README).
#   make demo          set up .venv if needed, then train + evaluate on the demo data
#   make test          set up .venv if needed, then run the whole test suite (newest row)
#   make test-oldest   set up .venv-oldest if needed (torch 2.1.2), then run the suite there
#   make data-fashion  Fashion-MNIST into data/fashion-mnist/ for configs/evidence (not needed
#                      by demo or test)
VENV ?= .venv
VENV_OLDEST ?= .venv-oldest
PY := $(VENV)/bin/python
PY_OLDEST := $(VENV_OLDEST)/bin/python
PYTEST_ARGS ?=
# What the oldest row runs (docs/install.md "Tested versions"): the whole suite, as the newest
# row (about 9 minutes on 2 cores); e.g. OLDEST_TESTS="tests/test_models" for a part.
OLDEST_TESTS ?= tests

.PHONY: setup setup-oldest demo test test-oldest bench evidence evidence-report data-fashion \
	wheelhouse-gpu gpu-rehearsal clean

setup:
	@MMSB_VENV="$(abspath $(VENV))" bash tools/setup_env.sh

setup-oldest:
	@MMSB_VENV="$(abspath $(VENV_OLDEST))" bash tools/setup_env.sh --oldest

demo: setup
	@$(PY) tools/run_demo.py

test: setup
	@$(PY) -m pytest $(PYTEST_ARGS)

test-oldest: setup-oldest
	@$(PY_OLDEST) -m pytest $(OLDEST_TESTS) $(PYTEST_ARGS)

bench: setup
	@$(PY) tools/analysis/benchmark.py

# SB-ResNet against its plain twin, paired and seeded (docs/evidence.md). Each run
# leaves a JSON in docs/evidence/runs/ (in git); `make evidence` trains only the runs
# missing there (plain and SB on every task, Fashion-MNIST included, which it fetches
# with data-fashion's script: all of them about 4.5 hours on 2 cores) and renders the
# report from the files; `make evidence-report` renders it without training. The
# ablations and the 4x schedule: EVIDENCE_ARGS="--resume --force --variants ..."
# (tools/analysis/evidence.py --help).
# EVIDENCE_ARGS="--quick --force": minutes, meaningless numbers, in work_dirs/.
EVIDENCE_ARGS ?= --resume --force
evidence: setup
	@$(PY) tools/analysis/evidence.py $(EVIDENCE_ARGS)

evidence-report: setup
	@$(PY) tools/analysis/evidence.py --report-only --force

# The four IDX files mmpretrain's FashionMNIST reads (configs/evidence/README.md): from the
# Debian package dataset-fashion-mnist, installed when missing if run as root; keeps what is
# there; otherwise says in one line what to install or where to put the files.
data-fashion:
	@bash tools/data/fashion_mnist.sh

# What a lent GPU machine (no network) lacks for tools/gpu_check.sh (docs/benchmark.md).
wheelhouse-gpu:
	@bash tools/gpu_wheelhouse.sh

# The GPU check rehearsed on this CPU in a copy of the device image's software
# (Python 3.12, torch 2.11, numpy 2, transformers 5: requirements/gpu-image.txt);
# downloads are cached (docs/benchmark.md, "The GPU check").
gpu-rehearsal:
	@bash tools/gpu_rehearsal.sh

clean:
	rm -rf work_dirs data/demo .pytest_cache
