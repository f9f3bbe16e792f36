"""Bodies the proxy must refuse with a 400 in OpenAI's error shape, before any reservation or
upstream call, on both engines: absurd nesting and absurd max_tokens."""

from __future__ import annotations

from pathlib import Path

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from crabglamp.proxy.admission import MAX_NESTING
from proxy_support import events, make_key, proxy_stack, reservations, spend


async def test_absurd_bodies_are_400s_and_nothing_is_reserved_or_recorded(
    engine: AsyncEngine, db_url: str, tmp_path: Path
) -> None:
    key = await make_key(engine, cap_micros=100 * 1_000_000)
    deep = 100_000
    bodies = {
        # json.loads gives up on these with a RecursionError (a 500 before).
        "nested arrays": b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "x": '
        + b"[" * deep
        + b"]" * deep
        + b"}",
        "nested objects": b'{"model": "gpt-4o", "messages": '
        + b'[{"a": ' * deep
        + b"1"
        + b"}]" * deep
        + b"}",
        # Parsed fine, but deeper than any request: refused before anything re-encodes it.
        "just too deep": b'{"model": "gpt-4o", "stream": true, "messages": [{"role": "user", "content": "hi", "x": '
        + b"[" * MAX_NESTING
        + b"]" * MAX_NESTING
        + b"}]}",
    }
    async with (
        proxy_stack(engine, db_url, tmp_path) as stack,
        httpx.AsyncClient(
            base_url=stack.base_url, headers={"authorization": f"Bearer {key.secret}"}
        ) as client,
    ):
        for name, body in bodies.items():
            response = await client.post(
                "/chat/completions",
                content=body,
                headers={"content-type": "application/json"},
            )
            assert response.status_code == 400, (name, response.text[:300])
            error = response.json()["error"]
            assert error["code"] == "invalid_json", name
            assert set(error) >= {"message", "type", "param", "code"}
        for tokens in (46_000_000_000_000_000, 2**63, 10**30, 1_000_000_001):
            response = await client.post(
                "/chat/completions",
                json={
                    "model": "gpt-4o",
                    "messages": [{"role": "user", "content": "hi"}],
                    "max_tokens": tokens,
                },
            )
            assert response.status_code == 400, (tokens, response.text)
            error = response.json()["error"]
            assert (error["param"], error["type"]) == ("max_tokens", "invalid_request_error")
            assert "from 1 to 1,000,000,000" in error["message"]
        fine = await client.post(
            "/chat/completions",
            json={
                "model": "gpt-4o",
                "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 10_000,
            },
        )
        assert fine.status_code == 200, fine.text
    assert len(await events(engine, key.key.id)) == 1
    assert await reservations(engine) == 0
    assert (await spend(engine, key.key.id)).reserved_micros == 0
