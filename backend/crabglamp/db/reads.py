"""Read transactions for the API: one snapshot per request, and on SQLite one hop per call.

`Reads.session()` opens a read transaction; `await session.run(fn)` runs `fn(conn)` in it (calls
take turns). On PostgreSQL the session is a pooled connection at REPEATABLE READ, so every call
sees one snapshot. On a SQLite file it is a transaction held open on a reader thread
(db/sqlite_threads.py) and each `run` is one hop there: a month's usage is ~40 aiosqlite round
trips otherwise, a third of its time (BENCHMARKS.md, P1). What `fn` does must therefore be the
database and plain Python only (the core's functions are).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from crabglamp.db import is_sqlite
from crabglamp.db.sqlite_threads import ReaderThread, ReaderThreads

_T = TypeVar("_T")

# Reader threads per process: each holds one request's transaction at a time, and a request
# holds it while it resolves, so a dashboard's parallel requests should rarely wait for one.
READER_THREADS = 4


class ReadSession:
    def __init__(self, conn: AsyncConnection, thread: ReaderThread | None) -> None:
        self._conn = conn
        self._thread = thread

    async def run(self, fn: Callable[[AsyncConnection], Awaitable[_T]]) -> _T:
        if self._thread is None:
            return await fn(self._conn)
        return await self._thread.run(fn(self._conn))


class Reads:
    """`threads`: reader threads on a SQLite file (0: the engine's own connections)."""

    def __init__(self, engine: AsyncEngine, threads: int = READER_THREADS) -> None:
        self.engine = engine
        self._threads = ReaderThreads(engine, threads) if threads and is_sqlite(engine) else None

    @asynccontextmanager
    async def session(self) -> AsyncIterator[ReadSession]:
        if self._threads is None:
            async with self.engine.connect() as conn:
                if conn.dialect.name == "postgresql":
                    # One snapshot for the whole session (SQLite's transactions are already).
                    conn = await conn.execution_options(isolation_level="REPEATABLE READ")
                async with conn.begin():
                    yield ReadSession(conn, None)
            return
        thread = await self._threads.take()
        try:
            yield ReadSession(await thread.begin(), thread)
        finally:
            try:
                await thread.end()
            finally:
                # Given back even if the end was cut short: its next begin closes what is open.
                self._threads.give(thread)

    async def run(self, fn: Callable[[AsyncConnection], Awaitable[_T]]) -> _T:
        """`fn(conn)` in a read transaction of its own."""
        async with self.session() as session:
            return await session.run(fn)

    async def close(self) -> None:
        if self._threads is not None:
            await self._threads.close()
