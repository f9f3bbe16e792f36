"""The bulk statements of the ingest hot path store exactly what SQLAlchemy Core would store,
through the engine's connections and, on SQLite, straight through a writer thread's."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from crabglamp.db import read_transaction, write_transaction
from crabglamp.db.bulk import Sums, add_to_all_sums, existing_ids, insert_rows
from crabglamp.db.tables import table_of
from crabglamp.models import (
    NONE_ID,
    ComputeInterval,
    LlmDaily,
    LlmDailyAgent,
    LlmDailyKey,
    LlmEvent,
)
from db_support import OnThread

_events = table_of(LlmEvent)
_intervals = table_of(ComputeInterval)
_daily = table_of(LlmDaily)
_daily_key = table_of(LlmDailyKey)
_daily_agent = table_of(LlmDailyAgent)


def _event(event_id: str, **overrides: Any) -> dict[str, Any]:
    row = {
        "id": event_id,
        "ts": datetime(2026, 10, 3, 12, 0, 0, tzinfo=UTC),
        "account_id": uuid.UUID(int=7),
        "key_id": uuid.uuid4(),
        "agent_id": None,
        "provider": "openai",
        "model": "gpt-4o-mini",
        "input_tokens": 2**40,
        "output_tokens": 0,
        "cost_micros": 2**53 + 1,
        "status": "ok",
        "cached_input_tokens": 2**39,
        "cache_write_5m_tokens": 3,
        "cache_write_1h_tokens": 4,
        "reasoning_tokens": 0,
        "audio_input_tokens": 5,
        "audio_output_tokens": 0,
        "cache_saved_micros": -(2**40),
        "service_tier": "flex",
        "estimated": True,
    }
    return row | overrides


async def _raw(engine: AsyncEngine, table: Any, ids: list[str]) -> dict[str, tuple[Any, ...]]:
    """Rows as the database driver returns them, without SQLAlchemy's result processing."""
    async with read_transaction(engine) as conn:
        rows = await conn.exec_driver_sql(f"SELECT * FROM {table.name} ORDER BY id")
        return {row[0]: tuple(row[1:]) for row in rows if row[0] in ids}


# One request's event, and a batch large enough for PostgreSQL's COPY.
@pytest.mark.parametrize("copies", [1, 17], ids=["small", "copied"])
async def test_bulk_insert_stores_what_core_stores(engine: AsyncEngine, copies: int) -> None:
    variants = [
        {},
        {"agent_id": uuid.uuid4(), "status": "error", "service_tier": None, "estimated": False},
        # A whole second, and a datetime given in another zone, as the ingest path converts it.
        {"ts": datetime(2026, 10, 31, 23, 59, 59, 999_999, tzinfo=UTC)},
        {"ts": datetime(2026, 11, 1, 1, 0, tzinfo=timezone(timedelta(hours=2))).astimezone(UTC)},
        # A moment without microseconds, and one with a single microsecond.
        {"ts": datetime(2026, 12, 6, 23, 0, 1, tzinfo=UTC)},
        {"ts": datetime(2026, 12, 7, 0, 30, 0, 5, tzinfo=UTC)},
    ]
    core = [_event(f"core-{i}", **v) for i, v in enumerate(variants * copies)]
    bulk = [_event(f"bulk-{i}", **(core[i] | {"id": f"bulk-{i}"})) for i in range(len(core))]
    async with write_transaction(engine) as conn:
        await conn.execute(_events.insert(), core)
        await insert_rows(conn, _events, bulk)

    raw_core = await _raw(engine, _events, [r["id"] for r in core])
    raw_bulk = await _raw(engine, _events, [r["id"] for r in bulk])
    for i in range(len(core)):
        assert raw_bulk[f"bulk-{i}"] == raw_core[f"core-{i}"]
    async with read_transaction(engine) as conn:
        stored = {r["id"]: dict(r) for r in (await conn.execute(select(_events))).mappings()}
    for row in bulk:
        got = stored[row["id"]]
        assert got | {"ts": got["ts"].replace(tzinfo=UTC)} == row


async def test_bulk_insert_leaves_out_only_columns_holding_their_default_in_every_row(
    engine: AsyncEngine,
) -> None:
    defaults = {"cached_input_tokens": 0, "service_tier": None, "estimated": False}
    plain = {"cached_input_tokens": 0, "service_tier": None, "estimated": False}
    # The first batch holds every default: the database fills the columns in. The second mixes
    # one event that differs in each with plain ones: nothing of the differing event is lost.
    first = [_event(f"plain-{i}", **plain) for i in range(3)]
    second = [
        _event("mixed-0", **plain),
        _event("mixed-1", cached_input_tokens=7, service_tier="flex", estimated=True),
    ]
    async with write_transaction(engine) as conn:
        await insert_rows(conn, _events, first, defaults)
        await insert_rows(conn, _events, second, defaults)
    async with read_transaction(engine) as conn:
        stored = {r["id"]: dict(r) for r in (await conn.execute(select(_events))).mappings()}
    for row in [*first, *second]:
        got = stored[row["id"]]
        assert got | {"ts": got["ts"].replace(tzinfo=UTC)} == row


async def test_bulk_insert_quotes_reserved_column_names_and_keeps_nulls(
    engine: AsyncEngine,
) -> None:
    start = datetime(2026, 10, 1, 22, 0, tzinfo=UTC)
    rows = [
        {
            "id": f"iv-{i}",
            "account_id": uuid.UUID(int=1),
            "agent_id": None,
            "plain_vm_id": uuid.UUID(int=9) if i else None,
            "state": "running",
            "start": start,
            "end": None if i else start + timedelta(hours=3),  # "end" is a reserved word
            "cents_per_hour_micros": 8_000_000,
        }
        for i in range(2)
    ]
    async with write_transaction(engine) as conn:
        await insert_rows(conn, _intervals, rows)
    async with read_transaction(engine) as conn:
        stored = (await conn.execute(select(_intervals).order_by(_intervals.c.id))).mappings()
        got = [dict(r) for r in stored]
    assert [g["end"] is None for g in got] == [False, True]
    assert got[0]["end"].replace(tzinfo=UTC) == start + timedelta(hours=3)
    assert [g["plain_vm_id"] for g in got] == [None, uuid.UUID(int=9)]


async def test_adding_sums_inserts_new_keys_and_adds_to_existing_ones(engine: AsyncEngine) -> None:
    key_columns = ("account_id", "day", "key_id", "agent_id", "provider", "model")
    sum_columns = ("cost_micros", "request_count", "input_tokens", "output_tokens")
    account, key = uuid.UUID(int=1), uuid.UUID(int=2)

    def row(day: int, model: str, cost: int) -> tuple[Any, ...]:
        return (account, date(2026, 10, day), key, NONE_ID, "openai", model, cost, 1, 10, 5)

    async with write_transaction(engine) as conn:
        await add_to_all_sums(
            conn, [Sums(_daily, key_columns, sum_columns, [row(1, "a", 7), row(2, "a", 1)])]
        )
    async with write_transaction(engine) as conn:
        await add_to_all_sums(
            conn, [Sums(_daily, key_columns, sum_columns, [row(1, "a", 5), row(1, "b", 3)])]
        )
    async with read_transaction(engine) as conn:
        stored = await conn.execute(
            select(_daily.c.day, _daily.c.model, _daily.c.cost_micros, _daily.c.request_count)
        )
        got = sorted(tuple(r) for r in stored)
    assert got == [
        (date(2026, 10, 1), "a", 12, 2),
        (date(2026, 10, 1), "b", 3, 1),
        (date(2026, 10, 2), "a", 1, 1),
    ]


async def test_existing_ids_answers_for_more_ids_than_a_statement_may_bind(
    engine: AsyncEngine,
) -> None:
    stored = [f"ev-{i:06d}" for i in range(0, 40_000, 7)]
    async with write_transaction(engine) as conn:
        await insert_rows(conn, _events, [_event(i) for i in stored])
    asked = [f"ev-{i:06d}" for i in range(40_000)] + ["ev-'; DROP TABLE llm_event; --"]
    async with read_transaction(engine) as conn:
        assert await existing_ids(conn, _events, asked) == set(stored)
        assert await existing_ids(conn, _events, []) == set()


async def test_bulk_insert_belongs_to_the_callers_transaction(engine: AsyncEngine) -> None:
    class Abort(Exception):
        pass

    # The very first statement of a transaction, then a rollback: nothing may remain.
    with pytest.raises(Abort):
        async with write_transaction(engine) as conn:
            await insert_rows(conn, _events, [_event("rolled-back")])
            raise Abort
    async with read_transaction(engine) as conn:
        assert await existing_ids(conn, _events, ["rolled-back"]) == set()


async def test_bulk_insert_of_a_stored_id_raises_integrity_error(engine: AsyncEngine) -> None:
    async with write_transaction(engine) as conn:
        await insert_rows(conn, _events, [_event("taken")])
    with pytest.raises(IntegrityError):
        async with write_transaction(engine) as conn:
            await insert_rows(conn, _events, [_event("fresh"), _event("taken")])
    async with read_transaction(engine) as conn:
        assert await existing_ids(conn, _events, ["fresh", "taken"]) == {"taken"}


async def test_sums_for_several_tables_are_added_together_in_one_call(engine: AsyncEngine) -> None:
    by_key = ("account_id", "day", "key_id", "provider")
    by_agent = ("account_id", "day", "agent_id")
    counted = ("cost_micros", "request_count")
    account, day = uuid.UUID(int=3), date(2026, 12, 6)
    for cost in (7, 5):
        async with write_transaction(engine) as conn:
            await add_to_all_sums(
                conn,
                [
                    Sums(_daily_key, by_key, counted, [(account, day, NONE_ID, "openai", cost, 1)]),
                    Sums(_daily_agent, by_agent, counted, []),  # nothing to add: left out
                    Sums(_daily_agent, by_agent, counted, [(account, day, NONE_ID, cost * 2, 1)]),
                ],
            )
    async with read_transaction(engine) as conn:
        keys = (
            await conn.execute(select(_daily_key.c.cost_micros, _daily_key.c.request_count))
        ).all()
        agents = (
            await conn.execute(select(_daily_agent.c.cost_micros, _daily_agent.c.request_count))
        ).all()
    assert [tuple(r) for r in keys] == [(12, 2)]
    assert [tuple(r) for r in agents] == [(24, 2)]


async def test_on_sqlites_writer_thread_the_statements_store_and_fail_as_through_the_engine(
    on_thread: OnThread,
) -> None:
    # There they go to sqlite3 directly, without SQLAlchemy's execution around them.
    engine, thread = on_thread.engine, on_thread.thread
    key_columns = ("account_id", "day", "key_id", "agent_id", "provider", "model")
    sum_columns = ("cost_micros", "request_count", "input_tokens", "output_tokens")
    day = (uuid.UUID(int=1), date(2026, 10, 1), uuid.UUID(int=2), NONE_ID, "openai", "m")

    async def first(conn: AsyncConnection) -> set[str]:
        await insert_rows(conn, _events, [_event("thread-1"), _event("thread-2", status="error")])
        await add_to_all_sums(conn, [Sums(_daily, key_columns, sum_columns, [(*day, 7, 1, 10, 5)])])
        return await existing_ids(conn, _events, ["thread-1", "thread-2", "never"])

    async def clashing(conn: AsyncConnection) -> None:
        await add_to_all_sums(conn, [Sums(_daily, key_columns, sum_columns, [(*day, 5, 1, 10, 5)])])
        await insert_rows(conn, _events, [_event("thread-3"), _event("thread-1")])

    assert await thread.transaction(first) == {"thread-1", "thread-2"}
    with pytest.raises(IntegrityError):
        await thread.transaction(clashing)
    async with write_transaction(engine) as conn:
        await insert_rows(conn, _events, [_event("engine-1"), _event("engine-2", status="error")])
    stored = await _raw(engine, _events, ["thread-1", "thread-2", "engine-1", "engine-2"])
    # The whole failed transaction rolled back: neither its event nor its sum remains.
    assert sorted(stored) == ["engine-1", "engine-2", "thread-1", "thread-2"]
    for n in (1, 2):
        # All but the random key_id (the third column) as the engine's path stores it.
        thread_row, engine_row = stored[f"thread-{n}"], stored[f"engine-{n}"]
        assert thread_row[:2] + thread_row[3:] == engine_row[:2] + engine_row[3:]
    async with read_transaction(engine) as conn:
        sums = (await conn.execute(select(_daily.c.cost_micros, _daily.c.request_count))).all()
    assert [tuple(r) for r in sums] == [(7, 1)]
