# Two entry points that do all the set-up themselves on a fresh machine:
#   make demo   short SFT + eval on CNN/DailyMail with the embedded local LLM, prints the table
#   make test   ruff (lint and format check), then the test suite (CI runs this)
VENV ?= .venv
PY := $(VENV)/bin/python
DATA ?= ../shared/data/cnndm

.PHONY: install demo test

install: $(VENV)/.installed

# torch is pinned first: 2.13.0 is the CPU build on this machine's disk; any other spec
# would download a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	# --only-binary: the embedded LLM's server is the prebuilt portable wheel, never a source build for
	# this machine's CPU (which can carry AMX code that dies with SIGILL on other CPUs).
	$(PY) -m pip install -q --only-binary=xllamacpp -e '.[local,dev,serve]'
	touch $@

test: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest

demo: install
	$(VENV)/bin/dsp demo --data $(DATA)
