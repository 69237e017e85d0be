# Two commands do everything on a fresh machine:
#   make demo   -- create .venv, install, train a tokenizer and a small GPT, print samples
#   make test   -- create .venv, install with test extras, run the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-test
BENCH_STAMP := $(VENV)/.installed-bench

.PHONY: demo test bench clang clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -e '.[test,bench]'
	touch $(BENCH_STAMP)

clang:
	@sh scripts/ensure_clang.sh

demo: $(STAMP) clang
	$(BIN)/tinygpt demo

test: $(STAMP) clang
	$(BIN)/python -m pytest

bench: $(BENCH_STAMP) clang
	$(BIN)/python benchmarks/bpe_bench.py
	$(BIN)/python benchmarks/train_bench.py
	$(BIN)/python benchmarks/generate_bench.py

clean:
	rm -rf $(VENV) build *.egg-info
