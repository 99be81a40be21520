#!/usr/bin/env bash
# Seeds fuzz/corpus/info_parser/ with the reference INFO replies captured from real Redis
# (tests/data/info/reference/*.txt), so the fuzzer starts from real
# replies rather than from nothing. The corpus is generated, never committed.
set -euo pipefail

fuzz_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
reference="${REFERENCE_DIR:-$fuzz_dir/../tests/data/info/reference}"
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

# reply_path starts from replies a real Redis sends: INFO as a bulk string, the handshake's
# small replies, a Sentinel table, and RESP3's types.
replies="$fuzz_dir/corpus/reply_path"
mkdir -p "$replies"
for reply in "$reference"/*.txt; do
    {
        printf '$%d\r\n' "$(wc -c <"$reply")"
        cat "$reply"
        printf '\r\n'
    } >"$replies/seed-$(basename "$reply" .txt)"
done
printf '+PONG\r\n:7\r\n$-1\r\n*0\r\n-ERR invalid password\r\n' >"$replies/seed-handshake"
printf '*1\r\n*4\r\n$4\r\nname\r\n$6\r\nmymain\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n' \
    >"$replies/seed-sentinel"
printf '%%2\r\n+a\r\n~1\r\n#t\r\n+b\r\n>2\r\n,1.5\r\n(12345\r\n|1\r\n+k\r\n_\r\n=7\r\ntxt:abc\r\n!3\r\nERR\r\n' \
    >"$replies/seed-resp3"
if [ -d "$regressions" ]; then
    for finding in "$regressions"/*; do
        if [ -f "$finding" ] && [ "${finding##*.}" != md ]; then
            cp "$finding" "$replies/regression-$(basename "$finding")"
        fi
    done
fi
echo "seeded $replies with $(ls "$replies" | wc -l) inputs"
