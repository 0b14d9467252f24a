#!/usr/bin/env bash
# Start-up benchmark: `stockade run` of /bin/true in a busybox bundle made by `stockade spec`
# (every namespace, cgroup limits, no capabilities, seccomp), `runc run` of the same bundle, and
# `bwrap --unshare-all` of the same rootfs, in rounds of one hyperfine invocation each; then peak RSS.
# Needs root, busybox-static, runc, bubblewrap, hyperfine and time (apt). Prints medians and ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p stockade
bin=${CARGO_TARGET_DIR:-$PWD/target}/x86_64-unknown-linux-gnu/release/stockade
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"  # runc needs the bundle reachable by the container's root
. bench/bundle.sh
bench_bundle "$work/b" "$bin"
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
# This VM's speed drifts by tens of percent over minutes: the runs are split into rounds (one
# hyperfine invocation each, the order of the three rotating), and ratios are taken within each
# round, then their median reported.
rounds=${ROUNDS:-5}
per=$(( (${RUNS:-200} + rounds - 1) / rounds ))
s_cmd="$bin --root $root run --bundle $work/b bench-s"
r_cmd="runc --root $root/runc run --bundle $work/r bench-r"
b_cmd="bwrap --unshare-all --die-with-parent --bind $work/b/rootfs / --proc /proc --dev /dev /bin/true"
for i in $(seq "$rounds"); do
  case $((i % 3)) in
    1) order=(stockade runc bwrap) ;;
    2) order=(runc bwrap stockade) ;;
    0) order=(bwrap stockade runc) ;;
  esac
  args=()
  for n in "${order[@]}"; do
    case $n in stockade) c=$s_cmd ;; runc) c=$r_cmd ;; bwrap) c=$b_cmd ;; esac
    args+=(-n "$n" "$c")
  done
  hyperfine -N --warmup 10 --runs "$per" --export-json "$work/h$i.json" "${args[@]}" >&2
done
rss() { /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1; }
s_rss=$(rss "$bin" --root "$root" run --bundle "$work/b" bench-s)
r_rss=$(rss runc --root "$root/runc" run --bundle "$work/r" bench-r)
b_rss=$(rss bwrap --unshare-all --die-with-parent --bind "$work/b/rootfs" / --proc /proc --dev /dev /bin/true)
python3 - "$work" "$rounds" "$s_rss" "$r_rss" "$b_rss" <<'PY'
import json, statistics, sys
work, rounds = sys.argv[1], int(sys.argv[2])
rss = dict(zip(["stockade", "runc", "bwrap"], map(int, sys.argv[3:6])))
per_round = []
for i in range(1, rounds + 1):
    res = json.load(open(f"{work}/h{i}.json"))["results"]
    per_round.append({r["command"]: r["median"] * 1000 for r in res})
med = {k: statistics.median(r[k] for r in per_round) for k in rss}
ratio = lambda a, b: statistics.median(r[a] / r[b] for r in per_round)
print(f"{'':10} {'median ms':>10} {'peak RSS KiB':>13}   (median of {rounds} rounds)")
for k in ["stockade", "runc", "bwrap"]:
    print(f"{k:10} {med[k]:10.2f} {rss[k]:13}   rounds: " + " ".join(f"{r[k]:.2f}" for r in per_round))
print(f"stockade/runc  = {ratio('stockade', 'runc'):.3f}  (target <= 0.12)")
print(f"stockade/bwrap = {ratio('stockade', 'bwrap'):.3f}  (target <= 0.8)")
# bwrap does a subset of stockade's work (no cgroups, seccomp, masks, /sys, idmapping): its own
# ratio to runc is the floor the runc target is measured against on this host.
print(f"bwrap/runc     = {ratio('bwrap', 'runc'):.3f}  (reference)")
print(f"stockade peak RSS = {rss['stockade'] / 1024:.2f} MiB  (target <= 3)")
PY
