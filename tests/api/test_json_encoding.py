"""orjson encodes GET /api/usage and the GraphQL answers: the bytes are those of the json.dumps
settings it replaced, or, where orjson writes a number or a character otherwise, the same JSON."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from starlette.responses import JSONResponse

from api_support import MONTH, ROOT, World, bearer, seed, serve, settings_for
from crabglamp.api.graphql.view import GraphQLView
from crabglamp.api.rest import UsageResponse
from crabglamp.settings import Settings


def starlette_json(content: Any) -> bytes:
    """What GET /api/usage sent before: Starlette's JSONResponse."""
    return bytes(JSONResponse(content).body)


def strawberry_json(content: Any) -> bytes:
    """What /graphql sent before: Strawberry's default encode_json."""
    return json.dumps(content, separators=(",", ":")).encode("utf-8")


def new_usage_json(content: Any) -> bytes:
    return bytes(UsageResponse(content).body)


def new_graphql_json(content: Any) -> bytes:
    return GraphQLView(Settings()).encode_json(content)


ASCII_ANSWER = {
    "totalCents": 0.0315,  # sub-cent precision
    "others": [1234.5678, 0.1 + 0.2, 0.0001, 1e16, -0.0, 99999999.99, 2.5e-4],
    "requestCount": 2**63 - 1,  # orjson's largest integer; beyond 2**53 as well
    "characters": 0,
    "spendCapCents": None,
    "hasKeys": True,
    "agentName": 'tab\tnewline\n"quoted" back\\slash \x1f',
    "daily": [{"date": "2026-10-01", "models": []}],
}
UNICODE_ANSWER = {"agentName": "Zoë\u2019s agent — 東京 🦀", "keyName": "clé", "totalCents": 12.5}
# Floats under 1e-4 (1 to 99 micro-cents): Python writes 1e-05, orjson 0.00001.
TINY_ANSWER = {"totalCents": 1e-05, "agentCents": 1e-06, "plainVmCents": 4.2e-05}


@pytest.mark.parametrize("encode", [new_usage_json, new_graphql_json])
def test_the_same_bytes_for_ascii_answers(encode: Any) -> None:
    old = starlette_json if encode is new_usage_json else strawberry_json
    assert encode(ASCII_ANSWER) == old(ASCII_ANSWER)


def test_unicode_the_same_bytes_in_rest_and_utf8_instead_of_escapes_in_graphql() -> None:
    assert new_usage_json(UNICODE_ANSWER) == starlette_json(UNICODE_ANSWER)  # ensure_ascii=False
    # Strawberry escaped non-ASCII (\u00eb); orjson sends UTF-8, as JSON over HTTP is (RFC 8259,
    # 8.1): the only difference, and any JSON decoder reads the same value.
    new, old = new_graphql_json(UNICODE_ANSWER), strawberry_json(UNICODE_ANSWER)
    assert b"\\u" in old and b"\\u" not in new
    assert new == json.dumps(UNICODE_ANSWER, separators=(",", ":"), ensure_ascii=False).encode()
    assert json.loads(new) == json.loads(old) == UNICODE_ANSWER


@pytest.mark.parametrize("encode", [new_usage_json, new_graphql_json])
def test_tiny_floats_are_written_otherwise_but_read_the_same(encode: Any) -> None:
    # Both write the shortest digits that read back as the same float; only the notation of
    # numbers under 1e-4 differs (0.00001, 1e-6 for 1e-05, 1e-06), and json.loads gives the
    # very same floats.
    old = starlette_json if encode is new_usage_json else strawberry_json
    new = encode(TINY_ANSWER)
    assert new != old(TINY_ANSWER)
    assert json.loads(new) == json.loads(old(TINY_ANSWER)) == TINY_ANSWER


USAGE_DOCUMENT = """
query Usage($filter: UsageFilter) {
  usage(filter: $filter) {
    compute { totalCents daily { date agentCents plainVmCents totalCents } }
    llm { totalCents daily { date totalCents models { model provider totalCents requestCount } }
      agents { agentId agentName totalCents requestCount }
      keys { keyId keyName spendCapCents totalCents requestCount } }
    voice { totalCents totalCharacters }
  }
}
"""


async def test_real_usage_answers_are_the_bytes_of_before(engine: Any, db_url: str) -> None:
    world: World = await seed(engine)
    assert world.events  # a month of seeded compute, LLM and voice usage
    async with serve(engine, settings_for(db_url)) as client:
        rest = await client.get("/api/usage", params={"month": MONTH}, headers=bearer(**ROOT))
        graphql = await client.post(
            "/graphql",
            json={"query": USAGE_DOCUMENT, "variables": {"filter": {"month": MONTH}}},
            headers=bearer(**ROOT),
        )
    _check(rest, starlette_json)
    _check(graphql, strawberry_json)
    assert "errors" not in graphql.json() and graphql.json()["data"]["usage"]["llm"]["daily"]


def _check(answer: httpx.Response, old: Any) -> None:
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert len(answer.content) > 1000
    # json.loads then json.dumps gives back the bytes json.dumps wrote: the value round-trips.
    assert answer.content == old(json.loads(answer.content))
