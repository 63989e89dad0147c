#!/usr/bin/env bash
# The main job, end to end, on a Debian machine as root: a Debian 12 rootfs
# from signed apt archives, a deterministic ext4 image, a microVM kernel, one
# OCI artifact in the local layout out/oci. The Debian mirror comes from the
# host's apt sources.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${CARGO_TARGET_DIR:-target}/debug/vmimage"
mkdir -p out

# The rootfs's SOURCE_DATE_EPOCH (its newest package's date) stamps every later step,
# so the whole chain is reproducible.
SDE=$("$BIN" --json rootfs recipes/debian-12-minimal.toml --tar out/rootfs.tar --sbom out/sbom.spdx.json |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["source_date_epoch"])')
"$BIN" mkfs --source-date-epoch "$SDE" out/rootfs.tar out/rootfs.ext4
e2fsck -fn out/rootfs.ext4
"$BIN" kernel kernels/microvm-6.1-x86_64.toml --out out/kernel
SOURCE_DATE_EPOCH="$SDE" "$BIN" pack --kernel out/kernel/vmlinux --rootfs out/rootfs.ext4 \
  --sbom out/sbom.spdx.json --recipe recipes/debian-12-minimal.toml \
  oci:out/oci:debian-12-minimal
"$BIN" inspect oci:out/oci:debian-12-minimal
