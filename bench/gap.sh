#!/usr/bin/env bash
# What stockade's start-up time beyond bwrap's is made of: `stockade run` of bench/run.sh's
# bundle, then the same bundle with one part of the work left out at a time (the policy; /sys
# and its cgroup mounts; seccomp; the user namespace with its id maps and idmapped rootfs), then
# with all of what bwrap does not do left out, beside `bwrap --unshare-all` of the same rootfs.
# Rounds of one hyperfine invocation each (the order as given: every variant sees the same
# machine); medians of the per-round differences and ratios. Needs what bench/run.sh needs.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p stockade
bin=${CARGO_TARGET_DIR:-$PWD/target}/x86_64-unknown-linux-gnu/release/stockade
work=$(mktemp -d); root=$(mktemp -d /dev/shm/stockade-gap.XXXXXX)
trap 'rm -rf "$work" "$root"' EXIT
chmod 755 "$work"
. bench/bundle.sh
bench_bundle "$work/b" "$bin"
python3 - "$work" <<'PY'
import copy, json, os, sys
work = sys.argv[1]
c = json.load(open(f"{work}/b/config.json"))
c["root"]["path"] = f"{work}/b/rootfs"
def variant(name, *drop):
    v = copy.deepcopy(c)
    for d in drop:
        if d == "sys":
            v["mounts"] = [m for m in v["mounts"] if not m["destination"].startswith("/sys")]
        if d == "masks":
            v["linux"]["maskedPaths"], v["linux"]["readonlyPaths"] = [], []
        if d == "seccomp":
            v["linux"].pop("seccomp", None)
        if d == "user":
            for k in ("uidMappings", "gidMappings"):
                v["linux"].pop(k, None)
            v["linux"]["namespaces"] = [n for n in v["linux"]["namespaces"] if n["type"] != "user"]
    os.makedirs(f"{work}/{name}")
    json.dump(v, open(f"{work}/{name}/config.json", "w"))
variant("nosys", "sys")
variant("noseccomp", "seccomp")
variant("nouser", "user")
variant("bwraplike", "sys", "masks", "seccomp")
variant("bwraplike-nouser", "sys", "masks", "seccomp", "user")
PY
# `--policy none` on every variant: the default policy would put back what a variant leaves out
s="$bin --root $root"
args=(-n full "$s run --bundle $work/b g" -n no-policy "$s --policy none run --bundle $work/b g")
for v in nosys noseccomp nouser bwraplike bwraplike-nouser; do
  args+=(-n "$v" "$s --policy none run --bundle $work/$v g")
done
args+=(-n bwrap "bwrap --unshare-all --die-with-parent --bind $work/b/rootfs / --proc /proc --dev /dev /bin/true")
rounds=${ROUNDS:-3}
for i in $(seq "$rounds"); do
  hyperfine -N --warmup 10 --runs "${RUNS:-80}" --export-json "$work/h$i.json" "${args[@]}" >&2
done
python3 - "$work" "$rounds" <<'PY'
import json, statistics, sys
work, rounds = sys.argv[1], int(sys.argv[2])
rs = [{r["command"]: r["median"] * 1000 for r in json.load(open(f"{work}/h{i}.json"))["results"]}
      for i in range(1, rounds + 1)]
med = lambda f: statistics.median(f(r) for r in rs)
print(f"{'':18} {'median ms':>9} {'vs no-policy':>12} {'/bwrap':>7}   (median of {rounds} rounds)")
for k in rs[0]:
    print(f"{k:18} {med(lambda r: r[k]):9.2f} {med(lambda r: r[k] - r['no-policy']):+12.2f} "
          f"{med(lambda r: r[k] / r['bwrap']):7.3f}")
PY
