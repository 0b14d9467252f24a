#!/usr/bin/env bash
# Regenerate crates/stockade/hot-symbols.txt: the functions of the release binary that run during
# `stockade run` of the benchmark's bundle, sampled with their callers (perf, DWARF unwinding) over
# many runs. build.rs hands the list to the linker so that code lies together (see there).
# Needs root, perf, busybox-static. Re-run after larger changes; a stale list only costs memory.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p stockade
bin=$PWD/target/x86_64-unknown-linux-gnu/release/stockade
work=$(mktemp -d); root=$(mktemp -d /dev/shm/stockade-hot.XXXXXX)
trap 'rm -rf "$work" "$root"' EXIT
chmod 755 "$work"
mkdir -p "$work/b/rootfs/bin"
cp /bin/busybox "$work/b/rootfs/bin/busybox"
ln -s busybox "$work/b/rootfs/bin/true"
"$bin" spec --bundle "$work/b"
python3 -c 'import json,sys; p=sys.argv[1]; c=json.load(open(p)); c["process"]["args"]=["/bin/true"]; json.dump(c,open(p,"w"))' "$work/b/config.json"
perf record -q -F 20000 -e cpu-clock:u --call-graph dwarf,32768 -o "$work/perf.data" -- \
  sh -c "for i in \$(seq ${RUNS:-60}); do $bin --root $root run --bundle $work/b hot; $bin --root $root state none 2>/dev/null || true; done"
perf script --no-demangle -i "$work/perf.data" -F comm,ip,sym,dso --comm stockade 2>/dev/null |
  awk -v bin="($bin)" '$NF == bin {print $2}' | sort | uniq -c | sort -rn | awk '{print $2}' \
  > crates/stockade/hot-symbols.txt
wc -l crates/stockade/hot-symbols.txt
