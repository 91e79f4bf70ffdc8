# Prometheus and promtool, unpacked from Debian's package without starting any service.
dest=.tools/prometheus
if [ -x "$dest/usr/bin/prometheus" ] && [ -x "$dest/usr/bin/promtool" ]; then
  return 0
fi
apt_update_once
work=$(mktemp -d); chmod 755 "$work"
(cd "$work" && apt-get download -qq prometheus >/dev/null)
mkdir -p "$dest"
dpkg -x "$work"/prometheus_*.deb "$dest"
rm -rf "$work"
"$dest/usr/bin/promtool" --version | head -1
