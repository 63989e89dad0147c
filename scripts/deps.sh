#!/usr/bin/env bash
# Installs the system tools vmimage's tests, benchmarks and demo use, from
# Debian's archive and PyPI only. Safe to run again. Needs root (or sudo).
set -euo pipefail

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

PACKAGES=(
  # ext4 oracles: e2fsck, debugfs, mkfs.ext4 (benchmark baseline), resize2fs
  e2fsprogs
  # reference rootfs builders for comparison tests and benchmarks
  mmdebstrap debootstrap
  # apt: local test repositories and signing
  dpkg-dev gnupg apt-utils xz-utils zstd debian-archive-keyring
  # rootfs without root: user namespaces with subordinate ids
  uidmap
  # kernel extract tests: the other bzImage payload compressors
  lzop lz4 bzip2
  # OCI: a real registry and an independent client
  docker-registry skopeo apache2-utils openssl
  # kernels: Debian's source tarball, build tools, boot under QEMU
  linux-source-6.1 bc bison flex libelf-dev libssl-dev cpio kmod
  qemu-system-x86 busybox-static
  # benchmarks
  hyperfine time
)

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null

# The ECR control plane stand-in for the OCI tests.
python3 -m pip install --quiet 'moto[server]'

# The unprivileged rootfs test runs as this user, root of a user namespace whose other
# ids map onto its subordinate range.
if ! id vmimage-test >/dev/null 2>&1; then
  $SUDO useradd --system --no-create-home --shell /usr/sbin/nologin vmimage-test
fi
for f in /etc/subuid /etc/subgid; do
  grep -q '^vmimage-test:' "$f" 2>/dev/null || echo 'vmimage-test:200000:65536' | $SUDO tee -a "$f" >/dev/null
done

# The Debian docker-registry package starts a system service on :5000 that
# the tests do not use (they start their own on free ports).
if command -v systemctl >/dev/null 2>&1; then
  $SUDO systemctl disable --now docker-registry >/dev/null 2>&1 || true
fi
