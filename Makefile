# Everything runs in a local virtual environment (.venv) so a fresh machine needs only
# python3 (>= 3.11) and make.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test samples lint bench clean figures

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

$(VENV)/.dev: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

## Install and run one sample check (a strict saddle: exit code 3 is the expected answer).
demo: $(VENV)/.installed
	$(VENV)/bin/dlcert check samples/strict_saddle.npz; echo "dlcert exit code: $$? (3 = saddle)"

## Run the test suite (the same command .ci/run calls).
test: $(VENV)/.installed
	$(PY) -m pytest -q

## Rewrite samples/*.npz from the fixed-seed script.
samples: $(VENV)/.installed
	$(PY) samples/make_samples.py

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check dlcert tests samples benchmarks
	$(VENV)/bin/mypy dlcert

## Rewrite the README's figures (docs/figures; needs the plot extra). Exit codes 3 = saddle.
figures: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[plot]'
	$(VENV)/bin/dlcert check samples/strict_saddle.npz --plot docs/figures -q || test $$? -eq 3
	$(VENV)/bin/dlcert check samples/non_strict_saddle.npz --plot docs/figures -q || test $$? -eq 3
	$(VENV)/bin/dlcert landscape docs/figures/non_strict_saddle.yaml --rows 8 --plot docs/figures -q

## Benchmarks (not part of the test run).
bench: $(VENV)/.installed
	$(PY) benchmarks/hessian_bench.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
