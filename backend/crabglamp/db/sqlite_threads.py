"""SQLite transactions run whole on a thread of their own: one hop per transaction, not per call.

Through aiosqlite every statement of a transaction is a round trip between the event loop and
the connection's thread (a cursor, the execute, the fetch, the close: ~4 hops a statement, ~80
for a proxied request's transaction, ~40 for a month's usage), and each hop waits for the loop
to come round. Here the transaction's coroutine itself runs on a dedicated thread with an event
loop of its own, on a connection whose calls run inline (`_InlineConnection`): the caller's
loop makes one hop there and one back, and the statements between cost only SQLite's own work.

Each thread owns one connection, held open between its transactions (a pool checkout and
its reset cost more than a small transaction), so transactions run there one at a time.
- `WriterThread`: the proxy's writes, one thread (SQLite takes one writer at a time anyway); a
  wait for another process's write lock blocks this thread, never the caller's event loop.
- `ReaderThreads`: a few threads for reads (db/reads.py); a read transaction stays open on its
  thread between the calls made in it, so a request reads one snapshot in a few hops.
Whatever runs there may use the connection and plain Python only: nothing bound to the caller's
event loop (its locks, futures or tasks).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, TypeVar

import aiosqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import AsyncAdaptedQueuePool

from crabglamp.db import WRITE_OPTION, make_engine

_T = TypeVar("_T")


class _RunAtOnce:
    """Stands in for aiosqlite's queue to its thread: what is put runs at once, right here."""

    def put_nowait(self, item: tuple[asyncio.Future[Any] | None, Callable[[], Any]]) -> None:
        future, function = item
        try:
            result = function()
        except BaseException as exc:
            if future is not None and not future.done():
                future.set_exception(exc)
            return
        if future is not None and not future.done():
            future.set_result(result)


class _InlineConnection(aiosqlite.Connection):
    """aiosqlite's connection with its worker thread taken out: each call runs on the calling
    thread (a writer or reader thread), and each of its coroutines completes without suspending."""

    def __init__(self, connector: Callable[[], sqlite3.Connection]) -> None:
        super().__init__(connector, iter_chunk_size=64)
        self._tx = _RunAtOnce()  # type: ignore[assignment]
        # The sqlite3 connection, for statements sent to it directly (db/sqlite_direct.py).
        self.inline: sqlite3.Connection | None = None

    async def _execute(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        if not self._running or not self._connection:
            raise ValueError("Connection closed")
        return fn(*args, **kwargs)

    async def _connect(self) -> aiosqlite.Connection:
        if self._connection is None:
            self._connection = self._connector()
        self.inline = self._connection
        return self


class _ConnectionThread:
    """A thread with an event loop of its own and an engine of one inline connection."""

    def __init__(self, engine: AsyncEngine, name: str) -> None:
        url = engine.url
        cargs, cparams = engine.dialect.create_connect_args(url)  # type: ignore[no-untyped-call]
        cparams.pop("check_same_thread", None)
        connector = partial(sqlite3.connect, *cargs, **cparams)

        async def connect() -> _InlineConnection:
            connection = _InlineConnection(connector)
            await connection._connect()
            return connection

        self.engine = make_engine(
            url.render_as_string(hide_password=False),
            async_creator=connect,
            poolclass=AsyncAdaptedQueuePool,
            pool_size=1,
            max_overflow=0,
        )
        self._conn: AsyncConnection | None = None  # touched on the thread only
        self._loop = asyncio.new_event_loop()
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        """The thread: each job's coroutine run to its end on the thread's loop, in turn.

        The thread sleeps on a plain queue between jobs rather than in its loop's selector:
        handing a job over is then one queue put, not a wake-up through the loop's self-pipe
        and a task scheduled on it (a round trip of ~110 µs instead of ~140 µs, twice per
        proxied request). The loop runs only while a job does."""
        asyncio.set_event_loop(self._loop)
        while (job := self._jobs.get()) is not None:
            work, loop, future = job
            try:
                result = self._loop.run_until_complete(work)
            except BaseException as exc:  # the caller's to handle, whatever it is
                loop.call_soon_threadsafe(_settle, future, None, exc)
            else:
                loop.call_soon_threadsafe(_settle, future, result, None)

    async def connection(self, write: bool = False) -> AsyncConnection:
        """The thread's one connection, kept checked out between transactions (on the thread
        only): taking it from the pool and giving it back (a rollback) cost more than a small
        transaction's statements. A connection found closed or invalidated is replaced."""
        conn = self._conn
        if conn is None or conn.closed or conn.invalidated:
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close()
            conn = self._conn = await self.engine.connect()
            if write:
                await conn.execution_options(**{WRITE_OPTION: True})
        return conn

    async def _release(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            with contextlib.suppress(Exception):  # closing, or already broken
                await conn.close()

    async def run(self, work: Awaitable[_T]) -> _T:
        """`work` run on this thread; the caller's loop waits without blocking.

        Once handed over, `work` runs to its end even if the caller is cancelled meanwhile:
        the caller stops waiting, and the thread's state stays whole."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_T] = loop.create_future()
        self._jobs.put((work, loop, future))
        return await future

    async def close(self) -> None:
        if not self._thread.is_alive():
            return
        await self.run(self._release())
        await self.run(self.engine.dispose())
        self._jobs.put(None)
        await asyncio.to_thread(self._thread.join)
        self._loop.close()


_Job = tuple[Awaitable[Any], asyncio.AbstractEventLoop, asyncio.Future[Any]]


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    """On the caller's loop: its future told the job's outcome, unless it stopped waiting."""
    if future.done():
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


class WriterThread(_ConnectionThread):
    """Runs `fn(conn)` inside a write transaction on the thread; `await thread.transaction(fn)`
    from any event loop."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(engine, "crabglamp-sqlite-writer")

    async def transaction(self, fn: Callable[[AsyncConnection], Awaitable[_T]]) -> _T:
        async def body() -> _T:
            conn = await self.connection(write=True)
            try:
                async with conn.begin():  # BEGIN IMMEDIATE (WRITE_OPTION)
                    return await fn(conn)
            except BaseException:
                if conn.invalidated or conn.in_transaction():
                    await self._release()  # the rollback failed: start afresh next time
                raise

        return await self.run(body())


class ReaderThread(_ConnectionThread):
    """One reader: `begin()` opens a read transaction on the thread and returns its connection,
    `run(fn(conn))` runs in it, `end()` closes it. The thread keeps the open transaction itself,
    so one left open by a caller cancelled half-way is closed by the next `begin` (its pool has
    one connection: lost, the thread would serve nobody again)."""

    def __init__(self, engine: AsyncEngine, name: str) -> None:
        super().__init__(engine, name)
        self._open: AsyncConnection | None = None  # touched on the thread only

    async def begin(self) -> AsyncConnection:
        async def body() -> AsyncConnection:
            await self._close_open()
            conn = await self.connection()
            try:
                await conn.begin()
            except BaseException:
                await self._release()
                raise
            self._open = conn
            return conn

        return await self.run(body())

    async def end(self) -> None:
        # Read-only: nothing to commit; closing rolls the snapshot back.
        await self.run(self._close_open())

    async def _close_open(self) -> None:
        if self._open is not None:
            conn, self._open = self._open, None
            try:
                await conn.rollback()
            except BaseException:
                await self._release()
                raise


class ReaderThreads:
    """`size` reader threads, each lent to one read transaction at a time (`take`, `give`)."""

    def __init__(self, engine: AsyncEngine, size: int) -> None:
        self._all = [ReaderThread(engine, f"crabglamp-sqlite-reader-{i}") for i in range(size)]
        self._free: asyncio.Queue[ReaderThread] = asyncio.Queue()
        for thread in self._all:
            self._free.put_nowait(thread)

    async def take(self) -> ReaderThread:
        return await self._free.get()

    def give(self, thread: ReaderThread) -> None:
        self._free.put_nowait(thread)

    async def close(self) -> None:
        for thread in self._all:
            await thread.close()
