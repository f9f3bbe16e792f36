"""Production settings: no GraphiQL, no introspection, masked bugs, limits on every document."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from api_support import ALICE, MONTH, World, bearer, serve, settings_for
from crabglamp.db import write_transaction


@pytest.fixture
async def production(
    engine: AsyncEngine, db_url: str, world: World
) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(engine, settings_for(db_url, production=True)) as client:
        yield client


async def _post(client: httpx.AsyncClient, query: str, **headers: str) -> httpx.Response:
    return await client.post(
        "/graphql", json={"query": query}, headers={**bearer(**ALICE), **headers}
    )


def _messages(response: httpx.Response) -> list[str]:
    body: dict[str, Any] = response.json()
    return [error["message"] for error in body.get("errors", [])]


def _nest(fields: list[str], leaf: str) -> str:
    inner = leaf
    for name in reversed(fields):
        inner = f"{name} {{ {inner} }}"
    return f"{{ {inner} }}"


async def test_limits_in_production(production: httpx.AsyncClient, world: World) -> None:
    # Depth (Strawberry counts the root field as 0): 10 is served, 11 is refused.
    path = ["virtualKeys", "account", "usage", "llm", "keys", "virtualKey", "account"]
    ten = _nest([f'account(id: "{world.acme}")', *path, "invoice", "lines"], "axis")
    eleven = _nest([f'account(id: "{world.acme}")', *path, "usage", "llm", "keys"], "keyId")
    served = await _post(production, ten)
    assert served.status_code == 200 and "errors" not in served.json(), served.text
    refused = await _post(production, eleven)
    assert any("exceeds maximum operation depth" in m for m in _messages(refused))
    assert "data" not in refused.json()

    # Aliases: 15 through a fragment spread twice pass... 16 do not.
    def aliases(count: int) -> str:
        half = " ".join(f"a{i}: id" for i in range(count // 2))
        rest = "extra: name" if count % 2 else ""
        return f"fragment F on VirtualKey {{ {half} }} {{ virtualKeys {{ ...F ...F {rest} }} }}"

    assert "errors" not in (await _post(production, aliases(15))).json()
    assert "16 aliases found. Allowed: 15" in _messages(await _post(production, aliases(16)))

    # Circular fragments: a validation error, not a server error.
    circular = await _post(
        production,
        "fragment A on VirtualKey { name ...B } fragment B on VirtualKey { id ...A }"
        " { virtualKeys { ...A } }",
    )
    assert circular.status_code == 200
    assert any("Cannot spread fragment 'A' within itself" in m for m in _messages(circular))
    newer = await _post(
        production,
        "fragment A on VirtualKey { ...A } { virtualKeys { ...A } }",
        Accept="application/graphql-response+json",
    )
    assert newer.status_code == 400 and "data" not in newer.json()

    # Cost: lists inside lists multiply.
    costly = await _post(
        production,
        "{ accounts { virtualKeys { account { virtualKeys { account { virtualKeys { id } } } } } } }",
    )
    assert any("above the limit" in m for m in _messages(costly)), costly.text

    # Tokens.
    long = "{ " + " ".join(f"virtualKeys {{ {'id ' * 5}}}" for _ in range(400)) + " }"
    assert any("token" in m.lower() for m in _messages(await _post(production, long)))

    # Batches are off.
    batch = await production.post(
        "/graphql", json=[{"query": "{ __typename }"}] * 2, headers=bearer(**ALICE)
    )
    assert batch.status_code == 400


async def test_no_introspection_and_no_graphiql_in_production(
    production: httpx.AsyncClient,
) -> None:
    for query in ("{ __schema { types { name } } }", '{ __type(name: "Usage") { name } }'):
        assert any("introspection has been disabled" in m for m in _messages(
            await _post(production, query)
        ))  # fmt: skip
    page = await production.get("/graphql", headers={"Accept": "text/html", **bearer(**ALICE)})
    assert page.status_code == 404
    assert (await production.get("/graphql", headers={"Accept": "text/html"})).status_code == 401
    # __typename is not introspection of the schema: still answered.
    assert (await _post(production, "{ __typename }")).json() == {"data": {"__typename": "Query"}}


async def test_a_crash_is_masked_but_a_refusal_is_not(
    production: httpx.AsyncClient, engine: AsyncEngine, world: World
) -> None:
    async with write_transaction(engine) as conn:
        # Unfiltered usage reads the coarse rollup llm_daily_model; filtered, llm_daily.
        await conn.execute(text("DROP TABLE llm_daily"))
        await conn.execute(text("DROP TABLE llm_daily_model"))
    crashed = await _post(
        production, f'{{ usage(filter: {{month: "{MONTH}"}}) {{ llm {{ totalCents }} }} }}'
    )
    assert crashed.status_code == 200
    assert _messages(crashed) == ["Unexpected error."]
    assert "llm_daily" not in crashed.text and "Traceback" not in crashed.text
    forbidden = await _post(production, f'{{ virtualKeys(accountId: "{world.globex}") {{ id }} }}')
    error = forbidden.json()["errors"][0]
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert str(world.globex) in error["message"]
