"""`usage()` of another checkout and of this one, alternating call by call in one process.

    python -m benchmarks.usage_pairs --before ../old-checkout --pairs 150
    python -m benchmarks.usage_pairs --before ../old-checkout --engines postgres --pairs 100

On a machine whose speed drifts, two benchmark runs minutes apart can differ by more than a
change does (BENCHMARKS.md, P1 of 2026-12-07); pairs of calls in one process, on the same reader
threads and the same database, share the drift. The big account's month of the cached dataset
(`just bench` generates it) is read by the older tree's `crabglamp/usage` package, copied into a
temporary package whose imports of `crabglamp.usage` point at the copy, and by this tree's.
Everything else (models, db) is this tree's, so the database is at this tree's schema. The two
answers must be equal before anything is timed.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from benchmarks.dataset import BENCH_MONTH, Shape, ensure_dataset
from benchmarks.service import NOW
from crabglamp.db import make_engine
from crabglamp.db.reads import Reads

_COPY = "usage_before"
_IMPORT = re.compile(r"\bcrabglamp\.usage\b")


def _load_before(checkout: Path, into: Path) -> tuple[Any, Any]:
    """The older tree's usage package as `usage_before`: its `service` and `query` modules."""
    source = checkout / "backend" / "crabglamp" / "usage"
    if not (source / "service.py").exists():
        raise SystemExit(f"{checkout}: no backend/crabglamp/usage/service.py")
    target = into / _COPY
    target.mkdir()
    for path in source.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        (target / path.name).write_text(_IMPORT.sub(_COPY, text), encoding="utf-8")
    sys.path.insert(0, str(into))
    return importlib.import_module(f"{_COPY}.service"), importlib.import_module(f"{_COPY}.query")


def _stats(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"p50 {statistics.median(ordered):6.2f}  p95 {p95:6.2f}  min {ordered[0]:6.2f} ms"


async def _pairs(
    engine_name: str, before: tuple[Any, Any], pairs: int, postgres_url: str
) -> dict[str, list[float]]:
    from crabglamp.usage import query as after_query
    from crabglamp.usage import service as after_service

    dataset = await ensure_dataset(
        engine_name, Shape(events=10_000_000), postgres_admin_url=postgres_url
    )
    engine = make_engine(dataset.url)
    reads = Reads(engine)
    calls: dict[str, Callable[[Any], Awaitable[Any]]] = {}
    for name, (service, query) in (("before", before), ("after", (after_service, after_query))):
        wanted = query.UsageQuery(period=BENCH_MONTH, account_ids=(dataset.big_account,))
        calls[name] = lambda conn, s=service, q=wanted: s.usage(conn, q, now=NOW)
    try:
        answers = [repr(await reads.run(call)) for call in calls.values()]
        if answers[0] != answers[1]:
            raise SystemExit(f"[{engine_name}] the two trees answer differently")
        for _ in range(10):
            for call in calls.values():
                await reads.run(call)
        samples: dict[str, list[float]] = {name: [] for name in calls}
        for _ in range(pairs):
            for name, call in calls.items():
                started = time.perf_counter()
                await reads.run(call)
                samples[name].append((time.perf_counter() - started) * 1000)
        return samples
    finally:
        await reads.close()
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="an older checkout")
    parser.add_argument("--engines", default="sqlite", help="sqlite,postgres")
    parser.add_argument("--pairs", type=int, default=150)
    parser.add_argument(
        "--postgres-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        before = _load_before(args.before.resolve(), Path(scratch))
        for engine_name in (e.strip() for e in args.engines.split(",") if e.strip()):
            samples = asyncio.run(_pairs(engine_name, before, args.pairs, args.postgres_url))
            for name, taken in samples.items():
                print(f"[{engine_name}] usage() {name:6}  {_stats(taken)}  ({len(taken)} calls)")


if __name__ == "__main__":
    main()
