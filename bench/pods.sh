#!/usr/bin/env bash
# Pod start through Kubernetes' node path without a kubelet: RunPodSandbox + CreateContainer +
# StartContainer of one app container, through containerd 2.x's CRI (Debian sid's, fetched and
# cached by crates/stockade/tests/containerd2.sh), runtime handler `stockade` (release build, its
# default hardening policy: the pod runs in a user namespace of its own) beside `runc` (Debian's),
# alternating in one run; medians and their ratio. The driver is the ignored test
# tests/cri/bench.rs (a CRI client, as the kubelet's). Usage: bench/pods.sh [RUNS]  (root)
set -euo pipefail
cd "$(dirname "$0")/.."
export PODS_BENCH_RUNS=${1:-20}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
if ! cargo test --release -q -p stockade --test cri -- --ignored --nocapture --test-threads=1 \
  pod_start_stockade_vs_runc >"$out" 2>&1; then
  cat "$out" >&2
  exit 1
fi
grep '^pod start' "$out"
