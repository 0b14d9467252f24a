#!/usr/bin/env bash
# What learning a container costs the rest of the machine: a syscall-heavy program on the host
# (`dd bs=1`: one read and one write per byte) timed alone, while one container is learned under
# an engine's flags (`stockade --learn-dir DIR create/start`: the seccomp agent for syscalls,
# cap_capable/task_newtask/sched_process_exec for capabilities and forks), and while `stockade
# learn` records a sleeping workload (its sys_enter program: the kernel then sends every thread
# of the machine down the traced syscall path). Same run, conditions rotated each round;
# medians of hyperfine's medians, ratios to alone.
#
#   bash bench/learn-node.sh          (as root; ROUNDS, default 3; COUNT bytes, default 2000000)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p stockade
bin=$PWD/target/x86_64-unknown-linux-gnu/release/stockade
work=$(mktemp -d)
root=$(mktemp -d /dev/shm/stockade-learn-node.XXXXXX)
cleanup() {
  "$bin" --root "$root" delete --force node-learned >/dev/null 2>&1 || true
  if [ -n "${lpid:-}" ]; then kill "$lpid" 2>/dev/null; wait "$lpid" 2>/dev/null || true; fi
  rm -rf "$work" "$root"
}
trap cleanup EXIT
count=${COUNT:-2000000}
dd_cmd="dd if=/dev/zero of=/dev/null bs=1 count=$count status=none"
mkdir -p "$work/b/rootfs/bin"
cp /bin/busybox "$work/b/rootfs/bin/" && ln -s busybox "$work/b/rootfs/bin/sh"
"$bin" spec --bundle "$work/b"
python3 - "$work/b/config.json" <<'PY'
import json, sys
v = json.load(open(sys.argv[1]))
v["process"]["args"] = ["sh", "-c", "while :; do sleep 1; done"]
v["process"]["terminal"] = False
json.dump(v, open(sys.argv[1], "w"))
PY
time_dd() { hyperfine --warmup 1 --runs 5 --export-json "$work/$1.json" -n "$1" "$dd_cmd" >/dev/null; }
for round in $(seq 1 "${ROUNDS:-3}"); do
  for cond in alone engine tracepoint; do
    case $cond in
      alone) time_dd "alone-$round" ;;
      engine)
        "$bin" --root "$root" --learn-dir "$work/learned" create --bundle "$work/b" node-learned 2>/dev/null
        "$bin" --root "$root" start node-learned
        time_dd "engine-$round"
        "$bin" --root "$root" delete --force node-learned >/dev/null 2>&1 ;;
      tracepoint)
        # the recorded workload lives as long as the timing needs; learn ends with it
        "$bin" --root "$root" learn --no-verify --out "$work/tp" -- sleep 2147483 >/dev/null 2>&1 &
        lpid=$!
        sleep 1.5
        pgrep -f 'sleep 2147483' >/dev/null || { echo "stockade learn is not recording" >&2; exit 1; }
        time_dd "tracepoint-$round"
        kill "$lpid"
        wait "$lpid" 2>/dev/null || true
        lpid= ;;
    esac
  done
done
python3 - "$work" "${ROUNDS:-3}" <<'PY'
import json, statistics, sys
work, rounds = sys.argv[1], int(sys.argv[2])
med = {}
for c in ("alone", "engine", "tracepoint"):
    med[c] = statistics.median(
        statistics.median(json.load(open(f"{work}/{c}-{r}.json"))["results"][0]["times"])
        for r in range(1, rounds + 1))
print(f"{'condition':<42} {'dd s':>7} {'ratio':>6}")
for c, what in (("alone", "nothing learned"),
                ("engine", "a container learned (--learn-dir)"),
                ("tracepoint", "stockade learn recording (sys_enter)")):
    print(f"{what:<42} {med[c]:7.3f} {med[c] / med['alone']:6.3f}")
PY
