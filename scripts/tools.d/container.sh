# Container tooling for tests/deploy/test_container.py: buildah (daemonless builds), podman + runc
# (runs the image), systemd-analyze (checks deploy/systemd/), and two local root file systems made
# with debootstrap, because public image registries cannot be reached from here:
#   .tools/container-base/rootfs.tar          Debian + Python: the BASE_IMAGE the test builds FROM
#   .tools/container-base/systemd-rootfs.tar  the same plus systemd, to boot the unit file for real
# Both trust the CAs in /usr/local/share/ca-certificates/ (the registry proxy's), so pip inside the
# image build reaches PyPI: that is a property of these local bases only, never of the Dockerfile.
case ":$PATH:" in *:/usr/sbin:*) ;; *) PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin" ;; esac  # debootstrap, chroot
base=.tools/container-base
base_release=bookworm
base_stamp="$base_release python3 systemd v1"
if command -v buildah >/dev/null && command -v podman >/dev/null && [ -x /usr/sbin/runc ] \
   && command -v systemd-analyze >/dev/null && [ -s "$base/rootfs.tar" ] && [ -s "$base/systemd-rootfs.tar" ] \
   && [ "$(cat "$base/stamp" 2>/dev/null)" = "$base_stamp" ]; then
  return 0
fi
if ! command -v buildah >/dev/null || ! command -v podman >/dev/null || [ ! -x /usr/sbin/runc ] \
   || ! command -v debootstrap >/dev/null || ! command -v systemd-analyze >/dev/null; then
  apt_install buildah podman runc debootstrap systemd
fi
if [ ! -s "$base/rootfs.tar" ] || [ ! -s "$base/systemd-rootfs.tar" ] \
   || [ "$(cat "$base/stamp" 2>/dev/null)" != "$base_stamp" ]; then
  mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
  rm -rf "$base"
  mkdir -p "$base"
  rootfs=$(mktemp -d "$PWD/$base/rootfs.XXXXXX")
  chmod 755 "$rootfs"
  echo "container.sh: debootstrap $base_release into $rootfs (about a minute)" >&2
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    "$base_release" "$rootfs" "$mirror" >"$base/debootstrap.log" 2>&1 \
    || { tail -20 "$base/debootstrap.log" >&2; rm -rf "$rootfs"; return 1; }
  # Trust the local proxy's CAs, as a corporate base image would.
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
    chroot "$rootfs" update-ca-certificates >/dev/null 2>&1 \
      || { echo "container.sh: update-ca-certificates failed in the base" >&2; rm -rf "$rootfs"; return 1; }
  fi
  _container_slim() {
    rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/cache/apt/*.bin "$1"/var/lib/apt/lists/* "$1"/usr/share/doc "$1"/usr/share/man \
      "$1"/usr/share/locale
  }
  _container_slim "$rootfs"
  tar --numeric-owner -C "$rootfs" -cf "$base/rootfs.tar.part" . && mv "$base/rootfs.tar.part" "$base/rootfs.tar"
  # The systemd variant: the same system plus systemd as init (about 10 s more).
  chroot "$rootfs" sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      --no-install-recommends systemd systemd-sysv' >"$base/systemd-apt.log" 2>&1 \
    || { tail -20 "$base/systemd-apt.log" >&2; rm -rf "$rootfs"; return 1; }
  _container_slim "$rootfs"
  tar --numeric-owner -C "$rootfs" -cf "$base/systemd-rootfs.tar.part" . \
    && mv "$base/systemd-rootfs.tar.part" "$base/systemd-rootfs.tar"
  rm -rf "$rootfs"
  echo "$base_stamp" >"$base/stamp"
fi
echo "container.sh: $(buildah --version | cut -d' ' -f1-3), $(podman --version), $(systemd-analyze --version | head -1)," \
  "bases $(du -ch "$base"/*.tar | tail -1 | cut -f1)"
