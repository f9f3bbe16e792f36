"""P1 and P2 at the service level: `usage()` for the big account's month, and request-log pages.

Each benchmark first checks that what it times is right: usage() must give the same totals as
an independent GROUP BY over the raw events, and paging through a log must return every request
of the rollup's count exactly once, in order.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from benchmarks.dataset import BENCH_MONTH
from benchmarks.registry import Context, Result, benchmark, percentile
from crabglamp.db import read_transaction
from crabglamp.db.reads import Reads
from crabglamp.db.tables import table_of
from crabglamp.models import LlmDaily, LlmEvent
from crabglamp.usage.query import UsageQuery
from crabglamp.usage.request_log import (
    RequestLogQuery,
    RequestPage,
    request_log,
    request_log_summary,
)
from crabglamp.usage.service import usage

# Open compute intervals accrue until "now"; a fixed now keeps the figures reproducible.
NOW = datetime(2026, 11, 1, tzinfo=UTC)
_events = table_of(LlmEvent)
_daily = table_of(LlmDaily)


async def _timed(
    engine: AsyncEngine, call: Callable[[AsyncConnection], Awaitable[Any]], runs: int, warmup: int
) -> list[float]:
    """Milliseconds per call, each in a read transaction of its own, as the API reads (db/reads.py:
    on SQLite on a reader thread)."""
    reads = Reads(engine)
    samples = []
    try:
        for i in range(warmup + runs):
            started = time.perf_counter()
            await reads.run(call)
            if i >= warmup:
                samples.append((time.perf_counter() - started) * 1000)
    finally:
        await reads.close()
    return samples


def _stats(samples: list[float]) -> dict[str, float]:
    return {
        "p50": percentile(samples, 50),
        "p95": percentile(samples, 95),
        "min": min(samples),
        "max": max(samples),
        "runs": len(samples),
    }


# The naive way: aggregate the raw events of the account-month on every request


async def naive_llm_month(conn: AsyncConnection, account_id: uuid.UUID) -> dict[str, Any]:
    """What a system without rollups does: one GROUP BY over the raw events of the month, then
    the same breakdowns as usage() (daily x model, models, agents, keys)."""
    if conn.dialect.name == "sqlite":
        # SQLite stores the UTC timestamp as 'YYYY-MM-DD HH:MM:SS.ffffff': the day is its prefix.
        day = func.substr(_events.c.ts, 1, 10)
    else:
        day = func.date(func.timezone("UTC", _events.c.ts))
    rows = await conn.execute(
        select(
            day,
            _events.c.key_id,
            _events.c.agent_id,
            _events.c.provider,
            _events.c.model,
            func.sum(_events.c.cost_micros),
            func.count(),
        )
        .where(
            and_(
                _events.c.account_id == account_id,
                _events.c.ts >= BENCH_MONTH.start_dt,
                _events.c.ts < BENCH_MONTH.end_dt,
            )
        )
        .group_by(day, _events.c.key_id, _events.c.agent_id, _events.c.provider, _events.c.model)
    )
    daily: dict[str, int] = {}
    models: dict[tuple[str, str], int] = {}
    agents: dict[uuid.UUID | None, int] = {}
    keys: dict[uuid.UUID, int] = {}
    requests = 0
    for day_value, key_id, agent_id, provider, model, cost, count in rows:
        cost = int(cost)
        d = str(day_value)
        daily[d] = daily.get(d, 0) + cost
        models[(provider, model)] = models.get((provider, model), 0) + cost
        agents[agent_id] = agents.get(agent_id, 0) + cost
        keys[key_id] = keys.get(key_id, 0) + cost
        requests += int(count)
    return {
        "total": sum(daily.values()),
        "requests": requests,
        "daily": {d: v for d, v in daily.items() if v},
        "models": models,
        "agents": agents,
        "keys": {k: v for k, v in keys.items() if v},
    }


def _from_usage(result: Any) -> dict[str, Any]:
    llm = result.llm
    return {
        "total": llm.total_micros,
        "requests": sum(d.request_count for d in llm.daily),
        "daily": {str(d.date): d.total_micros for d in llm.daily if d.total_micros},
        "models": {(m.provider, m.model): m.total_micros for m in llm.models},
        "agents": {a.agent_id: a.total_micros for a in llm.agents},
        "keys": {k.key_id: k.total_micros for k in llm.keys if k.total_micros},
    }


@benchmark(
    "p1-service",
    target="P1",
    description="usage() for the big account's month (all axes, daily x model) vs raw GROUP BY",
    order=20,
)
async def p1_service(ctx: Context) -> list[Result]:
    engine, dataset = ctx.need()
    runs, naive_runs = ctx.options.runs, ctx.options.naive_runs
    query = UsageQuery(period=BENCH_MONTH, account_ids=(dataset.big_account,))

    async def service(conn: AsyncConnection) -> Any:
        return await usage(conn, query, now=NOW)

    async def naive(conn: AsyncConnection) -> Any:
        return await naive_llm_month(conn, dataset.big_account)

    # Correctness of what is timed: the rollups and the raw events must agree to the micro-cent.
    async with read_transaction(engine) as conn:
        served = await service(conn)
        expected = await naive(conn)
    mine = _from_usage(served)
    mismatched = [k for k in expected if expected[k] != mine[k]]
    if mismatched:
        raise AssertionError(f"usage() disagrees with the raw events on: {', '.join(mismatched)}")
    rollup_rows = await _count_rollup_rows(engine, dataset.big_account)

    print(f"  [{ctx.engine_name}] P1: usage() x {runs} ...", flush=True)
    fast = _stats(await _timed(engine, service, runs, warmup=5))
    print(f"  [{ctx.engine_name}] P1: raw GROUP BY x {naive_runs} ...", flush=True)
    slow = _stats(await _timed(engine, naive, naive_runs, warmup=1))
    shape = {
        "account": str(dataset.big_account),
        "month": f"{BENCH_MONTH.start:%Y-%m}",
        "llmRequests": expected["requests"],
        "llmDailyRows": rollup_rows,
        "totalsEqual": True,
        "llmTotalMicros": expected["total"],
        "computeTotalMicros": served.compute.total_micros,
        "voiceTotalMicros": served.voice.total_micros,
    }
    ratio = slow["p50"] / fast["p50"]
    return [
        Result(
            "P1",
            "usage() account-month, p50",
            ctx.engine_name,
            fast["p50"],
            "ms",
            10,
            detail=fast | shape,
        ),
        Result(
            "P1", "usage() account-month, p95", ctx.engine_name, fast["p95"], "ms", 30, detail=fast
        ),
        Result(
            "P1", "raw GROUP BY account-month, p50", ctx.engine_name, slow["p50"], "ms", detail=slow
        ),
        Result(
            "P1",
            "speed-up vs raw GROUP BY (p50/p50)",
            ctx.engine_name,
            ratio,
            "x",
            100,
            lower_is_better=False,
        ),
    ]


async def _count_rollup_rows(engine: AsyncEngine, account_id: uuid.UUID) -> int:
    async with read_transaction(engine) as conn:
        found = await conn.execute(
            select(func.count()).where(
                and_(
                    _daily.c.account_id == account_id,
                    _daily.c.day >= BENCH_MONTH.start,
                    _daily.c.day <= BENCH_MONTH.end,
                )
            )
        )
        return int(found.scalar_one())


# P2: the drill-down log


async def _busiest(
    engine: AsyncEngine, account_id: uuid.UUID, by_key: bool
) -> tuple[date, str, uuid.UUID | None, int]:
    """The (day, model, key) of the month with the most requests: the longest log to page."""
    columns = [_daily.c.day, _daily.c.model] + ([_daily.c.key_id] if by_key else [])
    count = func.sum(_daily.c.request_count)
    async with read_transaction(engine) as conn:
        row = (
            await conn.execute(
                select(*columns, count)
                .where(
                    and_(
                        _daily.c.account_id == account_id,
                        _daily.c.day >= BENCH_MONTH.start,
                        _daily.c.day <= BENCH_MONTH.end,
                    )
                )
                .group_by(*columns)
                .order_by(count.desc())
                .limit(1)
            )
        ).one()
    return row[0], row[1], row[2] if by_key else None, int(row[-1])


async def _walk(engine: AsyncEngine, query: RequestLogQuery, page: int) -> list[str | None]:
    """Every page's cursor, checking that the pages hold each request once, in order."""
    cursors: list[str | None] = [None]
    seen: set[str] = set()
    last: tuple[datetime, str] | None = None
    async with read_transaction(engine) as conn:
        summary = await request_log_summary(conn, query)
        while True:
            result: RequestPage = await request_log(conn, query, first=page, after=cursors[-1])
            for item in result.requests:
                if item.id in seen or (last is not None and (item.ts, item.id) <= last):
                    raise AssertionError(f"request log repeats or reorders {item.id}")
                seen.add(item.id)
                last = (item.ts, item.id)
            if not result.has_next_page:
                break
            cursors.append(result.end_cursor)
    if len(seen) != summary.request_count:
        raise AssertionError(
            f"log pages hold {len(seen)} requests, rollups say {summary.request_count}"
        )
    return cursors


async def _p2_case(ctx: Context, label: str, by_key: bool) -> list[Result]:
    engine, dataset = ctx.need()
    page = 50
    day, model, key_id, count = await _busiest(engine, dataset.big_account, by_key)
    query = RequestLogQuery(
        day=day,
        account_ids=(dataset.big_account,),
        model=model,
        key_ids=(key_id,) if key_id else None,
    )
    cursors = await _walk(engine, query, page)
    # The deepest full page: keyset pagination should cost the same as the first.
    deep_index = max(0, len(cursors) - 2)
    shape = {
        "day": str(day),
        "model": model,
        "keyId": str(key_id) if key_id else None,
        "requests": count,
        "pages": len(cursors),
        "deepPage": deep_index + 1,
    }
    results = []
    for name, cursor in (
        ("first page", cursors[0]),
        (f"page {deep_index + 1}", cursors[deep_index]),
    ):

        async def fetch(conn: AsyncConnection, cursor: str | None = cursor) -> Any:
            found = await request_log(conn, query, first=page, after=cursor)
            assert len(found.requests) == page or not found.has_next_page
            return found

        stats = _stats(await _timed(engine, fetch, ctx.options.runs, warmup=5))
        results.append(
            Result(
                "P2",
                f"request log {label}, {name}, p95",
                ctx.engine_name,
                stats["p95"],
                "ms",
                10,
                detail=stats | shape,
            )
        )
    return results


@benchmark(
    "p2-request-log",
    target="P2",
    description="request_log: first and a deep page of 50 for key/day/model and account/day/model",
    order=30,
)
async def p2_request_log(ctx: Context) -> list[Result]:
    print(f"  [{ctx.engine_name}] P2: request log pages x {ctx.options.runs} ...", flush=True)
    return [
        *await _p2_case(ctx, "key/day/model", by_key=True),
        *await _p2_case(ctx, "account/day/model", by_key=False),
    ]
