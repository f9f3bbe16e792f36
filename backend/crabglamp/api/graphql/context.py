"""What every resolver gets: the request, the caller, one database snapshot and the loaders."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

import strawberry
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from starlette.requests import Request

from crabglamp.access import Caller
from crabglamp.db.changes import ChangeFeed
from crabglamp.db.reads import Reads, ReadSession
from crabglamp.periods import utcnow
from crabglamp.settings import Settings
from crabglamp.usage.filter import CallerScope

if TYPE_CHECKING:
    from crabglamp.api.graphql.loaders import Loaders

_T = TypeVar("_T")


class RequestDatabase:
    """One read transaction per GraphQL request, opened on first use (db/reads.py).

    Every field of a response then reads the same snapshot, so totals agree across fields.
    Resolvers run concurrently but a transaction runs one call at a time: the lock serialises
    them (the loaders batch, so they are few).
    """

    def __init__(self, engine: AsyncEngine, reads: Reads | None = None) -> None:
        self.engine = engine
        self._reads = reads or Reads(engine, threads=0)
        self._open: AsyncExitStack | None = None
        self._session: ReadSession | None = None
        self._lock = asyncio.Lock()

    async def run(self, fn: Callable[[AsyncConnection], Awaitable[_T]]) -> _T:
        """`fn(conn)` in the request's transaction: the database and plain Python only."""
        async with self._lock:
            if self._session is None:
                stack = AsyncExitStack()
                self._session = await stack.enter_async_context(self._reads.session())
                self._open = stack
            return await self._session.run(fn)

    async def close(self) -> None:
        async with self._lock:
            if self._open is not None:
                stack, self._open, self._session = self._open, None, None
                await stack.aclose()


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
    reads: Reads | None = None,
) -> Context:
    from crabglamp.api.graphql.loaders import Loaders

    db = RequestDatabase(engine, reads)
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

    # The engine's own connections: a socket lives for hours and must not hold a reader thread.
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
