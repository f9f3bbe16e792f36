"""The ASGI application: one Starlette app that every route of the product hangs off."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.types import Receive, Scope, Send

from crabglamp.api.auth import Authenticator
from crabglamp.api.dashboard import dashboard_routes
from crabglamp.api.graphql.view import GraphQLView
from crabglamp.api.rest import rest_routes
from crabglamp.api.services import Services, services
from crabglamp.db import make_engine, read_transaction
from crabglamp.db.changes import ChangeFeed
from crabglamp.db.reads import Reads
from crabglamp.ingest.ingestor import Ingestor
from crabglamp.jobs.watch import BackgroundJobs
from crabglamp.prices import load_price_book
from crabglamp.proxy.routes import ProxySlot, proxy_routes
from crabglamp.proxy.runtime import Proxy
from crabglamp.proxy.upstreams import load_proxy_config
from crabglamp.proxy.writer import GroupCommitWriter
from crabglamp.settings import Settings


async def healthz(_request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    try:
        async with read_transaction(services(request).engine) as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:  # any database failure means not ready
        settings = services(request).settings
        # The driver's message can name hosts, users and paths: only development shows it.
        message = "the database is unreachable" if settings.production else str(exc)
        return JSONResponse(
            {
                "status": "unavailable",
                "error": {"code": "database_unreachable", "message": message},
            },
            status_code=503,
        )
    return JSONResponse({"status": "ok"})


def _dev_routes() -> list[BaseRoute]:
    # The one place product code reaches into dev/ (ARCHITECTURE.md): lazily, never in production.
    from crabglamp.dev.devtokens.routes import dev_routes

    return dev_routes()


def _dev_auth(settings: Settings) -> Settings:
    """Outside production and without CLERK_JWT_KEY, verify the local dev key's tokens."""
    from crabglamp.dev.devtokens.signing import dev_settings

    return dev_settings(settings)


def _routes(settings: Settings, proxy: ProxySlot) -> list[BaseRoute]:
    graphql = GraphQLView(settings)
    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/graphql", graphql),
        # The same view over WebSocket: the usageChanged subscription (live updates).
        WebSocketRoute("/graphql", graphql),
        *rest_routes(),
        *proxy_routes(proxy, settings.metrics_token, production=settings.production),
        # Development sign-in with locally signed tokens; never mounted in production.
        *([] if settings.production else _dev_routes()),
        # `/`, the dashboard SPA and the docs; last, so the API's paths win.
        *dashboard_routes(settings),
    ]


class _App(Starlette):
    """Starlette, except that a proxied request (a POST to a metered route) goes straight to its
    endpoint. Starlette's error and exception middleware and its router, each a layer of calls
    around the request and around each message it sends, cost ~17 µs a request (25 µs through
    them against 8 µs straight, measured on the 2-core machine of BENCHMARKS.md) and give it
    nothing: the proxy answers every failure itself, in OpenAI's shape (proxy/runtime.py). Under
    a root path, or for any other request, Starlette routes as usual."""

    def __init__(self, direct: Mapping[str, Callable[..., Awaitable[None]]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._direct = direct

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            endpoint = self._direct.get(scope["path"])
            if endpoint is not None:
                scope["app"] = self
                await endpoint(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def create_app(
    settings: Settings | None = None,
    engine: AsyncEngine | None = None,
    background: bool | None = None,
) -> Starlette:
    """`background`: run anomaly detection, alerts and billing reports (watch.py); by default a
    served app (no engine given) does, unless CRABGLAMP_BACKGROUND=0."""
    settings = settings or Settings.from_env()
    slot = ProxySlot()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        own_engine = engine is None
        db = engine or make_engine(settings.database_url)
        async with db.connect() as conn:
            prices = await load_price_book(conn)
        ingestor = Ingestor(db, prices)
        # Outside production and without CLERK_JWT_KEY this verifies the local dev key's tokens.
        authenticator = Authenticator(settings if settings.production else _dev_auth(settings))
        writer = GroupCommitWriter(ingestor)
        await writer.start()
        proxy = Proxy(db, writer, prices, load_proxy_config(settings.upstream_config))
        await proxy.start()
        slot.proxy = proxy
        # Live updates: LISTEN (PostgreSQL) or poll the change marks (SQLite) in this process.
        changes = ChangeFeed(db, settings.live.poll_seconds, settings.live.max_per_account)
        await changes.start()
        reads = Reads(db)
        app.state.services = Services(
            settings, db, ingestor, writer, authenticator, reads, proxy=proxy, changes=changes
        )
        jobs = None
        if background if background is not None else (own_engine and settings.background):
            # Its failures are counted where /metrics reads: the proxy's registry.
            jobs = BackgroundJobs(db, settings, proxy.metrics)
            await jobs.start()
        try:
            yield {}
        finally:
            if jobs is not None:
                await jobs.stop()
            slot.proxy = None
            await changes.stop()
            await proxy.close()
            await writer.stop()
            await reads.close()
            if own_engine:
                await db.dispose()

    return _App(slot.metered, routes=_routes(settings, slot), lifespan=lifespan)
