"""The change feed: news committed with a write reaches every process's listeners, news of a
rolled-back write reaches nobody, and a burst is one wake-up. Both engines, each feed on an
engine of its own (as each server process has)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from crabglamp.db import is_sqlite, make_engine, write_transaction
from crabglamp.db.changes import (
    ALL_KINDS,
    ChangeFeed,
    ChangeKind,
    Listener,
    TooManyListeners,
    _payloads,
    announce,
    parse_payload,
)
from crabglamp.db.tables import table_of
from crabglamp.models import UsageChangeMark

PATIENCE = 60.0


@pytest.fixture
async def feed(db_url: str) -> AsyncIterator[ChangeFeed]:
    # Its own engine: the writes below come from "another process".
    own = make_engine(db_url)
    changes = ChangeFeed(own, poll_seconds=0.05, max_per_account=2)
    await changes.start()
    try:
        yield changes
    finally:
        await changes.stop()
        await own.dispose()


async def _next(listener: Listener) -> dict[uuid.UUID | None, frozenset[ChangeKind]]:
    return await asyncio.wait_for(listener.next(), PATIENCE)


class _RolledBack(Exception):
    pass


async def test_committed_news_reaches_listeners_and_rolled_back_news_does_not(
    engine: AsyncEngine, feed: ChangeFeed
) -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    async with feed.listen([a]) as only_a, feed.listen([a, b]) as both:
        with pytest.raises(_RolledBack):
            async with write_transaction(engine) as conn:
                await announce(conn, {a: {ChangeKind.KEYS}})
                raise _RolledBack
        async with write_transaction(engine) as conn:
            await announce(conn, {b: {ChangeKind.VOICE}})
        async with write_transaction(engine) as conn:
            await announce(conn, {a: {ChangeKind.LLM}})
        # The first news of A is the committed LLM change: the rolled-back KEYS never came.
        assert await _next(only_a) == {a: frozenset({ChangeKind.LLM})}
        heard: dict[uuid.UUID | None, set[ChangeKind]] = {}
        while heard != {a: {ChangeKind.LLM}, b: {ChangeKind.VOICE}}:
            for account, kinds in (await _next(both)).items():
                heard.setdefault(account, set()).update(kinds)


async def test_a_burst_of_writes_is_one_wake_up_with_every_kind(
    engine: AsyncEngine, feed: ChangeFeed
) -> None:
    account = uuid.uuid4()
    kinds = [ChangeKind.LLM, ChangeKind.VOICE, ChangeKind.COMPUTE] * 10
    async with feed.listen([account]) as listener:
        for kind in kinds:
            async with write_transaction(engine) as conn:
                await announce(conn, {account: {kind}})
        heard: set[ChangeKind] = set()
        wake_ups = 0
        while heard != set(kinds):
            news = await _next(listener)
            wake_ups += 1
            heard |= news[account]
    assert wake_ups <= len(kinds)


async def test_the_change_marks_never_grow_with_traffic(engine: AsyncEngine) -> None:
    """SQLite: one row per account and kind; PostgreSQL sends NOTIFY and writes none."""
    accounts = [uuid.uuid4() for _ in range(3)]
    for _ in range(20):
        async with write_transaction(engine) as conn:
            await announce(conn, {account: ALL_KINDS for account in accounts})
    marks = table_of(UsageChangeMark)
    async with engine.connect() as conn:
        rows = (await conn.execute(select(func.count()).select_from(marks))).scalar_one()
        highest = (await conn.execute(select(func.max(marks.c.seq)))).scalar_one()
    if is_sqlite(engine):
        assert rows == len(accounts) * len(ALL_KINDS)
        assert highest == 20
    else:
        assert rows == 0


async def test_an_account_has_at_most_so_many_listeners(feed: ChangeFeed) -> None:
    account = uuid.uuid4()
    async with feed.listen([account]), feed.listen([account, uuid.uuid4()]):
        with pytest.raises(TooManyListeners):
            async with feed.listen([account]):
                pass
    # Leaving frees the places.
    async with feed.listen([account]), feed.listen([account]):
        assert feed.listeners == 2


def test_notify_payloads_stay_under_postgresqls_limit_and_read_back() -> None:
    changed = {uuid.uuid4(): set(ALL_KINDS) for _ in range(500)}
    payloads = list(_payloads(changed))
    assert len(payloads) > 1
    assert all(len(p.encode()) < 8000 for p in payloads)
    read: dict[uuid.UUID | None, set[ChangeKind]] = {}
    for payload in payloads:
        read.update(parse_payload(payload))
    assert read == changed
    # What cannot be read is news of everything, never silence.
    assert parse_payload("not json") == {None: set(ALL_KINDS)}


async def test_news_of_everything_reaches_every_listener_with_its_own_accounts(
    feed: ChangeFeed,
) -> None:
    a = uuid.uuid4()
    async with feed.listen([a]) as one, feed.listen(None) as everywhere:
        feed.publish({None: ALL_KINDS})
        assert await _next(one) == {a: ALL_KINDS}
        assert await _next(everywhere) == {None: ALL_KINDS}
