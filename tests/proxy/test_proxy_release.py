"""What happens to a reservation when a request does not end well: upstream error, upstream
timeout, client disconnect mid-stream (before a plain answer: tests/proxy/test_proxy_prices.py), a stream cut by the upstream,
and a request without max_tokens that costs more than its estimate. Both engines."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import openai
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from proxy_support import (
    CAP_MODEL,
    CAP_OUTPUT_MICROS_PER_TOKEN,
    add_cap_model_price,
    events,
    make_key,
    proxy_stack,
    reservations,
    spend,
    wait_until,
)

CENT = 1_000_000


async def _released(engine: AsyncEngine) -> bool:
    return await reservations(engine) == 0


async def test_an_upstream_error_is_recorded_as_failed_and_costs_nothing(
    engine: AsyncEngine, db_url: str, tmp_path: Path
) -> None:
    key = await make_key(engine, cap_micros=10 * CENT)
    async with proxy_stack(engine, db_url, tmp_path) as stack:
        client = openai.AsyncOpenAI(base_url=stack.base_url, api_key=key.secret, max_retries=0)
        async with client:
            with pytest.raises(openai.APIStatusError) as failed:
                await client.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=[{"role": "user", "content": "fail please [fake:status=503]"}],
                    max_tokens=100,
                )
    assert failed.value.status_code == 502 and failed.value.code == "upstream_error"
    assert [(e["status"], e["cost_micros"]) for e in await events(engine, key.key.id)] == [
        ("error", 0)
    ]
    month = await spend(engine, key.key.id)
    assert (month.spent_micros, month.reserved_micros) == (0, 0)
    assert await reservations(engine) == 0


async def test_an_upstream_timeout_is_a_504_and_releases_the_reservation(
    engine: AsyncEngine, db_url: str, tmp_path: Path
) -> None:
    key = await make_key(engine, cap_micros=10 * CENT)
    async with proxy_stack(engine, db_url, tmp_path, timeout_seconds=0.3) as stack:
        client = openai.AsyncOpenAI(base_url=stack.base_url, api_key=key.secret, max_retries=0)
        async with client:
            with pytest.raises(openai.APIStatusError) as slow:
                await client.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=[{"role": "user", "content": "slow [fake:delay=2]"}],
                )
    assert slow.value.status_code == 504 and slow.value.code == "upstream_timeout"
    assert [(e["status"], e["cost_micros"]) for e in await events(engine, key.key.id)] == [
        ("error", 0)
    ]
    month = await spend(engine, key.key.id)
    assert (month.spent_micros, month.reserved_micros) == (0, 0)


async def test_a_client_that_leaves_mid_stream_pays_for_what_it_received(
    engine: AsyncEngine, db_url: str, tmp_path: Path
) -> None:
    await add_cap_model_price(engine)
    key = await make_key(engine, cap_micros=100 * CENT)
    body = {
        "model": CAP_MODEL,
        "messages": [
            {"role": "user", "content": "a long story [fake:output=200] [fake:chunk_delay=0.02]"}
        ],
        "max_tokens": 1000,
        "stream": True,
    }
    received = 0
    async with proxy_stack(engine, db_url, tmp_path) as stack:
        async with (
            httpx.AsyncClient(base_url=stack.base_url) as raw,
            raw.stream(
                "POST",
                "/chat/completions",
                json=body,
                headers={"authorization": f"Bearer {key.secret}"},
            ) as response,
        ):
            assert response.status_code == 200
            async for line in response.aiter_lines():
                if '"content": "crab "' in line:
                    received += 1
                if received == 5:
                    break  # and close the connection

        async def settled() -> bool:
            return await _released(engine) and len(await events(engine, key.key.id)) == 1

        await wait_until(settled, within=5)
    [event] = await events(engine, key.key.id)
    assert event["status"] == "error" and event["estimated"]
    # What passed through is billed; the rest of the 200 tokens were never produced for it.
    assert received <= event["output_tokens"] < 200
    assert event["cost_micros"] == event["output_tokens"] * CAP_OUTPUT_MICROS_PER_TOKEN
    month = await spend(engine, key.key.id)
    assert (month.spent_micros, month.reserved_micros) == (event["cost_micros"], 0)


async def test_a_stream_cut_by_the_upstream_ends_with_an_error_and_settles(
    engine: AsyncEngine, db_url: str, tmp_path: Path
) -> None:
    await add_cap_model_price(engine)
    key = await make_key(engine, cap_micros=100 * CENT)
    async with proxy_stack(engine, db_url, tmp_path) as stack:
        client = openai.AsyncOpenAI(base_url=stack.base_url, api_key=key.secret, max_retries=0)
        async with client:
            stream = await client.chat.completions.create(
                model=CAP_MODEL,
                messages=[{"role": "user", "content": "[fake:output=50] [fake:cut_after=10]"}],
                max_tokens=1000,
                stream=True,
            )
            content = ""
            with pytest.raises(openai.APIError) as cut:
                async for chunk in stream:
                    content += (chunk.choices[0].delta.content or "") if chunk.choices else ""
    assert "broke off" in cut.value.message
    assert content == "crab " * 10
    [event] = await events(engine, key.key.id)
    assert (event["status"], event["output_tokens"]) == ("error", 10)
    month = await spend(engine, key.key.id)
    assert (month.spent_micros, month.reserved_micros) == (10 * CAP_OUTPUT_MICROS_PER_TOKEN, 0)


async def test_without_max_tokens_spend_passes_the_cap_by_at_most_one_request(
    engine: AsyncEngine, db_url: str, tmp_path: Path
) -> None:
    """The estimate uses the configured default output (1,000 tokens = $0.10 here); an answer
    may run longer, and then the key is over its cap by less than that one request, and
    refused from then on."""
    await add_cap_model_price(engine)
    cap = 100 * CENT
    key = await make_key(engine, cap_micros=cap)
    async with proxy_stack(engine, db_url, tmp_path, default_max_output_tokens=1000) as stack:
        client = openai.AsyncOpenAI(base_url=stack.base_url, api_key=key.secret, max_retries=0)
        async with client:
            answered = 0
            with pytest.raises(openai.RateLimitError):
                for _ in range(20):
                    await client.chat.completions.create(
                        model=CAP_MODEL,
                        messages=[{"role": "user", "content": "go on [fake:output=1500]"}],
                    )
                    answered += 1
    one_request = 1500 * CAP_OUTPUT_MICROS_PER_TOKEN
    month = await spend(engine, key.key.id)
    assert answered == 7  # 7 x $0.15 = $1.05: the 7th was admitted at $0.90 + $0.10 <= $1.00
    assert cap < month.spent_micros <= cap + one_request
    assert month.reserved_micros == 0


async def test_concurrent_requests_in_one_process_respect_the_cap(
    engine: AsyncEngine, db_url: str, tmp_path: Path
) -> None:
    await add_cap_model_price(engine)
    key = await make_key(engine, cap_micros=100 * CENT)
    async with proxy_stack(engine, db_url, tmp_path) as stack:
        client = openai.AsyncOpenAI(base_url=stack.base_url, api_key=key.secret, max_retries=0)

        async def one(i: int) -> bool:
            try:
                await client.chat.completions.create(
                    model=CAP_MODEL,
                    messages=[
                        {"role": "user", "content": f"#{i} [fake:output=random] [fake:delay=0.2]"}
                    ],
                    max_tokens=1000,
                )
            except openai.RateLimitError:
                return False
            return True

        async with client:
            outcomes = await asyncio.gather(*(one(i) for i in range(60)))
    month = await spend(engine, key.key.id)
    assert sum(outcomes) >= 10 and not all(outcomes)
    assert month.spent_micros <= 100 * CENT and month.reserved_micros == 0
    assert month.spent_micros == sum(e["cost_micros"] for e in await events(engine, key.key.id))
