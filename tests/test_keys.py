"""The key lifecycle service (keys.py) and `crabglamp key create`, on both engines."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from api_support import ALICE, BOB, GINA, World, bearer, seed, serve, settings_for
from crabglamp.cli import main
from crabglamp.db import make_engine, read_transaction, write_transaction
from crabglamp.db.tables import table_of
from crabglamp.key_secrets import hash_secret, is_well_formed
from crabglamp.keys import (
    AccountNotFound,
    CreatedKey,
    InvalidKeyInput,
    KeyNotFound,
    KeyRevoked,
    KeyView,
    RotatedKey,
    create_key,
    find_by_secret,
    retired_secrets,
    revoke_key,
    rotate_key,
    set_spend_cap,
)
from crabglamp.models import Agent, VirtualKey
from crabglamp.periods import utcnow
from proxy_support import database_dump, make_account, make_key


async def test_create_shows_the_secret_once_and_stores_only_its_hash(
    engine: AsyncEngine, db_url: str
) -> None:
    created = await make_key(engine, cap_micros=5_000_000, provider="openai")
    assert is_well_formed(created.secret)
    assert created.key.secret_prefix == created.secret[:12]
    assert created.key.spend_cap_micros == 5_000_000 and created.key.provider == "openai"
    table = table_of(VirtualKey)
    async with read_transaction(engine) as conn:
        row = (await conn.execute(select(table).where(table.c.id == created.key.id))).one()
        assert row.secret_hash == hash_secret(created.secret)
        match = await find_by_secret(conn, created.secret)
    assert match is not None and match.current and match.key.id == created.key.id
    assert created.secret not in await database_dump(db_url)


async def test_create_refuses_what_cannot_be_a_key(engine: AsyncEngine) -> None:
    account = await make_account(engine)
    other = await make_account(engine, "Other")
    foreign_agent = uuid.uuid4()
    async with write_transaction(engine) as conn:
        await conn.execute(
            table_of(Agent).insert().values(id=foreign_agent, account_id=other, name="bot")
        )
    async with write_transaction(engine) as conn:
        missing = await create_key(conn, uuid.uuid4(), "prod")
        blank = await create_key(conn, account, "   ")
        negative = await create_key(conn, account, "prod", spend_cap_micros=-1)
        bad_provider = await create_key(conn, account, "prod", provider="Open AI")
        wrong_agent = await create_key(conn, account, "prod", agent_id=foreign_agent)
    assert isinstance(missing, AccountNotFound)
    assert isinstance(blank, InvalidKeyInput) and blank.field == "name"
    assert isinstance(negative, InvalidKeyInput) and negative.field == "spendCapCents"
    assert isinstance(bad_provider, InvalidKeyInput) and bad_provider.field == "provider"
    assert isinstance(wrong_agent, InvalidKeyInput) and wrong_agent.field == "agentId"
    async with read_transaction(engine) as conn:
        table = table_of(VirtualKey)
        assert (await conn.execute(select(table.c.id))).all() == []


async def test_rotation_keeps_the_key_and_honours_the_grace_period(
    engine: AsyncEngine, db_url: str
) -> None:
    created = await make_key(engine, cap_micros=7_000_000)
    now = utcnow()
    async with write_transaction(engine) as conn:
        rotated = await rotate_key(conn, created.key.id, timedelta(minutes=10), now=now)
    assert isinstance(rotated, RotatedKey)
    assert rotated.key.id == created.key.id
    assert rotated.key.spend_cap_micros == 7_000_000
    assert rotated.secret != created.secret and is_well_formed(rotated.secret)
    assert rotated.previous_secret_expires_at == now + timedelta(minutes=10)
    async with read_transaction(engine) as conn:
        old = await find_by_secret(conn, created.secret)
        new = await find_by_secret(conn, rotated.secret)
        history = await retired_secrets(conn, created.key.id)
    assert new is not None and new.current and new.usable(now)
    assert old is not None and not old.current and old.key.id == created.key.id
    assert old.usable(now + timedelta(minutes=9))
    assert not old.usable(now + timedelta(minutes=10))
    assert [prefix for prefix, _ in history] == [created.key.secret_prefix]
    dump = await database_dump(db_url)
    assert created.secret not in dump and rotated.secret not in dump


async def test_rotation_without_grace_retires_the_old_secret_at_once(engine: AsyncEngine) -> None:
    created = await make_key(engine)
    async with write_transaction(engine) as conn:
        rotated = await rotate_key(conn, created.key.id)
    assert isinstance(rotated, RotatedKey) and rotated.previous_secret_expires_at is None
    async with read_transaction(engine) as conn:
        old = await find_by_secret(conn, created.secret)
    assert old is not None and not old.usable(utcnow())


async def test_revocation_stops_every_secret_of_the_key(engine: AsyncEngine) -> None:
    created = await make_key(engine)
    async with write_transaction(engine) as conn:
        rotated = await rotate_key(conn, created.key.id, timedelta(hours=1))
        assert isinstance(rotated, RotatedKey)
        revoked = await revoke_key(conn, created.key.id)
        again = await revoke_key(conn, created.key.id)
        rotate_revoked = await rotate_key(conn, created.key.id)
        cap_revoked = await set_spend_cap(conn, created.key.id, 1)
        missing = await revoke_key(conn, uuid.uuid4())
    assert isinstance(revoked, KeyView) and revoked.status == "revoked"
    assert isinstance(again, KeyView) and again.status == "revoked"
    assert isinstance(rotate_revoked, KeyRevoked)
    assert isinstance(cap_revoked, KeyRevoked)
    assert isinstance(missing, KeyNotFound)
    now = utcnow()
    async with read_transaction(engine) as conn:
        for secret in (created.secret, rotated.secret):
            match = await find_by_secret(conn, secret)
            assert match is not None and not match.usable(now)


async def test_a_cap_can_be_raised_lowered_and_removed(engine: AsyncEngine) -> None:
    created = await make_key(engine, cap_micros=1_000_000)
    key_id = created.key.id
    async with write_transaction(engine) as conn:
        raised = await set_spend_cap(conn, key_id, 9_000_000)
        lowered = await set_spend_cap(conn, key_id, 0)
        negative = await set_spend_cap(conn, key_id, -5)
        removed = await set_spend_cap(conn, key_id, None)
        missing = await set_spend_cap(conn, uuid.uuid4(), 1)
    assert isinstance(raised, KeyView) and raised.spend_cap_micros == 9_000_000
    assert isinstance(lowered, KeyView) and lowered.spend_cap_micros == 0
    assert isinstance(negative, InvalidKeyInput)
    assert isinstance(removed, KeyView) and removed.spend_cap_micros is None
    assert isinstance(missing, KeyNotFound)


def test_key_create_from_the_shell_prints_the_secret_once(
    db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def account() -> uuid.UUID:
        engine = make_engine(db_url)
        try:
            return await make_account(engine)
        finally:
            await engine.dispose()

    account_id = asyncio.run(account())
    monkeypatch.setenv("DATABASE_URL", db_url)
    code = main(
        [
            "key",
            "create",
            "--account",
            str(account_id),
            "--name",
            "ci",
            "--provider",
            "openai",
            "--cap",
            "250.5",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    secret = out.strip().splitlines()[-1]
    assert is_well_formed(secret)
    assert out.count(secret) == 1

    async def stored() -> KeyView:
        engine = make_engine(db_url)
        try:
            async with read_transaction(engine) as conn:
                match = await find_by_secret(conn, secret)
        finally:
            await engine.dispose()
        assert match is not None
        return match.key

    key = asyncio.run(stored())
    assert (key.name, key.provider, key.spend_cap_micros) == ("ci", "openai", 250_500_000)

    assert main(["key", "create", "--account", str(uuid.uuid4()), "--name", "x"]) == 1
    assert "no account" in capsys.readouterr().err


def test_created_key_result_carries_no_hash() -> None:
    assert "secret_hash" not in CreatedKey.__dataclass_fields__
    assert "secret_hash" not in KeyView.__dataclass_fields__


# The same lifecycle through GraphQL: typed results, account admins only

MUTATIONS = """
mutation Create($input: CreateVirtualKeyInput!) {
  createVirtualKey(input: $input) {
    __typename
    ... on CreateVirtualKeySuccess { secret key { id name provider spendCapCents status } }
    ... on Error { message code }
    ... on InvalidInputError { field }
  }
}
mutation Rotate($keyId: ID!, $grace: Int!) {
  rotateVirtualKey(keyId: $keyId, gracePeriodSeconds: $grace) {
    __typename
    ... on RotateVirtualKeySuccess { secret previousSecretExpiresAt key { id spendCapCents } }
    ... on Error { message code }
  }
}
mutation Revoke($keyId: ID!) {
  revokeVirtualKey(keyId: $keyId) {
    __typename
    ... on RevokeVirtualKeySuccess { key { id status } }
    ... on Error { message code }
  }
}
mutation Cap($keyId: ID!, $cents: Float) {
  setSpendCap(keyId: $keyId, spendCapCents: $cents) {
    __typename
    ... on SetSpendCapSuccess { key { id spendCapCents } }
    ... on Error { message code }
    ... on InvalidInputError { field }
  }
}
"""


async def _mutate(
    client: httpx.AsyncClient, name: str, variables: dict[str, Any], caller: dict[str, Any]
) -> dict[str, Any]:
    response = await client.post(
        "/graphql",
        json={"query": MUTATIONS, "variables": variables, "operationName": name},
        headers=bearer(**caller),
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert "errors" not in answer, answer
    result: dict[str, Any] = next(iter(answer["data"].values()))
    return result


@pytest.fixture
async def api(engine: AsyncEngine, db_url: str) -> AsyncIterator[tuple[httpx.AsyncClient, World]]:
    world = await seed(engine)
    async with serve(engine, settings_for(db_url)) as client:
        yield client, world


async def test_an_account_admin_creates_a_key_and_sees_its_secret_once(
    api: tuple[httpx.AsyncClient, World], engine: AsyncEngine
) -> None:
    client, world = api
    created = await _mutate(
        client,
        "Create",
        {
            "input": {
                "accountId": str(world.acme),
                "name": "ci",
                "provider": "openai",
                "spendCapCents": 1234.5,
            }
        },
        ALICE,
    )
    assert created["__typename"] == "CreateVirtualKeySuccess"
    assert created["key"]["spendCapCents"] == 1234.5 and created["key"]["status"] == "active"
    assert is_well_formed(created["secret"])
    async with read_transaction(engine) as conn:
        match = await find_by_secret(conn, created["secret"])
    assert match is not None and str(match.key.id) == created["key"]["id"]

    member = await _mutate(
        client, "Create", {"input": {"accountId": str(world.acme), "name": "x"}}, BOB
    )
    outsider = await _mutate(
        client, "Create", {"input": {"accountId": str(world.acme), "name": "x"}}, GINA
    )
    negative = await _mutate(
        client,
        "Create",
        {"input": {"accountId": str(world.acme), "name": "x", "spendCapCents": -1}},
        ALICE,
    )
    assert (member["__typename"], member["code"]) == ("NotAllowedError", "FORBIDDEN")
    assert outsider["__typename"] == "AccountNotFoundError"
    assert (negative["__typename"], negative["field"]) == ("InvalidInputError", "spendCapCents")


async def test_rotate_revoke_and_cap_through_graphql(
    api: tuple[httpx.AsyncClient, World], engine: AsyncEngine
) -> None:
    client, world = api
    key_id = str(world.prod_key)
    rotated = await _mutate(client, "Rotate", {"keyId": key_id, "grace": 3600}, ALICE)
    assert rotated["__typename"] == "RotateVirtualKeySuccess"
    assert rotated["key"] == {"id": key_id, "spendCapCents": 50_000.0}
    assert is_well_formed(rotated["secret"]) and rotated["previousSecretExpiresAt"] is not None

    hidden = await _mutate(client, "Rotate", {"keyId": key_id, "grace": 0}, GINA)
    forbidden = await _mutate(client, "Cap", {"keyId": key_id, "cents": 1.0}, BOB)
    assert hidden["__typename"] == "KeyNotFoundError"
    assert forbidden["__typename"] == "NotAllowedError"

    lowered = await _mutate(client, "Cap", {"keyId": key_id, "cents": 0.5}, ALICE)
    removed = await _mutate(client, "Cap", {"keyId": key_id, "cents": None}, ALICE)
    invalid = await _mutate(client, "Cap", {"keyId": key_id, "cents": -3}, ALICE)
    assert lowered["key"]["spendCapCents"] == 0.5
    assert removed["key"]["spendCapCents"] is None
    assert (invalid["__typename"], invalid["field"]) == ("InvalidInputError", "spendCapCents")

    revoked = await _mutate(client, "Revoke", {"keyId": key_id}, ALICE)
    assert revoked["key"]["status"] == "revoked"
    after = await _mutate(client, "Cap", {"keyId": key_id, "cents": 10}, ALICE)
    rotate_after = await _mutate(client, "Rotate", {"keyId": key_id, "grace": 0}, ALICE)
    assert after["__typename"] == "KeyRevokedError"
    assert rotate_after["__typename"] == "KeyRevokedError"
    async with read_transaction(engine) as conn:
        match = await find_by_secret(conn, rotated["secret"])
    assert match is not None and not match.usable(utcnow())
