# Sourced by bench/run.sh and bench/hot-symbols.sh: the benchmark's bundle, so that the symbol
# order is profiled on exactly what is measured.
# bench_bundle DIR BIN: DIR/rootfs with a static busybox as /bin/true and /bin/sh, and
# DIR/config.json from `BIN spec` (every isolation layer on) running /bin/true.
bench_bundle() {
  local dir=$1 bin=$2
  mkdir -p "$dir/rootfs/bin" "$dir/rootfs/proc" "$dir/rootfs/dev" "$dir/rootfs/sys" "$dir/rootfs/tmp"
  cp /bin/busybox "$dir/rootfs/bin/busybox"
  ln -s busybox "$dir/rootfs/bin/true"
  ln -s busybox "$dir/rootfs/bin/sh"
  "$bin" spec --bundle "$dir"
  python3 - "$dir/config.json" <<'PY'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["process"]["args"] = ["/bin/true"]
json.dump(c, open(p, "w"), indent=1)
PY
}
