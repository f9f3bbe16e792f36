"""Prices that match the provider's bill, through the proxy with the official `openai` SDK and
the fake upstream (answers in each provider's documented usage shape), on both engines:
cached, reasoning and cache-write tokens, a flex-tier answer, plain and streamed, recorded at
the list prices to the micro-cent; an unpriced model refused and counted."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from crabglamp.periods import utcnow
from crabglamp.prices import default_price_book
from proxy_support import (
    events,
    make_key,
    proxy_stack,
    reservations,
    spend,
    voice_events,
    wait_until,
)

PRICES = default_price_book()

CENT = 1_000_000


def _client(base_url: str, secret: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=base_url, api_key=secret, max_retries=0)


async def _ask(
    client: openai.AsyncOpenAI, model: str, text: str, stream: bool, **extra: Any
) -> None:
    messages: Any = [{"role": "user", "content": text}]
    if stream:
        answer = await client.chat.completions.create(
            model=model, messages=messages, max_tokens=1000, stream=True, **extra
        )
        async for _ in answer:
            pass
    else:
        await client.chat.completions.create(
            model=model, messages=messages, max_tokens=1000, **extra
        )


# (model, directives, extra request fields, expected micro-cents, expected categories)
CASES = [
    # The example: 464 x $2.50/M + 1536 x $1.25/M + 300 x $10/M = 0.608 cents.
    (
        "gpt-4o",
        "[fake:prompt=2000] [fake:cached=1536] [fake:output=300]",
        {},
        608_000,
        {"cached_input_tokens": 1536, "service_tier": "default"},
    ),
    # gpt-4.1-mini: 904 x $0.40/M + 4096 x $0.10/M + 800 x $1.60/M.
    (
        "gpt-4.1-mini",
        "[fake:prompt=5000] [fake:cached=4096] [fake:output=800]",
        {},
        (904 * 40 + 4096 * 10 + 800 * 160),
        {"cached_input_tokens": 4096},
    ),
    # gpt-5 with reasoning: 952 x $1.25/M + 2048 x $0.125/M + (100 + 1500) x $10/M.
    (
        "gpt-5",
        "[fake:prompt=3000] [fake:cached=2048] [fake:output=100] [fake:reasoning=1500]",
        {},
        (952 * 1250 + 2048 * 125 + 1600 * 10_000) // 10,
        {"reasoning_tokens": 1500, "output_tokens": 1600},
    ),
    # A flex answer of gpt-5: half the standard rates.
    (
        "gpt-5",
        "[fake:prompt=3000] [fake:cached=2048] [fake:output=100] [fake:reasoning=1500]",
        {"service_tier": "flex"},
        (952 * 625 + 2048 * 62.5 + 1600 * 5000) // 10,
        {"service_tier": "flex"},
    ),
    # Anthropic's usage: 1000 uncached x $3/M + 6000 read x $0.30/M + 2000 5-minute writes x
    # $3.75/M + 1000 1-hour writes x $6/M + 400 x $15/M.
    (
        "claude-sonnet-4-5",
        "[fake:prompt=10000] [fake:cached=6000] [fake:cache_write_5m=2000] "
        "[fake:cache_write_1h=1000] [fake:output=400]",
        {},
        (1000 * 300 + 6000 * 30 + 2000 * 375 + 1000 * 600 + 400 * 1500),
        {
            "input_tokens": 10_000,
            "cache_write_5m_tokens": 2000,
            "cache_write_1h_tokens": 1000,
            "service_tier": "standard",
        },
    ),
]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
@pytest.mark.parametrize(("model", "text", "extra", "micros", "parts"), CASES)
async def test_requests_are_recorded_at_the_published_prices_to_the_micro_cent(
    engine: AsyncEngine,
    db_url: str,
    tmp_path: Path,
    stream: bool,
    model: str,
    text: str,
    extra: dict[str, Any],
    micros: int,
    parts: dict[str, Any],
) -> None:
    key = await make_key(engine, cap_micros=100 * CENT)
    async with (
        proxy_stack(engine, db_url, tmp_path) as stack,
        _client(stack.base_url, key.secret) as client,
    ):
        await _ask(client, model, text, stream, **extra)
    [event] = await events(engine, key.key.id)
    assert event["cost_micros"] == int(micros)
    assert {name: event[name] for name in parts} == parts
    assert not event["estimated"]
    month = await spend(engine, key.key.id)
    assert (month.spent_micros, month.reserved_micros) == (int(micros), 0)


async def test_an_unpriced_model_or_tier_is_refused_before_the_provider_and_counted(
    engine: AsyncEngine, db_url: str, tmp_path: Path
) -> None:
    key = await make_key(engine, cap_micros=100 * CENT)
    async with proxy_stack(engine, db_url, tmp_path) as stack:
        async with _client(stack.base_url, key.secret) as client:
            with pytest.raises(openai.NotFoundError) as unknown:
                await _ask(client, "gpt-made-up-7", "hello", False)
            with pytest.raises(openai.BadRequestError) as tier:
                await _ask(client, "gpt-4o", "hello", False, service_tier="flex")
        proxy = stack.app.state.services.proxy
        counted = proxy.metrics.value("crabglamp_proxy_unpriced_models_total", ())
        seen = stack.fake.state.fake.seen
    assert unknown.value.code == "model_not_found" and "price catalog" in unknown.value.message
    assert tier.value.code == "service_tier_not_priced"
    assert counted == 1
    assert seen == [] or all(body.get("model") != "gpt-made-up-7" for _, body in seen)
    assert await events(engine, key.key.id) == []


async def test_a_client_that_leaves_before_a_plain_answer_is_recorded_with_the_providers_usage(
    engine: AsyncEngine, db_url: str, tmp_path: Path
) -> None:
    key = await make_key(engine, cap_micros=100 * CENT)
    body = {
        "model": "gpt-4o",
        "messages": [
            {
                "role": "user",
                "content": "[fake:delay=2] [fake:prompt=2000] [fake:cached=1536] [fake:output=300]",
            }
        ],
        "max_tokens": 1000,
    }
    async with proxy_stack(engine, db_url, tmp_path) as stack:
        async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as raw:
            waiting = asyncio.create_task(
                raw.post(
                    "/chat/completions",
                    json=body,
                    headers={"authorization": f"Bearer {key.secret}"},
                )
            )

            async def admitted() -> bool:
                return await reservations(engine) == 1

            await wait_until(admitted, within=10)
            waiting.cancel()  # the client gives up: its connection closes
            with pytest.raises(asyncio.CancelledError):
                await waiting

        async def recorded() -> bool:
            return len(await events(engine, key.key.id)) == 1 and await reservations(engine) == 0

        await wait_until(recorded, within=10)
    [event] = await events(engine, key.key.id)
    # The provider answered and billed it: recorded as it reported, not estimated.
    assert (event["status"], event["input_tokens"], event["cached_input_tokens"]) == (
        "ok",
        2000,
        1536,
    )
    assert event["cost_micros"] == 608_000 and not event["estimated"]
    assert (await spend(engine, key.key.id)).spent_micros == 608_000


async def test_an_interrupted_stream_without_usage_is_recorded_as_an_estimate(
    engine: AsyncEngine, db_url: str, tmp_path: Path
) -> None:
    key = await make_key(engine, cap_micros=100 * CENT)
    async with (
        proxy_stack(engine, db_url, tmp_path) as stack,
        _client(stack.base_url, key.secret) as client,
    ):
        with pytest.raises(openai.APIError):
            await _ask(client, "gpt-4o", "[fake:output=50] [fake:cut_after=10]", True)
    [event] = await events(engine, key.key.id)
    assert event["estimated"] and event["output_tokens"] == 10
    assert event["cost_micros"] > 0


SPEECH_TEXT = "Welcome to CrabGlamp, the glamping site for crabs."


async def _speak(client: openai.AsyncOpenAI, text: str, **extra: Any) -> bytes:
    async with client.audio.speech.with_streaming_response.create(
        model="gpt-4o-mini-tts", voice="coral", input=text, **extra
    ) as answer:
        return await answer.read()


async def test_speech_streamed_as_events_is_recorded_at_the_tokens_it_reports(
    engine: AsyncEngine, db_url: str, tmp_path: Path
) -> None:
    key = await make_key(engine, cap_micros=100 * CENT)
    text = SPEECH_TEXT + " [fake:audio_out=700]"
    async with (
        proxy_stack(engine, db_url, tmp_path) as stack,
        _client(stack.base_url, key.secret) as client,
    ):
        streamed = await _speak(client, text, stream_format="sse")
        plain = await _speak(client, SPEECH_TEXT)
    spoken = sorted(await voice_events(engine, key.key.id), key=lambda v: v["ts"])
    # The events pass through whole, the last one with the usage OpenAI bills.
    assert b'"type": "speech.audio.delta"' in streamed and b'"output_tokens": 700' in streamed
    assert plain.startswith(b"FAKEAUDIO")
    # gpt-4o-mini-tts by token: ceil(71 / 4) = 18 text tokens x $0.60/M + 700 audio x $12/M.
    by_tokens = 18 * 60 + 700 * 1200
    # Raw audio reports nothing: priced by its characters, as before.
    by_characters = PRICES.voice_cost("gpt-4o-mini-tts", utcnow(), len(SPEECH_TEXT))
    assert [(v["characters"], v["cost_micros"], v["status"]) for v in spoken] == [
        (len(text), by_tokens, "ok"),
        (len(SPEECH_TEXT), by_characters, "ok"),
    ]
    month = await spend(engine, key.key.id)
    assert (month.spent_micros, month.reserved_micros) == (by_tokens + by_characters, 0)


async def test_speech_reserves_what_its_audio_tokens_can_cost(
    engine: AsyncEngine, db_url: str, tmp_path: Path
) -> None:
    # 1,000 characters may cost 16,000 audio tokens at $12/M = 19.2 cents, far more than the
    # 1.2 cents of its characters: a cap of 10 cents refuses it before the provider is called.
    key = await make_key(engine, cap_micros=10 * CENT)
    async with (
        proxy_stack(engine, db_url, tmp_path) as stack,
        _client(stack.base_url, key.secret) as client,
    ):
        with pytest.raises(openai.RateLimitError):
            await _speak(client, "crab " * 200, stream_format="sse")
        await _speak(client, SPEECH_TEXT, stream_format="sse")
    assert len(await voice_events(engine, key.key.id)) == 1
