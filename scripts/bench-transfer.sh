#!/usr/bin/env bash
# Push and pull of a 1 GiB rootfs artifact against local docker-registry
# instances: vmimage vs `skopeo copy` (OCI layout -> registry and back), side
# by side in one run. Each tool gets its own fresh registry so neither
# benefits from blobs the other uploaded.
#
# Usage: scripts/bench-transfer.sh        (builds vmimage --release first)
# Env:   BENCH_DIR (default: a temp dir), VMIMAGE (binary to use), BENCH_RUNS (default 3).
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$here/target}"
if [ -z "${VMIMAGE:-}" ]; then
  (cd "$here" && cargo build --release --bin vmimage >&2)
  VMIMAGE="$target/release/vmimage"
fi
for t in docker-registry skopeo mkfs.ext4 python3; do
  command -v "$t" >/dev/null || { echo "missing $t: run make setup" >&2; exit 1; }
done

work="${BENCH_DIR:-$(mktemp -d /tmp/vmimage-bench.XXXXXX)}"
mkdir -p "$work"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -n "${BENCH_DIR:-}" ] || rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start_registry() { # name -> prints host:port
  local name=$1 port
  port=$(free_port)
  mkdir -p "$work/$name"
  cat >"$work/$name/config.yml" <<EOF
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $work/$name/storage
http:
  addr: 127.0.0.1:$port
EOF
  docker-registry serve "$work/$name/config.yml" >"$work/$name/log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do
    if python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/v2/')" 2>/dev/null; then
      echo "127.0.0.1:$port"; return
    fi
    sleep 0.1
  done
  echo "registry $name did not start" >&2; exit 1
}

now() { date +%s.%N; }
secs() { python3 -c "print(f'{$2 - $1:.2f}')"; }

echo "== inputs (in $work)" >&2
# A realistic 1 GiB ext4 image: real binaries and libraries, 384 MiB of
# incompressible data, the rest free (zero) space.
tree="$work/tree"
mkdir -p "$tree/usr"
# /usr/bin alone: a host's /usr/lib can outgrow the 1 GiB image.
cp -a /usr/bin /usr/sbin "$tree/usr/" 2>/dev/null || true
# Keep the real files under 384 MiB so the image always fits.
while [ "$(du -sm "$tree/usr" | cut -f1)" -gt 384 ]; do
  big=$(find "$tree/usr" -type f -size +1M | sort | head -20)
  [ -n "$big" ] || break
  echo "$big" | xargs rm -f
done
head -c 384M /dev/urandom >"$tree/data.bin"
rm -f "$work/rootfs.ext4"
mkfs.ext4 -q -F -d "$tree" "$work/rootfs.ext4" 1G
head -c 16M /dev/urandom >"$work/vmlinux"
printf 'Linux version 6.1.0-bench (bench@host) #1 SMP\0' >>"$work/vmlinux"
rm -rf "$tree"

t0=$(now)
SOURCE_DATE_EPOCH=1700000000 "$VMIMAGE" --json pack --kernel "$work/vmlinux" \
  --rootfs "$work/rootfs.ext4" "oci:$work/layout:bench" >"$work/pack.json"
t1=$(now)
pack_s=$(secs "$t0" "$t1")
blob_bytes=$(python3 -c "
import json,os
d='$work/layout/blobs/sha256'
print(sum(os.path.getsize(os.path.join(d,f)) for f in os.listdir(d)))")
used=$(du -k --apparent-size "$work/rootfs.ext4" | cut -f1)


run() { # label cmd... -> seconds
  local a b
  a=$(now); "$@" >/dev/null 2>"$work/last.err" || { cat "$work/last.err" >&2; exit 1; }; b=$(now)
  secs "$a" "$b"
}

# Each timing is the median of RUNS runs, the tools taking turns. Every run starts two
# fresh registries: a registry that already holds a blob lets skopeo mount it from
# another repository (its blob-info cache remembers where it pushed), which is not an
# upload.
RUNS="${BENCH_RUNS:-3}"
median() { python3 -c "import statistics,sys; print(statistics.median(float(x) for x in sys.argv[1:]))" "$@"; }
ps=(); pv=(); rs=(); rv=(); ls_=(); lv=()
for i in $(seq 1 "$RUNS"); do
  echo "== run $i: push (layout -> registry), re-push, pull (registry -> layout)" >&2
  reg_v=$(start_registry "reg-vmimage-$i")
  reg_s=$(start_registry "reg-skopeo-$i")
  ps+=("$(run skopeo copy --dest-tls-verify=false "oci:$work/layout:bench" "docker://$reg_s/bench/img:1")")
  pv+=("$(run "$VMIMAGE" push --plain-http "oci:$work/layout:bench" "$reg_v/bench/img:1")")
  rs+=("$(run skopeo copy --dest-tls-verify=false "oci:$work/layout:bench" "docker://$reg_s/bench/img:1")")
  rv+=("$(run "$VMIMAGE" push --plain-http "oci:$work/layout:bench" "$reg_v/bench/img:1")")
  rm -rf "$work/pulled-skopeo" "$work/pulled-vmimage"
  ls_+=("$(run skopeo copy --src-tls-verify=false "docker://$reg_s/bench/img:1" "oci:$work/pulled-skopeo:1")")
  lv+=("$(run "$VMIMAGE" push --plain-http "$reg_v/bench/img:1" "oci:$work/pulled-vmimage:1")")
done
push_s=$(median "${ps[@]}"); push_v=$(median "${pv[@]}")
repush_s=$(median "${rs[@]}"); repush_v=$(median "${rv[@]}")
pull_s=$(median "${ls_[@]}"); pull_v=$(median "${lv[@]}")
echo "== pull --out (registry -> decompressed sparse files, vmimage only)" >&2
pullout_v=$(run "$VMIMAGE" pull --plain-http "$reg_v/bench/img:1" --out "$work/files")
cmp "$work/files/rootfs.ext4" "$work/rootfs.ext4"
cmp "$work/files/vmlinux" "$work/vmlinux"

python3 - <<EOF
mb = $blob_bytes / 1e6
rows = [
  ("push (layout->registry)", $push_v, $push_s),
  ("re-push unchanged", $repush_v, $repush_s),
  ("pull (registry->layout)", $pull_v, $pull_s),
]
print(f"artifact: rootfs.ext4 {$used/1024:.0f} MiB (apparent), blobs {mb:.0f} MB compressed; pack {float('$pack_s'):.2f} s; median of $RUNS runs")
print(f"{'operation':28} {'vmimage':>9} {'skopeo':>9} {'vmimage MB/s':>13} {'skopeo MB/s':>12} {'speed-up':>9}")
for name, v, s in rows:
    tv = mb / v if v > 0 else float('inf'); ts = mb / s if s > 0 else float('inf')
    print(f"{name:28} {v:8.2f}s {s:8.2f}s {tv:13.0f} {ts:12.0f} {s/v:8.2f}x")
print(f"{'pull --out (decompress)':28} {$pullout_v:8.2f}s {'-':>9} {mb/$pullout_v:13.0f}")
print("re-push target < 1 s:", "met" if $repush_v < 1 else "MISSED")
print("push/pull target >= 1.5x skopeo:",
      "met" if $push_s/$push_v >= 1.5 and $pull_s/$pull_v >= 1.5 else "MISSED")
EOF
