#!/usr/bin/env bash
# Start-up cost of a network: `stockade sandbox --net bridge -- true` and `--net none -- true`
# beside `podman run --network bridge` and `--network none` (netavark) of a busybox image made
# offline from the same binary, in one hyperfine run. Everything runs inside a network namespace
# made for the benchmark (the bridges, veths and rules of both live and die there).
# Usage: bench/net.sh [RUNS]   (root; podman and hyperfine installed)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-40}
if [ -z "${STK_NET_BENCH_INNER:-}" ]; then
  cargo build --release -q -p stockade
  if ! podman image exists localhost/stockade-bb; then
    t=$(mktemp -d); mkdir -p "$t/bin"; cp /bin/busybox "$t/bin/"
    for a in sh true; do ln -s busybox "$t/bin/$a"; done
    tar -C "$t" -c . | podman import -q - localhost/stockade-bb >/dev/null; rm -rf "$t"
  fi
  exec env STK_NET_BENCH_INNER=1 unshare --net "$0" "$RUNS"
fi
ip link set lo up
B=$PWD/target/x86_64-unknown-linux-gnu/release/stockade
ROOT=$(mktemp -d /dev/shm/stockade-net.XXXXXX)   # tmpfs, as /run is on real hosts
trap 'rm -rf "$ROOT"' EXIT
P="podman run --rm --ulimit nofile=1024:1024 --ulimit nproc=1024:1024"
OUT=$(mktemp)
hyperfine -N --warmup 5 --runs "$RUNS" --export-json "$OUT" \
  -n "stockade none" "$B --root $ROOT sandbox --net none -- /bin/true" \
  -n "stockade bridge" "$B --root $ROOT sandbox --net bridge -- /bin/true" \
  -n "podman none" "$P --network none localhost/stockade-bb true" \
  -n "podman bridge" "$P --network bridge localhost/stockade-bb true"
/usr/bin/python3 - "$OUT" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
med = {k: v["median"] * 1e3 for k, v in r.items()}
for k, v in med.items():
    print(f"{k:16s} median {v:8.2f} ms")
sb = med["stockade bridge"] - med["stockade none"]
pb = med["podman bridge"] - med["podman none"]
print(f"bridge adds: stockade {sb:.2f} ms, podman (netavark) {pb:.2f} ms, ratio {sb / pb:.3f}")
print(f"stockade bridge / podman bridge = {med['stockade bridge'] / med['podman bridge']:.3f}")
PY
rm -f "$OUT"
