# Two entry points for a fresh clone with Python 3.11+ and make:
#   make run    - the exporter against the built-in simulated alikafka API (no cloud account needed)
#   make test   - lint, type checks and the whole test suite; first runs scripts/install-tools.sh (one file per
#                 tool in scripts/tools.d/): Prometheus/promtool into .tools/, and with root via apt curl,
#                 openssl, chromium, kubectl, buildah/podman/runc/debootstrap/systemd plus a Debian rootfs
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
ARGS ?= --demo
DURATION ?= 600

.PHONY: run test lint typecheck pytest tools clean bench-lag bench-scrape bench-cycle soak

$(BIN)/alikafka-exporter: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

run: $(BIN)/alikafka-exporter
	$(BIN)/alikafka-exporter $(ARGS)

tools:
	@bash scripts/install-tools.sh || { [ "$$CI" != "true" ] && echo "tools missing: their tests will skip" >&2; }

lint: $(BIN)/alikafka-exporter
	$(BIN)/ruff check exporter tests benchmarks

typecheck: $(BIN)/alikafka-exporter
	$(BIN)/mypy --strict exporter

pytest: $(BIN)/alikafka-exporter tools
	$(BIN)/pytest

test: lint typecheck pytest

bench-lag: $(BIN)/alikafka-exporter
	$(BIN)/python -m benchmarks.lag_accuracy

bench-scrape: $(BIN)/alikafka-exporter
	@command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 2; }
	$(BIN)/python -m benchmarks.scrape --tiers S,M,L

bench-cycle: $(BIN)/alikafka-exporter
	$(BIN)/python -m benchmarks.cycle --tier M --qps 20 --seconds 300

soak: $(BIN)/alikafka-exporter
	$(BIN)/python -m benchmarks.soak --seconds $(DURATION)

clean:
	rm -rf $(VENV) .tools .mypy_cache .ruff_cache .pytest_cache
