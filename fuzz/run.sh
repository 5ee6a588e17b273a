#!/usr/bin/env bash
# Runs the cargo-fuzz targets (`make fuzz`), or folds what they found into the committed
# corpora (`make fuzz-merge`). See fuzz/README.md.
#
#   fuzz/run.sh run     each of $FUZZ_TARGETS (frame json core server) for $FUZZ_SECONDS (600) s, one at
#                       a time; new inputs go to fuzz/work/corpus/<t>/ (fuzz/corpus/<t>/ is read
#                       only), crashes to fuzz/artifacts/<t>/; prints executions and crashes per
#                       target and fails if any target crashed.
#   fuzz/run.sh merge   adds to fuzz/corpus/<t>/ only the work inputs that add coverage.
#
# Without a nightly toolchain it says so and exits 0: `make test` still replays every corpus
# file and regression on stable (tests/fuzz_corpus.rs).
#
# No sanitizer: the code under test is safe Rust (the core forbids unsafe; the protocol and the
# checks have none), so AddressSanitizer would only slow the runs. fuzz/Cargo.toml turns on
# debug assertions and overflow checks instead, so an arithmetic overflow is a crash.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-run}
seconds=${FUZZ_SECONDS:-600}
targets=${FUZZ_TARGETS:-frame json core server}

if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    echo "fuzz: SKIPPED, no nightly toolchain here (cargo fuzz needs one: rustup toolchain install nightly)."
    echo "fuzz: the corpora and regressions are still replayed on stable: cargo test --features fuzzing --test fuzz_corpus"
    exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

flags=(--sanitizer none)
cargo +nightly fuzz build "${flags[@]}"
mkdir -p fuzz/work

if [ "$mode" = merge ]; then
    for t in $targets; do
        mkdir -p "fuzz/work/corpus/$t"
        before=$(ls "fuzz/corpus/$t" | wc -l)
        cargo +nightly fuzz run "${flags[@]}" "$t" "fuzz/corpus/$t" "fuzz/work/corpus/$t" -- -merge=1 \
            >"fuzz/work/$t.merge.log" 2>&1
        echo "fuzz merge $t: fuzz/corpus/$t $before -> $(ls "fuzz/corpus/$t" | wc -l) files"
    done
    exit 0
fi

failed=0
summary=()
for t in $targets; do
    mkdir -p "fuzz/work/corpus/$t"
    dict=()
    [ -f "fuzz/dicts/$t.dict" ] && dict=("-dict=fuzz/dicts/$t.dict")
    log="fuzz/work/$t.log"
    echo "fuzz $t: ${seconds}s, log $log"
    if cargo +nightly fuzz run "${flags[@]}" "$t" "fuzz/work/corpus/$t" "fuzz/corpus/$t" -- \
        -max_total_time="$seconds" -timeout=25 -print_final_stats=1 "${dict[@]}" >"$log" 2>&1; then
        crash="0 crashes"
    else
        failed=1
        unit=$(grep -o 'Test unit written to [^ ]*' "$log" | tail -1 | awk '{print $5}')
        crash="CRASH: ${unit:-see $log} (cargo test --features fuzzing --test fuzz_corpus -- --ignored run_one: FUZZ_TARGET=$t FUZZ_INPUT=<file>)"
    fi
    execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | awk '{print $2}' | tail -1)
    rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | awk '{print $2}' | tail -1)
    line="fuzz $t: ${execs:-?} executions (${rate:-?}/s), $crash, work corpus $(ls "fuzz/work/corpus/$t" | wc -l) files"
    echo "$line"
    summary+=("$line")
done
printf '%s\n' "${summary[@]}"
exit "$failed"
