"""SQLite write transactions run whole on one thread of their own: one hop per transaction.

Through aiosqlite every statement of a transaction is a round trip between the event loop and
the connection's thread (a cursor, the execute, the fetch, the close: ~4 hops a statement, ~80
for a proxied request's transaction), and each hop waits for the loop to come round. Here the
transaction's coroutine itself runs on a dedicated thread with an event loop of its own, on a
connection whose calls run inline (`_InlineConnection`): the caller's loop makes one hop there
and one back, and the statements between cost only SQLite's own work.

The thread owns one connection, so transactions run there one at a time, the way SQLite takes
writers anyway; a wait for another process's write lock blocks this thread, never the caller's
event loop.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from functools import partial
from typing import Any, TypeVar

import aiosqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import AsyncAdaptedQueuePool

from crabglamp.db import make_engine, write_transaction

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
    thread (the writer thread), and each of its coroutines completes without suspending."""

    def __init__(self, connector: Callable[[], sqlite3.Connection]) -> None:
        super().__init__(connector, iter_chunk_size=64)
        self._tx = _RunAtOnce()  # type: ignore[assignment]

    async def _execute(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        if not self._running or not self._connection:
            raise ValueError("Connection closed")
        return fn(*args, **kwargs)

    async def _connect(self) -> aiosqlite.Connection:
        if self._connection is None:
            self._connection = self._connector()
        return self


class WriterThread:
    """Runs `fn(conn)` inside a write transaction on the thread; `await thread.transaction(fn)`
    from any event loop."""

    def __init__(self, engine: AsyncEngine) -> None:
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
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="crabglamp-sqlite-writer", daemon=True
        )
        self._thread.start()

    async def transaction(self, fn: Callable[[AsyncConnection], Awaitable[_T]]) -> _T:
        async def run() -> _T:
            async with write_transaction(self.engine) as conn:
                return await fn(conn)

        future: Future[_T] = asyncio.run_coroutine_threadsafe(run(), self._loop)
        return await asyncio.wrap_future(future)

    async def close(self) -> None:
        if not self._thread.is_alive():
            return
        done = asyncio.run_coroutine_threadsafe(self.engine.dispose(), self._loop)
        await asyncio.wrap_future(done)
        self._loop.call_soon_threadsafe(self._loop.stop)
        await asyncio.to_thread(self._thread.join)
        self._loop.close()
