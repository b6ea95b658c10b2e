# mmsb: two commands do everything on a fresh machine (see README).
#   make demo          set up .venv if needed, then train + evaluate on the demo data
#   make test          set up .venv if needed, then run the whole test suite (newest row)
#   make test-oldest   set up .venv-oldest if needed (torch 2.1.2), then run the suite there
VENV ?= .venv
VENV_OLDEST ?= .venv-oldest
PY := $(VENV)/bin/python
PY_OLDEST := $(VENV_OLDEST)/bin/python
PYTEST_ARGS ?=
# What the oldest row runs (README "Tested versions"): the whole suite, as the newest
# row (about 7 minutes on 2 cores); e.g. OLDEST_TESTS="tests/test_models" for a part.
OLDEST_TESTS ?= tests
