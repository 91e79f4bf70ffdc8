#!/usr/bin/env bash
# Installs the external programs the tests use into .tools/ (idempotent):
#   Prometheus and promtool, unpacked from Debian's package without starting any service.
# Needs apt-get (Debian/Ubuntu). Without root it only works when the package lists are present;
# `make test` tolerates a failure here locally (the tests that need a tool then skip), while
# under CI=true the tests fail instead.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=.tools/prometheus
if [ -x "$dest/usr/bin/prometheus" ] && [ -x "$dest/usr/bin/promtool" ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "install-tools: apt-get not available; install prometheus and promtool yourself" >&2
  exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ "$(id -u)" = 0 ]; then
  apt-get update -qq >/dev/null
fi
(cd "$work" && apt-get download -qq prometheus >/dev/null)
mkdir -p "$dest"
dpkg -x "$work"/prometheus_*.deb "$dest"
"$dest/usr/bin/promtool" --version | head -1
