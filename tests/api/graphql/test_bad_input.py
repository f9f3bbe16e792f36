"""Bad input to /graphql is a 4xx that says what is wrong and writes nothing; production names
nothing of the schema that the caller did not ask for (no "Did you mean …?")."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from api_support import ALICE, World, bearer, serve, settings_for
from crabglamp.api.graphql.extensions.limits import MAX_TOKENS
from crabglamp.api.graphql.view import MAX_BODY_BYTES
from crabglamp.db import read_transaction
from crabglamp.db.tables import table_of
from crabglamp.models import VirtualKey


@pytest.fixture
async def production(
    engine: AsyncEngine, db_url: str, world: World
) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(engine, settings_for(db_url, production=True)) as client:
        yield client


async def _post(client: httpx.AsyncClient, body: dict[str, Any]) -> list[str]:
    response = await client.post("/graphql", json=body, headers=bearer(**ALICE))
    assert response.status_code == 200, response.text
    return [error["message"] for error in response.json()["errors"]]


# Each misspelt: a field, an argument, a type, an input field in a variable and in a literal,
# an enum value.
MISSPELT: list[dict[str, Any]] = [
    {"query": "{ acounts { id } }"},
    {"query": "{ virtualKeys(acountId: null) { id } }"},
    {"query": "query ($f: UsageFiltr) { __typename }"},
    {
        "query": "query ($f: UsageFilter) { usage(filter: $f) { llm { totalCents } } }",
        "variables": {"f": {"mnth": "2026-10"}},
    },
    {"query": '{ usage(filter: {mnth: "2026-10"}) { llm { totalCents } } }'},
    {"query": "{ alertDeliveries(status: DELIVERD) { id } }"},
]


async def test_production_makes_no_suggestions(
    production: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    for body in MISSPELT:
        # Development helps the developer ...
        assert any("Did you mean" in m for m in await _post(client, body)), body
        # ... production still says what is wrong, but not what exists instead.
        messages = await _post(production, body)
        assert messages, body
        assert not any("Did you mean" in m for m in messages), (body, messages)
        assert not any(
            word in m for m in messages for word in ("'accounts'", "'accountId'", "'month'")
        ), messages
    (message,) = await _post(production, MISSPELT[0])
    assert message == "Cannot query field 'acounts' on type 'Query'."


@pytest.mark.parametrize("body", [b'"hello"', b"123", b"null", b"true"])
async def test_a_body_that_is_not_a_graphql_request_is_a_400(
    production: httpx.AsyncClient, body: bytes
) -> None:
    response = await production.post(
        "/graphql",
        content=body,
        headers={**bearer(**ALICE), "Content-Type": "application/json"},
    )
    assert response.status_code == 400, response.text
    assert response.json()["errors"][0]["message"]


async def test_deeply_nested_variables_are_a_400(production: httpx.AsyncClient) -> None:
    # Both within the size limit: nesting alone is the problem.
    objects = b'{"a":' * 20_000 + b"1" + b"}" * 20_000
    arrays = b"[" * 100_000 + b"]" * 100_000
    for body in (
        b'{"query": "{ __typename }", "variables": ' + objects + b"}",
        b'{"query": "{ __typename }", "variables": {"v": ' + arrays + b"}}",
    ):
        response = await production.post(
            "/graphql",
            content=body,
            headers={**bearer(**ALICE), "Content-Type": "application/json"},
        )
        assert response.status_code == 400, response.text[:300]
        assert "JSON" in response.json()["errors"][0]["message"]


async def test_a_40_mb_body_is_refused_before_it_is_parsed(production: httpx.AsyncClient) -> None:
    padding = "x" * (40 * 1024 * 1024)
    document = f'{{"query": "{{ __typename }}", "variables": {{"pad": "{padding}"}}}}'.encode()
    headers = {**bearer(**ALICE), "Content-Type": "application/json"}
    declared = await production.post("/graphql", content=document, headers=headers)

    async def chunks() -> AsyncIterator[bytes]:
        # No Content-Length: counted while it arrives.
        for start in range(0, len(document), 1024 * 1024):
            yield document[start : start + 1024 * 1024]

    streamed = await production.post("/graphql", content=chunks(), headers=headers)
    for response in (declared, streamed):
        assert response.status_code == 413, response.text[:300]
        (error,) = response.json()["errors"]
        assert error["extensions"]["code"] == "PAYLOAD_TOO_LARGE"
        assert "256 KiB" in error["message"]
    # The limit fits every real request: the dashboard's largest document is far below it.
    fine = await production.post(
        "/graphql",
        json={"query": "{ __typename }", "variables": {"pad": "x" * (MAX_BODY_BYTES // 2)}},
        headers=bearer(**ALICE),
    )
    assert fine.json() == {"data": {"__typename": "Query"}}


SET_CAP = """mutation ($key: ID!) {
  setSpendCap(keyId: $key, spendCapCents: %s) {
    __typename ... on InvalidInputError { field message code }
  }
}"""


async def test_an_absurd_spend_cap_is_an_invalid_input_naming_the_range(
    production: httpx.AsyncClient, engine: AsyncEngine, world: World
) -> None:
    keys = table_of(VirtualKey)

    async def cap() -> int | None:
        async with read_transaction(engine) as conn:
            found = await conn.execute(
                select(keys.c.spend_cap_micros).where(keys.c.id == world.prod_key)
            )
            value: int | None = found.scalar_one()
            return value

    before = await cap()
    for literal in ("1e308", "-1", "1000000000.5", "1e12"):
        response = await production.post(
            "/graphql",
            json={"query": SET_CAP % literal, "variables": {"key": str(world.prod_key)}},
            headers=bearer(**ALICE),
        )
        answer = response.json()["data"]["setSpendCap"]
        assert answer["__typename"] == "InvalidInputError", (literal, response.text)
        assert answer["field"] == "spendCapCents"
        assert "from 0 to 1,000,000,000 cents ($10,000,000)" in answer["message"]
    assert await cap() == before


def test_the_body_limit_fits_the_largest_legitimate_document() -> None:
    # The largest a document can be: MAX_TOKENS tokens, each a name as long as the longest the
    # dashboard's documents use (plus a separator), with room left for variables.
    documents = sorted(
        (Path(__file__).parents[3] / "frontend" / "src" / "graphql").glob("*.graphql")
    )
    assert documents
    longest_name = max(
        len(word)
        for document in documents
        for word in re.findall(r"\w+", document.read_text(encoding="utf-8"))
    )
    assert MAX_TOKENS * (longest_name + 1) * 4 <= MAX_BODY_BYTES
    assert max(len(d.read_bytes()) for d in documents) * 100 <= MAX_BODY_BYTES
