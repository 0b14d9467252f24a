#!/usr/bin/env bash
# The seccomp agent's cost (complain/enforce, `agent.rs`), on the release build: a call a
# learned profile allows, under `--learned` with and without `--seccomp-mode complain` (and with
# no filter), and a call outside the profile answered by the kernel (EPERM) or by the agent (a
# dedup hit: no line written). The workload is a small C program timing N calls (compiled by
# tests/complain.rs with gcc). Needs root, gcc. Prints µs per call for each case.
set -euo pipefail
cd "$(dirname "$0")/.."
for i in $(seq "${ROUNDS:-3}"); do
  cargo test --release -q -p stockade --test complain measure_the_cost_of_the_agent -- --nocapture 2>/dev/null |
    sed -n '/== seccomp agent cost/,/^$/p'
done
