#!/usr/bin/env python3
"""Writes the Grafana dashboards in dashboards/ from the code in this folder.

    python3 dashboards/src/build.py           # (re)write dashboards/*.json
    python3 dashboards/src/build.py --check   # exit 1 with a diff if the JSON is out of date

One module per dashboard, built with Grafana's Foundation SDK (`pip install
grafana-foundation-sdk`, the version pinned in scripts/test.sh), whose typed builders check each
panel's structure. tests/dashboards_as_code.rs runs `--check`, so the committed JSON cannot
drift from this code, and tests/dashboard_queries.rs runs the per-target dashboard's queries
against a real Prometheus.
"""

import argparse
import difflib
import pathlib
import sys

# Running the check must not leave __pycache__/ in the repository.
sys.dont_write_bytecode = True

try:
    import fleet
    import per_target
    from common import encode
except ModuleNotFoundError as error:
    if error.name and error.name.startswith("grafana_foundation_sdk"):
        sys.exit(
            "error: the Grafana Foundation SDK is not installed\n"
            "  install with: python3 -m pip install 'grafana-foundation-sdk==1769699630!11.2.0'"
        )
    raise

DASHBOARDS = pathlib.Path(__file__).resolve().parent.parent

OUTPUTS = {
    "redis-persistence.json": per_target.dashboard,
    "redis-persistence-fleet.json": fleet.dashboard,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="compare with the committed JSON instead of writing it; exit 1 on any difference",
    )
    args = parser.parse_args()

    stale = []
    for name, build in OUTPUTS.items():
        path = DASHBOARDS / name
        generated = encode(build())
        if not args.check:
            path.write_text(generated, encoding="utf-8")
            print(f"wrote {path}")
            continue
        committed = path.read_text(encoding="utf-8") if path.exists() else ""
        if committed == generated:
            continue
        diff = list(
            difflib.unified_diff(
                committed.splitlines(keepends=True),
                generated.splitlines(keepends=True),
                f"{name} (committed)",
                f"{name} (generated)",
            )
        )
        changed = sum(1 for line in diff if line[:1] in "+-" and line[:3] not in ("+++", "---"))
        stale.append(name)
        print(f"{name}: {changed} line(s) differ from the generated dashboard:", file=sys.stderr)
        sys.stderr.writelines(diff[:60])
        if len(diff) > 60:
            print(f"... {len(diff) - 60} more diff lines", file=sys.stderr)
    if stale:
        print(
            f"\n{len(stale)} dashboard(s) out of date: run `python3 dashboards/src/build.py` "
            "and commit the result",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
