#!/usr/bin/env bash
# Fuzz stockade's parsers of untrusted input with AFL++ (cargo afl, stable Rust).
#
#   fuzz/run.sh [SECONDS] [TARGET...]   build with `cargo afl`, fuzz each target for SECONDS
#                                       (default 600), one at a time, then print per-target
#                                       execs, exec/s, corpus, crashes and hangs.
#   fuzz/run.sh --smoke [TARGET...]     no AFL: build the harnesses as plain replayers and run
#                                       each target's corpus (and any saved crashes/hangs of
#                                       earlier runs under out/) once; fails on a panic. For CI.
#   fuzz/run.sh --stats [TARGET...]     print the table for the last runs under out/.
#
# Needs, for fuzzing: `cargo install cargo-afl` and `cargo afl config --build` once.
# Findings go to fuzz/out/TARGET/default/{crashes,hangs} (not committed).
set -euo pipefail
cd "$(dirname "$0")"

ALL=(spec seccomp audit mountinfo wire hooks)
MODE=fuzz
SECS=600
if [ "${1:-}" = "--smoke" ]; then MODE=smoke; shift
elif [ "${1:-}" = "--stats" ]; then MODE=stats; shift
elif [[ "${1:-}" =~ ^[0-9]+$ ]]; then SECS=$1; shift
fi
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=("${ALL[@]}")

# The repository's .cargo/config.toml fixes a build target; binaries land under it.
bin_of() {
    local dir=$1 t=$2
    for d in "$dir/x86_64-unknown-linux-gnu/release" "$dir/release"; do
        if [ -x "$d/$t" ]; then echo "$d/$t"; return; fi
    done
    echo "no binary for $t under $dir" >&2
    exit 1
}

stat_of() { sed -n "s/^$2 *: *//p" "$1" | head -1; }

stats() {
    printf '%-10s %12s %9s %8s %8s %6s %8s\n' target execs exec/s corpus crashes hangs minutes
    for t in "${TARGETS[@]}"; do
        local f=out/$t/default/fuzzer_stats
        if [ ! -f "$f" ]; then printf '%-10s (not run)\n' "$t"; continue; fi
        local execs run
        execs=$(stat_of "$f" execs_done)
        run=$(stat_of "$f" run_time)
        printf '%-10s %12s %9s %8s %8s %6s %8s\n' "$t" "$execs" \
            "$(( execs / (run > 0 ? run : 1) ))" "$(stat_of "$f" corpus_count)" \
            "$(stat_of "$f" saved_crashes)" "$(stat_of "$f" saved_hangs)" "$(( run / 60 ))"
    done
}

case $MODE in
smoke)
    cargo build --release --no-default-features --target-dir target/smoke --bins
    rc=0
    for t in "${TARGETS[@]}"; do
        inputs=("corpus/$t")
        for d in out/"$t"/default/crashes out/"$t"/default/hangs; do
            [ -d "$d" ] && inputs+=("$d")
        done
        "$(bin_of target/smoke "$t")" "${inputs[@]}" || rc=1
    done
    exit $rc
    ;;
stats)
    stats
    ;;
fuzz)
    cargo afl build --release --bins
    mkdir -p out
    for t in "${TARGETS[@]}"; do
        echo "== $t: ${SECS}s"
        # AUTORESUME: a second run continues the first's queue instead of refusing to start.
        dict=()
        case $t in spec | seccomp | audit | hooks) dict=(-x dict/json.dict) ;; esac
        AFL_NO_UI=1 AFL_AUTORESUME=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 \
            nice -n 10 cargo afl fuzz -V "$SECS" "${dict[@]}" -i "corpus/$t" -o "out/$t" \
            -- "$(bin_of target "$t")" > "out/$t.log" 2>&1 || {
            echo "afl-fuzz failed for $t; see fuzz/out/$t.log" >&2
            tail -20 "out/$t.log" >&2
        }
    done
    stats
    ;;
esac
