# curl, a real TLS client for tests/unit/web/test_tls.py (client certificates, basic auth). Debian's package.
if command -v curl >/dev/null; then
  return 0
fi
apt_install curl ca-certificates
curl --version | head -1
