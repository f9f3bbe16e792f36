"""The REST API's answers to bad and oversized input: 4xx in its error shape, nothing written,
and the cheap checks before the expensive work. Both engines."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from api_support import ALICE, MONTH, World, bearer, seed, serve, settings_for
from crabglamp.db import read_transaction
from crabglamp.db.tables import table_of
from crabglamp.models import LlmEvent


@pytest.fixture
async def world(engine: AsyncEngine) -> World:
    return await seed(engine)


@pytest.fixture
async def client(
    engine: AsyncEngine, db_url: str, world: World
) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(engine, settings_for(db_url, production=True)) as client:
        yield client


async def test_a_nul_character_in_a_name_filter_is_a_400(client: httpx.AsyncClient) -> None:
    # PostgreSQL's text cannot hold NUL: the query itself would fail there.
    for parameter in ("model", "provider", "voiceModel"):
        response = await client.get(
            f"/api/usage?month={MONTH}&{parameter}=a%00b", headers=bearer(**ALICE)
        )
        assert response.status_code == 400, (parameter, response.text)
        error = response.json()["error"]
        assert error["code"] == "invalid_parameter"
        assert error["message"].startswith(f"{parameter}:")
    # The same filter through GraphQL.
    answer = await client.post(
        "/graphql",
        json={
            "query": "query ($m: String) { usage(filter: {model: $m}) { llm { totalCents } } }",
            "variables": {"m": "a\u0000b"},
        },
        headers=bearer(**ALICE),
    )
    (error,) = answer.json()["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "argument": "model"}


async def _llm_events(engine: AsyncEngine) -> int:
    async with read_transaction(engine) as conn:
        found = await conn.execute(select(func.count()).select_from(table_of(LlmEvent)))
        return int(found.scalar_one())


async def test_a_caller_who_administers_nothing_is_refused_before_the_body_is_parsed(
    client: httpx.AsyncClient, engine: AsyncEngine, world: World
) -> None:
    before = await _llm_events(engine)
    stranger = bearer(user_id="user_nobody")
    headers = {**stranger, "Content-Type": "application/x-ndjson"}
    # Not even JSON: the refusal does not depend on the body, which is never parsed.
    garbage = await client.post("/api/events", content=b"{not json\n" * 1000, headers=headers)
    assert garbage.status_code == 403, garbage.text
    assert garbage.json()["error"] == {
        "code": "forbidden",
        "message": "you administer no account: there is nothing you may write",
    }
    line = {
        "type": "llm",
        "id": "stranger-1",
        "ts": "2026-10-09T08:00:00Z",
        "keyId": str(world.prod_key),
        "provider": "openai",
        "model": "gpt-4o-mini",
        "inputTokens": 1,
        "outputTokens": 1,
        "costCents": 1,
    }
    valid = await client.post(
        "/api/events", content=json.dumps(line).encode() + b"\n", headers=headers
    )
    assert valid.status_code == 403
    assert await _llm_events(engine) == before
