#!/usr/bin/env bash
# Builds the libFuzzer targets (Tests/Fuzz; Package.swift declares them with SWERVE_FUZZ=1) into
# .build-fuzz and runs each for FUZZ_SECONDS, starting from the committed seeds in
# Tests/Fuzz/Corpus/<target>. New inputs go to .build-fuzz/corpus/<target> (kept between runs,
# git-ignored); a crash, trap, timeout or memory blow-up stops that target, leaves the input in
# .build-fuzz/findings/ and makes the script fail after the other targets have run.
#
#   tools/fuzz.sh [SECONDS] [TARGET...]      (default 60 s, every target; see docs/fuzzing.md)
#
# FUZZ_CONFIG=debug builds the targets unoptimised into the same scratch path (debug/ beside
# release/): 40 s from scratch against 5-6 min for release, the same inputs per second for the
# JSON and request targets, and the unsafe-buffer bounds checks that release drops. `make
# fuzz-short` (part of `make test`) uses it; `make fuzz` keeps release for long runs.
set -euo pipefail
cd "$(dirname "$0")/.."
SWIFT=${SWIFT:-swift}
# FUZZ_ASAN=1: AddressSanitizer too, in a scratch path of its own. Two --sanitize flags would build
# without coverage instrumentation; one -sanitize=address,fuzzer keeps it (docs/fuzzing.md).
SANITIZE=(--sanitize=fuzzer)
RSS_LIMIT_MB=2048
if [ "${FUZZ_ASAN:-0}" = 1 ]; then
    SANITIZE+=(-Xswiftc -sanitize=address,fuzzer)
    RSS_LIMIT_MB=4096
    SCRATCH=${FUZZ_SCRATCH:-.build-fuzz-asan}
else
    SCRATCH=${FUZZ_SCRATCH:-.build-fuzz}
fi
CONFIG=${FUZZ_CONFIG:-release}
case "$CONFIG" in release|debug) ;; *) echo "fuzz: FUZZ_CONFIG must be release or debug, not '$CONFIG'" >&2; exit 2;; esac
SECONDS_EACH=${1:-${FUZZ_SECONDS:-60}}
shift || true
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
    TARGETS=(FuzzJSON FuzzV2Infer FuzzV2Binary FuzzV1Predict FuzzONNX FuzzConfig)
fi

for t in "${TARGETS[@]}"; do
    SWERVE_FUZZ=1 "$SWIFT" build -c "$CONFIG" "${SANITIZE[@]}" --scratch-path "$SCRATCH" --product "$t" 2>&1 \
        | grep -v -E '^\[[0-9]+/[0-9]+\]|^Building|^Build complete|^Compiling|^Write' || true
    [ -x "$SCRATCH/$CONFIG/$t" ] || { echo "fuzz: building $t failed; run the swift build line above by hand" >&2; exit 1; }
done

mkdir -p "$SCRATCH/findings"
failed=()
for t in "${TARGETS[@]}"; do
    mkdir -p "$SCRATCH/corpus/$t"
    echo "fuzz: $t for ${SECONDS_EACH}s"
    dict=()
    [ -f "Tests/Fuzz/Dictionaries/$t.dict" ] && dict=(-dict="Tests/Fuzz/Dictionaries/$t.dict")
    # -timeout: one input running longer is a hang; -rss_limit_mb: a memory blow-up.
    if ! SWIFT_BACKTRACE=enable=no "$SCRATCH/$CONFIG/$t" \
        -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb="$RSS_LIMIT_MB" \
        "${dict[@]}" -print_final_stats=1 -artifact_prefix="$SCRATCH/findings/$t-" \
        "$SCRATCH/corpus/$t" "Tests/Fuzz/Corpus/$t" > "$SCRATCH/findings/$t.log" 2>&1; then
        failed+=("$t")
        echo "fuzz: $t FAILED; its last output ($SCRATCH/findings/$t.log):" >&2
        grep -v '^#\|^INFO' "$SCRATCH/findings/$t.log" | tail -30 >&2
    else
        grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb' "$SCRATCH/findings/$t.log" | tr '\n' ' '
        echo
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: findings in ${failed[*]}; inputs in $SCRATCH/findings/ (reproduce: $SCRATCH/$CONFIG/<target> <file>)" >&2
    exit 1
fi
echo "fuzz: no findings"
