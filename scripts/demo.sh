#!/usr/bin/env bash
# The main job as far as it is built today: a Debian bookworm minbase tree
# (from mmdebstrap until `vmimage rootfs` lands) written to ext4 by vmimage.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${CARGO_TARGET_DIR:-target}/debug/vmimage"
mkdir -p out
if [ ! -f out/debian-minbase.tar ]; then
  mmdebstrap --quiet --variant=minbase bookworm out/debian-minbase.tar
fi
"$BIN" mkfs out/debian-minbase.tar out/rootfs.ext4
e2fsck -fn out/rootfs.ext4
ls -ls out/rootfs.ext4
