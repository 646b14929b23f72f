#!/usr/bin/env bash
# CI: run every fuzz target for a bounded time on the committed corpus.
# Exits non-zero if any target finds a crash, a panic, a failed invariant or a timeout.
#
#   bash fuzz/run-ci.sh                # 60 s per target
#   FUZZ_SECONDS=600 bash fuzz/run-ci.sh
set -euo pipefail
cd "$(dirname "$0")"

seconds="${FUZZ_SECONDS:-60}"
targets=(parse_request encode_response)

# Only the stable toolchain is installed: RUSTC_BOOTSTRAP lets it take the -Z flags that
# cargo-fuzz passes (sanitizer, coverage instrumentation).
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version 2>/dev/null | grep -q '^cargo-fuzz 0\.13\.'; then
    cargo install cargo-fuzz --locked --version '^0.13'
fi

# Build both targets first, so the time budget below is spent fuzzing.
cargo fuzz build

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
failed=()
for target in "${targets[@]}"; do
    echo "=== fuzz $target for ${seconds}s"
    # New inputs go to the scratch directory; the committed corpus is only read.
    mkdir -p "$scratch/$target"
    dict=()
    if [[ -f "$target.dict" ]]; then
        dict=(-dict="$target.dict")
    fi
    if ! cargo fuzz run "$target" "$scratch/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "${dict[@]}" \
        >"$scratch/$target.log" 2>&1; then
        failed+=("$target")
        tail -n 80 "$scratch/$target.log"
        echo "=== $target FOUND SOMETHING: reproducer in fuzz/artifacts/$target/" >&2
        ls -l "artifacts/$target" >&2 || true
    else
        grep -E '^(stat::number_of_executed_units|stat::average_exec_per_sec|stat::new_units_added)' \
            "$scratch/$target.log" || true
        echo "=== $target: nothing found"
    fi
done

if ((${#failed[@]})); then
    echo "fuzz: findings in ${failed[*]}" >&2
    exit 1
fi
echo "fuzz: ${#targets[@]} targets ran ${seconds}s each, nothing found"
