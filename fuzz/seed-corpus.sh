#!/usr/bin/env bash
# Seeds fuzz/corpus/info_parser/ with the reference INFO replies captured from real Redis
# (shared/reference/info/*.txt beside the repository), so the fuzzer starts from real
# replies rather than from nothing. The corpus is generated, never committed.
set -euo pipefail

fuzz_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
reference="${REFERENCE_DIR:-$fuzz_dir/../../shared/reference/info}"
corpus="$fuzz_dir/corpus/info_parser"

if ! compgen -G "$reference/*.txt" >/dev/null; then
    echo "seed-corpus.sh: no reference replies in $reference (set REFERENCE_DIR)" >&2
    exit 1
fi
mkdir -p "$corpus"
for reply in "$reference"/*.txt; do
    cp "$reply" "$corpus/seed-$(basename "$reply" .txt)"
done
# Past findings are seeds too: the fuzzer starts where it last broke something.
regressions="$fuzz_dir/../tests/fuzz_regressions"
if [ -d "$regressions" ]; then
    for finding in "$regressions"/*; do
        if [ -f "$finding" ] && [ "${finding##*.}" != md ]; then
            cp "$finding" "$corpus/regression-$(basename "$finding")"
        fi
    done
fi
echo "seeded $corpus with $(ls "$corpus" | wc -l) inputs"
