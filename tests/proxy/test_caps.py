"""Spend reservations (caps.py) and their settlement in the group-commit writer, both engines."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from crabglamp.db import read_transaction, write_transaction
from crabglamp.ingest.ingestor import Ingestor
from crabglamp.ingest.records import LlmRecord, VoiceRecord
from crabglamp.key_secrets import hash_secret
from crabglamp.keys import CreatedKey, RotatedKey, revoke_key, rotate_key, set_spend_cap
from crabglamp.periods import utcnow
from crabglamp.proxy.caps import SpendCaps
from crabglamp.proxy.ledger import month_spend
from crabglamp.proxy.reservation import (
    CapExceeded,
    KeyRefused,
    MonthSpend,
    Reservation,
    Settlement,
    month_of,
)
from crabglamp.proxy.writer import GroupCommitWriter
from proxy_support import make_key, reservations

CENT = 1_000_000


@pytest.fixture
async def caps(engine: AsyncEngine) -> AsyncIterator[SpendCaps]:
    caps = SpendCaps(engine, timedelta(minutes=5))
    yield caps
    await caps.close()


@pytest.fixture
async def writer(engine: AsyncEngine) -> AsyncIterator[GroupCommitWriter]:
    writer = GroupCommitWriter(Ingestor(engine))
    await writer.start()
    yield writer
    await writer.stop()


async def _spend(engine: AsyncEngine, key_id: uuid.UUID, now: datetime | None = None) -> MonthSpend:
    async with read_transaction(engine) as conn:
        return await month_spend(conn, key_id, month_of(now or utcnow()))


def _event(key: CreatedKey, cost: int, now: datetime | None = None) -> LlmRecord:
    return LlmRecord(
        id=f"evt-{uuid.uuid4().hex}",
        ts=now or utcnow(),
        key_id=key.key.id,
        provider="openai",
        model="gpt-4o-mini",
        input_tokens=10,
        output_tokens=10,
        cost_micros=cost,
    )


async def _reserve(caps: SpendCaps, key: CreatedKey, amount: int, now: datetime | None = None):  # type: ignore[no-untyped-def]
    return await caps.reserve(key.key.id, hash_secret(key.secret), amount, now)


async def test_reserve_settle_and_release_move_money_exactly(
    fixed_clock: datetime, engine: AsyncEngine, caps: SpendCaps, writer: GroupCommitWriter
) -> None:
    key = await make_key(engine, cap_micros=100 * CENT)
    first = await _reserve(caps, key, 60 * CENT)
    assert isinstance(first, Reservation)
    assert await _spend(engine, key.key.id) == MonthSpend(0, 60 * CENT)

    refused = await _reserve(caps, key, 41 * CENT)
    assert refused == CapExceeded(100 * CENT, 0, 60 * CENT, 41 * CENT)

    await writer.record(_event(key, 25 * CENT), Settlement(first, 25 * CENT))
    assert await _spend(engine, key.key.id) == MonthSpend(25 * CENT, 0)

    second = await _reserve(caps, key, 75 * CENT)
    assert isinstance(second, Reservation)
    await caps.release(second)
    await caps.release(second)  # twice: given back once
    assert await _spend(engine, key.key.id) == MonthSpend(25 * CENT, 0)
    assert await reservations(engine) == 0


async def test_settling_the_same_event_twice_counts_it_once(
    engine: AsyncEngine, caps: SpendCaps, writer: GroupCommitWriter
) -> None:
    key = await make_key(engine, cap_micros=100 * CENT)
    reservation = await _reserve(caps, key, 10 * CENT)
    assert isinstance(reservation, Reservation)
    event = _event(key, 4 * CENT)
    await writer.record(event, Settlement(reservation, 4 * CENT))
    await writer.record(event, Settlement(reservation, 4 * CENT))
    assert await _spend(engine, key.key.id) == MonthSpend(4 * CENT, 0)


async def test_concurrent_admissions_never_reserve_past_the_cap(
    engine: AsyncEngine, caps: SpendCaps
) -> None:
    key = await make_key(engine, cap_micros=100 * CENT)
    outcomes = await asyncio.gather(*(_reserve(caps, key, 10 * CENT) for _ in range(200)))
    admitted = [o for o in outcomes if isinstance(o, Reservation)]
    assert len(admitted) == 10
    assert all(isinstance(o, CapExceeded) for o in outcomes if o not in admitted)
    assert await _spend(engine, key.key.id) == MonthSpend(0, 100 * CENT)


async def test_admissions_under_load_reuse_their_connections(
    engine: AsyncEngine, caps: SpendCaps
) -> None:
    # A connection opened for one admission and closed again costs far more than the admission
    # (on PostgreSQL: a TLS attempt, the start-up, the teardown): a burst far wider than the
    # pool opens its connections, and later bursts reuse them.
    key = await make_key(engine, cap_micros=10**6 * CENT)
    opened: list[object] = []
    event.listen(caps.admit_engine.sync_engine, "connect", lambda conn, _: opened.append(conn))
    bursts = []
    for _ in range(3):
        outcomes = await asyncio.gather(*(_reserve(caps, key, CENT) for _ in range(64)))
        assert all(isinstance(o, Reservation) for o in outcomes)
        bursts.append(len(opened))
    assert bursts[0] >= 1
    assert bursts[1] == bursts[2] == bursts[0]


@pytest.mark.parametrize(("cap_cents", "expected"), [(200, 12), (75, 7)], ids=["all", "some"])
async def test_a_burst_of_one_key_is_admitted_exactly_as_far_as_its_cap_allows(
    fixed_clock: datetime, engine: AsyncEngine, caps: SpendCaps, cap_cents: int, expected: int
) -> None:
    # Admissions that arrive together are decided together (all of a key's at once when they
    # fit, else one by one): the outcome is the same as deciding each alone.
    key = await make_key(engine, cap_micros=cap_cents * CENT)
    opening = await _reserve(caps, key, 5 * CENT)  # the month's row exists from here on
    assert isinstance(opening, Reservation)
    outcomes = await asyncio.gather(*(_reserve(caps, key, 10 * CENT) for _ in range(12)))
    admitted = [o for o in outcomes if isinstance(o, Reservation)]
    assert len(admitted) == expected
    assert len({r.id for r in admitted}) == expected
    assert all(isinstance(o, CapExceeded) for o in outcomes if o not in admitted)
    assert await _spend(engine, key.key.id) == MonthSpend(0, (5 + 10 * expected) * CENT)
    for reservation in [opening, *admitted]:
        await caps.release(reservation)
    assert await _spend(engine, key.key.id) == MonthSpend(0, 0)


async def test_a_new_calendar_month_starts_from_zero(
    engine: AsyncEngine, caps: SpendCaps, writer: GroupCommitWriter
) -> None:
    key = await make_key(engine, cap_micros=10 * CENT)
    november = datetime(2026, 11, 30, 23, 59, tzinfo=UTC)
    december = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
    spent = await _reserve(caps, key, 10 * CENT, november)
    assert isinstance(spent, Reservation)
    await writer.record(_event(key, 10 * CENT, november), Settlement(spent, 10 * CENT))
    assert isinstance(await _reserve(caps, key, 1, november), CapExceeded)
    assert isinstance(await _reserve(caps, key, 10 * CENT, december), Reservation)
    assert await _spend(engine, key.key.id, november) == MonthSpend(10 * CENT, 0)
    assert await _spend(engine, key.key.id, december) == MonthSpend(0, 10 * CENT)


async def test_a_month_starts_from_the_spend_already_recorded(
    fixed_clock: datetime, engine: AsyncEngine, caps: SpendCaps
) -> None:
    key = await make_key(engine, cap_micros=10 * CENT)
    ingestor = Ingestor(engine)
    await ingestor.record([_event(key, 7 * CENT)])
    await ingestor.record(
        [
            VoiceRecord(
                id="voice-1",
                ts=utcnow(),
                account_id=key.key.account_id,
                voice_model="tts-1",
                characters=10,
                cost_micros=2 * CENT,
                key_id=key.key.id,
            )
        ]
    )
    assert await _reserve(caps, key, 2 * CENT) == CapExceeded(10 * CENT, 9 * CENT, 0, 2 * CENT)
    assert isinstance(await _reserve(caps, key, 1 * CENT), Reservation)


async def test_reconcile_counts_spend_that_arrived_by_import(
    fixed_clock: datetime, engine: AsyncEngine, caps: SpendCaps
) -> None:
    key = await make_key(engine, cap_micros=10 * CENT)
    assert isinstance(await _reserve(caps, key, 1 * CENT), Reservation)
    await Ingestor(engine).record([_event(key, 6 * CENT)])
    assert (await _spend(engine, key.key.id)).spent_micros == 0
    assert await caps.reconcile(month_of(utcnow())) == 1
    assert await _spend(engine, key.key.id) == MonthSpend(6 * CENT, 1 * CENT)
    assert await caps.reconcile(month_of(utcnow())) == 0  # nothing drifted since
    assert isinstance(await _reserve(caps, key, 4 * CENT), CapExceeded)


async def test_the_sweeper_frees_reservations_that_outlived_their_request(
    fixed_clock: datetime, engine: AsyncEngine, caps: SpendCaps, writer: GroupCommitWriter
) -> None:
    key = await make_key(engine, cap_micros=10 * CENT)
    stale = await _reserve(caps, key, 10 * CENT)
    assert isinstance(stale, Reservation)
    assert isinstance(await _reserve(caps, key, 1), CapExceeded)
    assert await caps.sweep() == 0  # not yet expired
    assert await caps.sweep(utcnow() + timedelta(minutes=6)) == 1
    assert await _spend(engine, key.key.id) == MonthSpend(0, 0)
    # The request it belonged to settles after all: its cost counts, nothing is freed twice.
    await writer.record(_event(key, 3 * CENT), Settlement(stale, 3 * CENT))
    assert await _spend(engine, key.key.id) == MonthSpend(3 * CENT, 0)


async def test_lowering_a_cap_below_the_spend_blocks_until_it_is_raised(
    engine: AsyncEngine, caps: SpendCaps, writer: GroupCommitWriter
) -> None:
    key = await make_key(engine, cap_micros=10 * CENT)
    reservation = await _reserve(caps, key, 5 * CENT)
    assert isinstance(reservation, Reservation)
    await writer.record(_event(key, 5 * CENT), Settlement(reservation, 5 * CENT))
    async with write_transaction(engine) as conn:
        await set_spend_cap(conn, key.key.id, 2 * CENT)
    assert await _reserve(caps, key, 1) == CapExceeded(2 * CENT, 5 * CENT, 0, 1)
    async with write_transaction(engine) as conn:
        await set_spend_cap(conn, key.key.id, 20 * CENT)
    assert isinstance(await _reserve(caps, key, 1), Reservation)
    async with write_transaction(engine) as conn:
        await set_spend_cap(conn, key.key.id, None)
    assert isinstance(await _reserve(caps, key, 10**12), Reservation)


async def test_admission_refuses_revoked_keys_and_expired_secrets(
    engine: AsyncEngine, caps: SpendCaps
) -> None:
    key = await make_key(engine)
    async with write_transaction(engine) as conn:
        rotated = await rotate_key(conn, key.key.id, timedelta(seconds=30))
    assert isinstance(rotated, RotatedKey)
    now = utcnow()
    assert isinstance(await _reserve(caps, key, 1, now), Reservation)  # within the grace period
    late = now + timedelta(seconds=31)
    refused = await _reserve(caps, key, 1, late)
    assert isinstance(refused, KeyRefused) and refused.code == "invalid_api_key"
    assert isinstance(
        await caps.reserve(key.key.id, hash_secret(rotated.secret), 1, late), Reservation
    )
    async with write_transaction(engine) as conn:
        await revoke_key(conn, key.key.id)
    refused = await caps.reserve(key.key.id, hash_secret(rotated.secret), 1)
    assert isinstance(refused, KeyRefused) and refused.code == "key_revoked"
