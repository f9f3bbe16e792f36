"""`just bench`: the benchmarks of CONTRACTS.md §7.1 on SQLite and PostgreSQL.

    just bench                          # 10M LLM events (generated once, then cached), both engines
    just bench --events 200000          # a quick run on a small dataset
    just bench --only p1-service,p2-request-log --engines postgres
    just bench --list                   # every registered benchmark

Every module of this package may register benchmarks (see registry.py); they are imported here,
so a new file plugs itself in. Results are printed as a table and written to
bench-data/results-<events>-<time>.json with the machine they ran on.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import pkgutil
import platform
import sqlite3
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

import benchmarks
from benchmarks.dataset import (
    BENCH_DIR,
    DEFAULT_BATCH,
    Shape,
    dataset_facts,
    ensure_dataset,
    prepare_dir,
)
from benchmarks.registry import REGISTRY, Benchmark, Context, Result
from crabglamp.db import make_engine

DEFAULT_EVENTS = 10_000_000
ENGINES = ("sqlite", "postgres")


def load_benchmarks() -> dict[str, Benchmark]:
    for module in pkgutil.iter_modules(benchmarks.__path__):
        if module.name not in {"run", "registry", "__main__"}:
            importlib.import_module(f"benchmarks.{module.name}")
    return dict(sorted(REGISTRY.items(), key=lambda item: (item[1].order, item[0])))


def _csv(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _ints(value: str) -> list[int]:
    return [int(part.replace("_", "")) for part in _csv(value)]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="just bench", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--events",
        type=lambda v: int(v.replace("_", "")),
        default=DEFAULT_EVENTS,
        help=f"LLM events in the dataset (default {DEFAULT_EVENTS:,})",
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the dataset (default 1)")
    parser.add_argument("--engines", type=_csv, default=list(ENGINES), help="sqlite,postgres")
    parser.add_argument(
        "--only",
        type=_csv,
        default=None,
        help="comma-separated benchmark names (default: every default one)",
    )
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument(
        "--regenerate",
        action="store_true",
        help="generate the dataset again even when a cached one exists",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH,
        help=f"events per Ingestor.record call when generating (default {DEFAULT_BATCH:,})",
    )
    parser.add_argument(
        "--batch-sizes",
        type=_ints,
        default=[5_000, 10_000, 20_000, 50_000],
        help="batch sizes for p3-batch-sizes",
    )
    parser.add_argument(
        "--sweep-events",
        type=int,
        default=500_000,
        help="records written per batch size by p3-batch-sizes",
    )
    parser.add_argument("--runs", type=int, default=200, help="timed runs of each fast query")
    parser.add_argument("--naive-runs", type=int, default=5, help="timed runs of the raw GROUP BY")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="cProfile the dataset generation into bench-data/profile-*.txt",
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "CRABGLAMP_BENCH_POSTGRES_URL",
            os.environ.get(
                "CRABGLAMP_TEST_POSTGRES_URL",
                "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres",
            ),
        ),
        help="a PostgreSQL server database to connect to as an administrator",
    )
    parser.add_argument("--out", type=Path, default=None, help="where to write the JSON results")
    return parser


def _selected(all_benchmarks: dict[str, Benchmark], only: list[str] | None) -> list[Benchmark]:
    if only is None:
        return [b for b in all_benchmarks.values() if b.default]
    unknown = [name for name in only if name not in all_benchmarks]
    if unknown:
        raise SystemExit(f"unknown benchmark(s): {', '.join(unknown)} (see --list)")
    return [b for b in all_benchmarks.values() if b.name in only]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


async def _postgres_version(url: str) -> str | None:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return str((await conn.execute(text("SHOW server_version"))).scalar_one())
    except Exception as exc:  # the machine section still says why
        return f"unreachable: {exc.__class__.__name__}"
    finally:
        await engine.dispose()


async def machine(postgres_url: str | None) -> dict[str, Any]:
    return {
        "cpuModel": _cpu_model(),
        "cores": os.cpu_count(),
        "memoryGiB": _memory_gib(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgres": await _postgres_version(postgres_url) if postgres_url else None,
        "platform": platform.platform(),
        "loadAverageAtStart": list(os.getloadavg()),
    }


def write_results(
    out: Path,
    module: str,
    started: datetime,
    load_before: tuple[float, float, float],
    **fields: object,
) -> None:
    """A benchmark script's JSON: its command, when, the cores and the load around the run,
    then what it measured (`fields`)."""
    report = {
        "command": f"python -m {module} " + " ".join(sys.argv[1:]),
        "startedAt": started.isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "loadAverageAtStart": list(load_before),
        "loadAverageAtEnd": list(os.getloadavg()),
        **fields,
    }
    out.write_text(json.dumps(report, indent=2))
    print(f"\nresults written to {out}")


def print_table(results: list[Result]) -> None:
    header = ("target", "engine", "what", "goal", "measured", "verdict")
    rows = [header]
    for r in results:
        goal = (
            ""
            if r.goal is None
            else f"{'<=' if r.lower_is_better else '>='} {_fmt(r.goal)} {r.unit}"
        )
        rows.append(
            (r.target_id, r.engine, r.what, goal, f"{_fmt(r.measured)} {r.unit}", r.verdict)
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for n, row in enumerate(rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
        if n == 0:
            print("  ".join("-" * width for width in widths))


def _fmt(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


async def run(options: argparse.Namespace) -> int:
    all_benchmarks = load_benchmarks()
    if options.list:
        for b in all_benchmarks.values():
            flag = "" if b.default else "  (only with --only)"
            print(f"{b.name:<22} {b.target_id:<4} {b.description}{flag}")
        return 0
    chosen = _selected(all_benchmarks, options.only)
    unknown = [e for e in options.engines if e not in ENGINES]
    if unknown:
        raise SystemExit(
            f"unknown engine(s): {', '.join(unknown)}; choose from {', '.join(ENGINES)}"
        )
    prepare_dir()
    shape = Shape(events=options.events, seed=options.seed)
    started = datetime.now(UTC)
    report: dict[str, Any] = {
        "command": "just bench " + " ".join(sys.argv[1:]),
        "startedAt": started.isoformat(timespec="seconds"),
        "machine": await machine(options.postgres_url if "postgres" in options.engines else None),
        "shape": {"events": shape.events, "seed": shape.seed},
        "datasets": {},
        "results": [],
    }
    results: list[Result] = []
    failures: list[str] = []
    out = options.out or BENCH_DIR / f"results-{shape.tag}-{started:%Y%m%dT%H%M%S}.json"

    async def attempt(b: Benchmark, ctx: Context) -> None:
        # One benchmark's failure (a wrong answer, a server that would not start) is reported
        # and the others still run; what was measured so far is on disk after each benchmark.
        try:
            results.extend(await b.run(ctx))
        except Exception as exc:
            traceback.print_exc()
            failures.append(f"{b.name} [{ctx.engine_name}]: {exc!r}")
            report.setdefault("errors", []).append(failures[-1])
        report["results"] = [r.as_json() for r in results]
        _write(out, report)

    for engine_name in options.engines:
        per_engine = [b for b in chosen if b.per_engine]
        if not per_engine:
            continue
        dataset = None
        if any(b.needs_dataset for b in per_engine):
            t0 = time.perf_counter()
            dataset = await ensure_dataset(
                engine_name,
                shape,
                postgres_admin_url=options.postgres_url,
                batch_size=options.batch_size,
                regenerate=options.regenerate,
                profile=options.profile,
            )
            how = "reused" if dataset.reused else f"generated in {time.perf_counter() - t0:,.0f} s"
            print(f"[{engine_name}] dataset {shape.tag}: {how}", flush=True)
            report["datasets"][engine_name] = dataset_facts(dataset) | {
                "generatedAt": dataset.generated_at,
                "url": dataset.url,
            }
        engine = make_engine(dataset.url) if dataset else None
        try:
            for b in per_engine:
                await attempt(
                    b, Context(engine_name, engine, dataset, options, options.postgres_url)
                )
        finally:
            if engine is not None:
                await engine.dispose()
    for b in chosen:
        if not b.per_engine:
            await attempt(b, Context("-", None, None, options, options.postgres_url))

    report["finishedAt"] = datetime.now(UTC).isoformat(timespec="seconds")
    report["machine"]["loadAverageAtEnd"] = list(os.getloadavg())
    _write(out, report)
    print()
    print_table(results)
    print(f"\nresults written to {out}")
    for failure in failures:
        print(f"FAILED {failure}")
    # A missed target is a measurement, not an error; a wrong answer or a crash is.
    return 1 if failures else 0


def _write(out: Path, report: dict[str, Any]) -> None:
    out.write_text(json.dumps(report, indent=2, default=str))


def main(argv: list[str] | None = None) -> int:
    options = build_parser().parse_args(argv)
    return asyncio.run(run(options))


if __name__ == "__main__":
    sys.exit(main())
