#!/usr/bin/env bash
# The policy's cost on stockade's own start: one Docker-shaped config (no user namespace,
# Docker's 14 capabilities, no limits) on an overlay rootfs, run with `--policy none` and with
# `--policy default` (user namespace with an id range of its own, the overlay rebuilt from
# idmapped layers, ceiling, seccomp, limits), and by runc, in one hyperfine invocation.
# Needs root, runc, busybox-static, hyperfine. Prints medians and ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p stockade
bin=$PWD/target/x86_64-unknown-linux-gnu/release/stockade
work=$(mktemp -d)
chmod 755 "$work"
cleanup() { umount "$work/b/rootfs" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
mkdir -p "$work/lower/bin" "$work/upper" "$work/work" "$work/b/rootfs"
cp /bin/busybox "$work/lower/bin/"
for a in sh true; do ln -s busybox "$work/lower/bin/$a"; done
mkdir -p "$work/lower/proc" "$work/lower/dev" "$work/lower/sys" "$work/lower/tmp"
mount -t overlay overlay -o "lowerdir=$work/lower,upperdir=$work/upper,workdir=$work/work,index=off" "$work/b/rootfs"
"$bin" spec --bundle "$work/b"
python3 - "$work/b/config.json" <<'PY'
import json, sys
f = sys.argv[1]; v = json.load(open(f))
caps = ["CAP_CHOWN","CAP_DAC_OVERRIDE","CAP_FSETID","CAP_FOWNER","CAP_MKNOD","CAP_NET_RAW","CAP_SETGID",
        "CAP_SETUID","CAP_SETFCAP","CAP_SETPCAP","CAP_NET_BIND_SERVICE","CAP_SYS_CHROOT","CAP_KILL","CAP_AUDIT_WRITE"]
v["process"]["args"] = ["/bin/true"]
v["process"]["capabilities"] = {"bounding": caps, "effective": caps, "permitted": caps}
v["process"]["noNewPrivileges"] = False
v["root"]["readonly"] = False
l = v["linux"]
l["namespaces"] = [{"type": t} for t in ["pid", "network", "ipc", "uts", "mount"]]
for k in ["uidMappings", "gidMappings", "resources"]:
    l.pop(k, None)
json.dump(v, open(f, "w"))
PY
hyperfine -N --warmup 5 --runs "${RUNS:-50}" --export-json "$work/p.json" \
  -n "stockade --policy none" "$bin --root $work/r1 --policy none run --bundle $work/b p1" \
  -n "stockade --policy default" "$bin --root $work/r2 --policy default run --bundle $work/b p2" \
  -n "runc" "runc --root $work/r3 run --bundle $work/b p3" >&2
python3 - "$work/p.json" <<'PY'
import json, sys
m = {r["command"]: r["median"] * 1000 for r in json.load(open(sys.argv[1]))["results"]}
for k, v in m.items():
    print(f"{k:26} {v:7.2f} ms")
n, d, r = m["stockade --policy none"], m["stockade --policy default"], m["runc"]
print(f"policy adds {d - n:.2f} ms = {100 * (d - n) / n:.1f} % of stockade's own start; "
      f"default/runc = {d / r:.3f}, none/runc = {n / r:.3f}")
PY
