#!/usr/bin/env bash
# Engine start-up benchmark: `docker run --rm bb true` with `--runtime stockade` (policy off),
# `--runtime stockade-policy` (the built-in hardening policy: user namespace with its own id
# range, overlay rebuilt from idmapped layers, caps, limits) and `--runtime runc`, and `podman run
# --rm` the same three ways, in one hyperfine invocation each (same daemon, same image, same run). Starts its own dockerd (temporary
# data/exec roots, its own socket) and uses a temporary podman store; stops and removes all.
# Needs root, docker.io, podman, runc, busybox-static, hyperfine (apt). Prints medians and ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p stockade
bin=$PWD/target/x86_64-unknown-linux-gnu/release/stockade
work=$(mktemp -d)
chmod 755 "$work"
dpid=""
cleanup() {
  [ -n "$dpid" ] && kill "$dpid" 2>/dev/null && wait "$dpid" 2>/dev/null || true
  umount -R "$work/exec" "$work/data" "$work/proot" "$work/prun" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# a busybox image, made offline
mkdir -p "$work/bb/bin"
cp /bin/busybox "$work/bb/bin/busybox"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$work/bb/bin/$a"; done
tar -C "$work/bb" -cf "$work/bb.tar" .

sock="unix://$work/docker.sock"
cat >"$work/daemon.json" <<EOF
{"runtimes": {"stockade": {"path": "$bin", "runtimeArgs": ["--policy", "none"]},
              "stockade-policy": {"path": "$bin", "runtimeArgs": ["--policy", "default"]}}}
EOF
dockerd --data-root "$work/data" --exec-root "$work/exec" --pidfile "$work/dockerd.pid" -H "$sock" \
  --iptables=false --bridge=none --ip-masq=false --config-file "$work/daemon.json" \
  >"$work/dockerd.log" 2>&1 &
dpid=$!
for _ in $(seq 100); do docker -H "$sock" version >/dev/null 2>&1 && break; sleep 0.2; done
docker -H "$sock" import --change "ENV PATH=/bin" "$work/bb.tar" bb >/dev/null
d="docker -H $sock run --rm --network none"
hyperfine -N --warmup 3 --runs "${RUNS:-30}" --export-json "$work/docker.json" \
  -n "docker+stockade" "$d --runtime stockade bb true" \
  -n "docker+stockade-policy" "$d --runtime stockade-policy bb true" \
  -n "docker+runc" "$d --runtime runc bb true" >&2

p="podman --root $work/proot --runroot $work/prun --cgroup-manager cgroupfs --events-backend file"
$p import --change "ENV PATH=/bin" "$work/bb.tar" bb >/dev/null
pr="run --rm --network none --ulimit nofile=1024:1024 --ulimit nproc=1024:1024"
hyperfine -N --warmup 3 --runs "${RUNS:-30}" --export-json "$work/podman.json" \
  -n "podman+stockade" "$p --runtime $bin --runtime-flag policy=none $pr bb true" \
  -n "podman+stockade-policy" "$p --runtime $bin --runtime-flag policy=default $pr bb true" \
  -n "podman+runc" "$p --runtime $(command -v runc) $pr bb true" >&2

python3 - "$work/docker.json" "$work/podman.json" <<'PY'
import json, sys
med = {}
for f in sys.argv[1:]:
    for r in json.load(open(f))["results"]:
        med[r["command"]] = r["median"] * 1000
print(f"{'':25} {'median ms':>10}")
for k, v in med.items():
    print(f"{k:25} {v:10.1f}")
for e in ["docker", "podman"]:
    s, pol, runc = med[e + '+stockade'], med[e + '+stockade-policy'], med[e + '+runc']
    print(f"{e}: stockade/runc = {s / runc:.3f}, stockade-policy/runc = {pol / runc:.3f}, "
          f"policy adds {pol - s:.1f} ms = {100 * (pol - s) / s:.1f} % of stockade's own start")
PY
