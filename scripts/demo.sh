#!/usr/bin/env bash
# The main job, end to end, on a Debian machine as root: a Debian 12 rootfs
# from signed apt archives, a deterministic ext4 image, a microVM kernel, one
# OCI artifact in the local layout out/oci. The Debian mirror comes from the
# host's apt sources.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${CARGO_TARGET_DIR:-target}/debug/vmimage"
mkdir -p out

"$BIN" rootfs recipes/debian-12-minimal.toml --tar out/rootfs.tar --sbom out/sbom.spdx.json
"$BIN" mkfs out/rootfs.tar out/rootfs.ext4
e2fsck -fn out/rootfs.ext4
"$BIN" kernel kernels/microvm-6.1-x86_64.toml --out out/kernel
"$BIN" pack --kernel out/kernel/vmlinux --rootfs out/rootfs.ext4 \
  --sbom out/sbom.spdx.json --recipe recipes/debian-12-minimal.toml \
  oci:out/oci:debian-12-minimal
"$BIN" inspect oci:out/oci:debian-12-minimal
