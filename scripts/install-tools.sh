#!/usr/bin/env bash
# Installs the external programs the tests use (idempotent). Each tool has one file in
# scripts/tools.d/, sourced in name order with the helpers below; a file returns early when its
# tool is already there. Needs apt-get (Debian/Ubuntu) and, for packages, root.
# `make test` tolerates a failure here locally (the tests that need a tool then skip), while
# under CI=true the tests fail instead.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v apt-get >/dev/null; then
  echo "install-tools: apt-get not available; install the tools in scripts/tools.d/ yourself" >&2
  exit 1
fi
_apt_updated=0
apt_update_once() {
  if [ "$_apt_updated" = 0 ] && [ "$(id -u)" = 0 ]; then
    apt-get update -qq >/dev/null
    _apt_updated=1
  fi
}
apt_install() {  # apt_install PACKAGE... : system packages, only when a command is missing
  apt_update_once
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
status=0
for tool in scripts/tools.d/*.sh; do
  # shellcheck source=/dev/null
  source "$tool" || { echo "install-tools: $tool failed" >&2; status=1; }
done
exit "$status"
