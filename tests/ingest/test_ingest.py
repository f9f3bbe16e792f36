"""Ingest: idempotency, rollups in the same transaction, races, late and open events, pricing."""

from __future__ import annotations

import asyncio
import gc
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from crabglamp.db import read_transaction, write_transaction
from crabglamp.ingest.ingestor import PAUSE_COLLECTOR_FROM, Ingestor
from crabglamp.ingest.records import ComputeRecord, IngestError, LlmRecord, Record, VoiceRecord
from crabglamp.models import NONE_ID, Account, Agent, PlainVm, Price, VirtualKey
from crabglamp.periods import as_utc, parse_month
from crabglamp.prices import PriceBook, UnitPrice, load_price_book
from crabglamp.usage.compute import compute_usage
from crabglamp.usage.llm import llm_usage
from crabglamp.usage.query import UsageQuery

EVENT_TABLES = ("llm_event", "voice_event", "compute_interval")
ROLLUP_TABLES = ("llm_daily", "llm_hourly", "voice_daily", "compute_daily")
CENT = 1_000_000


def at(text_: str) -> datetime:
    return datetime.fromisoformat(text_).replace(tzinfo=UTC)


@dataclass
class Tenant:
    account_id: uuid.UUID
    key_id: uuid.UUID
    agent_id: uuid.UUID
    plain_vm_id: uuid.UUID


async def make_tenant(engine: AsyncEngine, name: str) -> Tenant:
    tenant = Tenant(uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4())
    async with write_transaction(engine) as conn:
        await conn.execute(insert(Account).values(id=tenant.account_id, name=name))
        await conn.execute(
            insert(Agent).values(id=tenant.agent_id, account_id=tenant.account_id, name="bot")
        )
        await conn.execute(
            insert(PlainVm).values(
                id=tenant.plain_vm_id,
                account_id=tenant.account_id,
                name="box",
                cents_per_hour_micros=5 * CENT,
            )
        )
        await conn.execute(
            insert(VirtualKey).values(
                id=tenant.key_id,
                account_id=tenant.account_id,
                name="prod",
                provider="openai",
                spend_cap_micros=500 * CENT,
            )
        )
    return tenant


async def dump(engine: AsyncEngine, tables: tuple[str, ...] = EVENT_TABLES + ROLLUP_TABLES) -> Any:
    """The whole content of the tables, comparable across engines and calls."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    async with read_transaction(engine) as conn:
        for table in tables:
            rows = await conn.execute(text(f"SELECT * FROM {table}"))
            out[table] = sorted(
                (tuple(_plain(v) for v in row) for row in rows), key=lambda r: repr(r)
            )
    return out


def _plain(value: Any) -> Any:
    # SQLite hands back uuids as hex text and datetimes as text; make both engines agree.
    if isinstance(value, datetime):
        return as_utc(value).isoformat()
    if isinstance(value, uuid.UUID):
        return value.hex
    if isinstance(value, str) and len(value) >= 19 and value[10] == " " and value[4] == "-":
        return as_utc(datetime.fromisoformat(value)).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


# An event without token categories: no cached, cache-write, reasoning or audio tokens, and
# nothing saved by caching.
NO_PARTS = (0, 0, 0, 0, 0, 0, 0)


def llm(tenant: Tenant, event_id: str, ts: datetime, **kwargs: Any) -> LlmRecord:
    values: dict[str, Any] = {
        "provider": "openai",
        "model": "gpt-4o-mini",
        "input_tokens": 1200,
        "output_tokens": 300,
        "cost_micros": 31_500,
    }
    values.update(kwargs)
    return LlmRecord(id=event_id, ts=ts, key_id=tenant.key_id, **values)


def interval(
    tenant: Tenant, event_id: str, start: datetime, end: datetime | None, **kwargs: Any
) -> ComputeRecord:
    values: dict[str, Any] = {"cents_per_hour_micros": 8 * CENT, "agent_id": tenant.agent_id}
    values.update(kwargs)
    return ComputeRecord(id=event_id, account_id=tenant.account_id, start=start, end=end, **values)


@pytest.fixture
async def tenant(engine: AsyncEngine) -> Tenant:
    return await make_tenant(engine, "Acme")


# Recording and rollups


async def test_records_each_kind_with_its_rollups(engine: AsyncEngine, tenant: Tenant) -> None:
    ingestor = Ingestor(engine)
    result = await ingestor.record(
        [
            llm(tenant, "l1", at("2026-11-03T12:00:00.123"), agent_id=tenant.agent_id),
            llm(tenant, "l2", at("2026-11-03T12:59:59"), cost_micros=None),
            VoiceRecord(
                "v1",
                at("2026-11-03T08:00:00"),
                tenant.account_id,
                "tts-1",
                1800,
                cost_micros=2_700_000,
            ),
            interval(tenant, "c1", at("2026-11-03T10:00:00"), at("2026-11-03T11:30:00")),
        ]
    )
    assert (result.inserted, result.duplicates) == (4, 0)
    tables = await dump(engine)
    key, agent, account = tenant.key_id.hex, tenant.agent_id.hex, tenant.account_id.hex
    assert tables["llm_daily"] == sorted(
        [
            (
                account,
                "2026-11-03",
                key,
                agent,
                "openai",
                "gpt-4o-mini",
                31_500,
                1,
                1200,
                300,
                *NO_PARTS,
            ),
            # Priced from the list: 1200 x $0.15/M + 300 x $0.60/M = 0.036 cents.
            (
                account,
                "2026-11-03",
                key,
                NONE_ID.hex,
                "openai",
                "gpt-4o-mini",
                36_000,
                1,
                1200,
                300,
                *NO_PARTS,
            ),
        ],
        key=repr,
    )
    assert tables["llm_hourly"] == [(account, key, "2026-11-03T12:00:00+00:00", 67_500, 2)]
    assert tables["voice_daily"] == [
        (account, "2026-11-03", NONE_ID.hex, "tts-1", 2_700_000, 1800, 1)
    ]
    assert tables["compute_daily"] == [
        (account, "2026-11-03", agent, NONE_ID.hex, "running", 12 * CENT, 5_400_000_000)
    ]


async def test_token_categories_add_up_across_batches_with_and_without_them(
    engine: AsyncEngine, tenant: Tenant
) -> None:
    # A batch that carries no category writes its rows without those columns; the next one,
    # mixing an event with categories and a plain one, adds to the same day's sums.
    ingestor = Ingestor(engine)
    day = "2026-11-03T09:00:00"
    await ingestor.record([llm(tenant, "plain-1", at(day)), llm(tenant, "plain-2", at(day))])
    await ingestor.record(
        [
            llm(tenant, "plain-3", at(day)),
            llm(
                tenant,
                "cached",
                at(day),
                cached_input_tokens=1000,
                reasoning_tokens=100,
                service_tier="flex",
                estimated=True,
            ),
        ]
    )
    tables = await dump(engine, ("llm_event", "llm_daily", "llm_daily_model"))
    # llm_daily: cost, requests, input, output, then cached, 5m, 1h, reasoning, audio in/out, saved
    (daily,) = tables["llm_daily"]
    assert daily[6:] == (4 * 31_500, 4, 4 * 1200, 4 * 300, 1000, 0, 0, 100, 0, 0, 0)
    (by_model,) = tables["llm_daily_model"]
    assert by_model[-11:] == daily[6:]
    async with read_transaction(engine) as conn:
        rows = await conn.execute(
            text("SELECT id, cached_input_tokens, service_tier, estimated FROM llm_event")
        )
        stored = {row[0]: (row[1], row[2], bool(row[3])) for row in rows}
    assert stored == {
        "plain-1": (0, None, False),
        "plain-2": (0, None, False),
        "plain-3": (0, None, False),
        "cached": (1000, "flex", True),
    }


async def test_the_garbage_collector_is_on_again_after_every_large_batch(
    engine: AsyncEngine, tenant: Tenant
) -> None:
    # A large batch pauses the collector; it must come back after success and after a refusal,
    # or a server that imports would grow without bound.
    ingestor = Ingestor(engine)
    size = PAUSE_COLLECTOR_FROM
    moment = at("2026-11-03T09:00:00")
    good = [llm(tenant, f"gc-{i}", moment) for i in range(size)]
    assert (await ingestor.record(good)).inserted == size
    assert gc.isenabled()
    bad = [*good[:-1], llm(tenant, "gc-bad", moment, input_tokens=-1)]
    with pytest.raises(IngestError):
        await ingestor.record(bad)
    assert gc.isenabled()


async def test_a_resent_batch_changes_nothing(engine: AsyncEngine, tenant: Tenant) -> None:
    batch: list[Record] = [
        llm(tenant, "l1", at("2026-11-03T12:00:00")),
        interval(tenant, "c1", at("2026-11-03T10:00:00"), at("2026-11-03T11:00:00")),
    ]
    await Ingestor(engine).record(batch)
    before = await dump(engine)
    result = await Ingestor(engine).record([*batch, *batch])
    assert (result.inserted, result.duplicates) == (0, 4)
    assert await dump(engine) == before


async def test_a_duplicate_id_with_different_content_is_refused_and_writes_nothing(
    engine: AsyncEngine, tenant: Tenant
) -> None:
    ingestor = Ingestor(engine)
    await ingestor.record([llm(tenant, "l1", at("2026-11-03T12:00:00"))])
    before = await dump(engine)
    for changed in (
        {"cost_micros": 31_501},
        {"model": "gpt-4o"},
        {"input_tokens": 1},
        {"ts": at("2026-11-03T12:00:01")},
    ):
        record = llm(tenant, "l1", changed.pop("ts", at("2026-11-03T12:00:00")), **changed)
        with pytest.raises(IngestError) as error:
            await ingestor.record([llm(tenant, "fresh", at("2026-11-04T00:00:00")), record])
        assert [p.event_id for p in error.value.problems] == ["l1"]
        assert "already recorded with different" in error.value.problems[0].reason
        assert await dump(engine) == before


async def test_the_same_id_twice_in_one_batch_with_different_content_is_refused(
    engine: AsyncEngine, tenant: Tenant
) -> None:
    with pytest.raises(IngestError, match="appears twice"):
        await Ingestor(engine).record(
            [
                llm(tenant, "l1", at("2026-11-03T12:00:00")),
                llm(tenant, "l1", at("2026-11-03T12:00:00"), output_tokens=7),
            ]
        )
    assert await dump(engine, EVENT_TABLES + ROLLUP_TABLES) == {
        t: [] for t in EVENT_TABLES + ROLLUP_TABLES
    }


async def test_a_timestamp_in_another_zone_counts_on_its_utc_day(
    engine: AsyncEngine, tenant: Tenant
) -> None:
    tokyo = datetime(2026, 12, 1, 8, 0, tzinfo=UTC).astimezone(ZoneInfo("Asia/Tokyo"))
    assert tokyo.day == 1 and tokyo.hour == 17
    late_evening = datetime.fromisoformat("2026-11-30T20:00:00-08:00")  # Dec 1, 04:00 UTC
    await Ingestor(engine).record(
        [llm(tenant, "tokyo", tokyo), llm(tenant, "la", late_evening, cost_micros=None)]
    )
    tables = await dump(engine, ("llm_daily", "llm_event"))
    assert {row[1] for row in tables["llm_daily"]} == {"2026-12-01"}
    assert sorted(row[1] for row in tables["llm_event"]) == [
        "2026-12-01T04:00:00+00:00",
        "2026-12-01T08:00:00+00:00",
    ]


# Races: one event however many send it at once


@pytest.mark.parametrize("shared", [True, False], ids=["one-ingestor", "50-ingestors"])
async def test_fifty_concurrent_records_of_one_event_store_it_once(
    engine: AsyncEngine, tenant: Tenant, shared: bool
) -> None:
    record = llm(tenant, "same", at("2026-11-03T12:00:00"), agent_id=tenant.agent_id)
    one = Ingestor(engine)
    ingestors = [one if shared else Ingestor(engine) for _ in range(50)]
    results = await asyncio.gather(*(i.record([record]) for i in ingestors))
    assert sum(r.inserted for r in results) == 1
    assert sum(r.duplicates for r in results) == 49
    racing = await dump(engine)

    # The same event recorded once, alone, in a fresh account of a fresh database state.
    async with write_transaction(engine) as conn:
        for table in EVENT_TABLES + ROLLUP_TABLES:
            await conn.execute(text(f"DELETE FROM {table}"))
    await Ingestor(engine).record([record])
    assert await dump(engine) == racing
    assert len(racing["llm_event"]) == 1
    assert [row[6:] for row in racing["llm_daily"]] == [(31_500, 1, 1200, 300, *NO_PARTS)]


async def test_fifty_concurrent_records_of_a_voice_event_store_it_once(
    engine: AsyncEngine, tenant: Tenant
) -> None:
    record = VoiceRecord("v", at("2026-11-03T12:00:00"), tenant.account_id, "tts-1", 1000)
    results = await asyncio.gather(*(Ingestor(engine).record([record]) for _ in range(50)))
    assert sum(r.inserted for r in results) == 1
    tables = await dump(engine, ("voice_event", "voice_daily"))
    assert len(tables["voice_event"]) == 1
    assert [row[4:] for row in tables["voice_daily"]] == [(1_500_000, 1000, 1)]


async def test_closing_an_interval_concurrently_rolls_it_up_once(
    engine: AsyncEngine, tenant: Tenant
) -> None:
    start = at("2026-11-30T23:00:00")
    ingestor = Ingestor(engine)
    await ingestor.record([interval(tenant, "c1", start, None)])
    assert (await dump(engine, ("compute_daily",)))["compute_daily"] == []
    closed = interval(tenant, "c1", start, at("2026-12-01T02:00:00"))
    results = await asyncio.gather(*(Ingestor(engine).record([closed]) for _ in range(50)))
    assert sum(r.closed_intervals for r in results) == 1
    assert sum(r.duplicates for r in results) == 49
    tables = await dump(engine, ("compute_daily", "compute_interval"))
    assert [(row[1], row[5], row[6]) for row in tables["compute_daily"]] == [
        ("2026-11-30", 8 * CENT, 3_600_000_000),
        ("2026-12-01", 16 * CENT, 7_200_000_000),
    ]
    # The open copy, resent late, is a no-op; so is the closed one again.
    result = await ingestor.record([interval(tenant, "c1", start, None), closed])
    assert (result.inserted, result.closed_intervals, result.duplicates) == (0, 0, 2)
    assert await dump(engine, ("compute_daily", "compute_interval")) == tables


async def test_racing_closes_with_different_ends_keep_one_end_and_refuse_the_other(
    engine: AsyncEngine, tenant: Tenant
) -> None:
    start = at("2026-11-03T10:00:00")
    await Ingestor(engine).record([interval(tenant, "c1", start, None)])
    ends = [at("2026-11-03T11:00:00"), at("2026-11-03T12:00:00")]
    outcomes = await asyncio.gather(
        *(Ingestor(engine).record([interval(tenant, "c1", start, ends[i % 2])]) for i in range(20)),
        return_exceptions=True,
    )
    refused = [o for o in outcomes if isinstance(o, IngestError)]
    assert len(refused) == 10, outcomes  # every sender of the losing end hears about it
    tables = await dump(engine, ("compute_daily", "compute_interval"))
    (stored,) = tables["compute_interval"]
    hours = 1 if stored[6] == "2026-11-03T11:00:00+00:00" else 2
    assert [(row[5], row[6]) for row in tables["compute_daily"]] == [
        (hours * 8 * CENT, hours * 3_600_000_000)
    ]


async def test_an_open_and_a_closed_copy_in_one_batch_record_the_closed_one(
    engine: AsyncEngine, tenant: Tenant
) -> None:
    start = at("2026-11-03T10:00:00")
    closed = interval(tenant, "c1", start, at("2026-11-03T10:30:00"))
    await Ingestor(engine).record([interval(tenant, "c1", start, None), closed])
    tables = await dump(engine, ("compute_daily", "compute_interval"))
    assert tables["compute_interval"][0][6] == "2026-11-03T10:30:00+00:00"
    assert [row[5] for row in tables["compute_daily"]] == [4 * CENT]


async def test_a_closed_interval_cannot_get_another_end(
    engine: AsyncEngine, tenant: Tenant
) -> None:
    start = at("2026-11-03T10:00:00")
    ingestor = Ingestor(engine)
    await ingestor.record([interval(tenant, "c1", start, at("2026-11-03T11:00:00"))])
    before = await dump(engine)
    with pytest.raises(IngestError, match="different end"):
        await ingestor.record([interval(tenant, "c1", start, at("2026-11-03T12:00:00"))])
    with pytest.raises(IngestError, match="different cents_per_hour_micros"):
        await ingestor.record([interval(tenant, "c1", start, None, cents_per_hour_micros=1)])
    assert await dump(engine) == before


# Time: late events, midnight and month ends, open intervals


async def test_a_late_event_lands_on_its_own_day(engine: AsyncEngine, tenant: Tenant) -> None:
    ingestor = Ingestor(engine)
    await ingestor.record([llm(tenant, "today", at("2026-11-20T09:00:00"))])
    await ingestor.record([llm(tenant, "late", at("2026-11-02T23:59:59.999999"), cost_micros=7)])
    async with read_transaction(engine) as conn:
        usage = await llm_usage(conn, UsageQuery(parse_month("2026-11"), (tenant.account_id,)))
    by_day = {d.date: d.total_micros for d in usage.daily if d.total_micros}
    assert by_day == {date(2026, 11, 2): 7, date(2026, 11, 20): 31_500}


async def test_an_interval_across_a_month_end_counts_in_each_month(
    engine: AsyncEngine, tenant: Tenant
) -> None:
    await Ingestor(engine).record(
        [
            interval(
                tenant,
                "vm",
                at("2026-11-30T23:00:00"),
                at("2026-12-01T02:00:00"),
                agent_id=None,
                plain_vm_id=tenant.plain_vm_id,
                cents_per_hour_micros=12_500_000,
            )
        ]
    )
    async with read_transaction(engine) as conn:
        november = await compute_usage(
            conn, UsageQuery(parse_month("2026-11"), (tenant.account_id,))
        )
        december = await compute_usage(
            conn, UsageQuery(parse_month("2026-12"), (tenant.account_id,))
        )
    assert november.total_micros == 12_500_000
    assert december.total_micros == 25_000_000
    assert november.daily[-1].plain_vm_micros == 12_500_000
    assert december.daily[0].plain_vm_micros == 25_000_000
    assert [(v.plain_vm_name, v.duration_us) for v in december.plain_vms] == [
        ("box", 7_200_000_000)
    ]


async def test_an_open_interval_accrues_until_now_then_counts_once_when_closed(
    engine: AsyncEngine, tenant: Tenant
) -> None:
    start = at("2026-11-03T22:00:00")
    ingestor = Ingestor(engine)
    await ingestor.record([interval(tenant, "c1", start, None, state="paused")])
    query = UsageQuery(parse_month("2026-11"), (tenant.account_id,))
    async with read_transaction(engine) as conn:
        before_start = await compute_usage(conn, query, now=at("2026-11-03T21:00:00"))
        running = await compute_usage(conn, query, now=at("2026-11-04T01:30:00"))
        in_december = await compute_usage(conn, query, now=at("2026-12-05T00:00:00"))
    assert before_start.total_micros == 0
    assert running.total_micros == 28 * CENT  # 3.5 hours at 8 cents
    (agent,) = running.agents
    assert (agent.agent_name, agent.paused_micros, agent.paused_us) == (
        "bot",
        28 * CENT,
        12_600_000_000,
    )
    day3, day4 = running.daily[2], running.daily[3]
    assert (day3.agent_micros, day4.agent_micros) == (16 * CENT, 12 * CENT)
    # Until the end of the month only, when "now" is later.
    assert in_december.total_micros == 8 * CENT * (2 + 27 * 24)  # Nov 3 22:00 to Dec 1

    await ingestor.record(
        [interval(tenant, "c1", start, at("2026-11-04T01:30:00"), state="paused")]
    )
    async with read_transaction(engine) as conn:
        closed = await compute_usage(conn, query, now=at("2026-12-05T00:00:00"))
    assert closed.total_micros == 28 * CENT
    assert [d.total_micros for d in closed.daily] == [d.total_micros for d in running.daily]


# Prices


async def test_a_price_change_mid_month_prices_each_event_at_its_moment(
    engine: AsyncEngine, tenant: Tenant
) -> None:
    async with write_transaction(engine) as conn:
        await conn.execute(
            insert(Price).values(
                provider="openai",
                model="gpt-4o-mini",
                kind="llm",
                input_micros_per_mtok=100 * CENT,
                output_micros_per_mtok=400 * CENT,
                valid_from=date(2026, 11, 15),
            )
        )
    async with read_transaction(engine) as conn:
        book = await load_price_book(conn)
    ingestor = Ingestor(engine, book)
    await ingestor.record(
        [
            llm(tenant, "before", at("2026-11-14T23:59:59"), cost_micros=None),
            llm(tenant, "after", at("2026-11-15T00:00:00"), cost_micros=None),
            llm(
                tenant,
                "snapshot",
                at("2026-11-20T00:00:00"),
                cost_micros=None,
                model="gpt-4o-mini-2024-07-18",
            ),
        ]
    )
    async with read_transaction(engine) as conn:
        rows = dict((await conn.execute(text("SELECT id, cost_micros FROM llm_event"))).all())
    # List price: 1200 x 15 + 300 x 60 micro-cents per token; new: 1200 x 100 + 300 x 400.
    assert rows == {"before": 36_000, "after": 240_000, "snapshot": 240_000}


async def test_a_price_book_of_two_versions_prices_voice_by_moment(
    engine: AsyncEngine, tenant: Tenant
) -> None:
    book = PriceBook(
        [
            UnitPrice("acme", "voice-x", "voice", date(2026, 1, 1), micros_per_mchar=10 * CENT),
            UnitPrice("acme", "voice-x", "voice", date(2026, 11, 15), micros_per_mchar=20 * CENT),
        ]
    )
    await Ingestor(engine, book).record(
        [
            VoiceRecord("a", at("2026-11-14T12:00:00"), tenant.account_id, "voice-x", 500_000),
            VoiceRecord("b", at("2026-11-15T12:00:00"), tenant.account_id, "voice-x", 500_000),
        ]
    )
    async with read_transaction(engine) as conn:
        rows = dict((await conn.execute(text("SELECT id, cost_micros FROM voice_event"))).all())
    assert rows == {"a": 5 * CENT, "b": 10 * CENT}


# Refusals: a clear reason per event, nothing written


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (
            lambda t, o: llm(
                t, "e", at("2026-11-03T12:00:00"), model="no-such-model", cost_micros=None
            ),
            "no price for model 'no-such-model'",
        ),
        (
            lambda t, o: LlmRecord(
                "e", at("2026-11-03T12:00:00"), uuid.uuid4(), "openai", "gpt-4o", 1, 1, 5
            ),
            "is not a known virtual key",
        ),
        (
            lambda t, o: llm(t, "e", at("2026-11-03T12:00:00"), agent_id=o.agent_id),
            "is not an agent of this account",
        ),
        (
            lambda t, o: llm(t, "e", at("2026-11-03T12:00:00"), agent_id=uuid.uuid4()),
            "is not an agent of this account",
        ),
        (
            lambda t, o: llm(t, "e", at("2026-11-03T12:00:00"), input_tokens=-1),
            "must not be negative",
        ),
        (
            lambda t, o: llm(t, "e", at("2026-11-03T12:00:00"), cost_micros=-1),
            "must not be negative",
        ),
        (
            lambda t, o: llm(t, "e", at("2026-11-03T12:00:00"), status="maybe"),
            "status must be ok or error",
        ),
        (lambda t, o: llm(t, "", at("2026-11-03T12:00:00")), "event id must not be empty"),
        (
            lambda t, o: VoiceRecord("e", at("2026-11-03T12:00:00"), uuid.uuid4(), "tts-1", 5),
            "is not a known account",
        ),
        (
            lambda t, o: VoiceRecord(
                "e", at("2026-11-03T12:00:00"), t.account_id, "tts-1", 5, key_id=o.key_id
            ),
            "is not a key of this account",
        ),
        (
            lambda t, o: VoiceRecord("e", at("2026-11-03T12:00:00"), t.account_id, "tts-1", -5),
            "must not be negative",
        ),
        (
            lambda t, o: VoiceRecord(
                "e", at("2026-11-03T12:00:00"), t.account_id, "unknown-voice", 5
            ),
            "no price for model 'unknown-voice'",
        ),
        (
            lambda t, o: interval(t, "e", at("2026-11-03T12:00:00"), at("2026-11-03T11:00:00")),
            "end is before start",
        ),
        (
            lambda t, o: interval(t, "e", at("2026-11-03T12:00:00"), None, state="sleeping"),
            "state must be running or paused",
        ),
        (
            lambda t, o: interval(
                t, "e", at("2026-11-03T12:00:00"), None, plain_vm_id=t.plain_vm_id
            ),
            "not both",
        ),
        (
            lambda t, o: interval(
                t, "e", at("2026-11-03T12:00:00"), None, agent_id=None, plain_vm_id=o.plain_vm_id
            ),
            "is not a plain VM of this account",
        ),
        (
            lambda t, o: interval(
                t, "e", at("2026-11-03T12:00:00"), None, cents_per_hour_micros=-1
            ),
            "must not be negative",
        ),
    ],
    ids=[
        "unknown-model",
        "unknown-key",
        "agent-of-another-account",
        "unknown-agent",
        "negative-tokens",
        "negative-cost",
        "bad-status",
        "empty-id",
        "unknown-account",
        "key-of-another-account",
        "negative-characters",
        "unknown-voice-model",
        "end-before-start",
        "bad-state",
        "agent-and-vm",
        "vm-of-another-account",
        "negative-rate",
    ],
)
async def test_a_bad_event_is_refused_with_its_reason_and_nothing_is_written(
    engine: AsyncEngine, tenant: Tenant, make: Any, reason: str
) -> None:
    other = await make_tenant(engine, "Other")
    good = llm(tenant, "good", at("2026-11-03T12:00:00"))
    with pytest.raises(IngestError) as error:
        await Ingestor(engine).record([good, make(tenant, other)])
    (problem,) = error.value.problems
    assert reason in problem.reason
    assert await dump(engine) == {t: [] for t in EVENT_TABLES + ROLLUP_TABLES}


# The owner cache holds committed facts only


async def test_a_rolled_back_import_leaves_no_owner_in_the_cache(engine: AsyncEngine) -> None:
    ingestor = Ingestor(engine)
    tenant = Tenant(uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4())

    class ImportFailed(Exception):
        pass

    with pytest.raises(ImportFailed):
        async with write_transaction(engine) as conn:
            await conn.execute(insert(Account).values(id=tenant.account_id, name="Gone"))
            await conn.execute(
                insert(Agent).values(id=tenant.agent_id, account_id=tenant.account_id, name="a")
            )
            await conn.execute(
                insert(VirtualKey).values(id=tenant.key_id, account_id=tenant.account_id, name="k")
            )
            result = await ingestor.record_in(
                conn,
                [
                    llm(tenant, "l1", at("2026-11-03T12:00:00"), agent_id=tenant.agent_id),
                    interval(tenant, "c1", at("2026-11-03T10:00:00"), None),
                ],
            )
            assert result.inserted == 2
            raise ImportFailed

    with pytest.raises(IngestError) as error:
        await ingestor.record(
            [
                llm(tenant, "l2", at("2026-11-03T12:00:00")),
                VoiceRecord("v", at("2026-11-03T12:00:00"), tenant.account_id, "tts-1", 5),
                interval(tenant, "c2", at("2026-11-03T10:00:00"), None),
            ]
        )
    reasons = sorted(p.reason for p in error.value.problems)
    assert len(reasons) == 3
    assert "is not a known account" in reasons[0] and "is not a known account" in reasons[1]
    assert "is not a known virtual key" in reasons[2]
    assert await dump(engine) == {t: [] for t in EVENT_TABLES + ROLLUP_TABLES}


@pytest.fixture
def statements(engine: AsyncEngine) -> Iterator[list[str]]:
    seen: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", before)
    yield seen
    event.remove(engine.sync_engine, "before_cursor_execute", before)


async def test_the_hot_path_looks_owners_up_once(
    engine: AsyncEngine, tenant: Tenant, statements: list[str]
) -> None:
    ingestor = Ingestor(engine)
    await ingestor.record([llm(tenant, "l1", at("2026-11-03T12:00:00"), agent_id=tenant.agent_id)])
    assert any("FROM virtual_key" in s for s in statements)
    statements.clear()
    await ingestor.record([llm(tenant, "l2", at("2026-11-03T12:00:01"), agent_id=tenant.agent_id)])
    assert not any("FROM virtual_key" in s or "FROM agent" in s for s in statements), statements


async def test_owners_read_before_a_callers_transaction_writes_are_cached(
    engine: AsyncEngine, tenant: Tenant, statements: list[str]
) -> None:
    # The group-commit writer's pattern: record_in first thing in a transaction of its own.
    ingestor = Ingestor(engine)
    async with write_transaction(engine) as conn:
        await ingestor.record_in(conn, [llm(tenant, "l1", at("2026-11-03T12:00:00"))])
    statements.clear()
    await ingestor.record([llm(tenant, "l2", at("2026-11-03T12:00:01"))])
    assert not any("FROM virtual_key" in s for s in statements), statements


async def test_owners_read_after_a_callers_transaction_wrote_are_not_cached(
    engine: AsyncEngine, statements: list[str]
) -> None:
    # The import's pattern: create the account and key, then record events, all in one
    # transaction; only a fresh lookup knows whether that transaction committed.
    ingestor = Ingestor(engine)
    tenant = Tenant(uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4())
    async with write_transaction(engine) as conn:
        await conn.execute(insert(Account).values(id=tenant.account_id, name="New"))
        await conn.execute(
            insert(VirtualKey).values(id=tenant.key_id, account_id=tenant.account_id, name="k")
        )
        await ingestor.record_in(conn, [llm(tenant, "l1", at("2026-11-03T12:00:00"))])
    statements.clear()
    await ingestor.record([llm(tenant, "l2", at("2026-11-03T12:00:01"))])
    assert any("FROM virtual_key" in s for s in statements)
    statements.clear()
    await ingestor.record([llm(tenant, "l3", at("2026-11-03T12:00:02"))])
    assert not any("FROM virtual_key" in s for s in statements), statements
    async with read_transaction(engine) as conn:
        count = (await conn.execute(select(func.count()).select_from(text("llm_event")))).scalar()
    assert count == 3


async def test_events_far_ahead_or_before_2000_and_unstorable_text_are_refused_whole(
    engine: AsyncEngine, tenant: Tenant
) -> None:
    """The proxy and the demo record through the Ingestor alone: it applies the same bounds as
    the bundle's parser, and a refused batch writes nothing."""
    ingestor = Ingestor(engine)
    now = datetime.now(UTC)
    good = llm(tenant, "fine", now)
    voice = VoiceRecord(
        id="v-ahead",
        ts=datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC),
        account_id=tenant.account_id,
        voice_model="tts-1",
        characters=10,
        cost_micros=0,
    )
    before = await dump(engine)
    for bad, reason in (
        (llm(tenant, "far", at("9999-12-31T23:59:59")), "ts is more than a day ahead"),
        (llm(tenant, "ahead", now + timedelta(days=1, minutes=5)), "ts is more than a day ahead"),
        (llm(tenant, "old", at("1999-12-31T23:59:59")), "ts is before 2000-01-01"),
        (voice, "ts is more than a day ahead"),
        (interval(tenant, "i-old", at("1990-01-01T00:00:00"), None), "start is before 2000"),
        (
            interval(tenant, "i-far", now - timedelta(hours=1), at("9999-01-01T00:00:00")),
            "end is more than a day ahead",
        ),
        (llm(tenant, "nul\x00", now), "id must not contain NUL"),
        (llm(tenant, "surrogate", now, model="gpt\udc00"), "model must be valid Unicode"),
        (llm(tenant, "long", now, model="m" * 201), "model is too long"),
    ):
        with pytest.raises(IngestError) as error:
            await ingestor.record([good, bad])
        assert [p.event_id for p in error.value.problems] == [bad.id]
        assert reason in error.value.problems[0].reason
        assert await dump(engine) == before
    # A moment within the day ahead is clock skew, not an error.
    await ingestor.record([good, llm(tenant, "soon", now + timedelta(hours=23))])
