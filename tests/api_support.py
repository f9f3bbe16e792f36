"""Shared by the usage-API tests: a test signing key, tokens, a seeded world, an in-process app.

Tokens are signed by a key of the tests' own and verified through the real `Authenticator`
(Settings.clerk_jwt_key), exactly as Clerk's would be.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from clocks import earlier_this_month
from crabglamp.app import create_app
from crabglamp.db import make_engine, write_transaction
from crabglamp.db.tables import table_of
from crabglamp.dev.devtokens.signing import sign_session_token
from crabglamp.ingest.ingestor import Ingestor
from crabglamp.ingest.records import ComputeRecord, LlmRecord, Record, VoiceRecord
from crabglamp.migrate import upgrade
from crabglamp.models import Account, Agent, Member, PlainVm, VirtualKey
from crabglamp.settings import Settings
from devsupport.servers import free_port, running

ISSUER = "https://clerk.tests.crabglamp.invalid"
AZP = "http://testserver"
MONTH = "2026-10"
MONTH_START = date(2026, 10, 1)
MONTH_DAYS = 31


@cache
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem() -> str:
    return (
        signing_key()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def settings_for(db_url: str, production: bool = False) -> Settings:
    return Settings(
        database_url=db_url,
        production=production,
        clerk_jwt_key=public_pem(),
        clerk_issuer=ISSUER,
        clerk_authorized_parties=(AZP,),
    )


def token(
    user_id: str, org_id: str | None = None, org_role: str | None = None, admin: bool = False
) -> str:
    return sign_session_token(
        signing_key(),
        issuer=ISSUER,
        azp=AZP,
        user_id=user_id,
        org_id=org_id,
        org_role=org_role,
        admin=admin,
    )


def bearer(user_id: str, **kwargs: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(user_id, **kwargs)}"}


# Callers of the seeded world
ALICE = {"user_id": "user_alice", "org_id": "org_acme", "org_role": "admin"}  # Acme's admin
BOB = {"user_id": "user_bob", "org_id": "org_acme", "org_role": "member"}  # Acme's member
GINA = {"user_id": "user_gina", "org_id": "org_globex", "org_role": "admin"}  # Globex's admin
CAROL = {"user_id": "user_carol"}  # personal account, no organisation
ROOT = {"user_id": "user_root", "admin": True}  # platform admin, no account of its own


@dataclass(slots=True)
class World:
    acme: uuid.UUID
    globex: uuid.UUID
    carol: uuid.UUID
    support_bot: uuid.UUID  # Acme's agents
    batch_agent: uuid.UUID
    globex_agent: uuid.UUID
    build_box: uuid.UUID  # Acme's plain VM
    prod_key: uuid.UUID  # Acme: openai, capped 500.00, bound to support_bot
    dev_key: uuid.UUID  # Acme: anthropic, capped 10.00
    quiet_key: uuid.UUID  # Acme: openai, uncapped, never used
    globex_key: uuid.UUID
    carol_key: uuid.UUID
    events: list[Record] = field(default_factory=list)


def _at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 10, day, hour, minute, tzinfo=UTC)


async def seed(engine: AsyncEngine, now: datetime | None = None) -> World:
    """Three accounts and a month (2026-10) of LLM, voice and compute, plus LLM spend in the
    current month (what VirtualKey.accruedCents counts)."""
    ids = {name: uuid.uuid4() for name in World.__slots__ if name != "events"}
    world = World(**ids)
    accounts = [
        {"id": world.acme, "name": "Acme", "clerk_org_id": "org_acme", "owner_user_id": None},
        {"id": world.globex, "name": "Globex", "clerk_org_id": "org_globex", "owner_user_id": None},
        {"id": world.carol, "name": "Carol", "clerk_org_id": None, "owner_user_id": "user_carol"},
    ]
    members = [
        {"account_id": world.acme, "user_id": "user_bob", "role": "member"},
        {"account_id": world.carol, "user_id": "user_dave", "role": "admin"},
    ]
    agents = [
        {"id": world.support_bot, "account_id": world.acme, "name": "support-bot"},
        {"id": world.batch_agent, "account_id": world.acme, "name": "batch"},
        {"id": world.globex_agent, "account_id": world.globex, "name": "globex-bot"},
    ]
    vms = [
        {
            "id": world.build_box,
            "account_id": world.acme,
            "name": "build-box",
            "cents_per_hour_micros": 12_500_000,
        }
    ]
    created = datetime(2026, 9, 1, tzinfo=UTC)

    def key(
        key_id: uuid.UUID,
        account: uuid.UUID,
        name: str,
        provider: str | None,
        cap_cents: int | None,
        agent: uuid.UUID | None = None,
    ) -> dict[str, Any]:
        return {
            "id": key_id,
            "account_id": account,
            "name": name,
            "provider": provider,
            "agent_id": agent,
            "spend_cap_micros": None if cap_cents is None else cap_cents * 1_000_000,
            "status": "active",
            "secret_hash": uuid.uuid4().hex,
            "secret_prefix": f"cg-{name[:4]}",
            "created_at": created,
        }

    keys = [
        key(world.prod_key, world.acme, "prod", "openai", 50_000, world.support_bot),
        key(world.dev_key, world.acme, "dev", "anthropic", 1_000),
        key(world.quiet_key, world.acme, "quiet", "openai", None),
        key(world.globex_key, world.globex, "globex-prod", "openai", 20_000),
        key(world.carol_key, world.carol, "carol", None, 500),
    ]
    async with write_transaction(engine) as conn:
        for model, rows in (
            (Account, accounts),
            (Member, members),
            (Agent, agents),
            (PlainVm, vms),
            (VirtualKey, keys),
        ):
            await conn.execute(table_of(model).insert(), rows)

    rng = random.Random(20261003)
    events: list[Record] = []
    llm_models = [
        ("openai", "gpt-4o-mini"),
        ("openai", "gpt-4o"),
        ("anthropic", "claude-3-5-sonnet"),
    ]
    plan = [
        (world.prod_key, world.support_bot, [0, 1]),
        (world.prod_key, None, [0]),
        (world.dev_key, None, [2]),
        (world.dev_key, world.batch_agent, [2]),
        (world.globex_key, world.globex_agent, [0, 1]),
        (world.carol_key, None, [0, 2]),
    ]
    n = 0
    for key_id, agent, model_choices in plan:
        for _ in range(14):
            provider, model = llm_models[rng.choice(model_choices)]
            n += 1
            events.append(
                LlmRecord(
                    id=f"llm-{n}",
                    ts=_at(rng.randint(1, MONTH_DAYS), rng.randint(0, 23), rng.randint(0, 59)),
                    key_id=key_id,
                    provider=provider,
                    model=model,
                    input_tokens=rng.randint(10, 5000),
                    output_tokens=rng.randint(1, 900),
                    # Sub-cent costs with micro-cent digits: sums must stay exact.
                    cost_micros=rng.randint(1, 9_000_000),
                    agent_id=agent,
                )
            )
    # Four requests at the same instant: the drill-down orders them by id.
    for i in range(4):
        events.append(
            LlmRecord(
                id=f"llm-same-{i}",
                ts=_at(7, 9, 30),
                key_id=world.prod_key,
                provider="openai",
                model="gpt-4o-mini",
                input_tokens=100,
                output_tokens=10,
                cost_micros=31_500,
                agent_id=world.support_bot,
            )
        )
    for account, agent in (
        (world.acme, world.support_bot),
        (world.acme, None),
        (world.globex, world.globex_agent),
    ):
        for _ in range(6):
            n += 1
            chars = rng.randint(100, 4000)
            events.append(
                VoiceRecord(
                    id=f"voice-{n}",
                    ts=_at(rng.randint(1, MONTH_DAYS), rng.randint(0, 23)),
                    account_id=account,
                    voice_model=rng.choice(["tts-1", "tts-1-hd"]),
                    characters=chars,
                    cost_micros=chars * 1_500,
                    agent_id=agent,
                )
            )
    compute = [
        # Across midnight, so the day split shows.
        (world.acme, world.support_bot, None, "running", _at(3, 20), _at(4, 6, 30), 8_000_000),
        (world.acme, world.support_bot, None, "paused", _at(4, 6, 30), _at(4, 9), 1_000_000),
        (world.acme, world.batch_agent, None, "running", _at(10, 0), _at(12, 0), 8_000_000),
        (world.acme, None, world.build_box, "running", _at(15, 22), _at(16, 2, 15), 12_500_000),
        (world.acme, None, None, "running", _at(20, 1), _at(20, 2), 3_333_333),
        (world.globex, world.globex_agent, None, "running", _at(5, 0), _at(6, 0), 8_000_000),
    ]
    for account, agent, vm, state, start, end, rate in compute:
        n += 1
        events.append(
            ComputeRecord(
                id=f"compute-{n}",
                account_id=account,
                start=start,
                end=end,
                cents_per_hour_micros=rate,
                state=state,
                agent_id=agent,
                plain_vm_id=vm,
            )
        )
    # This month's spend: what the key cards accrue.
    moment = earlier_this_month(
        (now or datetime.now(UTC)).replace(microsecond=0), timedelta(minutes=5)
    )
    for i, (key_id, cost) in enumerate(
        ((world.prod_key, 12_345_678), (world.prod_key, 1_000_001), (world.dev_key, 250_000_000))
    ):
        events.append(
            LlmRecord(
                id=f"llm-now-{i}",
                ts=moment,
                key_id=key_id,
                provider="openai" if key_id == world.prod_key else "anthropic",
                model="gpt-4o-mini" if key_id == world.prod_key else "claude-3-5-sonnet",
                input_tokens=10,
                output_tokens=10,
                cost_micros=cost,
            )
        )
    await Ingestor(engine).record(events)
    world.events = events
    return world


@asynccontextmanager
async def serve(engine: AsyncEngine, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The whole app in-process (lifespan included) on the test's engine."""
    app = create_app(replace(settings), engine)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=AZP) as client,
    ):
        yield client


async def graphql(
    client: httpx.AsyncClient,
    query: str,
    variables: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    response = await client.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@contextmanager
def count_statements(engine: AsyncEngine) -> Iterator[list[str]]:
    """Every SQL statement the engine sends while inside (transaction control excluded)."""
    seen: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.strip().upper() not in {"BEGIN", "BEGIN IMMEDIATE", "COMMIT", "ROLLBACK"}:
            seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", before)


# A live server: `crabglamp serve` in a subprocess, on a free port and a temporary SQLite file


@contextmanager
def live_server(directory: Path, seeded: bool = True) -> Iterator[tuple[str, World | None]]:
    """(base URL, the seeded world) of a server verifying tokens of `token()`."""
    url = f"sqlite+aiosqlite:///{directory / 'live.db'}"

    async def prepare() -> World | None:
        engine = make_engine(url)
        try:
            await upgrade(engine)
            return await seed(engine) if seeded else None
        finally:
            await engine.dispose()

    world = asyncio.run(prepare())
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "CLERK_JWT_KEY": public_pem(),
        "CLERK_ISSUER": ISSUER,
        "CLERK_AUTHORIZED_PARTIES": AZP,
        "CRABGLAMP_PRODUCTION": "",
    }
    command = [sys.executable, "-m", "crabglamp.cli", "serve", "--port", str(port)]
    with running(
        command, port=port, log=directory / "server.log", env=env, cwd=directory, within=30
    ) as server:
        yield server.url, world
