# openssl s_client, a real TLS client for tests/unit/web/test_tls.py (versions, cipher suites). Debian's package.
if command -v openssl >/dev/null; then
  return 0
fi
apt_install openssl
openssl version
