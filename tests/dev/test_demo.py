from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from clocks import FIXED_CLOCKS
from crabglamp.db import make_engine, read_transaction
from crabglamp.db.tables import table_of
from crabglamp.dev import demo
from crabglamp.dev.demo.caps import cap_for
from crabglamp.dev.demo.generator import Generator
from crabglamp.dev.demo.planted import RUNAWAY_MODEL, SPIKE_MODEL
from crabglamp.dev.demo.specs import KEY_BY_NAME, KEYS
from crabglamp.dev.demo.window import Window
from crabglamp.jobs.anomalies.anomaly import AnomalyKind
from crabglamp.jobs.anomalies.period import anomalies_in_period
from crabglamp.models import (
    Account,
    Agent,
    ComputeInterval,
    LlmEvent,
    Member,
    PlainVm,
    VirtualKey,
    VoiceEvent,
)
from crabglamp.periods import Period, as_utc, month_period
from crabglamp.prices import DEFAULT_CATALOG, default_price_book
from crabglamp.settings import Settings
from crabglamp.usage.query import UsageQuery
from crabglamp.usage.results import Usage
from crabglamp.usage.service import usage

# A Wednesday afternoon in the middle of a month (its runaway day is a Sunday, when the weekly
# job of the runaway key also runs), and the small hours of a month's second day.
MID = datetime(2026, 3, 18, 15, 42, 10, tzinfo=UTC)
EARLY = datetime(2026, 6, 2, 1, 30, tzinfo=UTC)
SCALE = 0.02  # the background traffic at 2%; the planted keys keep their full volume

_t = lambda model: table_of(model)  # noqa: E731


async def _seed(db_url: str, now: datetime, seed: int = 7) -> demo.DemoSummary:
    return await demo.seed_demo(
        Settings(database_url=db_url), seed=seed, scale=SCALE, now=now, echo=False
    )


async def _usage(
    db_url: str, period: Period, now: datetime, key_id: uuid.UUID | None = None
) -> Usage:
    engine = make_engine(db_url)
    try:
        async with read_transaction(engine) as conn:
            query = UsageQuery(period, None, key_ids=(key_id,) if key_id else None)
            return await usage(conn, query, now)
    finally:
        await engine.dispose()


async def _scalar(db_url: str, statement: object) -> object:
    engine = make_engine(db_url)
    try:
        async with read_transaction(engine) as conn:
            return (await conn.execute(statement)).scalar_one()
    finally:
        await engine.dispose()


async def _ids(db_url: str, statement: object) -> set[str]:
    engine = make_engine(db_url)
    try:
        async with read_transaction(engine) as conn:
            return set((await conn.execute(statement)).scalars())
    finally:
        await engine.dispose()


def _previous_month(now: datetime) -> Period:
    last = month_period(now.year, now.month).start - timedelta(days=1)
    return month_period(last.year, last.month)


def _elapsed(now: datetime) -> float:
    month = month_period(now.year, now.month)
    return (now - month.start_dt) / (month.end_dt - month.start_dt)


async def test_demo_has_three_accounts_their_people_keys_agents_and_vms(db_url: str) -> None:
    await _seed(db_url, MID)
    engine = make_engine(db_url)
    try:
        async with read_transaction(engine) as conn:
            accounts = {row.name: row for row in await conn.execute(select(_t(Account)))}
            members = {
                (row.account_id, row.user_id, row.role)
                for row in await conn.execute(select(_t(Member)))
            }
            keys = (await conn.execute(select(_t(VirtualKey)))).all()
            agents = (await conn.execute(select(_t(Agent)))).all()
            vms = (await conn.execute(select(_t(PlainVm)))).all()
            intervals = (await conn.execute(select(_t(ComputeInterval)))).all()
            voice_models = set(
                (await conn.execute(select(_t(VoiceEvent).c.voice_model).distinct())).scalars()
            )
            llm_models = set(
                (
                    await conn.execute(
                        select(_t(LlmEvent).c.provider, _t(LlmEvent).c.model).distinct()
                    )
                ).all()
            )
    finally:
        await engine.dispose()

    assert set(accounts) == {"Acme Robotics", "Bob's workspace", "Globex Corporation"}
    acme, bob, globex = (
        accounts["Acme Robotics"],
        accounts["Bob's workspace"],
        accounts["Globex Corporation"],
    )
    assert (acme.id, acme.clerk_org_id, acme.owner_user_id) == (
        demo.ACME_ACCOUNT_ID,
        "org_demo_acme",
        None,
    )
    assert (bob.id, bob.clerk_org_id, bob.owner_user_id) == (
        demo.BOB_ACCOUNT_ID,
        None,
        "user_demo_bob",
    )
    assert (globex.id, globex.clerk_org_id) == (demo.GLOBEX_ACCOUNT_ID, "org_demo_globex")
    assert members == {
        (demo.ACME_ACCOUNT_ID, "user_demo_alice", "admin"),
        (demo.ACME_ACCOUNT_ID, "user_demo_carol", "member"),
        (demo.GLOBEX_ACCOUNT_ID, "user_demo_dave", "admin"),
    }
    # Every demo user can land somewhere; only the platform admin is an admin by claim.
    by_id = {u.user_id: u for u in demo.DEMO_USERS}
    assert set(by_id) == {
        "user_demo_alice",
        "user_demo_carol",
        "user_demo_bob",
        "user_demo_dave",
        "user_demo_admin",
    }
    assert [u.user_id for u in demo.DEMO_USERS if u.is_admin] == ["user_demo_admin"]
    assert by_id["user_demo_alice"].org_id == "org_demo_acme"
    assert by_id["user_demo_bob"].org_id is None

    assert 22 <= len(keys) <= 28
    assert {k.provider for k in keys} >= {"openai", "anthropic", "google", "mistral"}
    assert sum(1 for k in keys if k.agent_id is not None) >= 10
    assert all(k.spend_cap_micros and k.spend_cap_micros > 0 for k in keys)
    assert {k.account_id for k in keys} == set(demo.DEMO_ACCOUNT_IDS)
    assert {"support-bot", "code-reviewer", "sales-assistant", "data-pipeline"} <= {
        a.name for a in agents
    }
    assert {"build-box", "staging-db"} <= {v.name for v in vms}

    # Compute: agents running and paused, plain VMs, and some intervals still open now.
    assert {i.state for i in intervals if i.agent_id} == {"running", "paused"}
    assert any(i.plain_vm_id for i in intervals)
    assert any(i.end is None for i in intervals)
    assert any(i.end is None and i.plain_vm_id for i in intervals)
    # Voice: OpenAI's two TTS models and an ElevenLabs one; every model is in the catalog.
    assert {"tts-1", "tts-1-hd"} <= voice_models
    catalog = {(p.provider, p.model) for p in DEFAULT_CATALOG}
    assert any(("elevenlabs", m) in catalog for m in voice_models)
    assert voice_models <= {m for _, m in catalog}
    # Every LLM model is priced by the list, under the provider the events name.
    book = default_price_book()
    assert all(book.provider_of(m) == p for p, m in llm_models)
    assert {p for p, _ in llm_models} == {"openai", "anthropic", "google", "mistral"}


async def test_events_cover_both_months_with_a_weekly_rhythm_and_none_in_the_future(
    db_url: str,
) -> None:
    summary = await _seed(db_url, MID)
    previous, current = _previous_month(MID), month_period(MID.year, MID.month)
    assert summary.window_start == previous.start

    before = await _usage(db_url, previous, MID)
    this_month = await _usage(db_url, current, MID)
    # Every day of last month and of this month until today has LLM, voice and compute spend.
    for axis in (before.llm, before.voice, before.compute):
        assert all(d.total_micros > 0 for d in axis.daily)
    today = MID.date()
    for axis in (this_month.llm, this_month.voice, this_month.compute):
        assert all(d.total_micros > 0 for d in axis.daily if d.date <= today)
        assert all(d.total_micros == 0 for d in axis.daily if d.date > today)

    for table, column in (
        (LlmEvent, "ts"),
        (VoiceEvent, "ts"),
        (ComputeInterval, "start"),
        (ComputeInterval, "end"),
    ):
        latest = await _scalar(db_url, select(func.max(_t(table).c[column])))
        assert isinstance(latest, datetime)
        assert as_utc(latest) <= MID
        if table is LlmEvent:  # traffic runs right up to now
            assert as_utc(latest) > MID - timedelta(minutes=30)

    # Weekdays are busier than weekends, office hours than nights (Acme's code review, US East).
    code_review = KEY_BY_NAME["code-review"].id
    reviews = await _usage(db_url, previous, MID, code_review)
    weekdays = [d.total_micros for d in reviews.llm.daily if d.date.weekday() < 5]
    weekends = [d.total_micros for d in reviews.llm.daily if d.date.weekday() >= 5]
    assert statistics.mean(weekdays) > 2 * statistics.mean(weekends)
    events = _t(LlmEvent)
    engine = make_engine(db_url)
    try:
        async with read_transaction(engine) as conn:
            moments = (
                await conn.execute(select(events.c.ts).where(events.c.key_id == code_review))
            ).scalars()
            hours = [as_utc(moment).hour for moment in moments]
    finally:
        await engine.dispose()
    office = sum(1 for h in hours if 14 <= h < 22)  # 9:00 to 17:00 in New York
    night = sum(1 for h in hours if 5 <= h < 13)  # midnight to 8:00
    assert office > 4 * night


async def test_llm_events_are_priced_from_the_catalog_like_proxy_traffic(db_url: str) -> None:
    await _seed(db_url, MID)
    prices = default_price_book()
    engine = make_engine(db_url)
    try:
        async with read_transaction(engine) as conn:
            rows = await _events_of(conn, demo.PLANTED["cap_key_id"])
    finally:
        await engine.dispose()
    assert len(rows) > 100
    # Requests differ in size, as real traffic does.
    assert len({row.input_tokens for row in rows}) > len(rows) / 2
    assert len({row.output_tokens for row in rows}) > len(rows) / 4
    for row in rows:
        expected = (
            prices.llm_cost(row.provider, row.model, row.ts, row.input_tokens, row.output_tokens)
            if row.status == "ok"
            else 0
        )
        assert row.cost_micros == expected


async def _events_of(conn: AsyncConnection, key_id: uuid.UUID) -> list[object]:
    table = _t(LlmEvent)
    return list(
        (await conn.execute(select(table).where(table.c.key_id == key_id).limit(500))).all()
    )


@pytest.mark.parametrize(
    "now",
    [MID, EARLY, *FIXED_CLOCKS.values()],
    ids=["mid-month", "second-of-month-small-hours", *FIXED_CLOCKS],
)
async def test_the_three_anomalies_are_planted_and_visible_in_usage(
    db_url: str, now: datetime
) -> None:
    summary = await _seed(db_url, now)
    today = now.date()

    # SPIKE_ON_QUIET_KEY: cents a day for weeks, then dozens of ordinary days within hours.
    recent = Period(today - timedelta(days=29), today)
    spike = await _usage(db_url, recent, now, demo.PLANTED["spike_key_id"])
    days = [d.total_micros for d in spike.llm.daily]
    baseline = statistics.median(days[:-2])
    assert 0 < baseline < 100 * 1_000_000  # under a dollar a day
    assert max(days[-2:]) > 20 * baseline
    assert sum(days[-2:]) > 50 * baseline
    assert {m.model for d in spike.llm.daily[-2:] for m in d.models} >= {SPIKE_MODEL}

    # CAP_TRAJECTORY: month to date is 80-100% of the cap (the card's warning colours start at
    # 75%), and the run rate passes it.
    month = month_period(now.year, now.month)
    capped = await _usage(db_url, month, now, demo.PLANTED["cap_key_id"])
    (card,) = capped.llm.keys
    assert card.spend_cap_micros == summary.cap_key_cap_micros
    assert card.spend_cap_micros is not None
    assert 0.8 * card.spend_cap_micros <= card.total_micros <= card.spend_cap_micros
    assert card.total_micros / _elapsed(now) > card.spend_cap_micros

    # RUNAWAY_DAY: mostly-zero days, then one day of one model, thousands of requests.
    runaway_day = summary.runaway_day
    assert runaway_day == today - timedelta(days=3)
    if today.day <= 3:
        assert runaway_day.month != today.month  # early in a month it falls in the previous one
    its_month = month_period(runaway_day.year, runaway_day.month)
    runaway = await _usage(db_url, its_month, now, demo.PLANTED["runaway_key_id"])
    by_day = {d.date: d for d in runaway.llm.daily}
    huge = by_day[runaway_day]
    assert huge.total_micros > 0.9 * runaway.llm.total_micros
    assert [m.model for m in huge.models] == [RUNAWAY_MODEL]
    assert huge.request_count >= 3000
    elapsed_days = [d for d in runaway.llm.daily if d.date <= today]
    assert sum(1 for d in elapsed_days if d.total_micros == 0) >= 0.6 * len(elapsed_days)

    # The dashboard's default view finds all three: this month, reaching back a week when the
    # month has only just begun (frontend/src/scope.ts).
    window = Period(min(month.start, today - timedelta(days=6)), month.end)
    engine = make_engine(db_url)
    try:
        async with read_transaction(engine) as conn:
            found = await anomalies_in_period(conn, list(demo.DEMO_ACCOUNT_IDS), window, now)
    finally:
        await engine.dispose()
    kinds = {(a.kind, a.key_id) for a in found}
    assert (AnomalyKind.SPIKE_ON_QUIET_KEY, demo.PLANTED["spike_key_id"]) in kinds
    assert (AnomalyKind.CAP_TRAJECTORY, demo.PLANTED["cap_key_id"]) in kinds
    assert (AnomalyKind.RUNAWAY_DAY, demo.PLANTED["runaway_key_id"]) in kinds

    if now is MID:
        # Only the planted key heads for its cap; the others stay well inside theirs.
        everyone = await _usage(db_url, month, now)
        for key in everyone.llm.keys:
            if key.key_id != demo.PLANTED["cap_key_id"]:
                assert key.spend_cap_micros is not None
                assert key.total_micros / _elapsed(now) < 0.8 * key.spend_cap_micros, key.key_name


async def test_seeding_again_adds_nothing_and_a_later_run_tops_up_to_its_now(
    db_url: str,
) -> None:
    first = await _seed(db_url, MID)
    assert first.inserted == first.llm_events + first.voice_events + first.compute_intervals
    intervals = _t(ComputeInterval)
    open_at_mid = await _ids(db_url, select(intervals.c.id).where(intervals.c.end.is_(None)))
    period = Period(first.window_start, MID.date())
    totals = await _usage(db_url, period, MID)

    again = await _seed(db_url, MID)
    assert again.inserted == 0
    assert (again.llm_events, again.voice_events, again.compute_intervals) == (
        first.llm_events,
        first.voice_events,
        first.compute_intervals,
    )
    repeat = await _usage(db_url, period, MID)
    assert repeat.llm.total_micros == totals.llm.total_micros
    assert repeat.voice.total_micros == totals.voice.total_micros
    assert repeat.compute.total_micros == totals.compute.total_micros

    # Two days later: the days between are added, what was there is untouched, and the runaway
    # planted by the first run stays the only one.
    later = MID + timedelta(days=2, hours=3)
    topped = await _seed(db_url, later)
    assert topped.inserted > 0
    assert topped.llm_events > first.llm_events
    assert topped.runaway_day == first.runaway_day
    # Intervals running at the first run that have ended since are closed, not duplicated.
    still_open = await _ids(db_url, select(intervals.c.id).where(intervals.c.end.is_(None)))
    assert open_at_mid - still_open
    assert topped.compute_intervals > first.compute_intervals
    previous = _previous_month(MID)
    before, after = await _usage(db_url, previous, MID), await _usage(db_url, previous, later)
    assert after.llm.total_micros == before.llm.total_micros
    assert after.voice.total_micros == before.voice.total_micros
    assert after.compute.total_micros == before.compute.total_micros
    table = _t(LlmEvent)
    up_to_mid = select(func.count()).where(table.c.ts <= MID)
    assert await _scalar(db_url, up_to_mid) == first.llm_events
    span = Period(first.window_start, later.date())
    assert (await _usage(db_url, span, later)).llm.total_micros > totals.llm.total_micros
    runaway = await _usage(db_url, span, later, demo.PLANTED["runaway_key_id"])
    assert [d.date for d in runaway.llm.daily if d.request_count >= 1000] == [first.runaway_day]


async def test_a_database_seeded_with_another_seed_is_refused(db_url: str) -> None:
    await _seed(db_url, MID, seed=7)
    with pytest.raises(demo.DemoError, match="same --seed"):
        await _seed(db_url, MID, seed=8)
    with pytest.raises(demo.DemoError, match="scale"):
        await demo.seed_demo(Settings(database_url=db_url), scale=0, now=MID, echo=False)


def test_generation_is_a_pure_function_of_seed_and_slot() -> None:
    def records(seed: int) -> list[object]:
        window = Window(
            prefix=f"demo{seed}",
            scale=1.0,
            start=date(2026, 2, 1),
            now=MID,
            spike_start=MID - timedelta(hours=6),
            runaway_day=date(2026, 3, 14),
        )
        generator = Generator(window, default_price_book())
        out: list[object] = []
        for spec in KEYS[:5]:
            out += generator.llm_day(spec, date(2026, 3, 10))
        out += generator.compute()
        return out

    assert records(7) == records(7)
    assert records(7) != records(8)


def test_the_cap_of_the_planted_key_tells_its_story_at_any_moment_of_a_month() -> None:
    spent = 123_456_789
    moment = datetime(2026, 2, 1, 0, 30, tzinfo=UTC)
    while moment < datetime(2026, 3, 1, tzinfo=UTC):
        cap = cap_for(spent, moment)
        assert 0.8 * cap <= spent <= cap, moment
        assert spent / _elapsed(moment) > cap, moment
        moment += timedelta(hours=5, minutes=17)
    last_minute = datetime(2026, 2, 28, 23, 59, tzinfo=UTC)
    assert spent / _elapsed(last_minute) > cap_for(spent, last_minute)


@pytest.mark.slow
def test_crabglamp_demo_no_serve_seeds_a_fresh_sqlite_file(tmp_path: Path) -> None:
    database = tmp_path / "demo.db"
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{database}"}
    done = subprocess.run(
        [sys.executable, "-m", "crabglamp.cli", "demo", "--no-serve"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "seeding demo data [" in done.stderr
    assert "100%" in done.stderr
    assert "demo data ready in" in done.stdout
    for user in demo.DEMO_USERS:
        assert user.user_id in done.stdout
    for name in ("legacy-zapier", "support-prod", "nightly-batch"):
        assert name in done.stdout

    url = f"sqlite+aiosqlite:///{database}"
    assert asyncio.run(_scalar(url, select(func.count()).select_from(_t(LlmEvent)))) >= 100_000
