#!/usr/bin/env python3
"""The slowest tests of the last `make test`, from its JUnit reports (build/test-reports/).

    python3 scripts/durations.py build/test-reports/unit.xml build/test-reports/integration.xml
    python3 scripts/durations.py ... --write docs/testing.md   # replace the table there

Each test's time is its setup, call and teardown together, so a module-scoped fixture (a
fleet deployed once for a module) is counted on the test that first asked for it.
"""

from __future__ import annotations

import argparse
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

START, END = "<!-- durations:start -->", "<!-- durations:end -->"


def cases(report: Path) -> list[tuple[float, str]]:
    out = []
    for case in ET.parse(report).getroot().iter("testcase"):
        module = case.get("classname", "").replace(".", "/")
        out.append((float(case.get("time", 0)), f"{module}.py::{case.get('name')}".removeprefix("tests/")))
    return out


def table(reports: list[Path], top: int) -> str:
    rows = sorted((c for r in reports for c in cases(r)), reverse=True)
    total = sum(t for t, _ in rows)
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(max(r.stat().st_mtime for r in reports)))
    lines = [
        f"The {top} slowest of {len(rows)} tests ({total / 60:.1f} test-minutes in all), from the run of {stamp}; "
        "regenerate with `make durations` after `make test`.",
        "",
        "| s | test |",
        "|---:|---|",
    ]
    lines += [f"| {t:.1f} | {name} |" for t, name in rows[:top]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("reports", nargs="+", type=Path, help="JUnit XML files written by pytest --junitxml")
    p.add_argument("--top", type=int, default=20, help="how many tests to list (default 20)")
    p.add_argument("--write", type=Path, help=f"replace the text between {START} and {END} in this file")
    args = p.parse_args(argv)
    missing = [str(r) for r in args.reports if not r.is_file()]
    if missing:
        p.error(f"no report at {', '.join(missing)}: run `make test` (or make pytest) first")
    text = table(args.reports, args.top)
    if not args.write:
        print(text)
        return 0
    doc = args.write.read_text()
    if START not in doc or END not in doc:
        p.error(f"{args.write} has no {START} ... {END} block to replace")
    head, rest = doc.split(START, 1)
    args.write.write_text(f"{head}{START}\n{text}\n{END}{rest.split(END, 1)[1]}")
    print(f"wrote the table of the {args.top} slowest tests into {args.write}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
