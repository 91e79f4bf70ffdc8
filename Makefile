# Two entry points for a fresh clone with Python 3.11+ and make:
#   make run    - the exporter against the built-in simulated alikafka API (no cloud account needed); installs
#                 only what running needs (the runtime dependencies) into .venv-run
#   make test   - lint, type checks and the whole test suite, from .venv (the package with its test extra);
#                 first runs scripts/install-tools.sh (one file per tool in scripts/tools.d/): Prometheus/promtool
#                 into .tools/, and with root via apt curl, openssl, chromium, kubectl,
#                 buildah/podman/runc/debootstrap/systemd plus a Debian rootfs
# Release steps, the same commands the release workflow runs (docs/releasing.md):
#   make dist   - wheel and sdist into dist/          make sbom  - CycloneDX SBOM of the runtime into dist/
#   make image  - the container image with docker, podman or buildah, whichever is there
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUN_VENV := .venv-run
RUN_BIN := $(RUN_VENV)/bin
ARGS ?= --demo
DURATION ?= 600

.PHONY: run test lint typecheck pytest tools clean bench bench-lag bench-schedule bench-scrape bench-cycle soak dist sbom image

$(BIN)/alikafka-exporter: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

# Runtime only: the package and its dependencies, no test tools (a fraction of .venv's size).
$(RUN_BIN)/alikafka-exporter: pyproject.toml
	$(PYTHON) -m venv $(RUN_VENV)
	$(RUN_BIN)/pip install --quiet --upgrade pip
	$(RUN_BIN)/pip install --quiet -e .
	@touch $@

run: $(RUN_BIN)/alikafka-exporter
	$(RUN_BIN)/alikafka-exporter $(ARGS)

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
	timeout 120 $(BIN)/python -m benchmarks.rate_accuracy

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

# Release steps (the release workflow runs these same targets; docs/releasing.md). The version is the git
# tag's (hatch-vcs); SETUPTOOLS_SCM_PRETEND_VERSION=X.Y.Z overrides it, as the workflow does.
DIST ?= dist
dist: $(BIN)/alikafka-exporter
	rm -f $(DIST)/*.whl $(DIST)/*.tar.gz
	$(BIN)/python -m build --outdir $(DIST) .

# What ships, and nothing else: the package installed (not editable) with its runtime dependencies into an
# environment without pip, described by cyclonedx-py from the test environment.
SBOM_ENV ?= build/sbom-env
sbom: $(BIN)/alikafka-exporter
	rm -rf $(SBOM_ENV)
	$(PYTHON) -m venv --without-pip $(SBOM_ENV)
	$(BIN)/pip --python $(SBOM_ENV)/bin/python install --quiet --no-cache-dir .
	@mkdir -p $(DIST)
	@version=$$($(SBOM_ENV)/bin/python -c 'import importlib.metadata as m; print(m.version("alikafka-exporter"))') && \
	set -x && $(BIN)/cyclonedx-py environment --output-reproducible --mc-type application \
		--output-file $(DIST)/alikafka-exporter-$$version.cdx.json $(SBOM_ENV)

# The container image for local use, tagged with the version a build from here gets ("+" becomes "-").
# BUILDER overrides the detection (docker with a running daemon, else podman, else buildah), e.g. without a
# daemon or registry (docs/deploy.md): make image BASE_IMAGE=localhost/base BUILDER="buildah --storage-driver
# vfs bud --isolation chroot --pull=never". podman and buildah (1.28 at least) skip the pinned base stage
# that the default BASE_IMAGE names, taking it for unused, unless told not to skip unused stages.
IMAGE ?= alikafka-exporter
BASE_IMAGE ?=
BUILDER ?=
image: $(BIN)/alikafka-exporter
	@version=$$($(BIN)/python -m hatchling version 2>/dev/null) && [ -n "$$version" ] || \
		{ echo "make image: no version from hatchling (is git there?)" >&2; exit 2; }; \
	builder='$(BUILDER)'; \
	if [ -z "$$builder" ]; then \
		if command -v docker >/dev/null && docker info >/dev/null 2>&1; then builder="docker build"; \
		elif command -v podman >/dev/null; then builder="podman build"; \
		elif command -v buildah >/dev/null; then builder="buildah bud"; \
		else echo "make image: needs docker (with a running daemon), podman or buildah" >&2; exit 2; fi; \
		case "$$builder $(BASE_IMAGE)" in podman*" "|buildah*" ") \
			builder="$$builder --skip-unused-stages=false";; esac; \
	fi; \
	set -x; $$builder --build-arg VERSION=$$version $(if $(BASE_IMAGE),--build-arg BASE_IMAGE=$(BASE_IMAGE)) \
		--tag $(IMAGE):$$(echo $$version | tr + -) .

clean:
	rm -rf $(VENV) $(RUN_VENV) .tools .mypy_cache .ruff_cache .pytest_cache build
