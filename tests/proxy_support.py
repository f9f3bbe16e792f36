"""Helpers of the proxy tests: live servers (in this process or as subprocesses), the fake
upstream, accounts, keys and prices."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import uvicorn
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from crabglamp.app import create_app
from crabglamp.db import read_transaction, write_transaction
from crabglamp.db.tables import table_of
from crabglamp.dev.fake_upstream import create_fake_upstream
from crabglamp.keys import CreatedKey, create_key
from crabglamp.models import Account, LlmEvent, Price, SpendReservation, VoiceEvent
from crabglamp.periods import utcnow
from crabglamp.proxy.ledger import month_spend
from crabglamp.proxy.reservation import MonthSpend, month_of
from crabglamp.settings import Settings
from devsupport.servers import Spawned, free_port, running, spawn, uvicorn_app

REPO = Path(__file__).resolve().parents[1]
# A model whose price makes the cap arithmetic exact: input is free, each output token costs
# 10,000 micro-cents, so max_tokens=1000 reserves exactly $0.10.
CAP_MODEL = "capped-test-model"
CAP_OUTPUT_MICROS_PER_TOKEN = 10_000


def _bound_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextlib.asynccontextmanager
async def serve(app: Starlette) -> AsyncIterator[str]:
    """Serve `app` with uvicorn in this event loop; yields its base URL."""
    sock = _bound_socket()
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, log_level="warning", lifespan="on", http="h11", ws="none", access_log=False
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        for _ in range(500):
            if server.started or task.done():
                break
            await asyncio.sleep(0.01)
        if task.done():
            task.result()
        assert server.started, "the server did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


def write_config(path: Path, upstream_url: str, **proxy: Any) -> Path:
    lines = ["[proxy]"]
    for name, value in proxy.items():
        lines.append(f"{name} = {str(value).lower() if isinstance(value, bool) else value}")
    # Every provider the catalog names answers from the fake (in its own usage shape).
    for provider in ("openai", "anthropic", "google", "mistral"):
        lines += [
            "",
            f"[providers.{provider}]",
            f'url = "{upstream_url}/v1"',
            'key = "sk-upstream-provider-key"',
        ]
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class Stack:
    url: str
    upstream_url: str
    app: Starlette
    fake: Starlette

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"


@contextlib.asynccontextmanager
async def proxy_stack(
    engine: AsyncEngine, db_url: str, tmp_path: Path, **proxy: Any
) -> AsyncIterator[Stack]:
    """The fake upstream and the whole app, both live on free ports of this process."""
    fake = create_fake_upstream(keep_seen=True)
    async with serve(fake) as upstream_url:
        config = write_config(tmp_path / "upstreams.toml", upstream_url, **proxy)
        settings = dataclasses.replace(Settings(), database_url=db_url, upstream_config=str(config))
        app = create_app(settings, engine=engine)
        async with serve(app) as url:
            yield Stack(url, upstream_url, app, fake)


async def make_account(engine: AsyncEngine, name: str = "Acme") -> uuid.UUID:
    account_id = uuid.uuid4()
    async with write_transaction(engine) as conn:
        await conn.execute(table_of(Account).insert().values(id=account_id, name=name))
    return account_id


async def make_key(
    engine: AsyncEngine,
    account_id: uuid.UUID | None = None,
    cap_micros: int | None = None,
    provider: str | None = None,
    name: str = "prod",
) -> CreatedKey:
    account_id = account_id or await make_account(engine)
    async with write_transaction(engine) as conn:
        created = await create_key(conn, account_id, name, provider, cap_micros)
    assert isinstance(created, CreatedKey), created
    return created


async def add_cap_model_price(engine: AsyncEngine) -> None:
    async with write_transaction(engine) as conn:
        await conn.execute(
            table_of(Price)
            .insert()
            .values(  # type: ignore[attr-defined]
                provider="openai",
                model=CAP_MODEL,
                kind="llm",
                input_micros_per_mtok=0,
                output_micros_per_mtok=CAP_OUTPUT_MICROS_PER_TOKEN * 1_000_000,
                micros_per_mchar=0,
                valid_from=date(2024, 1, 1),
            )
        )


async def spend(engine: AsyncEngine, key_id: uuid.UUID) -> MonthSpend:
    async with read_transaction(engine) as conn:
        return await month_spend(conn, key_id, month_of(utcnow()))


async def reservations(engine: AsyncEngine) -> int:
    async with read_transaction(engine) as conn:
        table = table_of(SpendReservation)
        return int((await conn.execute(select(func.count()).select_from(table))).scalar() or 0)


async def events(engine: AsyncEngine, key_id: uuid.UUID) -> list[dict[str, Any]]:
    table = table_of(LlmEvent)
    async with read_transaction(engine) as conn:
        rows = await conn.execute(
            select(table).where(table.c.key_id == key_id).order_by(table.c.ts)
        )
        return [dict(row._mapping) for row in rows]


async def voice_events(engine: AsyncEngine, key_id: uuid.UUID) -> list[dict[str, Any]]:
    table = table_of(VoiceEvent)
    async with read_transaction(engine) as conn:
        rows = await conn.execute(select(table).where(table.c.key_id == key_id))
        return [dict(row._mapping) for row in rows]


async def wait_until(condition: Any, within: float = 10.0, interval: float = 0.05) -> None:
    """Poll an async predicate (the server finishes its side of a request on its own time)."""
    deadline = time.monotonic() + within
    while True:
        if await condition():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(interval)


async def database_dump(db_url: str) -> str:
    """Everything the database holds, as text: SQLite's .dump, or pg_dump's output."""
    if db_url.startswith("sqlite"):
        import sqlite3

        path = db_url.split("///", 1)[1]
        with contextlib.closing(sqlite3.connect(path)) as conn:
            return "\n".join(conn.iterdump())
    url = db_url.replace("postgresql+asyncpg://", "postgresql://")
    done = await asyncio.create_subprocess_exec(
        "pg_dump", "--data-only", url, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await done.communicate()
    assert done.returncode == 0, err.decode()
    return out.decode()


# Servers as processes of their own (two sharing a database; kill -9)


def start_server(db_url: str, config: Path, log: Path, workers: int = 1) -> Spawned:
    """The app under uvicorn; appends to `log`, so that a restarted server keeps one log."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "CRABGLAMP_UPSTREAM_CONFIG": str(config),
        "PYTHONUNBUFFERED": "1",
    }
    command = uvicorn_app(port, workers=workers, access_log=False)
    return spawn(command, port=port, log=log, env=env, cwd=REPO, ready="/healthz", append=True)


@contextlib.contextmanager
def fake_upstream_process(log: Path) -> Iterator[str]:
    port = free_port()
    command = [sys.executable, "-m", "crabglamp.cli", "fake-upstream", "--port", str(port)]
    with running(
        command, port=port, log=log, cwd=REPO, ready="/v1/models", within=30, append=True
    ) as fake:
        yield fake.url


async def table_sql(engine: AsyncEngine, statement: str) -> list[Any]:
    async with read_transaction(engine) as conn:
        return list(await conn.execute(text(statement)))
