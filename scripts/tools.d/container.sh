# Container tooling for tests/deploy/test_container.py: buildah (daemonless builds), podman + runc
# (runs the image), and a local Debian + Python base image made with debootstrap, because public
# image registries cannot be reached from here. The base is cached in .tools/container-base/ as a
# root filesystem tarball; the test imports it into its own buildah storage. It trusts the CAs in
# /usr/local/share/ca-certificates/ (the registry proxy's), so pip inside the image build reaches
# PyPI: that is a property of this local base only, never of the Dockerfile.
base=.tools/container-base
base_tar=$base/rootfs.tar
base_release=bookworm
if command -v buildah >/dev/null && command -v podman >/dev/null && [ -x /usr/sbin/runc ] \
   && [ -s "$base_tar" ] && [ "$(cat "$base/stamp" 2>/dev/null)" = "$base_release" ]; then
  return 0
fi
if ! command -v buildah >/dev/null || ! command -v podman >/dev/null || [ ! -x /usr/sbin/runc ] \
   || ! command -v debootstrap >/dev/null; then
  apt_install buildah podman runc debootstrap
fi
if [ ! -s "$base_tar" ] || [ "$(cat "$base/stamp" 2>/dev/null)" != "$base_release" ]; then
  mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
  rm -rf "$base"
  mkdir -p "$base"
  rootfs=$(mktemp -d "$PWD/$base/rootfs.XXXXXX")
  chmod 755 "$rootfs"
  echo "container.sh: debootstrap $base_release into $rootfs (about 90 s)" >&2
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    "$base_release" "$rootfs" "$mirror" >"$base/debootstrap.log" 2>&1 \
    || { tail -20 "$base/debootstrap.log" >&2; rm -rf "$rootfs"; return 1; }
  # Trust the local proxy's CAs, as a corporate base image would.
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
    chroot "$rootfs" update-ca-certificates >/dev/null 2>&1 \
      || { echo "container.sh: update-ca-certificates failed in the base" >&2; rm -rf "$rootfs"; return 1; }
  fi
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc \
    "$rootfs"/usr/share/man "$rootfs"/usr/share/locale
  tar --numeric-owner -C "$rootfs" -cf "$base_tar.part" . && mv "$base_tar.part" "$base_tar"
  rm -rf "$rootfs"
  echo "$base_release" >"$base/stamp"
fi
echo "container.sh: $(buildah --version), $(podman --version), base $(du -h "$base_tar" | cut -f1)"
