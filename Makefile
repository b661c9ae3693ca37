# Every target makes its own .venv from pyproject.toml, so a fresh clone needs only python3.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: demo test lint bench bench-aio fuzz clean

$(VENV)/.installed-dev: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

$(VENV)/.installed-fuzz: $(VENV)/.installed-dev
	$(PY) -m pip install -q -e '.[dev,fuzz]'
	touch $@

$(VENV)/.installed-bench: $(VENV)/.installed-dev
	$(PY) -m pip install -q -e '.[dev,bench]'
	touch $@

demo: $(VENV)/.installed-dev
	$(PY) examples/run_demo.py

# scripts/ensure-etcd installs an etcd server for the etcd tests when there is none (they
# start their own on free ports); done here, outside pytest's per-test timeout. Where it
# cannot be installed the tests say so and are skipped.
test: $(VENV)/.installed-dev
	scripts/ensure-etcd >/dev/null || echo "make test: no etcd, the etcd tests will be skipped" >&2
	$(PY) -m pytest -q

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/black --check gopherpipe_runtime gopherpipe_gen tests bench examples fuzz
	$(VENV)/bin/mypy

# The echo suite, then concurrent streams at 1,000 (5,000 and 10,000: `python -m bench
# --streams-only`); the chart is bench/results.png, which README.md embeds.
bench: $(VENV)/.installed-bench
	$(PY) -m bench --streams 1000 --chart bench/results.png

# The asyncio bench: GopherPipe's aio runtime beside grpc.aio and grpclib (bench/aio),
# 3 rounds with 10,000 open streams; `python -m bench.aio --quick` is its smoke run.
bench-aio: $(VENV)/.installed-bench
	$(PY) -m bench.aio

# Every fuzz target (fuzz/targets.py) in one atheris process for FUZZ_SECONDS; what it
# learns goes to fuzz/.work/corpus (the seeds in fuzz/corpus are only read), a crashing
# input to fuzz/.work/crash-*. See fuzz/README.md.
FUZZ_SECONDS ?= 600
fuzz: $(VENV)/.installed-fuzz
	mkdir -p fuzz/.work/corpus
	$(PY) fuzz/fuzz_gopherpipe.py fuzz/.work/corpus fuzz/corpus -max_total_time=$(FUZZ_SECONDS) \
		-dict=fuzz/gopherpipe.dict -timeout=10 -rss_limit_mb=2048 -artifact_prefix=fuzz/.work/ \
		-print_final_stats=1

clean:
	rm -rf $(VENV) build dist *.egg-info
