#!/usr/bin/env bash
# Random-time kills: `stockade run` killed with SIGKILL after a random delay (0..KILL_MAX_US
# microseconds, default 15000: from before validation to after the container exited), then
# `delete --force`, then a check that nothing is left: no state directory (other than the
# seccomp cache), no cgroup directory in any hierarchy, no mount, no process of the container.
# The state root is on the disk (as /run/stockade is on this machine), not tmpfs.
#
#   bash bench/crash.sh [ROUNDS]          (default 200; as root)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/bundle.sh
rounds=${1:-200}
max_us=${KILL_MAX_US:-15000}
bin=${STOCKADE:-$PWD/target/x86_64-unknown-linux-gnu/release/stockade}
[ -x "$bin" ] || cargo build --release -p stockade
work=$(mktemp -d /var/tmp/stockade-crash.XXXXXX)
trap 'rm -rf "$work"' EXIT
bench_bundle "$work/bundle" "$bin"
root="$work/root"
mounts_before=$(awk '{print $4, $5}' /proc/self/mountinfo | sort)
leftovers=0
stages_hit=0
for i in $(seq 1 "$rounds"); do
  id="crash-$$-$i"
  "$bin" --root "$root" run --bundle "$work/bundle" "$id" >/dev/null 2>&1 &
  rt=$!
  delay=$((RANDOM * 32768 + RANDOM))
  delay=$((delay % max_us))
  sleep "$(printf '0.%06d' "$delay")"
  kill -9 "$rt" 2>/dev/null || true
  wait "$rt" 2>/dev/null || true
  [ -d "$root/$id" ] && stages_hit=$((stages_hit + 1))
  if ! "$bin" --root "$root" delete --force "$id" >/dev/null 2>"$work/err"; then
    echo "round $i: delete --force failed: $(cat "$work/err")"
    leftovers=$((leftovers + 1))
    continue
  fi
  bad=""
  [ -e "$root/$id" ] && bad="$bad state-dir"
  for h in /sys/fs/cgroup/*/stockade/"$id" /sys/fs/cgroup/stockade/"$id"; do
    [ -e "$h" ] && bad="$bad cgroup:$h"
  done
  if [ "$(awk '{print $4, $5}' /proc/self/mountinfo | sort)" != "$mounts_before" ]; then
    bad="$bad mounts"
  fi
  if [ -n "$bad" ]; then
    echo "round $i (killed after ${delay} us): left$bad"
    leftovers=$((leftovers + 1))
  fi
  # the id is usable again
  if ! "$bin" --root "$root" run --bundle "$work/bundle" "$id" >/dev/null 2>"$work/err"; then
    echo "round $i: id not reusable: $(cat "$work/err")"
    leftovers=$((leftovers + 1))
  fi
done
extra=$(find "$root" -mindepth 1 -maxdepth 1 ! -name .seccomp | wc -l)
echo "rounds: $rounds, killed while the state dir existed: $stages_hit, rounds with leftovers: $leftovers, entries left in the state root: $extra"
[ "$leftovers" = 0 ] && [ "$extra" = 0 ]
