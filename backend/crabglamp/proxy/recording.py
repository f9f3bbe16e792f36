"""Recording what a request cost: its event committed with its reservation's settlement (the
group-commit writer) before the response completes, or the reservation given back."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import replace
from typing import TYPE_CHECKING

from crabglamp.ingest.pricing import catalog_cost
from crabglamp.ingest.records import LlmRecord, VoiceRecord
from crabglamp.prices import PriceNotFound, TokenCounts
from crabglamp.proxy.exchange import Exchange
from crabglamp.proxy.refusals import Refusal
from crabglamp.proxy.reservation import Settlement

if TYPE_CHECKING:
    from crabglamp.proxy.runtime import Proxy


def llm_record(
    exchange: Exchange,
    tokens: TokenCounts,
    status: str,
    cost: int | None = None,
    *,
    service_tier: str | None = None,
    estimated: bool = False,
) -> LlmRecord:
    """The event of an exchange on the LLM routes (chat completions, embeddings)."""
    facts = exchange.key()
    return LlmRecord(
        id=exchange.request_id,
        ts=exchange.now,
        key_id=facts.key_id,
        provider=exchange.provider,
        model=exchange.model,
        input_tokens=tokens.input_tokens,
        output_tokens=tokens.output_tokens,
        cost_micros=cost,
        agent_id=facts.agent_id,
        status=status,
        cached_input_tokens=tokens.cached_input_tokens,
        cache_write_5m_tokens=tokens.cache_write_5m_tokens,
        cache_write_1h_tokens=tokens.cache_write_1h_tokens,
        reasoning_tokens=tokens.reasoning_tokens,
        audio_input_tokens=tokens.audio_input_tokens,
        audio_output_tokens=tokens.audio_output_tokens,
        service_tier=service_tier,
        estimated=estimated,
    )


def voice_record(
    exchange: Exchange, characters: int, status: str, cost: int | None = None
) -> VoiceRecord:
    """The event of an exchange on the speech route."""
    facts = exchange.key()
    return VoiceRecord(
        id=exchange.request_id,
        ts=exchange.now,
        account_id=facts.account_id,
        voice_model=exchange.model,
        characters=characters,
        cost_micros=cost,
        agent_id=facts.agent_id,
        key_id=facts.key_id,
        status=status,
    )


async def record_llm(
    proxy: Proxy,
    exchange: Exchange,
    tokens: TokenCounts,
    status: str,
    *,
    service_tier: str | None = None,
    estimated: bool = False,
) -> None:
    record = llm_record(exchange, tokens, status, service_tier=service_tier, estimated=estimated)
    # Billed whatever the status: a stream cut short was still produced, and paid for.
    try:
        cost = catalog_cost(proxy.prices, record)
    except PriceNotFound:
        # The model is priced (admission checked) but not at the tier the provider answered
        # with: the answer is already paid for, so it is priced at the tier it was admitted
        # at, the tier kept as reported, and counted, to be looked at.
        proxy.metrics.inc("crabglamp_proxy_unpriced_tier_total")
        exchange.log["unpriced_tier"] = service_tier
        cost = catalog_cost(proxy.prices, replace(record, service_tier=exchange.requested_tier))
    exchange.log.update(
        input_tokens=tokens.input_tokens,
        output_tokens=tokens.output_tokens,
        cached_input_tokens=tokens.cached_input_tokens,
        reasoning_tokens=tokens.reasoning_tokens,
    )
    if service_tier is not None:
        exchange.log["service_tier"] = service_tier
    if estimated:
        exchange.log["estimated"] = True
    await record_event(proxy, exchange, replace(record, cost_micros=cost), cost)


async def record_event(
    proxy: Proxy, exchange: Exchange, record: LlmRecord | VoiceRecord, cost: int
) -> None:
    """Commit the event and settle the reservation in one transaction; then, and only then,
    may the response complete."""
    assert exchange.reservation is not None
    settlement = Settlement(exchange.reservation, cost)
    try:
        # Shielded: a client that leaves now does not take back a cost already incurred.
        started = time.perf_counter()
        await asyncio.shield(proxy.writer.record(record, settlement))
        exchange.log["record_ms"] = round((time.perf_counter() - started) * 1000, 3)
        exchange.settled = True
    except Exception as exc:
        # The class and the first line of the message: SQL and hashes, never a secret.
        exchange.log["record_error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
        raise Refusal(
            503,
            "recording_failed",
            "The request was answered but could not be recorded; it was not charged. Please retry.",
            kind="server_error",
            retry=True,
        ) from None
    axis = "voice" if isinstance(record, VoiceRecord) else "llm"
    exchange.log["cost_micros"] = cost
    proxy.metrics.inc("crabglamp_proxy_recorded_spend_micros_total", (axis,), cost)
    proxy.metrics.inc("crabglamp_proxy_recorded_events_total", (axis, record.status))


async def record_failure(proxy: Proxy, exchange: Exchange, outcome: str) -> None:
    """An upstream failure costs nothing: recorded as a failed request, reservation freed."""
    exchange.log["outcome"] = outcome
    record: LlmRecord | VoiceRecord
    if exchange.route == "speech":
        record = voice_record(exchange, 0, "error", cost=0)
    else:
        record = llm_record(exchange, TokenCounts(0, 0), "error", cost=0)
    proxy.metrics.inc("crabglamp_proxy_reservations_released_total", (outcome,))
    with contextlib.suppress(Refusal):
        await record_event(proxy, exchange, record, 0)


async def release(proxy: Proxy, exchange: Exchange, reason: str) -> None:
    exchange.log["outcome"] = reason
    if exchange.reservation is None or exchange.settled:
        return
    exchange.settled = True
    proxy.metrics.inc("crabglamp_proxy_reservations_released_total", (reason,))
    try:
        await asyncio.shield(proxy.caps.release(exchange.reservation))
    except Exception as exc:  # the sweeper frees it at its deadline
        exchange.log["release_error"] = type(exc).__name__
