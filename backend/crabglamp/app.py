"""The ASGI application: one Starlette app that every route of the product hangs off."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from crabglamp.auth import Authenticator
from crabglamp.db import make_engine, read_transaction
from crabglamp.devtokens import dev_routes, dev_settings
from crabglamp.ingest import Ingestor
from crabglamp.prices import load_price_book
from crabglamp.settings import Settings
from crabglamp.writer import GroupCommitWriter


@dataclass(slots=True)
class Services:
    """What every request handler may use; built once per process in the lifespan."""

    settings: Settings
    engine: AsyncEngine
    ingestor: Ingestor
    writer: GroupCommitWriter
    authenticator: Authenticator


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


async def healthz(_request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    try:
        async with read_transaction(services(request).engine) as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:  # any database failure means not ready
        return JSONResponse(
            {
                "status": "unavailable",
                "error": {"code": "database_unreachable", "message": str(exc)},
            },
            status_code=503,
        )
    return JSONResponse({"status": "ok"})


def _routes(settings: Settings) -> list[BaseRoute]:
    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        # Development sign-in with locally signed tokens; never mounted in production.
        *([] if settings.production else dev_routes()),
    ]


def create_app(settings: Settings | None = None, engine: AsyncEngine | None = None) -> Starlette:
    settings = settings or Settings.from_env()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        own_engine = engine is None
        db = engine or make_engine(settings.database_url)
        async with db.connect() as conn:
            prices = await load_price_book(conn)
        ingestor = Ingestor(db, prices)
        # Outside production and without CLERK_JWT_KEY this verifies the local dev key's tokens.
        authenticator = Authenticator(dev_settings(settings))
        writer = GroupCommitWriter(ingestor)
        await writer.start()
        app.state.services = Services(settings, db, ingestor, writer, authenticator)
        try:
            yield {}
        finally:
            await writer.stop()
            if own_engine:
                await db.dispose()

    return Starlette(routes=_routes(settings), lifespan=lifespan)
