#!/usr/bin/env python3
"""Strict OpenMetrics check of an exposition read from stdin (or the file named as argv[1]).

Parses the body with prometheus_client's OpenMetrics parser, an implementation independent of
the exporter's, then checks what that parser lets through: one family per name, no duplicate
series, no duplicate label names on a sample, and a body ending in exactly one "# EOF" line.

Exit codes: 0 valid, 1 invalid (the reason on stderr), 3 prometheus_client is missing.
Run by tests/exporter_core.rs (openmetrics_exposition_is_strictly_valid).
"""

import re
import sys

try:
    from prometheus_client.openmetrics.parser import text_string_to_metric_families
except ImportError as error:  # pragma: no cover - depends on the machine
    print(
        f"prometheus_client is not importable ({error}); "
        "install it with: pip install prometheus-client",
        file=sys.stderr,
    )
    sys.exit(3)

LABEL_NAME = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="')


def fail(message):
    print(f"invalid OpenMetrics: {message}", file=sys.stderr)
    sys.exit(1)


def label_names(line):
    """Label names of one sample line, read from the raw text so duplicates are visible."""
    name_end = min(i for i in (line.find("{"), line.find(" "), len(line)) if i >= 0)
    if name_end == len(line) or line[name_end] != "{":
        return []
    inner = line[name_end + 1 :]
    names = []
    i = 0
    while i < len(inner) and inner[i] != "}":
        if inner[i] == ",":
            i += 1
            continue
        match = LABEL_NAME.match(inner, i)
        if not match:
            fail(f"unreadable labels in line: {line!r}")
        names.append(match.group(1))
        i = match.end()
        while inner[i] != '"':
            i += 2 if inner[i] == "\\" else 1
        i += 1
    return names


def main():
    if len(sys.argv) > 1:
        with open(sys.argv[1], encoding="utf-8") as handle:
            text = handle.read()
    else:
        text = sys.stdin.buffer.read().decode("utf-8")

    if not text.endswith("# EOF\n"):
        fail('the body must end with "# EOF" and a newline')
    if text.count("# EOF") != 1:
        fail('"# EOF" must appear exactly once')

    try:
        families = list(text_string_to_metric_families(text))
    except Exception as error:  # the parser raises bare ValueErrors and others
        fail(f"{type(error).__name__}: {error}")

    seen_families = set()
    seen_series = set()
    for family in families:
        if family.name in seen_families:
            fail(f"family {family.name} appears more than once")
        seen_families.add(family.name)
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            if key in seen_series:
                fail(f"duplicate series {sample.name}{sample.labels}")
            seen_series.add(key)

    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        names = label_names(line)
        if len(names) != len(set(names)):
            fail(f"duplicate label name in line: {line!r}")

    samples = sum(len(f.samples) for f in families)
    print(f"ok: {len(families)} families, {samples} samples")


if __name__ == "__main__":
    main()
