#!/usr/bin/env bash
# The systemd cgroup driver, side by side with runc's: `stockade --systemd-cgroup run` and
# `runc --systemd-cgroup run` of the same busybox bundle (cgroupsPath system.slice:bench:ID,
# memory and pids limits), under a real systemd booted as PID 1 in a podman container from the
# cached Debian rootfs of tests/systemd.rs (built by that test: run it once first). hyperfine
# runs inside that container; every run creates, starts, waits for and stops a transient scope.
# Needs root, podman, runc, hyperfine, busybox-static. Prints medians and the ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
tarball=/var/cache/stockade-test/systemd-bookworm.tar
[ -f "$tarball" ] || { echo "no $tarball: run cargo test -p stockade --test systemd once" >&2; exit 1; }
cargo build --release -q -p stockade
bin=$PWD/target/x86_64-unknown-linux-gnu/release/stockade
work=$(mktemp -d)
chmod 755 "$work"
name=stockade-bench-systemd-$$
p="podman --root $work/proot --runroot $work/prun --cgroup-manager cgroupfs --events-backend file"
cleanup() {
  $p exec "$name" sh -c 'for c in $(stockade list -q); do stockade delete --force $c; done' 2>/dev/null || true
  $p rm -f -t 0 "$name" >/dev/null 2>&1 || true
  umount -R "$work/proot" "$work/prun" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

mkdir "$work/rootfs"
tar -C "$work/rootfs" -xf "$tarball"
b="$work/bundle"
mkdir -p "$b/rootfs/bin" "$b/rootfs/proc" "$b/rootfs/dev" "$b/rootfs/sys" "$b/rootfs/tmp"
cp /bin/busybox "$b/rootfs/bin/busybox"
for a in sh true; do ln -sf busybox "$b/rootfs/bin/$a"; done
"$bin" spec --bundle "$b"
python3 - "$b/config.json" <<'PY'
import json, sys
f = sys.argv[1]
c = json.load(open(f))
c["process"]["args"] = ["true"]
c["process"].pop("rlimits", None)
c["linux"]["cgroupsPath"] = "system.slice:bench:c"
c["linux"]["resources"]["memory"] = {"limit": 104857600}
c["linux"]["resources"]["pids"] = {"limit": 100}
# runc 1.1.5 does not know the time namespace
c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "time"]
c["linux"].pop("timeOffsets", None)
json.dump(c, open(f, "w"))
PY
chmod -R a+rX "$b"
$p run -d --name "$name" --privileged --systemd=always --network none \
  --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \
  -v "$bin:/usr/local/bin/stockade:ro" -v "$(command -v runc):/usr/local/bin/runc:ro" \
  -v "$(command -v hyperfine):/usr/local/bin/hyperfine:ro" -v "$b:/bundle" -v "$work:/out" \
  --tmpfs /run/bench --rootfs "$work/rootfs" /lib/systemd/systemd >/dev/null
for _ in $(seq 100); do
  s=$($p exec "$name" systemctl is-system-running 2>/dev/null || true)
  [ "$s" = running ] || [ "$s" = degraded ] && break
  sleep 0.2
done
$p exec "$name" sh -c 'cd /bundle && hyperfine -N --warmup 3 --runs '"${RUNS:-30}"' --export-json /out/systemd.json \
  -n "stockade --systemd-cgroup" "stockade --root /run/bench/s --systemd-cgroup run c" \
  -n "runc --systemd-cgroup" "runc --root /run/bench/r --systemd-cgroup run c"' >&2

python3 - "$work/systemd.json" <<'PY'
import json, sys
med = {r["command"]: r["median"] * 1000 for r in json.load(open(sys.argv[1]))["results"]}
print(f"{'':28} {'median ms':>10}")
for k, v in med.items():
    print(f"{k:28} {v:10.1f}")
print(f"stockade/runc = {med['stockade --systemd-cgroup'] / med['runc --systemd-cgroup']:.3f}")
PY
