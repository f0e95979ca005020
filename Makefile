# Everything runs in a local virtual environment (.venv) so a fresh machine needs only
# python3 (>= 3.11) and make.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test samples lint bench clean figures torch jax

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

$(VENV)/.dev: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

## CPU PyTorch for the torch tests (CI runs this before make test). Exactly 2.13.0: on the
## project's machines pip takes that CPU wheel from local disk; a looser spec can pull a
## multi-GB CUDA build from the registry.
TORCH_SPEC ?= torch==2.13.0
torch: $(VENV)/.torch
$(VENV)/.torch: $(VENV)/.installed
	$(PY) -m pip install -q '$(TORCH_SPEC)'
	$(PY) -c "import torch; print('torch', torch.__version__)"
	touch $@

## JAX on the CPU for the JAX/Flax adapter tests (a pinned release; CI runs this too).
JAX_SPEC ?= jax==0.10.2
jax: $(VENV)/.jax
$(VENV)/.jax: $(VENV)/.installed
	$(PY) -m pip install -q '$(JAX_SPEC)'
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
	$(VENV)/bin/ruff check dlcert tests samples benchmarks examples
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
