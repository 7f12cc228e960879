# Sika's two front doors: `make demo` and `make test`. Each builds .venv when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.sika-installed
BENCH_STAMP := $(VENV)/.sika-bench-installed
PYTEST_ARGS ?= -n 2

.PHONY: demo demo-stop test chaos lint install clean bench

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .

test: $(STAMP) lint
	@bash scripts/ensure-chromium.sh
	$(BIN)/python -m pytest $(PYTEST_ARGS)

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	@touch $(BENCH_STAMP)

# every benchmark of bench/ at full size; results in bench/results/*.json. Exit 3 from
# python -m bench means every benchmark ran and some target was missed (see README); an
# error in a benchmark still fails the build.
bench: $(STAMP) $(BENCH_STAMP)
	$(BIN)/python -m bench all || [ $$? -eq 3 ]

chaos: $(STAMP)
	SIKA_CHAOS_SIZE=$${SIKA_CHAOS_SIZE:-5000} $(BIN)/python -m pytest -m chaos -s -p no:xdist tests/chaos

demo: $(STAMP)
	@PATH="$(CURDIR)/$(BIN):$$PATH" bash scripts/demo.sh

demo-stop: $(STAMP)
	@if [ -f .sika/sandbox.pid ]; then kill "$$(cat .sika/sandbox.pid)" 2>/dev/null || true; rm -f .sika/sandbox.pid; fi
	@SIKA_HOME=.sika $(BIN)/sika db stop

clean:
	rm -rf $(VENV) .sika .pytest_cache .ruff_cache .hypothesis
