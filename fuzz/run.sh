#!/usr/bin/env bash
# Runs the fuzz targets one after another, each for SECONDS (default 600), on one core.
#
#   fuzz/run.sh                       # every target, 10 minutes each
#   fuzz/run.sh 60 jwt_raw            # one target, one minute
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). On a stable toolchain RUSTC_BOOTSTRAP=1 lets it
# use the nightly-only sanitizer flags. Logs go to fuzz/logs/, new inputs to fuzz/corpus/<target>,
# crashing inputs to fuzz/artifacts/<target>/. Stops at the first target that fails.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-600}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(token_body authorization_header jwt_raw jwt_structured canonical_path)
fi
export RUSTC_BOOTSTRAP=1
mkdir -p fuzz/logs

for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$t"
    corpora=("fuzz/corpus/$t")
    [ -d "fuzz/seeds/$t" ] && corpora+=("fuzz/seeds/$t")
    flags=(-max_total_time="$secs" -print_final_stats=1)
    [ -f "fuzz/dicts/$t.dict" ] && flags+=(-dict="fuzz/dicts/$t.dict")

    cargo fuzz build --fuzz-dir fuzz "$t"
    log="fuzz/logs/$t-$(date -u +%Y%m%dT%H%M%SZ).log"
    echo "== $t: ${secs}s, log $log"
    start=$(date +%s)
    status=0
    cargo fuzz run --fuzz-dir fuzz "$t" "${corpora[@]}" -- "${flags[@]}" >"$log" 2>&1 || status=$?
    end=$(date +%s)
    echo "   wall time $((end - start))s, exit $status"
    grep -E '^Done [0-9]+ runs|^stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)' "$log" | sed 's/^/   /'
    if [ "$status" -ne 0 ]; then
        echo "   FAILED: see $log and fuzz/artifacts/$t/"
        grep -E 'panicked at|ERROR: libFuzzer|SUMMARY|Test unit written' "$log" | sed 's/^/   /' || true
        exit "$status"
    fi
done
