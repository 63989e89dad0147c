#!/usr/bin/env bash
# Benchmark: `vmimage rootfs` against `mmdebstrap --variant=minbase` for the same
# suite and extra packages (recipes/debian-12-minimal.toml), side by side, cold
# (nothing downloaded yet) and warm (downloads cached). Both use the Debian
# mirror of this host's apt sources, and both write a tar.
#
#   cold: vmimage with an empty --cache; mmdebstrap with its fresh apt cache
#         (it always starts from an empty one).
#   warm: vmimage with the cache the cold run filled; mmdebstrap with the .debs
#         of its cold run synced into the chroot's apt archive cache (the
#         man page's sync-in/sync-out recipe), so neither downloads a .deb.
#
# Targets: vmimage cold <= 0.5 x mmdebstrap cold; vmimage warm <= 10 s.
# Needs root. Usage: scripts/bench-rootfs.sh   (VMIMAGE=path overrides the binary)
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET_DIR="${CARGO_TARGET_DIR:-target}"
VMIMAGE="${VMIMAGE:-$TARGET_DIR/release/vmimage}"
[ -x "$VMIMAGE" ] || { echo "build it first: cargo build --release --bin vmimage" >&2; exit 1; }
RECIPE=recipes/debian-12-minimal.toml
SUITE=bookworm
INCLUDE=ca-certificates,iproute2,netbase,ifupdown

# The host's mirror for $SUITE (deb822 sources first, then one-line sources).
mirror() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -e "$f" ] || continue
    awk -v s="$SUITE" '
      /^[[:space:]]*$/ { if (ok && uri) { print uri; exit } ok=0; uri="" ; next }
      /^URIs:/ { uri=$2 }
      /^Suites:/ { for (i=2;i<=NF;i++) if ($i==s) ok=1 }
      END { if (ok && uri) print uri }' "$f" | head -n1
  done
  awk -v s="$SUITE" '$1=="deb" { for (i=2;i<=NF;i++) if ($i ~ /:\/\//) { if ($(i+1)==s) print $i; break } }' \
    /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true
}
MIRROR="$(mirror | head -n1)"
[ -n "$MIRROR" ] || { echo "no $SUITE mirror in the host's apt sources" >&2; exit 1; }

WORK="$(mktemp -d /var/tmp/bench-rootfs.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT

# Runs a command quietly and prints its wall time in seconds.
timed() {
  local start end
  start=$(date +%s.%N)
  if ! "$@" >"$WORK/log" 2>&1; then
    echo "FAILED: $*" >&2
    tail -n 30 "$WORK/log" >&2
    exit 1
  fi
  end=$(date +%s.%N)
  echo "$end - $start" | bc
}

mkdir -p "$WORK/mmcache"
MM=(mmdebstrap --variant=minbase --include="$INCLUDE" --skip=essential/unlink)

echo "vmimage rootfs vs mmdebstrap --variant=minbase: $SUITE + $INCLUDE ($(nproc) cores)"
vm_cold=$(timed "$VMIMAGE" rootfs "$RECIPE" --no-lockfile --mirror "$MIRROR" --cache "$WORK/vmcache" --tar "$WORK/vm-cold.tar")
mm_cold=$(timed "${MM[@]}" --customize-hook="sync-out /var/cache/apt/archives $WORK/mmcache" \
  "$SUITE" "$WORK/mm-cold.tar" "$MIRROR")
vm_warm=$(timed "$VMIMAGE" rootfs "$RECIPE" --no-lockfile --mirror "$MIRROR" --cache "$WORK/vmcache" --tar "$WORK/vm-warm.tar")
mm_warm=$(timed "${MM[@]}" --setup-hook='mkdir -p "$1"/var/cache/apt/archives/' \
  --setup-hook="sync-in $WORK/mmcache /var/cache/apt/archives/" \
  "$SUITE" "$WORK/mm-warm.tar" "$MIRROR")

# vmimage keeps a tar build's scratch tree in /dev/shm when it has room; mmdebstrap keeps
# its in $TMPDIR. The same warm run with mmdebstrap's scratch in /dev/shm too:
mm_warm_shm=$(TMPDIR=/dev/shm timed "${MM[@]}" --setup-hook='mkdir -p "$1"/var/cache/apt/archives/' \
  --setup-hook="sync-in $WORK/mmcache /var/cache/apt/archives/" \
  "$SUITE" "$WORK/mm-warm-shm.tar" "$MIRROR")

same=no
cmp -s "$WORK/vm-cold.tar" "$WORK/vm-warm.tar" && same=yes
printf '\n%-8s %12s %12s %8s\n' run vmimage mmdebstrap ratio
printf '%-8s %11.1fs %11.1fs %8.2f\n' cold "$vm_cold" "$mm_cold" "$(echo "$vm_cold / $mm_cold" | bc -l)"
printf '%-8s %11.1fs %11.1fs %8.2f\n' warm "$vm_warm" "$mm_warm" "$(echo "$vm_warm / $mm_warm" | bc -l)"
printf '%-8s %11.1fs %11.1fs %8.2f   (mmdebstrap with TMPDIR=/dev/shm)\n' warm-shm "$vm_warm" "$mm_warm_shm" "$(echo "$vm_warm / $mm_warm_shm" | bc -l)"
printf '\ntar sizes: vmimage %s MB, mmdebstrap %s MB; vmimage cold and warm tars identical: %s\n' \
  "$(( $(stat -c %s "$WORK/vm-warm.tar") / 1000000 ))" "$(( $(stat -c %s "$WORK/mm-warm.tar") / 1000000 ))" "$same"
cold_ok=$(echo "$vm_cold <= 0.5 * $mm_cold" | bc)
warm_ok=$(echo "$vm_warm <= 10" | bc)
echo "target cold <= 0.5 x mmdebstrap: $([ "$cold_ok" = 1 ] && echo met || echo MISSED)"
echo "target warm <= 10 s:             $([ "$warm_ok" = 1 ] && echo met || echo MISSED)"
