"""P3: bulk ingest with rollups maintained, through `Ingestor.record`.

`p3-ingest` reports the generation of the cached dataset itself (all N events, the tables
growing to full size). `p3-batch-sizes` writes the first part of the same event stream into a
fresh database once per batch size, to show which batch size is best.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from benchmarks.dataset import (
    BENCH_DIR,
    IngestStats,
    admin_sql,
    build_entities,
    fresh_path,
    ingest,
    prepare_dir,
    with_database,
    write_entities,
)
from benchmarks.registry import Context, Result, benchmark
from crabglamp.db import make_engine
from crabglamp.db.tables import table_of
from crabglamp.migrate import upgrade

GOAL = {"sqlite": 50_000, "postgres": 40_000}


def _ingest_result(ctx: Context, what: str, stats: IngestStats, extra: dict[str, object]) -> Result:
    return Result(
        "P3",
        what,
        ctx.engine_name,
        stats.events_per_s,
        "events/s",
        GOAL.get(ctx.engine_name),
        lower_is_better=False,
        detail={
            "events": stats.events,
            "llmEvents": stats.llm_events,
            "batchSize": stats.batch_size,
            "ingestSeconds": round(stats.seconds, 2),
            "generateSeconds": round(stats.generate_seconds, 2),
            "slowestBatchSeconds": round(stats.slowest_batch_s, 3),
            "eventsPerSecondByTenth": [round(x) for x in stats.by_tenth],
        }
        | extra,
    )


@benchmark(
    "p3-ingest",
    target="P3",
    description="Ingestor.record while generating the dataset (all events, tables growing)",
    order=10,
)
async def p3_ingest(ctx: Context) -> list[Result]:
    _, dataset = ctx.need()
    if dataset.ingest is None:
        return []
    extra = {"measuredAt": dataset.generated_at, "fromCache": dataset.reused}
    return [
        _ingest_result(ctx, f"ingest {dataset.shape.events:,} LLM events", dataset.ingest, extra)
    ]


@benchmark(
    "p3-batch-sizes",
    target="P3",
    description="Ingestor.record into a fresh database at several batch sizes",
    needs_dataset=False,
    default=False,
    order=40,
)
async def p3_batch_sizes(ctx: Context) -> list[Result]:
    from benchmarks.dataset import Shape

    shape = Shape(events=ctx.options.events, seed=ctx.options.seed)
    entities = build_entities(shape)
    results = []
    for size in ctx.options.batch_sizes:
        url, drop = await _scratch(ctx)
        engine = make_engine(url)
        try:
            await upgrade(engine)
            await write_entities(engine, shape, entities)
            print(f"  [{ctx.engine_name}] P3: batches of {size:,} ...", flush=True)
            stats = await ingest(
                engine,
                ctx.engine_name,
                shape,
                entities,
                size,
                max_records=ctx.options.sweep_events,
            )
        finally:
            await engine.dispose()
            await drop()
        results.append(
            _ingest_result(
                ctx,
                f"ingest first {stats.events:,} records, batches of {size:,}",
                stats,
                {"freshDatabase": True},
            )
        )
    return results


async def _scratch(ctx: Context) -> tuple[str, Callable[[], Awaitable[None]]]:
    if ctx.engine_name == "sqlite":
        prepare_dir()
        path = fresh_path(BENCH_DIR / "scratch.db")

        async def drop_file() -> None:
            fresh_path(Path(path))

        return f"sqlite+aiosqlite:///{path}", drop_file
    name = "crabglamp_bench_scratch"
    await admin_sql(ctx.postgres_admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin_sql(ctx.postgres_admin_url, f'CREATE DATABASE "{name}"')

    async def drop_database() -> None:
        await admin_sql(ctx.postgres_admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return with_database(ctx.postgres_admin_url, name), drop_database


@benchmark(
    "p3-floor",
    target="P3",
    description="the database's own ceiling: LLM event rows straight into llm_event, no rollups",
    needs_dataset=False,
    default=False,
    order=41,
)
async def p3_floor(ctx: Context) -> list[Result]:
    """No validation, pricing, idempotency or rollups: pre-converted rows, one driver call per
    batch (sqlite3 executemany / asyncpg COPY). What Ingestor.record can at best approach."""
    from itertools import islice

    from benchmarks.dataset import Shape, generate
    from crabglamp.db import write_transaction
    from crabglamp.db.bulk import insert_rows
    from crabglamp.ingest.records import LlmRecord
    from crabglamp.models import LlmEvent
    from crabglamp.periods import as_utc

    shape = Shape(events=ctx.options.events, seed=ctx.options.seed)
    entities = build_entities(shape)
    account_of = {k.id: entities.account_ids[k.account] for k in entities.keys}
    records = (r for r in generate(shape, entities) if isinstance(r, LlmRecord))
    rows = [
        {"id": r.id, "ts": as_utc(r.ts), "account_id": account_of[r.key_id], "key_id": r.key_id,
         "agent_id": r.agent_id, "provider": r.provider, "model": r.model,
         "input_tokens": r.input_tokens, "output_tokens": r.output_tokens, "cost_micros": 1,
         "status": r.status}
        for r in islice(records, ctx.options.sweep_events)
    ]  # fmt: skip
    url, drop = await _scratch(ctx)
    engine = make_engine(url)
    size = ctx.options.batch_size
    try:
        await upgrade(engine)
        seconds = 0.0
        for start in range(0, len(rows), size):
            t0 = time.perf_counter()
            async with write_transaction(engine) as conn:
                await insert_rows(conn, table_of(LlmEvent), rows[start : start + size])
            seconds += time.perf_counter() - t0
    finally:
        await engine.dispose()
        await drop()
    stats = IngestStats(ctx.engine_name, size, len(rows), len(rows), seconds)
    result = _ingest_result(ctx, f"floor: {len(rows):,} rows into llm_event only", stats, {})
    result.goal = None  # context for P3, not a measurement of it
    return [result]
