#!/usr/bin/env bash
# Learning overhead: each workload under `stockade sandbox` (native, enforced by the default
# profile), under `stockade learn --no-verify --caps-ceiling none` (one recorded run: the eBPF
# programs on sys_enter and cap_capable, plus writing the profile), and under `strace -f -o
# /dev/null` inside the same sandbox's options (strace runs on the host: a sandbox's seccomp
# forbids ptrace). hyperfine, same run, rounds rotating the order; ratios to native per round,
# their median printed. Then what verification and capability trials cost, in runs and seconds.
#
#   bash bench/learn.sh          (as root; RUNS per command, default 10)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p stockade
bin=$PWD/target/x86_64-unknown-linux-gnu/release/stockade
work=$(mktemp -d)
root=$(mktemp -d /dev/shm/stockade-learn-bench.XXXXXX)
trap 'rm -rf "$work" "$root"' EXIT
chmod 755 "$work"
printf 'int main(void){return 0;}\n' > "$work/a.c"
runs=${RUNS:-10}
declare -A W
W[find]="find /usr -type f | wc -l"
W[tar]="tar c /usr/share/doc 2>/dev/null | wc -c"
W[python]="/usr/bin/python3 -c pass"
W[gcc]="gcc -O2 -o /tmp/a /src/a.c"
opts=(--ro-bind "$work:/src" --memory unlimited --pids unlimited --cpus unlimited)
printf '%-8s %10s %10s %10s %8s %8s\n' workload native_ms learn_ms strace_ms learn/n strace/n
for w in ${WORKLOADS:-find tar python gcc}; do
  c=${W[$w]}
  host_c=${c//\/src/$work}
  n_cmd="$bin --root $root sandbox ${opts[*]} -- sh -c '$c'"
  l_cmd="$bin --root $root learn --no-verify --caps-ceiling none --out $work/out-$w ${opts[*]} -- sh -c '$c'"
  s_cmd="strace -f -o /dev/null sh -c '$host_c'"
  for i in 1 2 3; do
    case $i in
      1) order=("$n_cmd" "$l_cmd" "$s_cmd") ; names=(native learn strace) ;;
      2) order=("$l_cmd" "$s_cmd" "$n_cmd") ; names=(learn strace native) ;;
      3) order=("$s_cmd" "$n_cmd" "$l_cmd") ; names=(strace native learn) ;;
    esac
    hyperfine --warmup 1 --runs "$runs" --export-json "$work/$w-$i.json" \
      -n "${names[0]}" "${order[0]}" -n "${names[1]}" "${order[1]}" -n "${names[2]}" "${order[2]}" >/dev/null 2>"$work/err" ||
      { cat "$work/err" >&2; exit 1; }
  done
  python3 - "$work" "$w" <<'PY'
import json, statistics, sys
work, w = sys.argv[1], sys.argv[2]
ratios = {"learn": [], "strace": []}
med = {"native": [], "learn": [], "strace": []}
for i in (1, 2, 3):
    r = {x["command"]: statistics.median(x["times"]) for x in json.load(open(f"{work}/{w}-{i}.json"))["results"]}
    for k in med:
        med[k].append(r[k])
    ratios["learn"].append(r["learn"] / r["native"])
    ratios["strace"].append(r["strace"] / r["native"])
m = {k: statistics.median(v) * 1e3 for k, v in med.items()}
print(f"{w:<8} {m['native']:10.1f} {m['learn']:10.1f} {m['strace']:10.1f} {statistics.median(ratios['learn']):8.3f} {statistics.median(ratios['strace']):8.2f}")
PY
done
echo
echo "verification and capability trial (one full 'learn' each, Docker's 14 capabilities as the ceiling):"
for w in find python gcc; do
  c=${W[$w]}
  "$bin" --root "$root" learn --out "$work/full-$w" "${opts[@]}" -- sh -c "$c" >/dev/null
  printf '%-8s %s\n' "$w" "$(grep '^time:' "$work/full-$w/report.txt")"
  printf '%-8s %s\n' "" "$(grep '^syscalls:' "$work/full-$w/report.txt")"
done
