"""Markdown tables for BENCHMARKS.md from results JSON files written by `just bench`.

python -m benchmarks.report bench-data/results-10m_s1-*.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def _fmt(value: float, unit: str) -> str:
    if unit == "events/s":
        return f"{value:,.0f} {unit}"
    if unit == "x":
        return f"{value:,.1f}x"
    if value >= 1000:
        return f"{value:,.0f} {unit}"
    return f"{value:.2f} {unit}" if value < 10 else f"{value:.1f} {unit}"


def _goal(result: dict[str, Any]) -> str:
    if result["goal"] is None:
        return "—"
    sign = "≤" if result["lowerIsBetter"] else "≥"
    return f"{sign} {_fmt(result['goal'], result['unit'])}"


def tables(reports: list[dict[str, Any]]) -> str:
    lines: list[str] = []
    by_engine: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = {}
    for report in reports:
        for result in report["results"]:
            by_engine.setdefault(result["engine"], []).append((report, result))
    for engine, rows in by_engine.items():
        lines += [
            f"### {engine}",
            "",
            "| id | what | target | measured | verdict | p50 / p95 (ms) |",
        ]
        lines.append("|---|---|---|---|---|---|")
        for _, r in rows:
            d = r["detail"]
            spread = f"{d['p50']:.2f} / {d['p95']:.2f}" if "p50" in d and "p95" in d else ""
            lines.append(
                f"| {r['target']} | {r['what']} | {_goal(r)} | {_fmt(r['measured'], r['unit'])} "
                f"| {r['verdict'] or ''} | {spread} |"
            )
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.report")
    parser.add_argument("files", nargs="+", type=Path)
    options = parser.parse_args(argv)
    reports = [json.loads(path.read_text()) for path in options.files]
    for report in reports:
        m = report["machine"]
        print(
            f"<!-- {report['command']} at {report['startedAt']}: {m['cpuModel']}, {m['cores']} cores, "
            f"load {m['loadAverageAtStart'][0]:.1f} -> {m.get('loadAverageAtEnd', [0])[0]:.1f} -->"
        )
    print(tables(reports))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
