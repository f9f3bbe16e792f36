"""Statements straight to sqlite3 (db/sqlite_direct.py): which connections take that way."""

from __future__ import annotations

import sqlite3

from sqlalchemy.ext.asyncio import AsyncConnection

from crabglamp.db.sqlite_direct import inline_of
from db_support import OnThread


async def test_only_a_thread_s_open_connection_goes_straight_to_sqlite3(
    on_thread: OnThread,
) -> None:
    async def seen(conn: AsyncConnection) -> tuple[bool, int]:
        inline = inline_of(conn)
        assert isinstance(inline, sqlite3.Connection)
        # The very connection the transaction writes on: its write is visible through it.
        await conn.exec_driver_sql("CREATE TABLE direct_probe (n INTEGER)")
        await conn.exec_driver_sql("INSERT INTO direct_probe VALUES (7)")
        return inline.in_transaction, inline.execute("SELECT n FROM direct_probe").fetchone()[0]

    assert await on_thread.thread.transaction(seen) == (True, 7)
    async with on_thread.engine.connect() as conn:
        assert inline_of(conn) is None  # the engine's own, through aiosqlite's worker thread
    closed = on_thread.engine.connect()
    await closed.start()
    await closed.close()
    assert inline_of(closed) is None
