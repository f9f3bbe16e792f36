"""/graphql over HTTP: sign-in required, GraphiQL in development, GraphQL-over-HTTP media types."""

from __future__ import annotations

import httpx

from api_support import ALICE, bearer
from crabglamp.api.graphql.view import response_media_type

NEWER = "application/graphql-response+json"


async def test_graphql_needs_a_session_token(client: httpx.AsyncClient) -> None:
    for headers in ({}, {"Authorization": "Bearer forged"}):
        response = await client.post("/graphql", json={"query": "{ __typename }"}, headers=headers)
        assert response.status_code == 401
        assert set(response.json()["error"]) == {"code", "message"}
        assert response.headers["www-authenticate"] == "Bearer"


async def test_graphiql_and_introspection_in_development(client: httpx.AsyncClient) -> None:
    page = await client.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200
    # Our own build of the playground (frontend/playground.html), nothing from a CDN.
    assert "<title>GraphQL playground" in page.text
    assert "/dashboard/assets/playground-" in page.text
    assert "unpkg" not in page.text and "https://" not in page.text
    dashboard = await client.get("/dashboard/usage")
    for header in ("content-security-policy", "x-content-type-options", "referrer-policy"):
        assert page.headers[header] == dashboard.headers[header], header
    answer = await client.post(
        "/graphql", json={"query": "{ __schema { queryType { name } } }"}, headers=bearer(**ALICE)
    )
    assert answer.json() == {"data": {"__schema": {"queryType": {"name": "Query"}}}}


async def test_media_types_and_status_codes(client: httpx.AsyncClient) -> None:
    async def post(body: object, accept: str | None) -> httpx.Response:
        headers = bearer(**ALICE)
        if accept is not None:
            headers["Accept"] = accept
        return await client.post("/graphql", json=body, headers=headers)

    fine = {"query": "{ __typename }"}
    invalid = {"query": "{ noSuchField }"}
    unparsable = {"query": "{"}
    uncoerced = {"query": "query Q($d: Date!) { __typename }", "variables": {"d": "03/11/2026"}}

    ok = await post(fine, NEWER)
    assert (ok.status_code, ok.headers["content-type"]) == (200, NEWER)
    for body in (invalid, unparsable, uncoerced):
        refused = await post(body, NEWER)
        assert refused.status_code == 400, body
        assert refused.headers["content-type"] == NEWER
        assert "data" not in refused.json() and refused.json()["errors"]
    # application/json (and no Accept at all) keeps the legacy 200 for request errors.
    for accept in ("application/json", "*/*", None):
        legacy = await post(invalid, accept)
        assert legacy.status_code == 200
        assert legacy.headers["content-type"] == "application/json"
        assert "data" not in legacy.json()
    # A field error is not a request error: data is there, so the status stays 200.
    forbidden = await post({"query": '{ virtualKeys(accountId: "nope") { id } }'}, NEWER)
    assert forbidden.status_code == 200
    body = forbidden.json()
    assert body["data"] is None
    assert body["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "argument": "accountId"}
    # Not JSON at all: a 400 in the negotiated type, with a GraphQL error body.
    broken = await client.post(
        "/graphql",
        content=b'{"query": ',
        headers={**bearer(**ALICE), "Accept": NEWER, "Content-Type": "application/json"},
    )
    assert broken.status_code == 400 and broken.headers["content-type"] == NEWER
    assert broken.json()["errors"][0]["message"]


def test_accept_negotiation() -> None:
    assert response_media_type(None) == "application/json"
    assert response_media_type("application/json") == "application/json"
    assert response_media_type("application/graphql-response+json, application/json") == NEWER
    assert response_media_type("application/json;q=0.9, application/graphql-response+json") == NEWER
    assert response_media_type("application/graphql-response+json;q=0") == "application/json"
