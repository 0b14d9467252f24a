#!/usr/bin/env bash
# Start-up benchmark: `stockade run` of /bin/true in a busybox bundle made by `stockade spec`
# (every namespace, cgroup limits, no capabilities, seccomp), `runc run` of the same bundle, and
# `bwrap --unshare-all` of the same rootfs, in rounds of one hyperfine invocation each; then peak RSS.
# Needs root, busybox-static, runc, bubblewrap, hyperfine and time (apt). Prints medians and ratios.
# BASE=/path/to/another/stockade adds that binary (e.g. main's build) to every round, as `base`,
# with its own state root: the ratio stockade/base is the regression check.
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
base=${BASE:-}
[ -n "$base" ] && base_cmd="$base --root $root/base run --bundle $work/b bench-base"
r_cmd="runc --root $root/runc run --bundle $work/r bench-r"
b_cmd="bwrap --unshare-all --die-with-parent --bind $work/b/rootfs / --proc /proc --dev /dev /bin/true"
for i in $(seq "$rounds"); do
  case $((i % 3)) in
    1) order=(stockade runc bwrap) ;;
    2) order=(runc bwrap stockade) ;;
    0) order=(bwrap stockade runc) ;;
  esac
  # base goes right before or after stockade, alternating, so the two see the same machine
  if [ -n "$base" ]; then
    o=()
    for n in "${order[@]}"; do
      if [ "$n" = stockade ] && [ $((i % 2)) = 0 ]; then o+=(base stockade)
      elif [ "$n" = stockade ]; then o+=(stockade base)
      else o+=("$n"); fi
    done
    order=("${o[@]}")
  fi
  args=()
  for n in "${order[@]}"; do
    case $n in stockade) c=$s_cmd ;; base) c=$base_cmd ;; runc) c=$r_cmd ;; bwrap) c=$b_cmd ;; esac
    args+=(-n "$n" "$c")
  done
  hyperfine -N --warmup 10 --runs "$per" --export-json "$work/h$i.json" "${args[@]}" >&2
done
# peak RSS: the median of 5 runs each (the first run after a build maps a colder page cache)
rss() { for _ in 1 2 3 4 5; do /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1; done | sort -n | sed -n 3p; }
s_rss=$(rss "$bin" --root "$root" run --bundle "$work/b" bench-s)
base_rss=0
[ -n "$base" ] && base_rss=$(rss "$base" --root "$root/base" run --bundle "$work/b" bench-base)
r_rss=$(rss runc --root "$root/runc" run --bundle "$work/r" bench-r)
b_rss=$(rss bwrap --unshare-all --die-with-parent --bind "$work/b/rootfs" / --proc /proc --dev /dev /bin/true)
python3 - "$work" "$rounds" "$s_rss" "$r_rss" "$b_rss" "$base_rss" <<'PY'
import json, statistics, sys
work, rounds = sys.argv[1], int(sys.argv[2])
rss = dict(zip(["stockade", "runc", "bwrap", "base"], map(int, sys.argv[3:7])))
names = ["stockade", "base", "runc", "bwrap"] if rss["base"] else ["stockade", "runc", "bwrap"]
per_round = []
for i in range(1, rounds + 1):
    res = json.load(open(f"{work}/h{i}.json"))["results"]
    per_round.append({r["command"]: r["median"] * 1000 for r in res})
med = {k: statistics.median(r[k] for r in per_round) for k in names}
ratio = lambda a, b: statistics.median(r[a] / r[b] for r in per_round)
spread = lambda a, b: "  rounds %.3f-%.3f" % (min(r[a] / r[b] for r in per_round), max(r[a] / r[b] for r in per_round))
print(f"{'':10} {'median ms':>10} {'peak RSS KiB':>13}   (median of {rounds} rounds)")
for k in names:
    print(f"{k:10} {med[k]:10.2f} {rss[k]:13}   rounds: " + " ".join(f"{r[k]:.2f}" for r in per_round))
print(f"stockade/runc  = {ratio('stockade', 'runc'):.3f}  (target <= 0.12)" + spread('stockade', 'runc'))
print(f"stockade/bwrap = {ratio('stockade', 'bwrap'):.3f}  (target <= 1.2)" + spread('stockade', 'bwrap'))
if "base" in names:
    print(f"stockade/base  = {ratio('stockade', 'base'):.3f}  (BASE; no regression: <= 1 within the spread)" + spread('stockade', 'base'))
# bwrap does a subset of stockade's work (no cgroups, seccomp, masks, /sys, idmapping): its own
# ratio to runc is the floor the runc target is measured against on this host.
print(f"bwrap/runc     = {ratio('bwrap', 'runc'):.3f}  (reference)" + spread('bwrap', 'runc'))
print(f"stockade peak RSS = {rss['stockade'] / 1024:.2f} MiB  (target <= 2.5)", end="")
print(f", base {rss['base'] / 1024:.2f} MiB" if rss["base"] else "")
PY
