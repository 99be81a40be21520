#!/usr/bin/env bash
# Coverage-guided fuzzing for a bounded time, 60 s by default, `--seconds N` for longer, split
# evenly between the targets:
#   info_parser  the INFO parser (fuzz/fuzz_targets/info_parser.rs)
#   reply_path   the relay's reply shape check, then the Redis client's decoder
#                (fuzz/fuzz_targets/reply_path.rs)
# Usage:
#
#   scripts/fuzz.sh [--seconds N]
#
# Toolchain: cargo-fuzz (libFuzzer) passes nightly-only flags (-Zsanitizer=address and the
# sancov passes). The machine's one toolchain is stable, which ships the sanitizer runtimes, so
# the build runs with RUSTC_BOOTSTRAP=1 to let stable accept them. Installs cargo-fuzz from
# crates.io when missing. The first build compiles the exporter and all its dependencies with
# instrumentation (several minutes on 2 cores); that time is not part of N.
#
# FUZZ_SANITIZER=none skips AddressSanitizer (faster; the code is safe Rust, so panics, stack
# overflows and the targets' own assertions are what it finds either way).
#
# A failing input is copied to tests/fuzz_regressions/ (a reply_path finding with a
# `reply_path-` prefix), where tests feed every file to both targets' code, and the script
# exits non-zero.
set -euo pipefail

seconds=60
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds)
            seconds="${2:?--seconds needs a number}"
            shift 2
            ;;
        --seconds=*)
            seconds="${1#--seconds=}"
            shift
            ;;
        -h | --help)
            sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "fuzz.sh: unknown argument '$1' (try --help)" >&2
            exit 2
            ;;
    esac
done
case "$seconds" in
    '' | *[!0-9]*)
        echo "fuzz.sh: --seconds wants a whole number of seconds, got '$seconds'" >&2
        exit 2
        ;;
esac

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
targets=(info_parser reply_path)
# At least one second each: libFuzzer reads 0 as "no limit".
per_target=$(((seconds + ${#targets[@]} - 1) / ${#targets[@]}))

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

fuzz/seed-corpus.sh

sanitizer="${FUZZ_SANITIZER:-address}"
if ! RUSTC_BOOTSTRAP=1 cargo fuzz build --sanitizer "$sanitizer"; then
    echo "fuzz.sh: building the fuzz targets failed (see above); nothing was fuzzed" >&2
    exit 1
fi

failed=()
for target in "${targets[@]}"; do
    artifacts="fuzz/artifacts/$target"
    mkdir -p "$artifacts"
    before="$(ls "$artifacts")"
    status=0
    RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer "$sanitizer" "$target" -- \
        -max_total_time="$per_target" \
        -max_len=65536 \
        -timeout=10 \
        -rss_limit_mb=2048 \
        -print_final_stats=1 || status=$?

    found=0
    for artifact in "$artifacts"/*; do
        [ -f "$artifact" ] || continue
        name="$(basename "$artifact")"
        if ! grep -qxF "$name" <<<"$before"; then
            saved="$name"
            [ "$target" = info_parser ] || saved="$target-$name"
            cp "$artifact" "tests/fuzz_regressions/$saved"
            echo "fuzz.sh: saved finding tests/fuzz_regressions/$saved" >&2
            found=1
        fi
    done
    if [ "$status" -ne 0 ] || [ "$found" -ne 0 ]; then
        echo "fuzz.sh: $target failed (exit $status); reproduce with" >&2
        echo "  RUSTC_BOOTSTRAP=1 cargo fuzz run $target <input>" >&2
        echo "  cargo test --test hostile_targets saved_fuzzer_findings" >&2
        echo "  cargo test --test hardening_relay saved_fuzzer_findings" >&2
        failed+=("$target")
    fi
done

if [ "${#failed[@]}" -ne 0 ]; then
    echo "fuzz.sh: failures in ${failed[*]}" >&2
    exit 1
fi
echo "fuzz.sh: no failure in ${per_target}s of fuzzing each of ${targets[*]}"
