# Every target makes its own .venv from pyproject.toml, so a fresh clone needs only python3.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: demo test lint bench clean

$(VENV)/.installed-dev: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

$(VENV)/.installed-bench: $(VENV)/.installed-dev
	$(PY) -m pip install -q -e '.[dev,bench]'
	touch $@

demo: $(VENV)/.installed-dev
	$(PY) examples/run_demo.py

test: $(VENV)/.installed-dev
	$(PY) -m pytest -q

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/black --check gopherpipe_runtime gopherpipe_gen tests bench examples
	$(VENV)/bin/mypy

# The echo suite, then concurrent streams at 1,000 (5,000 and 10,000: `python -m bench
# --streams-only`); the chart is bench/results.png, which README.md embeds.
bench: $(VENV)/.installed-bench
	$(PY) -m bench --streams 1000 --chart bench/results.png

clean:
	rm -rf $(VENV) build dist *.egg-info
