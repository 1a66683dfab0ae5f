# The two commands of the README: `make demo` and `make test`. Both create .venv on first use.
VENV ?= .venv
BIN := $(VENV)/bin
BENCHMARK ?= split_digits
SEEDS ?= 1

.PHONY: demo test test-slow setup docs serve-docs clean select reports results-pages

setup:
	@bash scripts/setup.sh

demo: setup
	$(BIN)/avalanche-ext taxonomy --benchmark $(BENCHMARK) --seeds $(SEEDS)

# `make test` leaves out the tests marked slow (real processes: Ray, signals, a tracking server, a browser);
# `make test-slow` runs them. CI (.ci/run) runs both.
test: setup
	$(BIN)/python -m pytest -q -n auto -m "not slow"

test-slow: setup
	$(BIN)/python -m pytest -q -n auto -m slow

docs: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

serve-docs: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

# Hyper-parameter selection on the validation split: every recipe's declared grid, the same budget for all
# recipes of a benchmark (benchmark:seeds per configuration, as the committed selections were made).
# split_fmnist reuses the split_mnist5k selections, so it is not searched.
SELECT_RUNS ?= split_mnist5k:1 permuted_mnist5k:1 split_digits:2
select: setup
	for r in $(SELECT_RUNS); do $(BIN)/avalanche-ext select --benchmark $${r%%:*} --seeds $${r##*:} --resume \
		|| exit 1; done

# The committed reports of the leaderboards (3 seeds, every recipe), with the selected settings.
REPORT_BENCHMARKS ?= split_mnist5k permuted_mnist5k split_fmnist split_digits
reports: setup
	for b in $(REPORT_BENCHMARKS); do $(BIN)/avalanche-ext taxonomy --benchmark $$b --seeds 3 \
		--out docs/results/$$b --resume || exit 1; done

# The leaderboard pages and docs/results/fidelity.md, written from the committed reports (runs nothing).
results-pages: setup
	$(BIN)/avalanche-ext leaderboard

clean:
	rm -rf site .pytest_cache
