#!/usr/bin/env bash
# Benchmark: `vmimage mkfs` against `mkfs.ext4 -d` on the same tree, side by
# side in one hyperfine run, then the image sizes (vmimage's auto size vs
# mkfs.ext4 shrunk with `resize2fs -M`).
#
# The tree is a Debian bookworm minbase built by mmdebstrap (cached under
# $VMIMAGE_CACHE/test-trees, shared with tests/tests/mkfs.rs) and extracted
# to a directory. BENCH_COPIES=N (default 1) puts N copies of it side by
# side for a larger tree. BENCH_RUNS (default 5) sets hyperfine's runs.
# Needs root (the tree holds root-owned files and devices), hyperfine,
# e2fsprogs, mmdebstrap.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS="${BENCH_RUNS:-5}"
COPIES="${BENCH_COPIES:-1}"
CACHE="${VMIMAGE_CACHE:-$HOME/.cache/vmimage}/test-trees"
TAR="$CACHE/bookworm-minbase.tar"
for t in hyperfine mkfs.ext4 resize2fs e2fsck dumpe2fs mmdebstrap; do
  command -v "$t" >/dev/null || PATH="$PATH:/usr/sbin:/sbin"
  command -v "$t" >/dev/null || { echo "missing $t: run scripts/deps.sh" >&2; exit 1; }
done

# VMIMAGE=PATH benchmarks a binary built elsewhere (say, the dev profile,
# which optimises the ext4 crate as release does).
if [ -n "${VMIMAGE:-}" ]; then
  VM="$VMIMAGE"
else
  cargo build --release --quiet --bin vmimage
  VM="${CARGO_TARGET_DIR:-target}/release/vmimage"
fi

# The Debian mirror from the host's apt sources (never hard-coded here).
mirror() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk '/^URIs:/ {print $2; exit}' "$f" && return
  done
  awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^http/) { print $i; exit } }' /etc/apt/sources.list
}

if [ ! -f "$TAR" ]; then
  mkdir -p "$CACHE"
  tmp="$CACHE/.tmp-$$-bookworm-minbase.tar"
  mmdebstrap --quiet --variant=minbase --format=tar bookworm "$tmp" "$(mirror)" </dev/null
  mv "$tmp" "$TAR"
fi

W="$(mktemp -d "${BENCH_DIR:-/var/tmp}/bench-mkfs.XXXXXX")"
trap 'rm -rf "$W"' EXIT
TREE="$W/tree"
mkdir -p "$TREE"
for i in $(seq 1 "$COPIES"); do
  if [ "$COPIES" = 1 ]; then d="$TREE"; else d="$TREE/copy$i"; mkdir -p "$d"; fi
  tar --xattrs --xattrs-include='*' --numeric-owner -xpf "$TAR" -C "$d"
done
INPUT_TAR="$TAR"
if [ "$COPIES" != 1 ]; then
  INPUT_TAR="$W/tree.tar"
  tar --xattrs --xattrs-include='*' --numeric-owner --format=pax -C "$TREE" -cf "$INPUT_TAR" .
fi
ENTRIES=$(find "$TREE" | wc -l)
TREE_BYTES=$(du -sb "$TREE" | cut -f1)
# mkfs.ext4 needs a file sized up front: twice the tree plus 64 MiB is
# ample; only the shrunk size is compared.
PRESIZE=$(( TREE_BYTES * 2 + (64 << 20) ))
echo "tree: $ENTRIES entries, $((TREE_BYTES >> 20)) MiB ($COPIES copies of bookworm minbase); mkfs.ext4 file: $((PRESIZE >> 20)) MiB"
echo "vmimage: $VM ($("$VM" --version)); $(mkfs.ext4 -V 2>&1 | head -1)"

# Same features on both sides: mkfs.ext4's defaults (4 KiB blocks, 256-byte
# inodes, metadata_csum, 64bit, extents, flex_bg, journal), no reserved
# blocks (vmimage reserves none).
hyperfine --warmup 1 --runs "$RUNS" --export-json "$W/h.json" \
  --prepare "rm -f $W/v.ext4 $W/vt.ext4 $W/m.ext4" \
  -n "vmimage mkfs DIR" "$VM mkfs --source-date-epoch 1700000000 $TREE $W/v.ext4" \
  -n "vmimage mkfs TAR" "$VM mkfs --source-date-epoch 1700000000 $INPUT_TAR $W/vt.ext4" \
  -n "mkfs.ext4 -d DIR" "truncate -s $PRESIZE $W/m.ext4 && mkfs.ext4 -q -F -b 4096 -I 256 -m 0 -d $TREE $W/m.ext4"

echo
python3 - "$W/h.json" <<'EOF'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
base = r["mkfs.ext4 -d DIR"]["mean"]
for name in ("vmimage mkfs DIR", "vmimage mkfs TAR"):
    m = r[name]["mean"]
    print(f"{name}: {m:.3f} s mean vs mkfs.ext4 -d {base:.3f} s: {base / m:.2f}x faster")
EOF

# Sizes: hyperfine's --prepare removed the images between commands, so
# make each once more; both must be clean first.
rm -f "$W/v.ext4" "$W/m.ext4"
"$VM" mkfs --source-date-epoch 1700000000 "$TREE" "$W/v.ext4" >/dev/null
truncate -s "$PRESIZE" "$W/m.ext4"
mkfs.ext4 -q -F -b 4096 -I 256 -m 0 -d "$TREE" "$W/m.ext4"
e2fsck -fn "$W/v.ext4" >/dev/null
e2fsck -fn "$W/m.ext4" >/dev/null
resize2fs -M "$W/m.ext4" >/dev/null 2>&1
blocks=$(dumpe2fs -h "$W/m.ext4" 2>/dev/null | awk -F: '/^Block count/ {gsub(/ /, "", $2); print $2}')
truncate -s $(( blocks * 4096 )) "$W/m.ext4"
e2fsck -fn "$W/m.ext4" >/dev/null
echo
printf '%-36s %14s %14s\n' image "apparent MiB" "allocated MiB"
size() { printf '%-36s %14s %14s\n' "$1" "$(( $(stat -c %s "$2") >> 20 ))" "$(( $(du -B1 "$2" | cut -f1) >> 20 ))"; }
size "vmimage mkfs (auto, 64 MiB headroom)" "$W/v.ext4"
size "mkfs.ext4 -d + resize2fs -M" "$W/m.ext4"
"$VM" mkfs --source-date-epoch 1700000000 --headroom 0 "$TREE" "$W/v0.ext4" >/dev/null
e2fsck -fn "$W/v0.ext4" >/dev/null
size "vmimage mkfs --headroom 0" "$W/v0.ext4"
