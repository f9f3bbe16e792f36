"""What every resolver gets: the request, the caller, one database snapshot and the loaders."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

import strawberry
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from starlette.requests import Request

from crabglamp.access import Caller
from crabglamp.db.changes import ChangeFeed
from crabglamp.periods import utcnow
from crabglamp.settings import Settings
from crabglamp.usage.filter import CallerScope

if TYPE_CHECKING:
    from crabglamp.api.graphql.loaders import Loaders


class RequestDatabase:
    """One read transaction per GraphQL request, opened on first use.

    Every field of a response then reads the same snapshot, so totals agree across fields.
    Resolvers run concurrently but a connection runs one statement at a time: the lock
    serialises them (the loaders batch, so they are few).
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._conn: AsyncConnection | None = None
        self._lock = asyncio.Lock()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection]:
        async with self._lock:
            if self._conn is None:
                conn = await self.engine.connect()
                try:
                    if conn.dialect.name == "postgresql":
                        # One snapshot for the whole request (SQLite's transactions are already).
                        conn = await conn.execution_options(isolation_level="REPEATABLE READ")
                    await conn.begin()
                except BaseException:
                    await conn.close()
                    raise
                self._conn = conn
            yield self._conn

    async def close(self) -> None:
        async with self._lock:
            if self._conn is not None:
                conn, self._conn = self._conn, None
                # Read-only: nothing to commit; closing rolls the snapshot back.
                await conn.close()


@dataclass(slots=True)
class Context:
    request: Request | None
    db: RequestDatabase
    caller: Caller
    settings: Settings
    loaders: Loaders
    scope: CallerScope
    # One "now" per request: open compute intervals and "this month" agree across fields.
    now: datetime = field(default_factory=utcnow)


def make_context(
    request: Request | None,
    engine: AsyncEngine,
    caller: Caller,
    settings: Settings,
    now: datetime | None = None,
) -> Context:
    from crabglamp.api.graphql.loaders import Loaders

    db = RequestDatabase(engine)
    moment = now or utcnow()
    return Context(
        request=request,
        db=db,
        caller=caller,
        settings=settings,
        loaders=Loaders(db, moment, caller),
        scope=CallerScope(caller),
        now=moment,
    )


@dataclass(slots=True)
class SocketContext(Context):
    """A WebSocket's context: one per connection, shared by its operations. The caller is set
    when `connection_init` authenticates (api/graphql/view.py); nothing runs before."""

    feed: ChangeFeed | None = None
    # The `connection_init` payload (Strawberry sets it): may carry the session token.
    connection_params: dict[str, object] = field(default_factory=dict)


def make_socket_context(
    engine: AsyncEngine, settings: Settings, feed: ChangeFeed | None
) -> SocketContext:
    from crabglamp.api.graphql.loaders import Loaders

    db = RequestDatabase(engine)
    moment = utcnow()
    nobody = Caller(user_id="")
    return SocketContext(
        request=None,
        db=db,
        caller=nobody,
        settings=settings,
        loaders=Loaders(db, moment),
        scope=CallerScope(nobody),
        now=moment,
        feed=feed,
    )


Info = strawberry.Info[Context, None]
