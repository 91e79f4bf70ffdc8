# Chromium, for the status page test that renders / headless (tests/e2e/test_page_browser.py).
if command -v chromium >/dev/null; then
  return 0
fi
apt_install chromium fonts-dejavu-core
command -v chromium
