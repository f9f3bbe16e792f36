"""The metering proxy through the official `openai` SDK, against a live server and the fake
upstream, on both engines: every route works and is recorded with the right amounts."""

from __future__ import annotations

import json
import logging
import math
from datetime import timedelta
from pathlib import Path

import httpx
import openai
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from crabglamp.db import read_transaction, write_transaction
from crabglamp.db.tables import table_of
from crabglamp.dev.fake_upstream import FakeState, prompt_tokens
from crabglamp.key_secrets import generate_secret
from crabglamp.keys import RotatedKey, revoke_key, rotate_key
from crabglamp.models import VirtualKeySecret
from crabglamp.periods import current_month, utcnow
from crabglamp.prices import default_price_book
from crabglamp.usage.query import UsageQuery
from crabglamp.usage.service import usage
from proxy_support import (
    Stack,
    database_dump,
    events,
    make_key,
    proxy_stack,
    spend,
    voice_events,
)

PRICES = default_price_book()
CENT = 1_000_000


def _client(stack: Stack, secret: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=stack.base_url, api_key=secret, max_retries=0)


def _llm_cost(model: str, tokens_in: int, tokens_out: int) -> int:
    return PRICES.llm_cost("openai", model, utcnow(), tokens_in, tokens_out)


async def test_chat_completion_is_answered_and_recorded_before_the_response_ends(
    engine: AsyncEngine, db_url: str, tmp_path: Path
) -> None:
    key = await make_key(engine, cap_micros=100 * CENT)
    text = "Write a haiku about crabs. [fake:output=7]"
    async with proxy_stack(engine, db_url, tmp_path) as stack, _client(stack, key.secret) as client:
        answer = await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": text}], max_tokens=50
        )
        # No waiting: the event was committed before the response completed.
        recorded = await events(engine, key.key.id)
        async with read_transaction(engine) as conn:
            seen = await usage(conn, UsageQuery(current_month(), (key.key.account_id,)))
    assert answer.choices[0].message.content == "crab " * 7
    assert answer.usage is not None
    tokens_in = prompt_tokens(len(text))
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (tokens_in, 7)
    cost = _llm_cost("gpt-4o-mini", tokens_in, 7)
    assert [
        (e["status"], e["input_tokens"], e["output_tokens"], e["cost_micros"]) for e in recorded
    ] == [("ok", tokens_in, 7, cost)]
    assert recorded[0]["model"] == "gpt-4o-mini" and recorded[0]["provider"] == "openai"
    assert seen.llm.total_micros == cost
    assert [(k.key_id, k.total_micros, k.request_count) for k in seen.llm.keys] == [
        (key.key.id, cost, 1)
    ]
    assert (await spend(engine, key.key.id)).spent_micros == cost
    assert (await spend(engine, key.key.id)).reserved_micros == 0


@pytest.mark.parametrize("client_wants_usage", [False, True])
async def test_streamed_chat_passes_chunks_through_and_records_the_final_usage(
    engine: AsyncEngine, db_url: str, tmp_path: Path, client_wants_usage: bool
) -> None:
    key = await make_key(engine)
    text = "Stream me something. [fake:output=12]"
    options = {"stream_options": {"include_usage": True}} if client_wants_usage else {}
    async with proxy_stack(engine, db_url, tmp_path) as stack, _client(stack, key.secret) as client:
        stream = await client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": text}], stream=True, **options
        )
        chunks = [chunk async for chunk in stream]
        fake: FakeState = stack.fake.state.fake
        recorded = await events(engine, key.key.id)
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert content == "crab " * 12
    usage_chunks = [c for c in chunks if c.usage is not None]
    tokens_in = prompt_tokens(len(text))
    if client_wants_usage:
        assert len(usage_chunks) == 1 and usage_chunks[0].usage is not None
        assert usage_chunks[0].usage.completion_tokens == 12
    else:
        assert usage_chunks == []  # asked for upstream by the proxy, not shown to this client
    # The proxy asked the upstream for usage in the stream either way.
    assert fake.seen[-1][1]["stream_options"] == {"include_usage": True}
    assert [(e["input_tokens"], e["output_tokens"], e["cost_micros"]) for e in recorded] == [
        (tokens_in, 12, _llm_cost("gpt-4o", tokens_in, 12))
    ]


async def test_embeddings_and_speech_are_recorded_on_their_axes(
    engine: AsyncEngine, db_url: str, tmp_path: Path
) -> None:
    key = await make_key(engine)
    inputs = ["the quick brown fox", "jumps over the lazy crab"]
    speech_text = "Welcome to CrabGlamp, the glamping site for crabs."
    async with proxy_stack(engine, db_url, tmp_path) as stack, _client(stack, key.secret) as client:
        embedded = await client.embeddings.create(model="text-embedding-3-small", input=inputs)
        audio = await client.audio.speech.create(model="tts-1", voice="alloy", input=speech_text)
        recorded = await events(engine, key.key.id)
        spoken = await voice_events(engine, key.key.id)
    tokens = sum(prompt_tokens(len(t)) for t in inputs)
    assert len(embedded.data) == 2 and embedded.usage.prompt_tokens == tokens
    assert [
        (e["model"], e["input_tokens"], e["output_tokens"], e["cost_micros"]) for e in recorded
    ] == [("text-embedding-3-small", tokens, 0, _llm_cost("text-embedding-3-small", tokens, 0))]
    assert audio.content.startswith(b"FAKEAUDIO")
    voice_cost = PRICES.voice_cost("tts-1", utcnow(), len(speech_text))
    assert [(v["voice_model"], v["characters"], v["cost_micros"], v["status"]) for v in spoken] == [
        ("tts-1", len(speech_text), voice_cost, "ok")
    ]
    assert spoken[0]["account_id"] == key.key.account_id
    assert (await spend(engine, key.key.id)).spent_micros == recorded[0]["cost_micros"] + voice_cost


async def test_refusals_are_openai_style_errors_with_clear_codes(
    engine: AsyncEngine, db_url: str, tmp_path: Path
) -> None:
    key = await make_key(engine, cap_micros=1 * CENT)
    openai_only = await make_key(engine, key.key.account_id, provider="anthropic", name="claude")
    message = [{"role": "user", "content": "hi"}]
    async with proxy_stack(engine, db_url, tmp_path) as stack:
        async with httpx.AsyncClient(base_url=stack.base_url) as raw:
            no_key = await raw.post(
                "/chat/completions", json={"model": "gpt-4o", "messages": message}
            )
            bad_json = await raw.post(
                "/chat/completions",
                content=b"{not json",
                headers={"authorization": f"Bearer {key.secret}"},
            )
        typo = key.secret[:-1] + ("x" if key.secret[-1] != "x" else "y")
        async with _client(stack, typo) as client:
            with pytest.raises(openai.AuthenticationError) as mistyped:
                await client.chat.completions.create(model="gpt-4o", messages=message)  # type: ignore[arg-type]
        async with _client(stack, generate_secret()) as client:
            with pytest.raises(openai.AuthenticationError) as unknown:
                await client.chat.completions.create(model="gpt-4o", messages=message)  # type: ignore[arg-type]
        async with _client(stack, key.secret) as client:
            with pytest.raises(openai.NotFoundError) as unknown_model:
                await client.chat.completions.create(model="no-such-model", messages=message)  # type: ignore[arg-type]
            with pytest.raises(openai.BadRequestError) as bad_tokens:
                await client.chat.completions.create(
                    model="gpt-4o", messages=message, max_tokens=-3
                )  # type: ignore[arg-type]
            with pytest.raises(openai.RateLimitError) as capped:
                await client.chat.completions.create(
                    model="gpt-4o",
                    messages=message,
                    max_tokens=100_000,  # type: ignore[arg-type]
                )
        async with _client(stack, openai_only.secret) as client:
            with pytest.raises(openai.PermissionDeniedError) as wrong_provider:
                await client.chat.completions.create(model="gpt-4o", messages=message)  # type: ignore[arg-type]
    assert no_key.status_code == 401 and no_key.json()["error"]["code"] == "invalid_api_key"
    assert bad_json.status_code == 400 and bad_json.json()["error"]["code"] == "invalid_json"
    assert mistyped.value.code == "invalid_api_key" and "checksum" in mistyped.value.message
    assert unknown.value.code == "invalid_api_key"
    assert unknown_model.value.code == "model_not_found"
    assert bad_tokens.value.code == "invalid_request" and bad_tokens.value.param == "max_tokens"
    assert wrong_provider.value.code == "model_not_allowed"
    error = capped.value
    assert error.code == "spend_cap_exceeded"
    assert "$0.01" in error.message and "accrued" in error.message
    assert error.response.headers["x-should-retry"] == "false"
    body = error.response.json()["error"]
    assert body["spend_cap_cents"] == 1.0 and body["accrued_cents"] == 0.0
    assert set(body) >= {"message", "type", "code"}
    assert await events(engine, key.key.id) == []
    assert (await spend(engine, key.key.id)).reserved_micros == 0


async def test_revocation_takes_effect_at_once(
    engine: AsyncEngine, db_url: str, tmp_path: Path
) -> None:
    key = await make_key(engine)
    message = [{"role": "user", "content": "hi"}]
    async with proxy_stack(engine, db_url, tmp_path) as stack, _client(stack, key.secret) as client:
        await client.chat.completions.create(model="gpt-4o-mini", messages=message)  # type: ignore[arg-type]
        async with write_transaction(engine) as conn:
            await revoke_key(conn, key.key.id)
        with pytest.raises(openai.AuthenticationError) as refused:
            await client.chat.completions.create(model="gpt-4o-mini", messages=message)  # type: ignore[arg-type]
    assert refused.value.code == "key_revoked"
    assert len(await events(engine, key.key.id)) == 1


async def test_rotation_grace_period_and_history_through_the_proxy(
    engine: AsyncEngine, db_url: str, tmp_path: Path
) -> None:
    key = await make_key(engine, cap_micros=50 * CENT)
    message = [{"role": "user", "content": "hi"}]
    async with proxy_stack(engine, db_url, tmp_path) as stack:
        async with _client(stack, key.secret) as old:
            await old.chat.completions.create(model="gpt-4o-mini", messages=message)  # type: ignore[arg-type]
            async with write_transaction(engine) as conn:
                rotated = await rotate_key(conn, key.key.id, timedelta(hours=1))
            assert isinstance(rotated, RotatedKey)
            await old.chat.completions.create(model="gpt-4o-mini", messages=message)  # type: ignore[arg-type]
            # The grace period ends (as if an hour passed).
            table = table_of(VirtualKeySecret)
            async with write_transaction(engine) as conn:
                await conn.execute(update(table).values(expires_at=utcnow() - timedelta(seconds=1)))
            with pytest.raises(openai.AuthenticationError) as expired:
                await old.chat.completions.create(model="gpt-4o-mini", messages=message)  # type: ignore[arg-type]
        async with _client(stack, rotated.secret) as new:
            await new.chat.completions.create(model="gpt-4o-mini", messages=message)  # type: ignore[arg-type]
    assert expired.value.code == "invalid_api_key" and "rotated" in expired.value.message
    recorded = await events(engine, key.key.id)
    assert len(recorded) == 3  # one key, one history, across the rotation
    month = await spend(engine, key.key.id)
    assert month.spent_micros == sum(e["cost_micros"] for e in recorded)
    dump = await database_dump(db_url)
    assert key.secret not in dump and rotated.secret not in dump


async def test_upstream_gets_the_provider_key_and_logs_hold_no_secret(
    engine: AsyncEngine, db_url: str, tmp_path: Path
) -> None:
    key = await make_key(engine, cap_micros=1 * CENT)
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    async with proxy_stack(engine, db_url, tmp_path) as stack:
        proxy_logger = logging.getLogger("crabglamp.proxy")
        handler = Collect()
        handler.setFormatter(proxy_logger.handlers[0].formatter)
        proxy_logger.addHandler(handler)
        try:
            async with _client(stack, key.secret) as client:
                await client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
                )
                with pytest.raises(openai.RateLimitError):
                    await client.chat.completions.create(
                        model="gpt-4o-mini",
                        messages=[{"role": "user", "content": "x"}],
                        max_tokens=10**9,
                    )
        finally:
            proxy_logger.removeHandler(handler)
        fake: FakeState = stack.fake.state.fake
    assert [auth for auth, _ in fake.seen] == ["Bearer sk-upstream-provider-key"]
    assert len(lines) == 2
    logged = [json.loads(line) for line in lines]
    assert [entry["status"] for entry in logged] == [200, 429]
    assert logged[0]["key_id"] == str(key.key.id) and logged[0]["cost_micros"] > 0
    assert logged[1]["code"] == "spend_cap_exceeded"
    for line in lines:
        assert key.secret not in line and key.secret[12:] not in line
        assert "sk-upstream-provider-key" not in line


async def test_metrics_count_requests_refusals_latency_spend_and_batches(
    engine: AsyncEngine, db_url: str, tmp_path: Path
) -> None:
    key = await make_key(engine, cap_micros=1 * CENT)
    async with proxy_stack(engine, db_url, tmp_path) as stack:
        async with _client(stack, key.secret) as client:
            await client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], max_tokens=5
            )
            with pytest.raises(openai.RateLimitError):
                await client.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=[{"role": "user", "content": "x"}],
                    max_tokens=10**6,
                )
        async with httpx.AsyncClient() as raw:
            exposition = (await raw.get(f"{stack.url}/metrics")).text
    cost = (await spend(engine, key.key.id)).spent_micros
    assert cost > 0
    assert 'crabglamp_proxy_requests_total{route="chat",status="200"} 1' in exposition
    assert 'crabglamp_proxy_requests_total{route="chat",status="429"} 1' in exposition
    assert 'crabglamp_proxy_refusals_total{code="spend_cap_exceeded"} 1' in exposition
    assert 'crabglamp_proxy_upstream_latency_seconds_count{provider="openai"} 1' in exposition
    assert f'crabglamp_proxy_recorded_spend_micros_total{{axis="llm"}} {cost}' in exposition
    assert "crabglamp_writer_batch_size_count 1" in exposition
    assert "# TYPE crabglamp_writer_batch_size histogram" in exposition


def test_prompt_token_rule_of_the_fake() -> None:
    assert prompt_tokens(0) == 1 and prompt_tokens(9) == math.ceil(9 / 4)
