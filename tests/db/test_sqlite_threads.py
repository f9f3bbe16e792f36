"""SQLite's writer thread (db/sqlite_threads.py) keeps one connection between transactions: a
transaction that fails leaves nothing behind on it, one handed over runs to its commit even if
its caller stops waiting, and the next one writes and is seen."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection

from crabglamp.db.reads import Reads
from crabglamp.db.tables import table_of
from crabglamp.models import Account
from db_support import OnThread

_accounts = table_of(Account)


class _Refused(Exception):
    pass


async def _names(conn: AsyncConnection) -> list[str]:
    return list((await conn.execute(select(_accounts.c.name).order_by(_accounts.c.name))).scalars())


def _adding(name: str, fail: bool = False) -> Callable[[AsyncConnection], Awaitable[None]]:
    async def add(conn: AsyncConnection) -> None:
        await conn.execute(
            _accounts.insert().values(id=uuid.uuid4(), name=name, owner_user_id="u")  # type: ignore[attr-defined]
        )
        if fail:
            raise _Refused(name)

    return add


async def test_a_failed_transaction_writes_nothing_and_the_next_one_commits(
    on_thread: OnThread,
) -> None:
    thread = on_thread.thread
    reads = Reads(on_thread.engine)
    try:
        await thread.transaction(_adding("Ada Ltd"))
        with pytest.raises(_Refused):
            await thread.transaction(_adding("Half Written", fail=True))
        await thread.transaction(_adding("Brook plc"))
        # Another connection, and the writer's own: both see the two commits, not the failure.
        assert await reads.run(_names) == ["Ada Ltd", "Brook plc"]
        assert await thread.transaction(_names) == ["Ada Ltd", "Brook plc"]
    finally:
        await reads.close()


async def test_a_transaction_handed_over_commits_even_if_its_caller_stops_waiting(
    on_thread: OnThread,
) -> None:
    thread = on_thread.thread
    started = asyncio.Event()
    caller_loop = asyncio.get_running_loop()

    async def slow(conn: AsyncConnection) -> None:
        await _adding("Slow Co")(conn)
        caller_loop.call_soon_threadsafe(started.set)
        await asyncio.sleep(0.2)  # on the thread's loop: the transaction suspends there
        await _adding("Slow Co, second row")(conn)

    caller = asyncio.ensure_future(thread.transaction(slow))
    await started.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    await thread.transaction(_adding("Next Ltd"))  # runs after the slow one has committed
    assert await thread.transaction(_names) == ["Next Ltd", "Slow Co", "Slow Co, second row"]


async def test_a_busy_database_is_an_operational_error_and_the_thread_recovers(
    on_thread: OnThread,
) -> None:
    # BEGIN goes to sqlite3 directly on the thread's connection; a database another process
    # holds must still raise what db/retry.py retries, not sqlite3's own exception.
    thread = on_thread.thread
    other = sqlite3.connect(on_thread.path, isolation_level=None)

    async def wait_briefly(conn: AsyncConnection) -> None:
        await conn.exec_driver_sql("PRAGMA busy_timeout=50")

    try:
        await thread.transaction(wait_briefly)
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(OperationalError, match="locked"):
            await thread.transaction(_adding("Blocked Ltd"))
        other.execute("ROLLBACK")
        await thread.transaction(_adding("After Ltd"))
        assert await thread.transaction(_names) == ["After Ltd"]
    finally:
        other.close()
