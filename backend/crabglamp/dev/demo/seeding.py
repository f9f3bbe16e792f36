"""Seeding: the demo's entities, then its events through the Ingestor in day order, then the cap."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Final, TextIO

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from crabglamp.db import make_engine, read_transaction, write_transaction
from crabglamp.db.dialect import insert_for
from crabglamp.db.tables import table_of
from crabglamp.dev.demo import planted
from crabglamp.dev.demo.caps import expected_month_micros, nice_cap_micros, set_cap
from crabglamp.dev.demo.generator import Generator
from crabglamp.dev.demo.planted import PLANTED, RUNAWAY_DAYS_AGO, SPIKE_HOURS
from crabglamp.dev.demo.progress import Progress
from crabglamp.dev.demo.specs import (
    ACCOUNTS,
    AGENT_BY_NAME,
    AGENTS,
    DEMO_ACCOUNT_IDS,
    DEMO_USERS,
    KEYS,
    PLAIN_VMS,
    DemoUser,
)
from crabglamp.dev.demo.window import Window, previous_month_start
from crabglamp.ingest.ingestor import Ingestor
from crabglamp.ingest.records import IngestError, Record
from crabglamp.models import (
    Account,
    Agent,
    ComputeInterval,
    LlmDaily,
    LlmEvent,
    Member,
    PlainVm,
    VirtualKey,
    VoiceDaily,
)
from crabglamp.money import MICROS_PER_CENT
from crabglamp.periods import as_utc, day_start, utcnow
from crabglamp.prices import load_price_book
from crabglamp.settings import Settings

BATCH_SIZE: Final = 10_000


class DemoError(RuntimeError):
    """The demo cannot be seeded as asked (another seed's demo in the way, a bad scale)."""


@dataclass(slots=True)
class DemoSummary:
    now: datetime
    window_start: date
    accounts: int
    keys: int
    agents: int
    plain_vms: int
    llm_events: int
    voice_events: int
    compute_intervals: int
    inserted: int
    duplicates: int
    spike_start: datetime
    cap_key_cap_micros: int
    runaway_day: date
    seconds: float
    users: tuple[DemoUser, ...] = field(default=DEMO_USERS)


def _insert_ignore(conn: AsyncConnection, model: Any) -> Any:
    table = table_of(model)
    return insert_for(conn, table).on_conflict_do_nothing()


async def _ensure_entities(conn: AsyncConnection, window: Window) -> None:
    accounts = table_of(Account)
    org_ids = [a.clerk_org_id for a in ACCOUNTS if a.clerk_org_id]
    rows = await conn.execute(
        select(accounts.c.id, accounts.c.clerk_org_id).where(accounts.c.clerk_org_id.in_(org_ids))
    )
    for account_id, org_id in rows:
        if account_id not in DEMO_ACCOUNT_IDS:
            raise DemoError(
                f"an account that is not the demo's already has clerk org id {org_id!r}; "
                "seed the demo into a fresh database"
            )
    await conn.execute(
        _insert_ignore(conn, Account),
        [
            {
                "id": a.id,
                "name": a.name,
                "clerk_org_id": a.clerk_org_id,
                "owner_user_id": a.owner_user_id,
            }
            for a in ACCOUNTS
        ],
    )
    await conn.execute(
        _insert_ignore(conn, Member),
        [
            {"account_id": a.id, "user_id": user, "role": role}
            for a in ACCOUNTS
            for user, role in a.members
        ],
    )
    await conn.execute(
        _insert_ignore(conn, Agent),
        [{"id": a.id, "account_id": a.account_id, "name": a.name} for a in AGENTS],
    )
    await conn.execute(
        _insert_ignore(conn, PlainVm),
        [
            {
                "id": v.id,
                "account_id": v.account_id,
                "name": v.name,
                "cents_per_hour_micros": round(v.cents_per_hour * MICROS_PER_CENT),
            }
            for v in PLAIN_VMS
        ],
    )
    created = day_start(window.start) - timedelta(days=40)
    await conn.execute(
        _insert_ignore(conn, VirtualKey),
        [
            {
                "id": k.id,
                "account_id": k.account_id,
                "name": k.name,
                "provider": k.provider,
                "agent_id": AGENT_BY_NAME[k.agent].id if k.agent else None,
                "spend_cap_micros": (
                    k.cap_cents * MICROS_PER_CENT
                    if k.cap_cents
                    else nice_cap_micros(expected_month_micros(k, window.scale) * k.cap_factor)
                ),
                "status": "active",
                "created_at": created + timedelta(hours=k.no * 7),
            }
            for k in KEYS
        ],
    )


@dataclass(frozen=True, slots=True)
class _Previous:
    """What earlier runs left: their prefix, the demo's first day and the last day recorded."""

    prefix: str | None
    first_day: date | None
    last_day: date | None


async def _previous_run(conn: AsyncConnection) -> _Previous:
    events = table_of(LlmEvent)
    daily = table_of(LlmDaily)
    some_id = (
        await conn.execute(
            select(events.c.id).where(events.c.key_id == PLANTED["spike_key_id"]).limit(1)
        )
    ).scalar()
    first, last = (
        await conn.execute(
            select(func.min(daily.c.day), func.max(daily.c.day)).where(
                daily.c.account_id.in_(DEMO_ACCOUNT_IDS)
            )
        )
    ).one()
    return _Previous(str(some_id).split("-k", 1)[0] if some_id else None, first, last)


async def _count(conn: AsyncConnection, model: Any, column: str | None) -> int:
    table = table_of(model)
    measure = func.count() if column is None else func.sum(table.c[column])
    value = (
        await conn.execute(
            select(func.coalesce(measure, 0)).where(table.c.account_id.in_(DEMO_ACCOUNT_IDS))
        )
    ).scalar_one()
    return int(value)


async def seed_engine(
    engine: AsyncEngine,
    seed: int = 7,
    *,
    scale: float = 1.0,
    now: datetime | None = None,
    progress: TextIO | None = None,
) -> DemoSummary:
    """Seed (or top up to now) the demo in a migrated database; returns what is there."""
    if not 0 < scale <= 10:
        raise DemoError(f"scale must be in (0, 10], got {scale}")
    began = time.monotonic()
    now = as_utc(now or utcnow())
    prefix = f"demo{seed}" if scale == 1 else f"demo{seed}s{scale:g}"
    async with read_transaction(engine) as conn:
        previous = await _previous_run(conn)
        earlier_runaway = await planted.earlier_runaway(conn, now.date())
        prices = await load_price_book(conn)
    if previous.prefix is not None and previous.prefix != prefix:
        raise DemoError(
            f"this database holds the demo of {previous.prefix!r}, not {prefix!r}; "
            "re-run with the same --seed (and scale) or use a fresh database"
        )
    start = previous.first_day.replace(day=1) if previous.first_day else None
    window = Window(
        prefix=prefix,
        scale=scale,
        start=start or previous_month_start(now.date()),
        now=now,
        spike_start=(now - timedelta(hours=SPIKE_HOURS)).replace(second=0, microsecond=0),
        runaway_day=earlier_runaway or now.date() - timedelta(days=RUNAWAY_DAYS_AGO),
    )
    async with write_transaction(engine) as conn:
        await _ensure_entities(conn, window)

    # Batches go in day order, so every day before the last one recorded is complete: a re-run
    # (or a run after an interruption) starts there and the Ingestor skips what it already has.
    days = window.days(previous.last_day)
    ingestor = Ingestor(engine, prices)
    generator = Generator(window, prices)
    bar = Progress(progress, generator.estimate(days))
    counts = [0, 0]  # inserted, already there

    async def flush(chunk: Sequence[Record]) -> None:
        try:
            # The demo's own clock: it may seed up to a `now` ahead of the wall clock (tests).
            result = await ingestor.record(chunk, now=window.now)
        except IngestError as exc:
            raise DemoError(
                "this database holds demo events that this version generates differently "
                f"({exc}); seed the demo into a fresh database"
            ) from exc
        counts[0] += result.inserted
        counts[1] += result.duplicates
        bar.advance(len(chunk))

    batch: list[Record] = generator.compute()
    for day in days:
        for spec in KEYS:
            batch.extend(generator.llm_day(spec, day))
        for agent in AGENTS:
            batch.extend(generator.voice_day(agent, day))
        batch.extend(planted.spike(window, day))
        batch.extend(planted.runaway(window, day))
        while len(batch) >= BATCH_SIZE:
            await flush(batch[:BATCH_SIZE])
            batch = batch[BATCH_SIZE:]
    if batch:
        await flush(batch)

    async with write_transaction(engine) as conn:
        cap = await set_cap(conn, now)
    async with read_transaction(engine) as conn:
        llm = await _count(conn, LlmDaily, "request_count")
        voice = await _count(conn, VoiceDaily, "request_count")
        compute = await _count(conn, ComputeInterval, None)
    bar.finish()
    return DemoSummary(
        now=now,
        window_start=window.start,
        accounts=len(ACCOUNTS),
        keys=len(KEYS),
        agents=len(AGENTS),
        plain_vms=len(PLAIN_VMS),
        llm_events=llm,
        voice_events=voice,
        compute_intervals=compute,
        inserted=counts[0],
        duplicates=counts[1],
        spike_start=window.spike_start,
        cap_key_cap_micros=cap,
        runaway_day=window.runaway_day,
        seconds=time.monotonic() - began,
    )


def describe(summary: DemoSummary, database_url: str) -> str:
    """The summary `crabglamp demo` prints: what is there and whom to sign in as."""
    accounts = ", ".join(
        f"{a.name} ({a.clerk_org_id or 'personal: ' + str(a.owner_user_id)})" for a in ACCOUNTS
    )
    lines = [
        f"demo data ready in {summary.seconds:.1f} s  ({database_url})",
        f"  accounts   {summary.accounts}: {accounts}",
        f"  keys       {summary.keys}, agents {summary.agents}, plain VMs {summary.plain_vms}",
        f"  events     {summary.llm_events:,} LLM, {summary.voice_events:,} voice, "
        f"{summary.compute_intervals:,} compute intervals  "
        f"({summary.inserted:,} new this run, {summary.duplicates:,} already there)",
        f"  period     {summary.window_start} to {summary.now:%Y-%m-%d %H:%M} UTC",
        "  anomalies  legacy-zapier: leaked token, spiking since "
        f"{summary.spike_start:%Y-%m-%d %H:%M} UTC",
        f"             support-prod: heading past its cap of ${summary.cap_key_cap_micros / MICROS_PER_CENT / 100:,.2f} this month",
        f"             nightly-batch: runaway script on {summary.runaway_day}",
        "  sign in as " + ", ".join(f"{u.user_id} ({u.display_name})" for u in summary.users),
    ]
    return "\n".join(lines)


async def seed_demo(
    settings: Settings,
    seed: int = 7,
    *,
    scale: float = 1.0,
    now: datetime | None = None,
    echo: bool = True,
) -> DemoSummary:
    """`crabglamp demo`: seed the database of `settings` (already migrated); print a summary."""
    engine = make_engine(settings.database_url)
    try:
        summary = await seed_engine(
            engine, seed, scale=scale, now=now, progress=sys.stderr if echo else None
        )
    finally:
        await engine.dispose()
    if echo:
        print(describe(summary, settings.database_url), flush=True)
    return summary
