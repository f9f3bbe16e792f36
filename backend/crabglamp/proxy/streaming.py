"""Answers passed through as they arrive: a chat completion's server-sent events (the usage
read from them) and speech's audio. Whatever the upstream produced before a stream is cut
short is billed by the provider, so it is recorded too."""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import httpx

from crabglamp.ingest.pricing import catalog_cost
from crabglamp.prices import TokenCounts, token_cost
from crabglamp.proxy._asgi import ClientGone, Send, race, within
from crabglamp.proxy.exchange import Exchange
from crabglamp.proxy.forward import open_upstream, upstream_request
from crabglamp.proxy.recording import record_event, record_llm, voice_record
from crabglamp.proxy.refusals import sse_error
from crabglamp.proxy.reported import Reported, reported_usage, speech_usage

if TYPE_CHECKING:
    from crabglamp.proxy.runtime import Proxy

_CONTENT_RE = re.compile(rb'"content":\s*"(?!")')
_USAGE_RE = re.compile(rb'"usage":\s*\{')
_TIER_RE = re.compile(rb'"service_tier":\s*"')


async def until_done(
    proxy: Proxy,
    exchange: Exchange,
    pump: Callable[[], Coroutine[Any, Any, None]],
    gone: asyncio.Task[None],
    response: httpx.Response,
    *,
    timeout_outcome: str = "upstream_timeout",
) -> str:
    """Pass the upstream's answer on (`pump`) within the request's time left, racing the client's
    departure; then close the upstream response. The outcome, for the log and the record."""
    try:
        await race(within(pump(), exchange.remaining(proxy.config.max_request_seconds)), gone)
    except ClientGone:
        return "client_disconnected"
    except (httpx.TimeoutException, TimeoutError):
        return timeout_outcome
    except httpx.HTTPError:
        return "upstream_error"
    finally:
        await response.aclose()
    return "ok"


async def stream(proxy: Proxy, exchange: Exchange, send: Send, gone: asyncio.Task[None]) -> int:
    """A chat completion's events, passed on as they arrive; its usage asked for and read."""
    payload = dict(exchange.payload)
    asked = payload.get("stream_options") or {}
    client_wants_usage = isinstance(asked, dict) and bool(asked.get("include_usage"))
    payload["stream_options"] = {
        **(asked if isinstance(asked, dict) else {}),
        "include_usage": True,
    }
    request = upstream_request(proxy, exchange, json.dumps(payload).encode())
    response = await open_upstream(proxy, exchange, request, gone)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"text/event-stream; charset=utf-8"),
                (b"cache-control", b"no-cache"),
                (b"x-crabglamp-request-id", exchange.request_id.encode()),
            ],
        }
    )
    state = _StreamState()
    held: list[bytes] = []

    async def pump() -> None:
        splitter = _SseSplitter()
        async for piece in response.aiter_raw():
            for event in splitter.feed(piece):
                if event.startswith(b"data: [DONE]") or event.startswith(b"data:[DONE]"):
                    held.append(event)
                    continue
                if state.tier is None and _TIER_RE.search(event):
                    state.tier = _chunk_tier(event)
                if _USAGE_RE.search(event):
                    usage = _chunk_usage(event)
                    if usage is not None:
                        state.usage = usage
                        if _no_choices(event):
                            if client_wants_usage:
                                held.append(event)
                            continue
                if _CONTENT_RE.search(event):
                    state.content_chunks += 1
                await send({"type": "http.response.body", "body": event, "more_body": True})
        rest = splitter.rest()
        if rest.strip():
            held.append(rest)

    outcome = await until_done(proxy, exchange, pump, gone, response)
    if state.usage is not None:
        # The provider's own count: the whole answer's, or all it produced before the cut.
        if outcome != "ok":
            exchange.log["outcome"] = outcome
        await record_llm(
            proxy,
            exchange,
            state.usage.tokens,
            "ok" if outcome == "ok" else "error",
            service_tier=state.usage.service_tier or state.tier,
        )
    else:
        # Cut short (or no usage reported): what was produced is billed by the provider, so it
        # is counted from what passed through, and marked as the estimate it is.
        tokens = TokenCounts(math.ceil(len(exchange.body) / 4), state.content_chunks)
        status = "ok" if outcome == "ok" else "error"
        exchange.log["outcome"] = outcome
        await record_llm(proxy, exchange, tokens, status, service_tier=state.tier, estimated=True)
    if outcome == "client_disconnected":
        return 499
    if outcome != "ok":
        message = f"The {exchange.provider} upstream broke off the stream."
        held = [sse_error(message, outcome)]
    await send({"type": "http.response.body", "body": b"".join(held), "more_body": False})
    return 200


async def speech(proxy: Proxy, exchange: Exchange, send: Send, gone: asyncio.Task[None]) -> int:
    """Audio, passed on as it arrives but for its last piece, sent once the cost is recorded.
    Audio streamed as events (`stream_format: "sse"`) is read on the way for its usage."""
    request = upstream_request(proxy, exchange, exchange.body)
    response = await open_upstream(proxy, exchange, request, gone)
    headers = [(b"x-crabglamp-request-id", exchange.request_id.encode())]
    content_type = response.headers.get("content-type")
    if content_type:
        headers.append((b"content-type", content_type.encode("latin-1")))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    last: list[bytes] = [b""]
    splitter = _SseSplitter() if (content_type or "").startswith("text/event-stream") else None
    reported: list[TokenCounts] = []

    async def pump() -> None:
        # One piece behind: the last bytes go out only once the event is committed.
        async for piece in response.aiter_raw():
            if splitter is not None:
                for event in splitter.feed(piece):
                    if b"speech.audio.done" in event:
                        reported.extend(_speech_usage(event))
            if last[0]:
                await send({"type": "http.response.body", "body": last[0], "more_body": True})
            last[0] = piece

    # Speech has no partial answer to describe: a timeout is an upstream error like any other.
    outcome = await until_done(
        proxy, exchange, pump, gone, response, timeout_outcome="upstream_error"
    )
    text = exchange.payload["input"]
    record = voice_record(exchange, len(text), "ok" if outcome == "ok" else "error")
    rates = proxy.prices.speech_token_rates(exchange.model, exchange.now) if reported else None
    if rates is not None:
        # Billed by the tokens the provider reports (text in, audio out).
        cost = token_cost(rates, reported[-1])
        exchange.log["input_tokens"] = reported[-1].input_tokens
        exchange.log["output_tokens"] = reported[-1].output_tokens
    else:
        # Billed by the characters it was given, once it has answered.
        cost = catalog_cost(proxy.prices, record)
    await record_event(proxy, exchange, replace(record, cost_micros=cost), cost)
    exchange.log["characters"] = len(text)
    if outcome == "client_disconnected":
        exchange.log["outcome"] = outcome
        return 499
    await send({"type": "http.response.body", "body": last[0], "more_body": False})
    return 200


def _speech_usage(event: bytes) -> list[TokenCounts]:
    try:
        usage = speech_usage(json.loads(_event_data(event)))
    except ValueError:
        return []
    return [usage] if usage is not None else []


@dataclass(slots=True)
class _StreamState:
    usage: Reported | None = None
    content_chunks: int = 0
    # Every chunk names the tier; the first is kept, for a stream cut before its usage.
    tier: str | None = None


def _chunk_usage(event: bytes) -> Reported | None:
    try:
        return reported_usage(json.loads(_event_data(event)))
    except ValueError:
        return None


def _chunk_tier(event: bytes) -> str | None:
    try:
        tier = json.loads(_event_data(event)).get("service_tier")
    except (ValueError, AttributeError):
        return None
    return tier if isinstance(tier, str) and tier else None


def _no_choices(event: bytes) -> bool:
    try:
        return not json.loads(_event_data(event)).get("choices")
    except (ValueError, AttributeError):
        return False


def _event_data(event: bytes) -> bytes:
    lines = [line[5:].lstrip() for line in event.splitlines() if line.startswith(b"data:")]
    return b"\n".join(lines)


class _SseSplitter:
    """Cuts a byte stream into whole server-sent events (each ending with a blank line)."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data.replace(b"\r\n", b"\n")
        events: list[bytes] = []
        while True:
            end = self._buffer.find(b"\n\n")
            if end < 0:
                return events
            events.append(self._buffer[: end + 2])
            self._buffer = self._buffer[end + 2 :]

    def rest(self) -> bytes:
        rest, self._buffer = self._buffer, b""
        return rest
