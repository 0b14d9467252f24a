#!/usr/bin/env bash
# Regenerate crates/stockade/hot-symbols.txt: the functions of the release binary that run during
# `stockade run` of the benchmark's bundle (bench/bundle.sh). Two sources, merged with the list
# already there (lld ignores names a build lacks): CPU samples with their callers (perf, DWARF
# unwinding), and the code addresses of page faults (each names the first function run in a part
# of the binary not yet mapped: what sampling misses). build.rs hands the list to the linker so
# that this code lies together (see there). Each round moves more of it together: run it two or
# three times. Needs root, perf, busybox-static. A stale list only costs memory.
set -euo pipefail
cd "$(dirname "$0")/.."
list=crates/stockade/hot-symbols.txt
cargo build --release -q -p stockade
bin=${CARGO_TARGET_DIR:-$PWD/target}/x86_64-unknown-linux-gnu/release/stockade
work=$(mktemp -d); root=$(mktemp -d /dev/shm/stockade-hot.XXXXXX)
trap 'rm -rf "$work" "$root"' EXIT
chmod 755 "$work"
. bench/bundle.sh
bench_bundle "$work/b" "$bin"
runs="for i in \$(seq ${RUNS:-200}); do $bin --root $root run --bundle $work/b hot; done"
perf record -q -F 20000 -e cpu-clock:u --call-graph dwarf,32768 -o "$work/cpu.data" -- sh -c "$runs"
perf record -q -e page-faults:u -c 1 -d -o "$work/pf.data" -- sh -c "$runs"
perf script --no-demangle -i "$work/cpu.data" -F comm,ip,sym,dso --comm stockade 2>/dev/null |
  awk -v bin="($bin)" '$NF == bin {print $2}' > "$work/cpu.txt"
perf script -i "$work/pf.data" -F comm,addr --comm stockade 2>/dev/null | awk '{print $2}' > "$work/pf.txt"
nm -n --defined-only "$bin" > "$work/nm.txt"
python3 - "$work" "$list" <<'PY'
import bisect, collections, sys
work, out = sys.argv[1], sys.argv[2]
syms = []
for l in open(f"{work}/nm.txt"):
    p = l.split()
    if len(p) == 3 and p[1] in "tTwW":
        syms.append((int(p[0], 16), p[2]))
addrs = [a for a, _ in syms]
count = collections.Counter(l.strip() for l in open(f"{work}/cpu.txt") if l.strip())
for l in open(f"{work}/pf.txt"):
    a = int(l, 16)
    i = bisect.bisect_right(addrs, a) - 1
    if i >= 0 and (i + 1 == len(syms) or a < syms[i + 1][0]) and syms[i][0] >= 0x200000:
        count[syms[i][1]] += 1
names = [n for n, _ in count.most_common()]
try:
    old = [l.strip() for l in open(out) if l.strip()]
except FileNotFoundError:
    old = []
seen = set(names)
names += [n for n in old if n not in seen]
open(out, "w").write("\n".join(names) + "\n")
print(len(names), "symbols")
PY
