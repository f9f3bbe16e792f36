"""Read transactions (db/reads.py): one snapshot per session on both engines, on SQLite run on
reader threads, each lent to one session at a time and given back whatever happens in it."""

from __future__ import annotations

import asyncio
import threading
import uuid

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from crabglamp.db import is_sqlite, write_transaction
from crabglamp.db.reads import Reads
from crabglamp.db.tables import table_of
from crabglamp.models import Account

_accounts = table_of(Account)


async def _count(conn: AsyncConnection) -> int:
    return int((await conn.execute(select(func.count()).select_from(_accounts))).scalar_one())


async def _add_account(engine: AsyncEngine) -> None:
    async with write_transaction(engine) as conn:
        await conn.execute(
            _accounts.insert().values(id=uuid.uuid4(), name="Snapshot Co", owner_user_id="u")  # type: ignore[attr-defined]
        )


async def test_a_session_reads_one_snapshot_and_the_next_one_sees_the_write(
    engine: AsyncEngine,
) -> None:
    reads = Reads(engine)
    try:
        async with reads.session() as session:
            before = await session.run(_count)
            await _add_account(engine)
            # Committed meanwhile, but after this transaction's first read: not in its snapshot.
            assert await session.run(_count) == before
        assert await reads.run(_count) == before + 1
    finally:
        await reads.close()


async def test_on_sqlite_the_reads_run_on_a_reader_thread(engine: AsyncEngine) -> None:
    reads = Reads(engine)

    async def where(conn: AsyncConnection) -> str:
        await _count(conn)
        return threading.current_thread().name

    try:
        ran_on = await reads.run(where)
    finally:
        await reads.close()
    if is_sqlite(engine):
        assert ran_on.startswith("crabglamp-sqlite-reader")
    else:
        assert ran_on == threading.current_thread().name


async def test_a_failing_read_is_raised_and_its_thread_serves_the_next_session(
    engine: AsyncEngine,
) -> None:
    reads = Reads(engine, threads=1)

    async def broken(conn: AsyncConnection) -> None:
        await _count(conn)
        raise LookupError("not there")

    try:
        with pytest.raises(LookupError, match="not there"):
            await reads.run(broken)
        # One thread only: had the failure kept it, this would wait forever.
        assert await asyncio.wait_for(reads.run(_count), timeout=30) >= 0
    finally:
        await reads.close()


async def test_sessions_wait_for_a_free_reader_and_never_share_one(engine: AsyncEngine) -> None:
    reads = Reads(engine, threads=1)
    order: list[str] = []
    first_in = asyncio.Event()
    release = asyncio.Event()

    async def first() -> None:
        async with reads.session() as session:
            await session.run(_count)
            order.append("first in")
            first_in.set()
            await release.wait()
            order.append("first out")

    async def second() -> None:
        await first_in.wait()
        async with reads.session() as session:
            order.append("second in")
            await session.run(_count)

    try:
        tasks = [asyncio.create_task(first()), asyncio.create_task(second())]
        await first_in.wait()
        await asyncio.sleep(0.2)
        release.set()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)
    finally:
        await reads.close()
    if is_sqlite(engine):
        assert order == ["first in", "first out", "second in"]
    else:
        # The engine's own pool: the two sessions may overlap.
        assert order[0] == "first in" and set(order) == {"first in", "first out", "second in"}


async def test_a_read_cancelled_half_way_leaves_its_thread_to_the_next_session(
    engine: AsyncEngine,
) -> None:
    reads = Reads(engine, threads=1)
    started = asyncio.Event()
    loop = asyncio.get_running_loop()

    async def slow(conn: AsyncConnection) -> None:
        await _count(conn)
        loop.call_soon_threadsafe(started.set)
        await asyncio.sleep(30)

    try:
        task = asyncio.create_task(reads.run(slow))
        await asyncio.wait_for(started.wait(), timeout=30)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The same (only) thread and its one connection serve the next read.
        assert await asyncio.wait_for(reads.run(_count), timeout=30) >= 0
    finally:
        await reads.close()
