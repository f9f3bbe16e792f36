"""The usage service: periods with zero days, independent axes under filters, the request log."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from crabglamp.db import read_transaction, write_transaction
from crabglamp.ingest.ingestor import Ingestor
from crabglamp.ingest.records import ComputeRecord, LlmRecord, Record, VoiceRecord
from crabglamp.migrate import downgrade, upgrade
from crabglamp.models import Account, Agent, PlainVm, VirtualKey
from crabglamp.periods import Period, parse_month
from crabglamp.usage.query import UsageQuery
from crabglamp.usage.request_log import RequestLogQuery, request_log, request_log_summary
from crabglamp.usage.results import Usage
from crabglamp.usage.service import usage

CENT = 1_000_000
NOW = datetime(2026, 12, 15, tzinfo=UTC)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@dataclass
class Tenant:
    account_id: uuid.UUID
    openai_key: uuid.UUID
    anthropic_key: uuid.UUID
    quiet_key: uuid.UUID
    support_bot: uuid.UUID
    sales_bot: uuid.UUID
    build_box: uuid.UUID


async def make_tenant(engine: AsyncEngine, name: str) -> Tenant:
    t = Tenant(*(uuid.uuid4() for _ in range(7)))
    async with write_transaction(engine) as conn:
        await conn.execute(insert(Account).values(id=t.account_id, name=name))
        for agent_id, agent_name in ((t.support_bot, "support-bot"), (t.sales_bot, "sales-bot")):
            await conn.execute(
                insert(Agent).values(id=agent_id, account_id=t.account_id, name=agent_name)
            )
        await conn.execute(
            insert(PlainVm).values(id=t.build_box, account_id=t.account_id, name="build-box")
        )
        for key_id, key_name, provider, cap in (
            (t.openai_key, "prod", "openai", 500 * CENT),
            (t.anthropic_key, "claude", "anthropic", None),
            (t.quiet_key, "spare", "openai", 100 * CENT),
        ):
            await conn.execute(
                insert(VirtualKey).values(
                    id=key_id,
                    account_id=t.account_id,
                    name=key_name,
                    provider=provider,
                    spend_cap_micros=cap,
                )
            )
    return t


def history(t: Tenant, prefix: str = "") -> list[Record]:
    """A small November-December of one tenant, each number easy to check by hand."""
    return [
        LlmRecord(f"{prefix}l1", at("2026-11-03T09:00:00"), t.openai_key, "openai", "gpt-4o-mini", 100, 10, 1 * CENT, t.support_bot),
        LlmRecord(f"{prefix}l2", at("2026-11-03T10:00:00"), t.openai_key, "openai", "gpt-4o", 100, 10, 2 * CENT),
        LlmRecord(f"{prefix}l3", at("2026-11-05T10:00:00"), t.anthropic_key, "anthropic", "claude-3-5-haiku", 100, 10, 4 * CENT, t.sales_bot),
        LlmRecord(f"{prefix}l4", at("2026-11-30T23:59:59"), t.openai_key, "openai", "gpt-4o-mini", 100, 10, 8 * CENT, t.sales_bot),
        LlmRecord(f"{prefix}l5", at("2026-12-01T00:00:00"), t.openai_key, "openai", "gpt-4o-mini", 100, 10, 16 * CENT),
        VoiceRecord(f"{prefix}v1", at("2026-11-03T12:00:00"), t.account_id, "tts-1", 1000, 3 * CENT, t.support_bot),
        VoiceRecord(f"{prefix}v2", at("2026-11-04T12:00:00"), t.account_id, "eleven_flash_v2_5", 500, 5 * CENT),
        ComputeRecord(f"{prefix}c1", t.account_id, at("2026-11-03T00:00:00"), at("2026-11-03T02:00:00"), 10 * CENT, "running", t.support_bot),
        ComputeRecord(f"{prefix}c2", t.account_id, at("2026-11-03T02:00:00"), at("2026-11-03T03:00:00"), 2 * CENT, "paused", t.support_bot),
        ComputeRecord(f"{prefix}c3", t.account_id, at("2026-11-04T00:00:00"), at("2026-11-04T01:00:00"), 7 * CENT, "running", None, t.build_box),
        ComputeRecord(f"{prefix}c4", t.account_id, at("2026-11-05T00:00:00"), at("2026-11-05T01:00:00"), 6 * CENT, "running", t.sales_bot),
        ComputeRecord(f"{prefix}c5", t.account_id, at("2026-11-06T00:00:00"), at("2026-11-06T01:00:00"), 1 * CENT),
    ]  # fmt: skip


@pytest.fixture
async def acme(engine: AsyncEngine) -> Tenant:
    t = await make_tenant(engine, "Acme")
    await Ingestor(engine).record(history(t))
    return t


async def read(engine: AsyncEngine, query: UsageQuery) -> Usage:
    async with read_transaction(engine) as conn:
        return await usage(conn, query, now=NOW)


def november(t: Tenant, **filters: Any) -> UsageQuery:
    return UsageQuery(parse_month("2026-11"), (t.account_id,), **filters)


# Periods: one entry per day, zero days included


async def test_a_month_has_one_entry_per_day_on_every_axis(
    engine: AsyncEngine, acme: Tenant
) -> None:
    got = await read(engine, november(acme))
    days = [date(2026, 11, d) for d in range(1, 31)]
    assert [d.date for d in got.llm.daily] == days
    assert [d.date for d in got.voice.daily] == days
    assert [d.date for d in got.compute.daily] == days
    assert [(d.date.day, d.total_micros) for d in got.llm.daily if d.total_micros] == [
        (3, 3 * CENT),
        (5, 4 * CENT),
        (30, 8 * CENT),
    ]
    assert got.llm.daily[0].models == [] and got.llm.daily[0].request_count == 0
    assert (got.llm.total_micros, got.voice.total_micros, got.compute.total_micros) == (
        15 * CENT,
        8 * CENT,
        36 * CENT,
    )
    assert got.voice.total_characters == 1500

    leap = await read(engine, UsageQuery(parse_month("2028-02"), (acme.account_id,)))
    assert len(leap.llm.daily) == 29 and leap.llm.total_micros == 0


async def test_a_from_to_range_includes_both_ends(engine: AsyncEngine, acme: Tenant) -> None:
    got = await read(
        engine, UsageQuery(Period(date(2026, 11, 30), date(2026, 12, 2)), (acme.account_id,))
    )
    assert [d.date for d in got.llm.daily] == [
        date(2026, 11, 30),
        date(2026, 12, 1),
        date(2026, 12, 2),
    ]
    assert [d.total_micros for d in got.llm.daily] == [8 * CENT, 16 * CENT, 0]
    one_day = await read(
        engine, UsageQuery(Period(date(2026, 11, 3), date(2026, 11, 3)), (acme.account_id,))
    )
    assert [d.date for d in one_day.compute.daily] == [date(2026, 11, 3)]
    assert one_day.compute.total_micros == 22 * CENT
    assert one_day.voice.total_micros == 3 * CENT


# Breakdowns


async def test_breakdowns_name_agents_keys_and_plain_vms(engine: AsyncEngine, acme: Tenant) -> None:
    got = await read(engine, november(acme))
    assert [(m.provider, m.model, m.total_micros, m.request_count) for m in got.llm.models] == [
        ("openai", "gpt-4o-mini", 9 * CENT, 2),
        ("anthropic", "claude-3-5-haiku", 4 * CENT, 1),
        ("openai", "gpt-4o", 2 * CENT, 1),
    ]
    assert [(a.agent_id, a.agent_name, a.total_micros) for a in got.llm.agents] == [
        (acme.sales_bot, "sales-bot", 12 * CENT),
        (None, None, 2 * CENT),  # requests without an agent
        (acme.support_bot, "support-bot", 1 * CENT),
    ]
    assert [
        (k.key_name, k.total_micros, k.request_count, k.spend_cap_micros) for k in got.llm.keys
    ] == [
        ("prod", 11 * CENT, 3, 500 * CENT),
        ("claude", 4 * CENT, 1, None),
        ("spare", 0, 0, 100 * CENT),  # a quiet key still has its card
    ]
    assert got.llm.has_keys
    assert [(a.agent_id, a.characters) for a in got.voice.agents] == [
        (None, 500),
        (acme.support_bot, 1000),
    ]
    assert got.voice.has_voice_usage
    assert [
        (a.agent_name, a.running_micros, a.paused_micros, a.running_us, a.paused_us)
        for a in got.compute.agents
    ] == [
        ("support-bot", 20 * CENT, 2 * CENT, 7_200_000_000, 3_600_000_000),
        ("sales-bot", 6 * CENT, 0, 3_600_000_000, 0),
        (None, 1 * CENT, 0, 3_600_000_000, 0),
    ]
    by_agent = {a.agent_id: a.total_micros for a in got.compute.agents}
    assert by_agent == {acme.support_bot: 22 * CENT, acme.sales_bot: 6 * CENT, None: 1 * CENT}
    assert [(v.plain_vm_name, v.cost_micros, v.duration_us) for v in got.compute.plain_vms] == [
        ("build-box", 7 * CENT, 3_600_000_000)
    ]
    day4 = got.compute.daily[3]
    assert (day4.agent_micros, day4.plain_vm_micros) == (0, 7 * CENT)
    assert day4.plain_vms[0].plain_vm_name == "build-box"
    assert got.compute.daily[2].agents[0].agent_name == "support-bot"


# Filters: each narrows its own axes only


async def test_an_agent_filter_narrows_all_three_axes(engine: AsyncEngine, acme: Tenant) -> None:
    got = await read(engine, november(acme, agent_id=acme.support_bot))
    assert got.llm.total_micros == 1 * CENT
    assert got.voice.total_micros == 3 * CENT
    assert got.compute.total_micros == 22 * CENT
    assert got.compute.plain_vms == []
    assert [a.agent_id for a in (*got.llm.agents, *got.voice.agents, *got.compute.agents)] == [
        acme.support_bot
    ] * 3
    # Only the keys it spent through; no quiet cards under an agent filter.
    assert [k.key_name for k in got.llm.keys] == ["prod"]


@pytest.mark.parametrize(
    ("filters", "llm_total"),
    [
        ({"provider": "anthropic"}, 4 * CENT),
        ({"model": "gpt-4o-mini"}, 9 * CENT),
        ({"key_ids": "openai_key"}, 11 * CENT),
        ({"key_ids": "quiet_key"}, 0),
        ({"provider": "openai", "model": "claude-3-5-haiku"}, 0),
    ],
)
async def test_llm_filters_leave_voice_and_compute_alone(
    engine: AsyncEngine, acme: Tenant, filters: dict[str, Any], llm_total: int
) -> None:
    if "key_ids" in filters:
        filters = {"key_ids": (getattr(acme, filters["key_ids"]),)}
    got = await read(engine, november(acme, **filters))
    assert got.llm.total_micros == llm_total
    assert sum(d.total_micros for d in got.llm.daily) == llm_total
    assert sum(m.total_micros for m in got.llm.models) == llm_total
    assert sum(a.total_micros for a in got.llm.agents) == llm_total
    assert sum(k.total_micros for k in got.llm.keys) == llm_total
    assert got.voice.total_micros == 8 * CENT
    assert got.compute.total_micros == 36 * CENT


async def test_key_cards_follow_the_key_and_provider_filters(
    engine: AsyncEngine, acme: Tenant
) -> None:
    by_provider = await read(engine, november(acme, provider="openai"))
    assert [(k.key_name, k.total_micros) for k in by_provider.llm.keys] == [
        ("prod", 11 * CENT),
        ("spare", 0),
    ]
    one_key = await read(engine, november(acme, key_ids=(acme.quiet_key,)))
    assert [(k.key_name, k.total_micros) for k in one_key.llm.keys] == [("spare", 0)]
    by_model = await read(engine, november(acme, model="gpt-4o"))
    assert [(k.key_name, k.total_micros) for k in by_model.llm.keys] == [("prod", 2 * CENT)]


async def test_a_voice_model_filter_narrows_voice_only(engine: AsyncEngine, acme: Tenant) -> None:
    got = await read(engine, november(acme, voice_model="tts-1"))
    assert got.voice.total_micros == 3 * CENT
    assert [m.voice_model for m in got.voice.models] == ["tts-1"]
    assert got.llm.total_micros == 15 * CENT
    assert got.compute.total_micros == 36 * CENT
    nothing = await read(engine, november(acme, voice_model="no-such-voice"))
    assert not nothing.voice.has_voice_usage and nothing.voice.total_micros == 0
    assert len(nothing.voice.daily) == 30


def _day_models(got: Usage) -> dict[tuple[str, date, str], tuple[int, ...]]:
    """Each day's LLM and voice models: cost, requests, tokens or characters."""
    llm = {
        ("llm", d.date, m.model): (m.total_micros, m.request_count, m.input_tokens, m.output_tokens)
        for d in got.llm.daily
        for m in d.models
    }
    voice = {
        ("voice", d.date, m.voice_model): (m.total_micros, m.request_count, m.characters)
        for d in got.voice.daily
        for m in d.models
    }
    assert llm and voice
    return {**llm, **voice}


async def test_accounts_are_separate_and_platform_wide_sums_them(
    engine: AsyncEngine, acme: Tenant
) -> None:
    globex = await make_tenant(engine, "Globex")
    await Ingestor(engine).record(history(globex, prefix="g-"))
    empty = await make_tenant(engine, "Empty")

    acme_only = await read(engine, november(acme))
    assert acme_only.llm.total_micros == 15 * CENT
    assert {k.account_id for k in acme_only.llm.keys} == {acme.account_id}
    platform = await read(engine, UsageQuery(parse_month("2026-11"), None))
    assert platform.llm.total_micros == 30 * CENT
    assert platform.voice.total_micros == 16 * CENT
    assert platform.compute.total_micros == 72 * CENT
    assert len(platform.llm.keys) == 9  # every key of every account, quiet ones at zero
    both = await read(
        engine, UsageQuery(parse_month("2026-11"), (acme.account_id, globex.account_id))
    )
    assert both.llm.total_micros == 30 * CENT
    # Globex's history is Acme's: each day's models appear once, summed over the two accounts
    # (one account's rollup rows are read as they are, several accounts' are summed).
    assert _day_models(both) == {
        k: tuple(2 * n for n in v) for k, v in _day_models(acme_only).items()
    }
    twice = await read(engine, UsageQuery(parse_month("2026-11"), (acme.account_id,) * 2))
    assert _day_models(twice) == _day_models(acme_only)

    nothing = await read(engine, november(empty))
    assert nothing.llm.total_micros == 0 and nothing.llm.has_keys
    assert [k.key_name for k in nothing.llm.keys] == ["claude", "prod", "spare"]
    no_accounts = await read(engine, UsageQuery(parse_month("2026-11"), ()))
    assert no_accounts.llm.keys == [] and not no_accounts.llm.has_keys
    assert no_accounts.compute.total_micros == 0


async def test_a_database_upgraded_to_the_coarse_rollups_reads_the_same(
    engine: AsyncEngine, acme: Tenant
) -> None:
    """Revision 0006 fills the per-model, per-agent and per-key rollups from llm_daily, so a
    database that recorded usage before them shows the same numbers after the upgrade."""
    globex = await make_tenant(engine, "Globex")
    await Ingestor(engine).record(history(globex, prefix="g-"))
    queries = [november(acme), UsageQuery(parse_month("2026-11"), None), november(globex)]
    before = [await read(engine, q) for q in queries]
    assert before[1].llm.total_micros == 30 * CENT

    await downgrade(engine, "0005")
    await upgrade(engine)
    await engine.dispose()  # no statement prepared against the dropped tables is reused
    assert [await read(engine, q) for q in queries] == before


async def test_open_intervals_accrue_in_usage_until_now(engine: AsyncEngine, acme: Tenant) -> None:
    await Ingestor(engine).record(
        [ComputeRecord("open", acme.account_id, at("2026-11-30T22:00:00"), None, 10 * CENT, "running", None, acme.build_box)]
    )  # fmt: skip
    async with read_transaction(engine) as conn:
        december = await usage(
            conn,
            UsageQuery(parse_month("2026-12"), (acme.account_id,)),
            now=at("2026-12-02T06:00:00"),
        )
        november_ = await usage(conn, november(acme), now=at("2026-12-02T06:00:00"))
    assert [d.total_micros for d in december.compute.daily[:3]] == [240 * CENT, 60 * CENT, 0]
    assert november_.compute.total_micros == 36 * CENT + 20 * CENT


async def test_closed_and_open_compute_of_one_agent_make_one_entry_a_day(
    engine: AsyncEngine, acme: Tenant
) -> None:
    # Closed time is read from the daily rollup, open time from the interval itself (where "no
    # agent" is stored differently): the same agent, or none, must still be one entry a day.
    await Ingestor(engine).record(
        [
            ComputeRecord("bot-closed", acme.account_id, at("2026-12-01T00:00:00"), at("2026-12-01T02:00:00"), 10 * CENT, "running", acme.support_bot),
            ComputeRecord("bot-open", acme.account_id, at("2026-12-01T04:00:00"), None, 10 * CENT, "paused", acme.support_bot),
            ComputeRecord("none-closed", acme.account_id, at("2026-12-01T00:00:00"), at("2026-12-01T01:00:00"), 10 * CENT),
            ComputeRecord("none-open", acme.account_id, at("2026-12-01T05:00:00"), None, 10 * CENT),
        ]
    )  # fmt: skip
    async with read_transaction(engine) as conn:
        spent = await usage(
            conn,
            UsageQuery(parse_month("2026-12"), (acme.account_id,)),
            now=at("2026-12-01T06:00:00"),
        )
    first = spent.compute.daily[0]
    by_agent = {a.agent_id: a for a in first.agents}
    assert len(first.agents) == 2
    bot, none = by_agent[acme.support_bot], by_agent[None]
    assert (bot.agent_name, bot.running_micros, bot.paused_micros) == (
        "support-bot",
        20 * CENT,
        20 * CENT,
    )
    assert (none.agent_name, none.running_micros) == (None, 10 * CENT + 10 * CENT)
    assert [(a.agent_id, a.total_micros) for a in spent.compute.agents] == [
        (acme.support_bot, 40 * CENT),
        (None, 20 * CENT),
    ]


# The request log: keyset pages over the raw events


async def test_the_request_log_walks_every_request_once_in_order(
    engine: AsyncEngine, acme: Tenant
) -> None:
    same_moment = at("2026-11-10T12:00:00")
    records: list[Record] = [
        LlmRecord(f"r{n:02d}", same_moment if n % 3 else same_moment + timedelta(seconds=n), acme.openai_key, "openai", "gpt-4o-mini", n, n, n * 1000)
        for n in range(1, 24)
    ]  # fmt: skip
    # Not in this log: another model, another day, another key.
    records += [
        LlmRecord("other-model", same_moment, acme.openai_key, "openai", "gpt-4o", 1, 1, 5),
        LlmRecord("other-day", at("2026-11-11T00:00:00"), acme.openai_key, "openai", "gpt-4o-mini", 1, 1, 5),
        LlmRecord("other-key", same_moment, acme.anthropic_key, "openai", "gpt-4o-mini", 1, 1, 5),
    ]  # fmt: skip
    await Ingestor(engine).record(records)
    query = RequestLogQuery(
        day=date(2026, 11, 10),
        account_ids=(acme.account_id,),
        model="gpt-4o-mini",
        key_ids=(acme.openai_key,),
    )
    seen: list[tuple[datetime, str]] = []
    after: str | None = None
    pages = 0
    async with read_transaction(engine) as conn:
        while True:
            page = await request_log(conn, query, first=4, after=after)
            pages += 1
            seen += [(r.ts, r.id) for r in page.requests]
            assert all(
                r.model == "gpt-4o-mini" and r.key_id == acme.openai_key for r in page.requests
            )
            if not page.has_next_page:
                break
            after = page.end_cursor
        summary = await request_log_summary(conn, query)
        whole_day = await request_log(conn, query, first=500)
    expected = sorted((r.ts, r.id) for r in records[:23])
    assert seen == expected
    assert pages == 6
    assert [(r.ts, r.id) for r in whole_day.requests] == expected
    assert not whole_day.has_next_page
    assert summary.request_count == 23
    assert summary.total_micros == sum(n * 1000 for n in range(1, 24))


async def test_the_log_summary_is_the_days_model_entry(engine: AsyncEngine, acme: Tenant) -> None:
    got = await read(engine, november(acme))
    async with read_transaction(engine) as conn:
        for day in got.llm.daily:
            for entry in day.models:
                summary = await request_log_summary(
                    conn,
                    RequestLogQuery(
                        day.date, (acme.account_id,), model=entry.model, provider=entry.provider
                    ),
                )
                page = await request_log(
                    conn,
                    RequestLogQuery(
                        day.date, (acme.account_id,), model=entry.model, provider=entry.provider
                    ),
                    first=500,
                )
                assert (summary.request_count, summary.total_micros) == (
                    entry.request_count,
                    entry.total_micros,
                )
                assert sum(r.cost_micros for r in page.requests) == entry.total_micros
        by_agent = await request_log_summary(
            conn, RequestLogQuery(date(2026, 11, 3), (acme.account_id,), agent_id=acme.support_bot)
        )
        other_account = await request_log(
            conn, RequestLogQuery(date(2026, 11, 3), (uuid.uuid4(),)), first=10
        )
    assert (by_agent.request_count, by_agent.total_micros) == (1, 1 * CENT)
    assert other_account.requests == [] and other_account.end_cursor is None


@pytest.mark.parametrize(
    "cursor",
    [
        "not base64 at all!",
        base64.urlsafe_b64encode(b"no separator").decode(),
        base64.urlsafe_b64encode(b"yesterday|r01").decode(),
        base64.urlsafe_b64encode(b"\xff\xfe|x").decode(),
        "",
    ],
)
async def test_a_bad_cursor_is_a_value_error(
    engine: AsyncEngine, acme: Tenant, cursor: str
) -> None:
    async with read_transaction(engine) as conn:
        with pytest.raises(ValueError, match="cursor"):
            await request_log(
                conn, RequestLogQuery(date(2026, 11, 3), (acme.account_id,)), after=cursor
            )


@pytest.mark.parametrize("first", [0, -1, 501])
async def test_a_page_size_out_of_range_is_a_value_error(
    engine: AsyncEngine, acme: Tenant, first: int
) -> None:
    async with read_transaction(engine) as conn:
        with pytest.raises(ValueError, match="first"):
            await request_log(
                conn, RequestLogQuery(date(2026, 11, 3), (acme.account_id,)), first=first
            )
