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

.PHONY: run test lint typecheck pytest tools clean bench bench-lag bench-schedule bench-scrape bench-cycle soak

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
	$(BIN)/lint-imports

typecheck: $(BIN)/alikafka-exporter
	$(BIN)/mypy --strict exporter benchmarks

pytest: $(BIN)/alikafka-exporter tools
	$(BIN)/pytest

test: lint typecheck pytest

# Benchmarks are commands, not tests (docs/performance.md). `make bench` runs the whole set, each step
# bounded by `timeout`: lag accuracy (~30 s), adaptive against uniform scheduling on a virtual clock (~75 s),
# scrape cost at tiers S, M, L (~6 min), the full cycle at tier L at the rate limit (5 min); about 13 minutes
# in all, at most 35.
CYCLE_TIER ?= L
CYCLE_QPS ?= 40
CYCLE_SECONDS ?= 300

bench: bench-lag bench-schedule bench-scrape bench-cycle

bench-lag: $(BIN)/alikafka-exporter
	timeout 300 $(BIN)/python -m benchmarks.lag_accuracy

bench-schedule: $(BIN)/alikafka-exporter
	timeout 300 $(BIN)/python -m benchmarks.schedule

# wrk drives the load; installed from Debian when missing and run as root, else named.
bench-scrape: $(BIN)/alikafka-exporter
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && { apt-get install -y -q wrk >/dev/null 2>&1 || \
		{ apt-get update -q >/dev/null && apt-get install -y -q wrk >/dev/null; }; }; } || \
		{ echo "wrk is needed: apt-get install -y wrk (as root)" >&2; exit 2; }
	timeout 900 $(BIN)/python -m benchmarks.scrape --tiers S,M,L

bench-cycle: $(BIN)/alikafka-exporter
	timeout $$(( $(CYCLE_SECONDS) + 120 )) $(BIN)/python -m benchmarks.cycle --tier $(CYCLE_TIER) \
		--qps $(CYCLE_QPS) --seconds $(CYCLE_SECONDS)

soak: $(BIN)/alikafka-exporter
	$(BIN)/python -m benchmarks.soak --seconds $(DURATION)

clean:
	rm -rf $(VENV) .tools .mypy_cache .ruff_cache .pytest_cache
