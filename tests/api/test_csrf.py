"""No cross-site writes with the session cookie (api/csrf.py), on both engines.

The attack: a page of another origin (another port, a sibling subdomain: the same *site*, so
SameSite=Lax sends the cookie along) posts a form, or a `no-cors` fetch, to our write endpoints
while an account admin is signed in. It must write nothing; the dashboard itself (same origin,
JSON) and bearer-token clients go on working.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from api_support import ALICE, AZP, World, bearer, seed, serve, settings_for, token
from crabglamp.db import read_transaction
from crabglamp.db.tables import table_of
from crabglamp.models import Member, VirtualKey

FOREIGN_ORIGINS = (
    "https://attacker.example",
    "http://evil.testserver",  # a sibling subdomain of the same site
    "http://testserver:8081",  # another port of our host
    "https://testserver",  # another scheme
    "null",  # a sandboxed frame, a file:// page
)


@pytest.fixture
async def world(engine: AsyncEngine) -> World:
    return await seed(engine)


@pytest.fixture(params=[False, True], ids=["development", "production"])
async def client(
    request: pytest.FixtureRequest, engine: AsyncEngine, db_url: str, world: World
) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(engine, settings_for(db_url, production=request.param)) as client:
        yield client


def _cookie(**caller: object) -> dict[str, str]:
    return {"Cookie": f"__session={token(**caller)}"}  # type: ignore[arg-type]


def _promotion(world: World) -> bytes:
    """The attacker's payload: make their user an admin of Acme."""
    line = {"type": "member", "accountId": str(world.acme), "userId": "user_mallory"}
    return (json.dumps(line | {"role": "admin"}) + "\n").encode()


async def _mallory_is_member(engine: AsyncEngine) -> bool:
    members = table_of(Member)
    async with read_transaction(engine) as conn:
        found = await conn.execute(select(func.count()).where(members.c.user_id == "user_mallory"))
        return bool(found.scalar_one())


async def test_a_cross_site_form_cannot_post_events_with_the_cookie(
    client: httpx.AsyncClient, engine: AsyncEngine, world: World
) -> None:
    body = _promotion(world)
    attempts: list[dict[str, str]] = []
    for origin in FOREIGN_ORIGINS:
        for media in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
            attempts.append({"Origin": origin, "Content-Type": media})
        # fetch(url, {mode: "no-cors", body}) sends text/plain; a JSON type needs CORS, but a
        # browser would still send Origin: refused for the origin alone.
        attempts.append(
            {"Origin": origin, "Content-Type": "text/plain", "Sec-Fetch-Mode": "no-cors"}
        )
        attempts.append({"Origin": origin, "Content-Type": "application/x-ndjson"})
    # No Origin at all: only the browser's own Sec-Fetch-Site: same-origin stands in for it.
    attempts += [
        {"Content-Type": "text/plain"},
        {"Content-Type": "application/x-ndjson"},
        {"Content-Type": "application/x-ndjson", "Sec-Fetch-Site": "same-site"},
        {"Content-Type": "application/x-ndjson", "Sec-Fetch-Site": "cross-site"},
        {"Content-Type": "application/x-ndjson", "Sec-Fetch-Site": "none"},
    ]
    for headers in attempts:
        response = await client.post(
            "/api/events", content=body, headers={**_cookie(**ALICE), **headers}
        )
        assert response.status_code == 403, (headers, response.text)
        error = response.json()["error"]
        assert error["code"] == "cross_site_request", headers
        assert "Authorization: Bearer" in error["message"]
    assert not await _mallory_is_member(engine)


async def test_same_origin_needs_a_json_content_type_with_the_cookie(
    client: httpx.AsyncClient, engine: AsyncEngine, world: World
) -> None:
    body = _promotion(world)
    for media in ("text/plain", "application/x-www-form-urlencoded", None):
        headers = {**_cookie(**ALICE), "Origin": AZP}
        if media is not None:
            headers["Content-Type"] = media
        response = await client.post("/api/events", content=body, headers=headers)
        assert response.status_code == 415, (media, response.text)
        assert response.json()["error"]["code"] == "unsupported_media_type"
    assert not await _mallory_is_member(engine)


async def test_the_dashboard_origin_with_json_lines_still_posts_events(
    client: httpx.AsyncClient, engine: AsyncEngine, world: World
) -> None:
    for headers in (
        {"Origin": AZP, "Content-Type": "application/x-ndjson"},
        {"Origin": f"{AZP}:80", "Content-Type": "application/json; charset=utf-8"},
        {"Sec-Fetch-Site": "same-origin", "Content-Type": "application/jsonl"},
    ):
        response = await client.post(
            "/api/events", content=_promotion(world), headers={**_cookie(**ALICE), **headers}
        )
        assert response.status_code == 200, (headers, response.text)
    assert await _mallory_is_member(engine)


async def test_bearer_clients_are_unaffected(
    client: httpx.AsyncClient, engine: AsyncEngine, world: World
) -> None:
    # Scripts send JSON Lines as text/plain or with no content type, from no origin at all; an
    # Authorization header is something no other origin's page can make a browser send.
    for headers in (
        {"Content-Type": "text/plain"},
        {},
        {"Origin": "https://attacker.example", "Content-Type": "application/x-ndjson"},
    ):
        response = await client.post(
            "/api/events", content=_promotion(world), headers={**bearer(**ALICE), **headers}
        )
        assert response.status_code == 200, (headers, response.text)
    assert await _mallory_is_member(engine)


CREATE_KEY = """mutation Create($account: ID!) {
  createVirtualKey(input: {accountId: $account, name: "stolen"}) {
    __typename ... on CreateVirtualKeySuccess { secret }
  }
}"""


async def _keys_named_stolen(engine: AsyncEngine) -> int:
    keys = table_of(VirtualKey)
    async with read_transaction(engine) as conn:
        found = await conn.execute(select(func.count()).where(keys.c.name == "stolen"))
        return int(found.scalar_one())


async def test_graphql_mutations_refuse_cross_site_cookie_requests(
    client: httpx.AsyncClient, engine: AsyncEngine, world: World
) -> None:
    document = {"query": CREATE_KEY, "variables": {"account": str(world.acme)}}
    encoded = json.dumps(document)
    refused: list[httpx.Response] = []
    for origin in FOREIGN_ORIGINS:
        for media in ("text/plain", "application/x-www-form-urlencoded", "application/json"):
            refused.append(
                await client.post(
                    "/graphql",
                    content=encoded,
                    headers={**_cookie(**ALICE), "Origin": origin, "Content-Type": media},
                )
            )
    refused.append(
        await client.post(
            "/graphql",
            content=encoded,
            headers={**_cookie(**ALICE), "Content-Type": "application/json"},
        )
    )
    for response in refused:
        assert response.status_code == 403, response.text
        (error,) = response.json()["errors"]
        assert error["extensions"]["code"] == "CROSS_SITE_REQUEST"
    # Same origin, but a form's content type.
    form = await client.post(
        "/graphql",
        content=encoded,
        headers={**_cookie(**ALICE), "Origin": AZP, "Content-Type": "text/plain"},
    )
    assert form.status_code == 415
    assert form.json()["errors"][0]["extensions"]["code"] == "UNSUPPORTED_MEDIA_TYPE"
    # GET never runs a mutation, with the cookie or without.
    for headers in (_cookie(**ALICE), bearer(**ALICE)):
        got = await client.get(
            "/graphql",
            params={"query": CREATE_KEY, "variables": json.dumps(document["variables"])},
            headers=headers,
        )
        assert got.status_code == 400 and "not allowed" in got.text, got.text
    assert await _keys_named_stolen(engine) == 0


async def test_graphql_from_the_dashboard_and_with_a_bearer_token_still_works(
    client: httpx.AsyncClient, engine: AsyncEngine, world: World
) -> None:
    document = {"query": CREATE_KEY, "variables": {"account": str(world.acme)}}
    # What frontend/src/api.ts sends: same origin, application/json, the cookie.
    dashboard = await client.post(
        "/graphql",
        json=document,
        headers={
            **_cookie(**ALICE),
            "Origin": AZP,
            "Accept": "application/graphql-response+json, application/json",
        },
    )
    assert dashboard.status_code == 200, dashboard.text
    assert dashboard.json()["data"]["createVirtualKey"]["__typename"] == "CreateVirtualKeySuccess"
    script = await client.post(
        "/graphql", json=document, headers={**bearer(**ALICE), "Origin": "https://elsewhere"}
    )
    assert script.json()["data"]["createVirtualKey"]["__typename"] == "CreateVirtualKeySuccess"
    # Queries by GET keep working with the cookie (they write nothing).
    read = await client.get(
        "/graphql", params={"query": "{ virtualKeys { name } }"}, headers=_cookie(**ALICE)
    )
    assert read.status_code == 200 and "stolen" in read.text
    assert await _keys_named_stolen(engine) == 2
