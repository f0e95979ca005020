PYTHON ?= python3

.PHONY: install test sample samples lint bench clean

install:
	$(PYTHON) -m pip install -e '.[test]'

test:
	$(PYTHON) -m pytest -q

sample:
	dlcert check samples/strict_saddle.npz; test $$? -eq 3

samples:
	$(PYTHON) samples/make_samples.py

lint:
	ruff check dlcert tests samples benchmarks
	mypy dlcert

bench:
	$(PYTHON) benchmarks/hessian_bench.py
