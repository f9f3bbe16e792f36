"""Property tests: rollups and every breakdown of usage equal an independent sum of the events.

The expected numbers are computed here from the generated events alone, with fractions and the
list prices written out, never with the code under test.
"""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta, timezone
from fractions import Fraction
from typing import Any

import pytest
import time_machine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncEngine

from crabglamp.db import read_transaction, write_transaction
from crabglamp.ingest.ingestor import Ingestor
from crabglamp.ingest.records import ComputeRecord, LlmRecord, Record, VoiceRecord
from crabglamp.intervals import compute_cost_pieces
from crabglamp.models import NONE_ID, Account, Agent, PlainVm, VirtualKey
from crabglamp.periods import Period, as_utc, parse_month, split_by_day
from crabglamp.usage.query import UsageQuery
from crabglamp.usage.service import usage

BASE = datetime(2026, 11, 28, tzinfo=UTC)  # six days: across the end of November
SPAN_US = 6 * 86_400_000_000
NOW = BASE + timedelta(days=7)
US_PER_HOUR = 3_600_000_000
# Micro-cents per token (input, output) and per character, from the public list prices.
LLM_PRICES = {
    ("openai", "gpt-4o-mini"): (15, 60),
    ("openai", "gpt-4o"): (250, 1000),
    ("anthropic", "claude-3-5-haiku"): (80, 400),
}
VOICE_PRICES = {"tts-1": 1500, "eleven_flash_v2_5": 9000}
PERIODS = (
    Period(date(2026, 11, 27), date(2026, 12, 4)),
    parse_month("2026-11"),
    parse_month("2026-12"),
    Period(date(2026, 11, 30), date(2026, 12, 1)),
    # Whole months read from the monthly rollups, the days at either end from the daily ones.
    Period(date(2026, 10, 31), date(2026, 12, 2)),
    Period(date(2026, 11, 1), date(2026, 12, 31)),
)
ROLLUPS = (
    "llm_daily",
    "llm_daily_model",
    "llm_daily_agent",
    "llm_daily_key",
    "llm_monthly_agent",
    "llm_monthly_key",
    "llm_hourly",
    "voice_daily",
    "voice_daily_model",
    "voice_monthly_agent",
    "compute_daily",
)
EVENTS = ("llm_event", "voice_event", "compute_interval")
PROPERTY = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def half_up(value: Fraction) -> int:
    return int(value + Fraction(1, 2)) if value >= 0 else -int(-value + Fraction(1, 2))


# The world: three accounts, each with two keys, two agents and a plain VM


@dataclass(frozen=True)
class World:
    accounts: list[uuid.UUID]
    keys: list[list[uuid.UUID]]
    agents: list[list[uuid.UUID]]
    vms: list[uuid.UUID]

    def key_account(self, key_id: uuid.UUID) -> uuid.UUID:
        return next(a for a, keys in zip(self.accounts, self.keys, strict=True) if key_id in keys)


@pytest.fixture(autouse=True)
def _clock_at_now() -> Iterator[None]:
    """The events span six days from BASE; the server's clock reads NOW, so that none of them
    is in the future (the Ingestor refuses events more than a day ahead)."""
    with time_machine.travel(NOW, tick=True):
        yield


@pytest.fixture
async def world(engine: AsyncEngine) -> World:
    w = World(
        accounts=[uuid.uuid4() for _ in range(3)],
        keys=[[uuid.uuid4(), uuid.uuid4()] for _ in range(3)],
        agents=[[uuid.uuid4(), uuid.uuid4()] for _ in range(3)],
        vms=[uuid.uuid4() for _ in range(3)],
    )
    async with write_transaction(engine) as conn:
        for i, account in enumerate(w.accounts):
            await conn.execute(insert(Account).values(id=account, name=f"account {i}"))
            for j, agent in enumerate(w.agents[i]):
                await conn.execute(
                    insert(Agent).values(id=agent, account_id=account, name=f"agent {i}.{j}")
                )
            await conn.execute(
                insert(PlainVm).values(id=w.vms[i], account_id=account, name=f"vm {i}")
            )
            for j, key in enumerate(w.keys[i]):
                await conn.execute(
                    insert(VirtualKey).values(
                        id=key,
                        account_id=account,
                        name=f"key {i}.{j}",
                        provider="openai" if j == 0 else None,
                    )
                )
    return w


async def reset(engine: AsyncEngine) -> None:
    async with write_transaction(engine) as conn:
        for table in EVENTS + ROLLUPS:
            await conn.execute(text(f"DELETE FROM {table}"))


# Events, drawn as indexes into the world


_MIDNIGHTS = [k * 86_400_000_000 + d for k in range(1, 6) for d in (-1, 0, 1)]
moments = st.one_of(st.integers(0, SPAN_US - 1), st.sampled_from(_MIDNIGHTS))
account_index = st.integers(0, 2)
agent_index = st.one_of(st.none(), st.integers(0, 1))
costs = st.one_of(st.none(), st.integers(0, 50_000_000))


@dataclass(frozen=True)
class DrawnLlm:
    account: int
    key: int
    agent: int | None
    model: tuple[str, str]
    at_us: int
    input_tokens: int
    output_tokens: int
    cost: int | None
    status: str


@dataclass(frozen=True)
class DrawnVoice:
    account: int
    agent: int | None
    voice_model: str
    at_us: int
    characters: int
    cost: int | None


@dataclass(frozen=True)
class DrawnInterval:
    account: int
    agent: int | None
    on_vm: bool
    state: str
    start_us: int
    length_us: int | None  # None: still open
    rate: int


llm_draws = st.builds(
    DrawnLlm,
    account=account_index,
    key=st.integers(0, 1),
    agent=agent_index,
    model=st.sampled_from(sorted(LLM_PRICES)),
    at_us=moments,
    input_tokens=st.integers(0, 200_000),
    output_tokens=st.integers(0, 20_000),
    cost=costs,
    status=st.sampled_from(["ok", "ok", "ok", "error"]),
)
voice_draws = st.builds(
    DrawnVoice,
    account=account_index,
    agent=agent_index,
    voice_model=st.sampled_from(sorted(VOICE_PRICES)),
    at_us=moments,
    characters=st.integers(0, 50_000),
    cost=costs,
)
interval_draws = st.builds(
    DrawnInterval,
    account=account_index,
    agent=agent_index,
    on_vm=st.booleans(),
    state=st.sampled_from(["running", "paused"]),
    start_us=moments,
    # At most two days: an interval starting on the span's last day then ends before NOW plus
    # one day, the latest end the Ingestor takes (three days could end past it, and be refused).
    length_us=st.one_of(st.none(), st.integers(0, 2 * 86_400_000_000)),
    rate=st.integers(0, 50_000_000),
)
draws = st.tuples(
    st.lists(llm_draws, max_size=25),
    st.lists(voice_draws, max_size=10),
    st.lists(interval_draws, max_size=8),
)


@dataclass(frozen=True)
class Expected:
    """One event as the test understands it: its account, axis keys and exact cost pieces."""

    record: Record
    account: uuid.UUID
    agent: uuid.UUID | None
    # (day, cost, units): LLM and voice have one piece; an interval one per day it touches.
    pieces: tuple[tuple[date, int, int], ...]


def _moment(offset_us: int) -> datetime:
    return BASE + timedelta(microseconds=offset_us)


def interval_pieces(start: datetime, end: datetime, rate: int) -> tuple[tuple[date, int, int], ...]:
    """Cost of [start, end) per UTC day, rounded cumulatively from start so pieces sum exactly."""
    pieces = []
    cursor, done_us = start, 0
    while cursor < end:
        midnight = datetime.combine(cursor.date() + timedelta(days=1), time.min, tzinfo=UTC)
        piece_end = min(midnight, end)
        length = (piece_end - cursor) // timedelta(microseconds=1)
        cost = half_up(Fraction(rate * (done_us + length), US_PER_HOUR)) - half_up(
            Fraction(rate * done_us, US_PER_HOUR)
        )
        pieces.append((cursor.date(), cost, length))
        done_us += length
        cursor = piece_end
    return tuple(pieces)


def to_records(
    w: World, drawn: tuple[list[DrawnLlm], list[DrawnVoice], list[DrawnInterval]]
) -> list[Expected]:
    out: list[Expected] = []
    llm_draws_, voice_draws_, interval_draws_ = drawn
    for n, d in enumerate(llm_draws_):
        agent = None if d.agent is None else w.agents[d.account][d.agent]
        provider, model = d.model
        ts = _moment(d.at_us)
        price_in, price_out = LLM_PRICES[d.model]
        cost = d.cost
        if cost is None:
            cost = (
                0
                if d.status == "error"
                else d.input_tokens * price_in + d.output_tokens * price_out
            )
        record = LlmRecord(
            id=f"llm-{n:03d}",
            ts=ts,
            key_id=w.keys[d.account][d.key],
            provider=provider,
            model=model,
            input_tokens=d.input_tokens,
            output_tokens=d.output_tokens,
            cost_micros=d.cost,
            agent_id=agent,
            status=d.status,
        )
        out.append(Expected(record, w.accounts[d.account], agent, ((ts.date(), cost, 1),)))
    for n, v in enumerate(voice_draws_):
        agent = None if v.agent is None else w.agents[v.account][v.agent]
        ts = _moment(v.at_us)
        cost = v.cost if v.cost is not None else v.characters * VOICE_PRICES[v.voice_model]
        record = VoiceRecord(
            id=f"voice-{n:03d}",
            ts=ts,
            account_id=w.accounts[v.account],
            voice_model=v.voice_model,
            characters=v.characters,
            cost_micros=v.cost,
            agent_id=agent,
        )
        out.append(
            Expected(record, w.accounts[v.account], agent, ((ts.date(), cost, v.characters),))
        )
    for n, c in enumerate(interval_draws_):
        agent = None if c.on_vm or c.agent is None else w.agents[c.account][c.agent]
        start = _moment(c.start_us)
        end = None if c.length_us is None else start + timedelta(microseconds=c.length_us)
        record = ComputeRecord(
            id=f"compute-{n:03d}",
            account_id=w.accounts[c.account],
            start=start,
            end=end,
            cents_per_hour_micros=c.rate,
            state=c.state,
            agent_id=agent,
            plain_vm_id=w.vms[c.account] if c.on_vm else None,
        )
        pieces = interval_pieces(start, end or max(NOW, start), c.rate)
        out.append(Expected(record, w.accounts[c.account], agent, pieces))
    return out


# What the rollup tables must hold, from the events alone


def expected_rollups(events: list[Expected]) -> dict[str, list[tuple[Any, ...]]]:
    tables: dict[str, defaultdict[tuple[Any, ...], list[int]]] = {
        name: defaultdict(lambda: [0, 0, 0, 0]) for name in ROLLUPS
    }
    for e in events:
        r = e.record
        agent = (e.agent or NONE_ID).hex
        if isinstance(r, LlmRecord):
            ((day, cost, _),) = e.pieces
            month = day.replace(day=1).isoformat()
            row = tables["llm_daily"][
                (e.account.hex, day.isoformat(), r.key_id.hex, agent, r.provider, r.model)
            ]
            row[0] += cost
            row[1] += 1
            row[2] += r.input_tokens
            row[3] += r.output_tokens
            coarse = (
                ("llm_daily_model", (e.account.hex, day.isoformat(), r.provider, r.model)),
                ("llm_daily_agent", (e.account.hex, day.isoformat(), agent)),
                ("llm_daily_key", (e.account.hex, day.isoformat(), r.key_id.hex, r.provider)),
                ("llm_monthly_agent", (e.account.hex, month, agent)),
                ("llm_monthly_key", (e.account.hex, month, r.key_id.hex, r.provider)),
            )
            for table, key in coarse:
                row = tables[table][key]
                row[0] += cost
                row[1] += 1
                row[2] += r.input_tokens
                row[3] += r.output_tokens
            hour = r.ts.replace(minute=0, second=0, microsecond=0).isoformat()
            hourly = tables["llm_hourly"][(e.account.hex, r.key_id.hex, hour)]
            hourly[0] += cost
            hourly[1] += 1
        elif isinstance(r, VoiceRecord):
            ((day, cost, characters),) = e.pieces
            month = day.replace(day=1).isoformat()
            for table, key in (
                ("voice_daily", (e.account.hex, day.isoformat(), agent, r.voice_model)),
                ("voice_daily_model", (e.account.hex, day.isoformat(), r.voice_model)),
                ("voice_monthly_agent", (e.account.hex, month, agent)),
            ):
                row = tables[table][key]
                row[0] += cost
                row[1] += characters
                row[2] += 1
        elif r.end is not None:
            vm = (r.plain_vm_id or NONE_ID).hex
            for day, cost, length in e.pieces:
                row = tables["compute_daily"][(e.account.hex, day.isoformat(), agent, vm, r.state)]
                row[0] += cost
                row[1] += length
    widths = {
        "llm_daily": 4,
        "llm_daily_model": 4,
        "llm_daily_agent": 2,
        "llm_daily_key": 2,
        "llm_monthly_agent": 2,
        "llm_monthly_key": 2,
        "llm_hourly": 2,
        "voice_daily": 3,
        "voice_daily_model": 3,
        "voice_monthly_agent": 3,
        "compute_daily": 2,
    }
    return {
        # The drawn events carry no token categories: those sums are all zero.
        name: sorted(
            (*key, *sums[: widths[name]], *((0,) * 7 if widths[name] == 4 else ()))
            for key, sums in rows.items()
        )
        for name, rows in tables.items()
    }


async def dump(engine: AsyncEngine, tables: tuple[str, ...]) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    async with read_transaction(engine) as conn:
        for table in tables:
            rows = await conn.execute(text(f"SELECT * FROM {table}"))
            out[table] = sorted(tuple(_plain(v) for v in row) for row in rows)
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


# Property 1: any split into batches, any order, resends included: the same rollups


@PROPERTY
@given(drawn=draws, seed=st.integers(0, 2**32 - 1), batches=st.integers(1, 6))
async def test_any_split_and_order_gives_the_same_rollups(
    engine: AsyncEngine, world: World, drawn: Any, seed: int, batches: int
) -> None:
    await reset(engine)
    events = to_records(world, drawn)
    records = [e.record for e in events]
    expected = expected_rollups(events)

    await Ingestor(engine).record(records)
    at_once = await dump(engine, ROLLUPS)
    assert at_once == expected

    await reset(engine)
    rng = random.Random(seed)
    shuffled = records + rng.sample(records, k=len(records) // 3)  # some sent twice
    rng.shuffle(shuffled)
    cuts = sorted(
        rng.sample(range(1, len(shuffled)), k=min(batches - 1, max(len(shuffled) - 1, 0)))
    )
    ingestor = Ingestor(engine)
    for lo, hi in zip([0, *cuts], [*cuts, len(shuffled)], strict=True):
        await ingestor.record(shuffled[lo:hi])
    assert await dump(engine, ROLLUPS) == at_once
    events_count = {t: len(rows) for t, rows in (await dump(engine, EVENTS)).items()}
    assert events_count == {
        "llm_event": len(drawn[0]),
        "voice_event": len(drawn[1]),
        "compute_interval": len(drawn[2]),
    }


# Property 2: every breakdown of usage agrees with the others and with the events


@dataclass(frozen=True)
class DrawnFilter:
    account: int | None  # None: platform-wide
    agent: tuple[int, int] | None
    keys: tuple[tuple[int, int], ...] | None
    provider: str | None
    model: str | None
    voice_model: str | None
    period: int


any_filter = st.builds(
    DrawnFilter,
    account=st.one_of(st.none(), account_index),
    agent=st.one_of(st.none(), st.tuples(account_index, st.integers(0, 1))),
    keys=st.one_of(
        st.none(),
        st.lists(st.tuples(account_index, st.integers(0, 1)), min_size=1, max_size=3).map(tuple),
    ),
    provider=st.sampled_from([None, None, "openai", "anthropic"]),
    model=st.sampled_from([None, None, "gpt-4o-mini", "claude-3-5-haiku"]),
    voice_model=st.sampled_from([None, None, "tts-1"]),
    period=st.integers(0, len(PERIODS) - 1),
)
# Without an agent, key, provider or model filter usage reads the coarse rollups instead of
# llm_daily: drawn as often as all the narrowed combinations together.
filters = st.one_of(
    any_filter,
    any_filter.map(lambda f: replace(f, agent=None, keys=None, provider=None, model=None)),
)


def _sum_by(items: list[tuple[Any, int]]) -> dict[Any, int]:
    sums: dict[Any, int] = defaultdict(int)
    for key, value in items:
        sums[key] += value
    return {k: v for k, v in sums.items()}


@PROPERTY
@given(drawn=draws, chosen=filters)
async def test_every_breakdown_equals_an_independent_sum_of_the_events(
    engine: AsyncEngine, world: World, drawn: Any, chosen: DrawnFilter
) -> None:
    await reset(engine)
    events = to_records(world, drawn)
    await Ingestor(engine).record([e.record for e in events])

    period = PERIODS[chosen.period]
    accounts = None if chosen.account is None else (world.accounts[chosen.account],)
    agent = None if chosen.agent is None else world.agents[chosen.agent[0]][chosen.agent[1]]
    key_ids = None if chosen.keys is None else tuple(world.keys[a][k] for a, k in chosen.keys)
    query = UsageQuery(
        period=period,
        account_ids=accounts,
        agent_id=agent,
        key_ids=key_ids,
        provider=chosen.provider,
        model=chosen.model,
        voice_model=chosen.voice_model,
    )
    async with read_transaction(engine) as conn:
        got = await usage(conn, query, now=NOW)

    def in_scope(e: Expected) -> bool:
        return (accounts is None or e.account in accounts) and (agent is None or e.agent == agent)

    llm_pieces: list[tuple[LlmRecord, uuid.UUID | None, date, int]] = []
    voice_pieces: list[tuple[VoiceRecord, uuid.UUID | None, date, int, int]] = []
    compute_pieces: list[tuple[ComputeRecord, uuid.UUID | None, date, int, int]] = []
    for e in events:
        r = e.record
        if not in_scope(e):
            continue
        for day, cost, units in e.pieces:
            if not period.start <= day <= period.end:
                continue
            if isinstance(r, LlmRecord):
                if (
                    (key_ids is None or r.key_id in key_ids)
                    and (chosen.provider is None or r.provider == chosen.provider)
                    and (chosen.model is None or r.model == chosen.model)
                ):
                    llm_pieces.append((r, e.agent, day, cost))
            elif isinstance(r, VoiceRecord):
                if chosen.voice_model is None or r.voice_model == chosen.voice_model:
                    voice_pieces.append((r, e.agent, day, cost, units))
            elif agent is None or r.plain_vm_id is None:
                compute_pieces.append((r, e.agent, day, cost, units))

    # LLM: daily, per model, per agent, per key and the total are one number
    llm_total = sum(p[3] for p in llm_pieces)
    assert [d.date for d in got.llm.daily] == period.days
    assert {d.date: d.total_micros for d in got.llm.daily if d.total_micros} == {
        k: v for k, v in _sum_by([(p[2], p[3]) for p in llm_pieces]).items() if v
    }
    assert sum(d.request_count for d in got.llm.daily) == len(llm_pieces)
    assert {(m.provider, m.model): (m.total_micros, m.request_count) for m in got.llm.models} == {
        key: (cost, sum(1 for p in llm_pieces if (p[0].provider, p[0].model) == key))
        for key, cost in _sum_by([((p[0].provider, p[0].model), p[3]) for p in llm_pieces]).items()
    }
    assert {a.agent_id: a.total_micros for a in got.llm.agents} == _sum_by(
        [(p[1], p[3]) for p in llm_pieces]
    )
    spent_keys = {k.key_id: k.total_micros for k in got.llm.keys if k.request_count}
    assert spent_keys == _sum_by([(p[0].key_id, p[3]) for p in llm_pieces])
    assert got.llm.total_micros == llm_total
    assert sum(m.total_micros for m in got.llm.models) == llm_total
    assert sum(a.total_micros for a in got.llm.agents) == llm_total
    assert sum(k.total_micros for k in got.llm.keys) == llm_total
    for day in got.llm.daily:
        assert sum(m.request_count for m in day.models) == day.request_count
    listed = {k.key_id for k in got.llm.keys}
    if chosen.account is not None and agent is None and chosen.model is None:
        # Every key in scope has its card, spent or quiet; key 0 is an openai key, key 1 is not
        # bound to a provider.
        own = world.keys[chosen.account]
        quiet = {
            key
            for key, provider in ((own[0], "openai"), (own[1], None))
            if (key_ids is None or key in key_ids)
            and (chosen.provider is None or provider == chosen.provider)
        }
        assert listed == quiet | set(spent_keys)
    elif chosen.account is not None:
        assert listed == set(spent_keys)
    assert accounts is None or all(world.key_account(k) in accounts for k in listed)

    # Voice
    voice_total = sum(p[3] for p in voice_pieces)
    assert {d.date: d.total_micros for d in got.voice.daily if d.total_micros} == {
        k: v for k, v in _sum_by([(p[2], p[3]) for p in voice_pieces]).items() if v
    }
    assert {m.voice_model: m.characters for m in got.voice.models} == _sum_by(
        [(p[0].voice_model, p[4]) for p in voice_pieces]
    )
    assert {a.agent_id: a.total_micros for a in got.voice.agents} == _sum_by(
        [(p[1], p[3]) for p in voice_pieces]
    )
    assert got.voice.total_micros == voice_total
    assert sum(m.total_micros for m in got.voice.models) == voice_total
    assert sum(a.total_micros for a in got.voice.agents) == voice_total
    assert got.voice.total_characters == sum(p[4] for p in voice_pieces)

    # Compute: agents and plain VMs, per day and in total, open intervals accrued until now
    compute_total = sum(p[3] for p in compute_pieces)
    assert {d.date: d.total_micros for d in got.compute.daily if d.total_micros} == {
        k: v for k, v in _sum_by([(p[2], p[3]) for p in compute_pieces]).items() if v
    }
    on_vms = [p for p in compute_pieces if p[0].plain_vm_id is not None]
    on_agents = [p for p in compute_pieces if p[0].plain_vm_id is None]
    assert {v.plain_vm_id: (v.cost_micros, v.duration_us) for v in got.compute.plain_vms} == {
        vm: (cost, sum(p[4] for p in on_vms if p[0].plain_vm_id == vm))
        for vm, cost in _sum_by([(p[0].plain_vm_id, p[3]) for p in on_vms]).items()
    }
    assert {
        a.agent_id: (a.running_micros, a.paused_micros, a.running_us + a.paused_us)
        for a in got.compute.agents
    } == {
        who: (
            sum(p[3] for p in on_agents if p[1] == who and p[0].state == "running"),
            sum(p[3] for p in on_agents if p[1] == who and p[0].state == "paused"),
            sum(p[4] for p in on_agents if p[1] == who),
        )
        for who in {p[1] for p in on_agents}
    }
    assert got.compute.total_micros == compute_total
    assert (
        sum(a.total_micros for a in got.compute.agents)
        + sum(v.cost_micros for v in got.compute.plain_vms)
        == compute_total
    )
    for day in got.compute.daily:
        assert day.total_micros == day.agent_micros + day.plain_vm_micros


# Property 3: an interval split at midnights keeps its duration and cost, to the micro


@settings(max_examples=500, deadline=None)
@given(
    start_us=st.integers(0, 40 * 86_400_000_000),
    length_us=st.one_of(st.integers(0, 10 * 86_400_000_000), st.integers(0, 2_000_000)),
    rate=st.integers(0, 10**12),
    zone_hours=st.integers(-12, 14),
)
def test_splitting_at_midnights_keeps_duration_and_cost(
    start_us: int, length_us: int, rate: int, zone_hours: int
) -> None:
    start = datetime(2026, 10, 25, tzinfo=UTC) + timedelta(microseconds=start_us)
    end = start + timedelta(microseconds=length_us)
    # The zone of the given moments must not matter: days are UTC days.
    zone = timezone(timedelta(hours=zone_hours))
    pieces = split_by_day(start.astimezone(zone), end.astimezone(zone))
    assert sum(length for _, _, length in pieces) == length_us
    assert [offset for _, offset, _ in pieces] == [
        sum(length for _, _, length in pieces[:i]) for i in range(len(pieces))
    ]
    days = [day for day, _, _ in pieces]
    assert days == [start.date() + timedelta(days=i) for i in range(len(days))]
    assert all(0 < length <= 86_400_000_000 for _, _, length in pieces)
    if pieces:
        assert days[-1] == (end - timedelta(microseconds=1)).date()

    costs = compute_cost_pieces(start, end, rate)
    assert [(d, length) for d, _, length in costs] == [(d, length) for d, _, length in pieces]
    assert sum(cost for _, cost, _ in costs) == half_up(Fraction(rate * length_us, US_PER_HOUR))
    assert costs == [(d, c, length) for d, c, length in interval_pieces(start, end, rate)]
