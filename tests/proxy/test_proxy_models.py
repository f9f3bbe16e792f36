"""`GET /v1/models` and unknown `/v1` URLs: what OpenAI's SDK sees, in OpenAI's shapes."""

from __future__ import annotations

from pathlib import Path

import httpx
import openai
from sqlalchemy.ext.asyncio import AsyncEngine

from crabglamp.db import write_transaction
from crabglamp.keys import revoke_key
from crabglamp.prices import default_price_book
from proxy_support import CAP_MODEL, Stack, add_cap_model_price, make_key, proxy_stack

BOOK = default_price_book()
CATALOG = BOOK.prices


def _client(stack: Stack, secret: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=stack.base_url, api_key=secret, max_retries=0)


async def test_a_key_lists_the_models_it_may_use(
    engine: AsyncEngine, db_url: str, tmp_path: Path
) -> None:
    await add_cap_model_price(engine)
    bound = await make_key(engine, provider="openai")
    anything = await make_key(engine, name="any")
    async with proxy_stack(engine, db_url, tmp_path) as stack:
        async with _client(stack, bound.secret) as client:
            openai_models = [m async for m in client.models.list()]
        async with _client(stack, anything.secret) as client:
            every_model = [m async for m in client.models.list()]
    # The list's OpenAI models, our own speech prices and the price table's, each once, by id.
    listed = {model for owner, model in BOOK.listed() if owner == "openai"}
    wanted = listed | {p.model for p in CATALOG if p.provider == "openai"} | {CAP_MODEL}
    assert {"gpt-4o", "gpt-5", "tts-1"} <= wanted
    assert [m.id for m in openai_models] == sorted(wanted)
    assert {m.owned_by for m in openai_models} == {"openai"}
    assert {m.object for m in openai_models} == {"model"}
    ids = {m.id for m in every_model}
    assert wanted <= ids and "claude-sonnet-4-5" in ids and "gemini-2.5-pro" in ids
    # A provider without an upstream serves nothing, so none of its models is offered.
    assert not ids & {p.model for p in CATALOG if p.provider == "elevenlabs"}


async def test_models_refuses_a_missing_or_revoked_key_like_the_metered_routes(
    engine: AsyncEngine, db_url: str, tmp_path: Path
) -> None:
    key = await make_key(engine)
    async with write_transaction(engine) as conn:
        await revoke_key(conn, key.key.id)
    async with proxy_stack(engine, db_url, tmp_path) as stack, httpx.AsyncClient() as http:
        none = await http.get(f"{stack.base_url}/models")
        revoked = await http.get(
            f"{stack.base_url}/models", headers={"Authorization": f"Bearer {key.secret}"}
        )
    assert none.status_code == 401
    assert none.json()["error"]["code"] == "invalid_api_key"
    assert none.json()["error"]["type"] == "invalid_request_error"
    assert revoked.status_code == 401 and revoked.json()["error"]["code"] == "key_revoked"
    assert none.headers["x-crabglamp-request-id"].startswith("req_")


async def test_unknown_v1_urls_answer_in_openais_error_shape(
    engine: AsyncEngine, db_url: str, tmp_path: Path
) -> None:
    async with proxy_stack(engine, db_url, tmp_path) as stack, httpx.AsyncClient() as http:
        unknown = await http.post(f"{stack.base_url}/responses", json={"model": "gpt-5"})
        wrong_method = await http.get(f"{stack.base_url}/chat/completions")
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == "application/json"
    error = unknown.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == "unknown_url" and error["type"] == "invalid_request_error"
    assert "POST /v1/responses" in error["message"]
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["code"] == "method_not_allowed"
