# The two commands of the README: `make demo` and `make test`. Both create .venv on first use.
VENV ?= .venv
BIN := $(VENV)/bin
BENCHMARK ?= split_digits
SEEDS ?= 1

.PHONY: demo test setup docs serve-docs clean

setup:
	@bash scripts/setup.sh

demo: setup
	$(BIN)/avalanche-ext taxonomy --benchmark $(BENCHMARK) --seeds $(SEEDS)

test: setup
	$(BIN)/python -m pytest -q -n auto

docs: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

serve-docs: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

clean:
	rm -rf site .pytest_cache
