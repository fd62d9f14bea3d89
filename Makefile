# `make demo` and `make test` work on a fresh machine that has only python3.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/densitylab demo --output demo-output

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

# Two test processes on one BLAS thread each: two processes with a thread per core each
# oversubscribed the two cores (BENCHMARKS.md: 7 min 0 s against 5 min 30 s, cache warm).
test: lint
	OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/python -m pytest -q -n 2 --dist loadfile

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python benchmarks/exact1d_vs_idea.py
	$(BIN)/python benchmarks/rdm_dataset.py
	$(BIN)/python benchmarks/tdks_vs_idea.py
	$(BIN)/python benchmarks/tdks_gradient.py

clean:
	rm -rf $(VENV) demo-output
