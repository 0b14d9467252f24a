#!/usr/bin/env bash
# Start-up benchmark: `stockade run` of /bin/true in a busybox bundle made by `stockade spec`
# (every namespace, cgroup limits, no capabilities, seccomp), `runc run` of the same bundle, and
# `bwrap --unshare-all` of the same rootfs, in one hyperfine invocation; then peak RSS of each.
# Needs root, busybox-static, runc, bubblewrap, hyperfine and time (apt). Prints medians and ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p stockade
bin=$PWD/target/x86_64-unknown-linux-gnu/release/stockade
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"  # runc needs the bundle reachable by the container's root
mkdir -p "$work/b/rootfs/bin" "$work/b/rootfs/proc" "$work/b/rootfs/dev" "$work/b/rootfs/sys" "$work/b/rootfs/tmp"
cp /bin/busybox "$work/b/rootfs/bin/busybox"
ln -s busybox "$work/b/rootfs/bin/true"
ln -s busybox "$work/b/rootfs/bin/sh"
"$bin" spec --bundle "$work/b"
python3 - "$work/b/config.json" <<'PY'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["process"]["args"] = ["/bin/true"]
json.dump(c, open(p, "w"), indent=1)
PY
# runc 1.1 (Debian 12) does not know the time namespace: its copy of the bundle leaves it out.
mkdir -p "$work/r"
python3 - "$work/b/config.json" "$work/r/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["root"]["path"] = sys.argv[1].rsplit("/", 2)[0] + "/b/rootfs"
c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "time"]
json.dump(c, open(sys.argv[2], "w"), indent=1)
PY
# State roots on tmpfs, as /run is on real hosts (on this VM /run is part of the ext4 root,
# mounted with `discard`: every file a runtime removes waits for a discard, ~0.3 ms per run for
# stockade and runc alike). Both runtimes get the same kind of root.
root=$(mktemp -d /dev/shm/stockade-bench.XXXXXX)
trap 'rm -rf "$work" "$root"' EXIT
[ -n "${DEBUG:-}" ] && "$bin" --root "$root" run --bundle "$work/b" bench-s
hyperfine -N --warmup 20 --runs "${RUNS:-200}" --export-json "$work/h.json" \
  -n stockade "$bin --root $root run --bundle $work/b bench-s" \
  -n runc "runc --root $root/runc run --bundle $work/r bench-r" \
  -n bwrap "bwrap --unshare-all --die-with-parent --bind $work/b/rootfs / --proc /proc --dev /dev /bin/true" >&2
rss() { /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1; }
s_rss=$(rss "$bin" --root "$root" run --bundle "$work/b" bench-s)
r_rss=$(rss runc --root "$root/runc" run --bundle "$work/r" bench-r)
b_rss=$(rss bwrap --unshare-all --die-with-parent --bind "$work/b/rootfs" / --proc /proc --dev /dev /bin/true)
python3 - "$work/h.json" "$s_rss" "$r_rss" "$b_rss" <<'PY'
import json, sys
res = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
med = {k: v["median"] * 1000 for k, v in res.items()}
rss = dict(zip(["stockade", "runc", "bwrap"], map(int, sys.argv[2:5])))
print(f"{'':10} {'median ms':>10} {'peak RSS KiB':>13}")
for k in ["stockade", "runc", "bwrap"]:
    print(f"{k:10} {med[k]:10.2f} {rss[k]:13}")
print(f"stockade/runc  = {med['stockade'] / med['runc']:.3f}  (target <= 0.12)")
print(f"stockade/bwrap = {med['stockade'] / med['bwrap']:.3f}  (target <= 0.8)")
print(f"stockade peak RSS = {rss['stockade'] / 1024:.2f} MiB  (target <= 3)")
PY
