"""The metering proxy: OpenAI-compatible routes that cap, forward, and durably record each request.

    POST /v1/chat/completions   plain and streamed (SSE passed through as it arrives)
    POST /v1/embeddings
    POST /v1/audio/speech       voice: priced by the characters of `input`

A request is authenticated by `Authorization: Bearer <virtual key secret>`, its maximum cost is
reserved against the key's monthly cap (caps.py), it is forwarded to the provider that the price
catalog names for its model (upstreams.py), and its event is committed together with the
settlement of the reservation (writer.py) before the response completes: the client never sees
the end of a response whose cost is not on record.

These are plain ASGI endpoints rather than request/response functions: a stream is passed
through chunk by chunk, and a client that goes away is noticed while the upstream is still
working, so that its reservation is released (or settled to what was already produced).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import re
import sys
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.routing import BaseRoute, Route

from crabglamp.db import is_sqlite, read_transaction
from crabglamp.ingest.ingestor import LlmRecord, VoiceRecord, catalog_cost
from crabglamp.key_secrets import MalformedSecret, check_format, hash_secret
from crabglamp.keys import find_by_secret
from crabglamp.money import micros_to_cents
from crabglamp.periods import utcnow
from crabglamp.prices import PriceBook, PriceNotFound
from crabglamp.proxy.caps import (
    CapExceeded,
    KeyRefused,
    Reservation,
    Settlement,
    SpendCaps,
    max_input_tokens,
    month_of,
)
from crabglamp.proxy.metrics import BATCH_BUCKETS, LATENCY_BUCKETS, Metrics, MetricsEndpoint
from crabglamp.proxy.upstreams import ProxyConfig, Upstream
from crabglamp.proxy.writer import GroupCommitWriter

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
_T = TypeVar("_T")

logger = logging.getLogger("crabglamp.proxy.handler")

ROUTES = {
    "chat": "/v1/chat/completions",
    "embeddings": "/v1/embeddings",
    "speech": "/v1/audio/speech",
}
_UPSTREAM_PATHS = {
    "chat": "/chat/completions",
    "embeddings": "/embeddings",
    "speech": "/audio/speech",
}
_IMAGE_PARTS = frozenset({"image_url", "input_image", "image"})
_KEY_CACHE_SIZE = 10_000
_SQLITE_SWITCH_INTERVAL = 0.0005
_CONTENT_RE = re.compile(rb'"content":\s*"(?!")')
_USAGE_RE = re.compile(rb'"usage":\s*\{')


# Refusals: OpenAI's error shape, {"error": {"message", "type", "code", "param"}}


class Refusal(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        kind: str = "invalid_request_error",
        param: str | None = None,
        retry: bool = False,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.kind = kind
        self.param = param
        self.retry = retry
        self.extra = extra or {}

    def body(self) -> bytes:
        error = {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}
        return json.dumps({"error": error | self.extra}).encode()


class _ClientGone(Exception):
    pass


def _bad(message: str, param: str | None = None, code: str = "invalid_request") -> Refusal:
    return Refusal(400, code, message, param=param)


# The per-process runtime


@dataclass(frozen=True, slots=True)
class KeyFacts:
    """What never changes about a key; its status, cap and secrets are checked at admission."""

    key_id: uuid.UUID
    account_id: uuid.UUID
    agent_id: uuid.UUID | None
    provider: str | None


@dataclass(slots=True)
class Exchange:
    """One proxied request, from its body to its log line."""

    route: str
    request_id: str = field(default_factory=lambda: f"req_{uuid.uuid4().hex}")
    started: float = field(default_factory=time.perf_counter)
    now: datetime = field(default_factory=utcnow)
    body: bytes = b""
    payload: dict[str, Any] = field(default_factory=dict)
    facts: KeyFacts | None = None
    secret_hash: str = ""
    model: str = ""
    provider: str = ""
    upstream: Upstream | None = None
    estimate_micros: int = 0
    reservation: Reservation | None = None
    stream: bool = False
    # Set once the response has started: from then on a failure can only end the stream.
    responded: bool = False
    # Set once the reservation is settled or released: nothing is left to give back.
    settled: bool = False
    log: dict[str, Any] = field(default_factory=dict)

    def remaining(self, limit: float) -> float:
        return max(0.001, limit - (time.perf_counter() - self.started))


class Proxy:
    def __init__(
        self,
        engine: AsyncEngine,
        writer: GroupCommitWriter,
        prices: PriceBook,
        config: ProxyConfig,
        metrics: Metrics | None = None,
    ) -> None:
        self.engine = engine
        self.writer = writer
        self.prices = prices
        self.config = config
        self.metrics = metrics or Metrics()
        if is_sqlite(engine) and sys.getswitchinterval() > _SQLITE_SWITCH_INTERVAL:
            # aiosqlite runs each connection on a thread of its own, which needs the GIL to hand
            # a result back; while the event loop is busy it waits out the switch interval (5 ms
            # by default) every time, stalling each database round trip under load.
            sys.setswitchinterval(_SQLITE_SWITCH_INTERVAL)
        ttl = timedelta(seconds=config.max_request_seconds + config.reservation_margin_seconds)
        self.caps = SpendCaps(engine, ttl, lock=writer.lock)
        self.http = httpx.AsyncClient(
            timeout=httpx.Timeout(config.timeout_seconds, connect=config.connect_timeout_seconds),
            limits=httpx.Limits(max_connections=2000, max_keepalive_connections=500),
            follow_redirects=False,
        )
        self._keys: dict[str, KeyFacts] = {}
        self._lookups: dict[str, asyncio.Future[KeyFacts]] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self._declare_metrics()
        if config.request_log:
            _log_to_stderr()

    async def start(self) -> None:
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep_forever(), name="crabglamp-sweeper")

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        await self.http.aclose()
        await self.caps.close()
        self.metrics.close()

    async def _sweep_forever(self) -> None:
        last_reconcile = time.monotonic()
        while True:
            await asyncio.sleep(self.config.sweep_interval_seconds)
            try:
                freed = await self.caps.sweep()
                if freed:
                    self.metrics.inc("crabglamp_proxy_reservations_swept_total", (), freed)
                    _emit({"event": "reservations_swept", "count": freed})
                if time.monotonic() - last_reconcile >= self.config.reconcile_interval_seconds:
                    last_reconcile = time.monotonic()
                    await self.caps.reconcile(month_of(utcnow()))
            except Exception as exc:  # the database may be briefly away; try again next round
                _emit({"event": "sweep_failed", "error": type(exc).__name__})

    def _declare_metrics(self) -> None:
        m = self.metrics
        m.counter(
            "crabglamp_proxy_requests_total",
            "Proxied requests by route and HTTP status.",
            ("route", "status"),
        )
        m.counter(
            "crabglamp_proxy_refusals_total",
            "Requests refused before reaching an upstream, by error code.",
            ("code",),
        )
        m.histogram(
            "crabglamp_proxy_upstream_latency_seconds",
            "Time from forwarding a request to the upstream's response headers.",
            LATENCY_BUCKETS,
            ("provider",),
        )
        m.histogram(
            "crabglamp_proxy_request_duration_seconds",
            "Time from a request's arrival to its last byte, recording included.",
            LATENCY_BUCKETS,
            ("route",),
        )
        m.counter(
            "crabglamp_proxy_recorded_spend_micros_total",
            "Spend recorded by the proxy, in micro-cents.",
            ("axis",),
        )
        m.counter(
            "crabglamp_proxy_recorded_events_total",
            "Events recorded by the proxy.",
            ("axis", "status"),
        )
        m.counter(
            "crabglamp_proxy_reservations_released_total",
            "Reservations given back (upstream error, timeout, client gone).",
            ("reason",),
        )
        m.counter(
            "crabglamp_proxy_reservations_swept_total",
            "Reservations freed by the sweeper after their request's deadline.",
        )
        # The server's requests in flight are those of its live workers: a worker that is gone
        # took its requests with it.
        m.gauge(
            "crabglamp_proxy_in_flight",
            "Requests being proxied right now.",
            across_workers="livesum",
        )
        m.histogram(
            "crabglamp_writer_batch_size", "Events per group-commit transaction.", BATCH_BUCKETS
        )
        m.counter("crabglamp_writer_batches_total", "Group-commit transactions committed.")
        m.counter("crabglamp_writer_events_total", "Events committed by the group-commit writer.")

        def count_batch(size: int) -> None:
            m.observe("crabglamp_writer_batch_size", (), size)
            m.inc("crabglamp_writer_batches_total")
            m.inc("crabglamp_writer_events_total", (), size)

        self.writer.on_commit.append(count_batch)

    # Handling

    async def handle(self, route: str, scope: Scope, receive: Receive, send: Send) -> None:
        exchange = Exchange(route)
        self.metrics.inc("crabglamp_proxy_in_flight")
        status = 500
        gone: asyncio.Task[None] | None = None

        async def tracked(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                exchange.responded = True
            await send(message)

        try:
            exchange.body = await _read_body(receive, self.config.max_body_bytes)
            gone = asyncio.ensure_future(_until_disconnect(receive))
            await self._admit(exchange, scope)
            if route == "speech":
                status = await self._speech(exchange, tracked, gone)
            elif exchange.stream:
                status = await self._stream(exchange, tracked, gone)
            else:
                status = await self._plain(exchange, tracked, gone)
        except Refusal as refusal:
            status = refusal.status
            if exchange.reservation is None:
                self.metrics.inc("crabglamp_proxy_refusals_total", (refusal.code,))
            exchange.log.setdefault("code", refusal.code)
            await _send_refusal(
                tracked, refusal, exchange.request_id, exchange.responded, route != "speech"
            )
        except _ClientGone:
            status = 499  # nginx's "client closed request"; nothing was sent
            exchange.log.setdefault("outcome", "client_disconnected")
        except Exception as exc:  # a bug or a database failure: answer 500, never hang
            exchange.log["error"] = type(exc).__name__
            # Code lines and the exception, never a local value: the secret is not in here.
            exchange.log["traceback"] = traceback.format_exc(limit=8)
            failure = Refusal(
                500,
                "internal_error",
                "The proxy failed to handle this request.",
                kind="server_error",
            )
            with contextlib.suppress(Exception):
                await _send_refusal(
                    tracked, failure, exchange.request_id, exchange.responded, route != "speech"
                )
        finally:
            if gone is not None:
                gone.cancel()
            if exchange.reservation is not None and not exchange.settled:
                await self._release(exchange, exchange.log.get("outcome", "failed"))
            self.metrics.inc("crabglamp_proxy_in_flight", (), -1)
            elapsed = time.perf_counter() - exchange.started
            self.metrics.inc("crabglamp_proxy_requests_total", (route, str(status)))
            self.metrics.observe("crabglamp_proxy_request_duration_seconds", (route,), elapsed)
            if self.config.request_log:
                self._log(exchange, status, elapsed)

    def _log(self, exchange: Exchange, status: int, elapsed: float) -> None:
        line: dict[str, Any] = {
            "event": "proxy_request",
            "request_id": exchange.request_id,
            "route": ROUTES[exchange.route],
            "status": status,
            "duration_ms": round(elapsed * 1000, 3),
        }
        if exchange.facts is not None:
            line["key_id"] = str(exchange.facts.key_id)
            line["account_id"] = str(exchange.facts.account_id)
        if exchange.model:
            line["model"] = exchange.model
            line["provider"] = exchange.provider
        if exchange.stream:
            line["stream"] = True
        if exchange.estimate_micros:
            line["estimate_micros"] = exchange.estimate_micros
        line.update(exchange.log)
        _emit(line)

    async def _admit(self, exchange: Exchange, scope: Scope) -> None:
        secret = _bearer(scope)
        if secret is None:
            raise Refusal(
                401,
                "invalid_api_key",
                "You didn't provide an API key. Send your CrabGlamp virtual key as "
                "'Authorization: Bearer cg_live_…'.",
            )
        try:
            check_format(secret)
        except MalformedSecret as exc:
            raise Refusal(401, "invalid_api_key", f"Incorrect API key provided: {exc}.") from None
        exchange.secret_hash = hash_secret(secret)
        exchange.facts = await self._key_facts(secret, exchange.secret_hash)
        del secret
        try:
            payload = json.loads(exchange.body)
        except (ValueError, UnicodeDecodeError):
            raise _bad(
                "We could not parse the JSON body of your request.", code="invalid_json"
            ) from None
        if not isinstance(payload, dict):
            raise _bad("The request body must be a JSON object.", code="invalid_json")
        exchange.payload = payload
        model = payload.get("model")
        if not isinstance(model, str) or not model:
            raise _bad("You must provide a model parameter.", param="model")
        exchange.model = model
        provider = self.prices.provider_of(model)
        if provider is None:
            raise Refusal(
                404,
                "model_not_found",
                f"The model `{model}` is not in the price catalog, so its spend cannot be "
                "capped; ask an administrator to add its price.",
                param="model",
            )
        exchange.provider = provider
        allowed = exchange.facts.provider
        if allowed is not None and allowed != provider:
            raise Refusal(
                403,
                "model_not_allowed",
                f"This key is for {allowed} models; `{model}` is a {provider} model.",
                param="model",
            )
        upstream = self.config.upstream(provider)
        if upstream is None:
            raise Refusal(
                503,
                "provider_not_configured",
                f"No upstream is configured for {provider}.",
                kind="server_error",
                retry=False,
            )
        exchange.upstream = upstream
        exchange.estimate_micros = self._estimate(exchange)
        started = time.perf_counter()
        outcome = await self.caps.reserve(
            exchange.facts.key_id, exchange.secret_hash, exchange.estimate_micros, exchange.now
        )
        exchange.log["admit_ms"] = round((time.perf_counter() - started) * 1000, 3)
        if isinstance(outcome, KeyRefused):
            self._keys.pop(exchange.secret_hash, None)
            raise Refusal(401, outcome.code, outcome.message)
        if isinstance(outcome, CapExceeded):
            raise _cap_refusal(outcome)
        exchange.reservation = outcome

    async def _key_facts(self, secret: str, digest: str) -> KeyFacts:
        facts = self._keys.get(digest)
        if facts is not None:
            return facts
        # Many requests of a key that is not cached yet share one look-up.
        pending = self._lookups.get(digest)
        if pending is None:
            pending = self._lookups[digest] = asyncio.ensure_future(self._look_up(secret, digest))
            pending.add_done_callback(lambda _: self._lookups.pop(digest, None))
        return await asyncio.shield(pending)

    async def _look_up(self, secret: str, digest: str) -> KeyFacts:
        async with read_transaction(self.engine) as conn:
            match = await find_by_secret(conn, secret)
        if match is None:
            raise Refusal(401, "invalid_api_key", "Incorrect API key provided.")
        if not match.key.active:
            raise Refusal(401, "key_revoked", "This virtual key has been revoked.")
        if not match.usable(utcnow()):
            raise Refusal(
                401,
                "invalid_api_key",
                "This virtual key was rotated and its previous secret's grace period has ended; "
                "use the new secret.",
            )
        key = match.key
        facts = KeyFacts(key.id, key.account_id, key.agent_id, key.provider)
        if len(self._keys) >= _KEY_CACHE_SIZE:
            self._keys.clear()
        self._keys[digest] = facts
        return facts

    def _estimate(self, exchange: Exchange) -> int:
        """The most this request can cost (DESIGN 2, spend caps)."""
        payload, now = exchange.payload, exchange.now
        try:
            if exchange.route == "speech":
                text = payload.get("input")
                if not isinstance(text, str) or not text:
                    raise _bad("input must be a non-empty string.", param="input")
                if self.prices.at(exchange.provider, exchange.model, now).kind != "voice":
                    raise _bad(f"`{exchange.model}` is not a voice model.", param="model")
                return self.prices.voice_cost(exchange.model, now, len(text))
            if exchange.route == "embeddings":
                if "input" not in payload:
                    raise _bad("You must provide an input parameter.", param="input")
                return self.prices.llm_cost(
                    exchange.provider, exchange.model, now, max_input_tokens(len(exchange.body)), 0
                )
            messages = payload.get("messages")
            if not isinstance(messages, list) or not messages:
                raise _bad("messages must be a non-empty array.", param="messages")
            stream = payload.get("stream", False)
            if not isinstance(stream, bool):
                raise _bad("stream must be true or false.", param="stream")
            exchange.stream = stream
            output = self._max_output(payload)
            choices = payload.get("n", 1)
            if choices is None:
                choices = 1
            if not isinstance(choices, int) or isinstance(choices, bool) or not 1 <= choices <= 128:
                raise _bad("n must be an integer from 1 to 128.", param="n")
            images = sum(_images(message) for message in messages)
            return self.prices.llm_cost(
                exchange.provider,
                exchange.model,
                now,
                max_input_tokens(len(exchange.body), images),
                output * choices,
            )
        except PriceNotFound as exc:
            raise Refusal(404, "model_not_found", str(exc), param="model") from None

    def _max_output(self, payload: dict[str, Any]) -> int:
        for name in ("max_completion_tokens", "max_tokens"):
            value = payload.get(name)
            if value is None:
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise _bad(f"{name} must be a positive integer.", param=name)
            return value
        # Unknown: a request may then overshoot its reservation, by at most its own cost.
        return self.config.default_max_output_tokens

    # Forwarding

    def _upstream_request(self, exchange: Exchange, content: bytes) -> httpx.Request:
        upstream = exchange.upstream
        assert upstream is not None
        headers = {"content-type": "application/json", "accept-encoding": "identity"}
        if upstream.key:
            headers["authorization"] = f"Bearer {upstream.key}"
        return self.http.build_request(
            "POST", upstream.url + _UPSTREAM_PATHS[exchange.route], content=content, headers=headers
        )

    async def _open(
        self, exchange: Exchange, request: httpx.Request, gone: asyncio.Task[None]
    ) -> httpx.Response:
        """Send the request; return the upstream's response with its body still to be read."""
        started = time.perf_counter()
        limit = exchange.remaining(self.config.max_request_seconds)
        try:
            response = await _race(_within(self.http.send(request, stream=True), limit), gone)
        except _ClientGone:
            await self._release(exchange, "client_disconnected")
            raise
        except (httpx.TimeoutException, TimeoutError):
            await self._record_failure(exchange, "upstream_timeout")
            raise Refusal(
                504,
                "upstream_timeout",
                f"The {exchange.provider} upstream did not answer in time.",
                kind="upstream_error",
                retry=True,
            ) from None
        except httpx.HTTPError as exc:
            await self._record_failure(exchange, "upstream_unreachable")
            raise Refusal(
                502,
                "upstream_unreachable",
                f"The {exchange.provider} upstream could not be reached ({type(exc).__name__}).",
                kind="upstream_error",
                retry=True,
            ) from None
        latency = time.perf_counter() - started
        exchange.log["upstream_ms"] = round(latency * 1000, 3)
        self.metrics.observe(
            "crabglamp_proxy_upstream_latency_seconds", (exchange.provider,), latency
        )
        if response.status_code >= 400:
            try:
                body = await _race(response.aread(), gone)
            except (_ClientGone, httpx.HTTPError):
                body = b""
            finally:
                await response.aclose()
            await self._record_failure(exchange, "upstream_error")
            raise _upstream_refusal(exchange, response.status_code, body)
        return response

    async def _plain(self, exchange: Exchange, send: Send, gone: asyncio.Task[None]) -> int:
        request = self._upstream_request(exchange, exchange.body)
        response = await self._open(exchange, request, gone)
        limit = exchange.remaining(self.config.max_request_seconds)
        try:
            content = await _race(_within(response.aread(), limit), gone)
        except _ClientGone:
            await self._release(exchange, "client_disconnected")
            raise
        except (httpx.HTTPError, TimeoutError):
            await self._record_failure(exchange, "upstream_error")
            raise Refusal(
                502,
                "upstream_error",
                f"The {exchange.provider} upstream broke off its answer.",
                kind="upstream_error",
                retry=True,
            ) from None
        finally:
            await response.aclose()
        input_tokens, output_tokens = _usage_of(content)
        if input_tokens is None:
            # No usage reported: count what can be seen, a quarter token per byte.
            input_tokens = math.ceil(len(exchange.body) / 4)
            output_tokens = math.ceil(len(content) / 4)
        await self._record_llm(exchange, input_tokens, output_tokens or 0, "ok")
        await _send_whole(
            send,
            200,
            content,
            response.headers.get("content-type", "application/json"),
            exchange.request_id,
        )
        return 200

    async def _stream(self, exchange: Exchange, send: Send, gone: asyncio.Task[None]) -> int:
        payload = dict(exchange.payload)
        asked = payload.get("stream_options") or {}
        client_wants_usage = isinstance(asked, dict) and bool(asked.get("include_usage"))
        payload["stream_options"] = {
            **(asked if isinstance(asked, dict) else {}),
            "include_usage": True,
        }
        request = self._upstream_request(exchange, json.dumps(payload).encode())
        response = await self._open(exchange, request, gone)
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

        outcome = "ok"
        limit = exchange.remaining(self.config.max_request_seconds)
        try:
            await _race(_within(pump(), limit), gone)
        except _ClientGone:
            outcome = "client_disconnected"
        except (httpx.TimeoutException, TimeoutError):
            outcome = "upstream_timeout"
        except httpx.HTTPError:
            outcome = "upstream_error"
        finally:
            await response.aclose()
        if outcome == "ok" and state.usage is not None:
            await self._record_llm(exchange, state.usage[0], state.usage[1], "ok")
        else:
            # Cut short (or no usage reported): what was produced is billed by the provider,
            # so it is counted from what passed through.
            input_tokens = state.usage[0] if state.usage else math.ceil(len(exchange.body) / 4)
            status = "ok" if outcome == "ok" else "error"
            exchange.log["outcome"] = outcome
            await self._record_llm(exchange, input_tokens, state.content_chunks, status)
        if outcome == "client_disconnected":
            return 499
        if outcome != "ok":
            message = f"The {exchange.provider} upstream broke off the stream."
            held = [_sse_error(message, outcome)]
        await send({"type": "http.response.body", "body": b"".join(held), "more_body": False})
        return 200

    async def _speech(self, exchange: Exchange, send: Send, gone: asyncio.Task[None]) -> int:
        request = self._upstream_request(exchange, exchange.body)
        response = await self._open(exchange, request, gone)
        headers = [(b"x-crabglamp-request-id", exchange.request_id.encode())]
        content_type = response.headers.get("content-type")
        if content_type:
            headers.append((b"content-type", content_type.encode("latin-1")))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        last: list[bytes] = [b""]

        async def pump() -> None:
            # One piece behind: the last bytes go out only once the event is committed.
            async for piece in response.aiter_raw():
                if last[0]:
                    await send({"type": "http.response.body", "body": last[0], "more_body": True})
                last[0] = piece

        outcome = "ok"
        limit = exchange.remaining(self.config.max_request_seconds)
        try:
            await _race(_within(pump(), limit), gone)
        except _ClientGone:
            outcome = "client_disconnected"
        except (httpx.HTTPError, TimeoutError):
            outcome = "upstream_error"
        finally:
            await response.aclose()
        # The provider bills speech by the characters it was given, once it has answered.
        text = exchange.payload["input"]
        record = VoiceRecord(
            id=exchange.request_id,
            ts=exchange.now,
            account_id=self._facts(exchange).account_id,
            voice_model=exchange.model,
            characters=len(text),
            agent_id=self._facts(exchange).agent_id,
            key_id=self._facts(exchange).key_id,
            status="ok" if outcome == "ok" else "error",
        )
        cost = catalog_cost(self.prices, record)
        await self._record(exchange, replace(record, cost_micros=cost), cost)
        exchange.log["characters"] = len(text)
        if outcome == "client_disconnected":
            exchange.log["outcome"] = outcome
            return 499
        await send({"type": "http.response.body", "body": last[0], "more_body": False})
        return 200

    # Recording

    @staticmethod
    def _facts(exchange: Exchange) -> KeyFacts:
        assert exchange.facts is not None
        return exchange.facts

    async def _record_llm(
        self, exchange: Exchange, input_tokens: int, output_tokens: int, status: str
    ) -> None:
        facts = self._facts(exchange)
        record = LlmRecord(
            id=exchange.request_id,
            ts=exchange.now,
            key_id=facts.key_id,
            provider=exchange.provider,
            model=exchange.model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            agent_id=facts.agent_id,
            status=status,
        )
        # Billed whatever the status: a stream cut short was still produced, and paid for.
        cost = catalog_cost(self.prices, record)
        exchange.log.update(input_tokens=input_tokens, output_tokens=output_tokens)
        await self._record(exchange, replace(record, cost_micros=cost), cost)

    async def _record(self, exchange: Exchange, record: LlmRecord | VoiceRecord, cost: int) -> None:
        """Commit the event and settle the reservation in one transaction; then, and only then,
        may the response complete."""
        assert exchange.reservation is not None
        settlement = Settlement(exchange.reservation, cost)
        try:
            # Shielded: a client that leaves now does not take back a cost already incurred.
            started = time.perf_counter()
            await asyncio.shield(self.writer.record(record, settlement))
            exchange.log["record_ms"] = round((time.perf_counter() - started) * 1000, 3)
            exchange.settled = True
        except Exception as exc:
            # The class and the first line of the message: SQL and hashes, never a secret.
            exchange.log["record_error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
            raise Refusal(
                503,
                "recording_failed",
                "The request was answered but could not be recorded; it was not charged. "
                "Please retry.",
                kind="server_error",
                retry=True,
            ) from None
        axis = "voice" if isinstance(record, VoiceRecord) else "llm"
        exchange.log["cost_micros"] = cost
        self.metrics.inc("crabglamp_proxy_recorded_spend_micros_total", (axis,), cost)
        self.metrics.inc("crabglamp_proxy_recorded_events_total", (axis, record.status))

    async def _record_failure(self, exchange: Exchange, outcome: str) -> None:
        """An upstream failure costs nothing: recorded as a failed request, reservation freed."""
        exchange.log["outcome"] = outcome
        facts = self._facts(exchange)
        record: LlmRecord | VoiceRecord
        if exchange.route == "speech":
            record = VoiceRecord(
                id=exchange.request_id,
                ts=exchange.now,
                account_id=facts.account_id,
                voice_model=exchange.model,
                characters=0,
                cost_micros=0,
                agent_id=facts.agent_id,
                key_id=facts.key_id,
                status="error",
            )
        else:
            record = LlmRecord(
                id=exchange.request_id,
                ts=exchange.now,
                key_id=facts.key_id,
                provider=exchange.provider,
                model=exchange.model,
                input_tokens=0,
                output_tokens=0,
                cost_micros=0,
                agent_id=facts.agent_id,
                status="error",
            )
        self.metrics.inc("crabglamp_proxy_reservations_released_total", (outcome,))
        with contextlib.suppress(Refusal):
            await self._record(exchange, record, 0)

    async def _release(self, exchange: Exchange, reason: str) -> None:
        exchange.log["outcome"] = reason
        if exchange.reservation is None or exchange.settled:
            return
        exchange.settled = True
        self.metrics.inc("crabglamp_proxy_reservations_released_total", (reason,))
        try:
            await asyncio.shield(self.caps.release(exchange.reservation))
        except Exception as exc:  # the sweeper frees it at its deadline
            exchange.log["release_error"] = type(exc).__name__


# ASGI plumbing


class ProxySlot:
    """The running proxy: the routes exist before the app's lifespan starts it, so they hold this
    slot, which the lifespan fills in and empties."""

    def __init__(self) -> None:
        self.proxy: Proxy | None = None


class ProxyEndpoint:
    def __init__(self, route: str, slot: ProxySlot) -> None:
        self.route = route
        self.slot = slot

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        proxy = self.slot.proxy
        if proxy is None:
            refusal = Refusal(
                503, "proxy_unavailable", "The proxy is not running.", kind="server_error"
            )
            await _send_refusal(send, refusal, "")
            return
        await proxy.handle(self.route, scope, receive, send)


def proxy_routes(slot: ProxySlot) -> list[BaseRoute]:
    def find_metrics(_scope: Scope) -> Metrics | None:
        return slot.proxy.metrics if slot.proxy is not None else None

    return [
        *(
            Route(path, ProxyEndpoint(route, slot), methods=["POST"])
            for route, path in ROUTES.items()
        ),
        Route("/metrics", MetricsEndpoint(find_metrics), methods=["GET"]),
    ]


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise Refusal(413, "request_too_large", f"The request body exceeds {limit} bytes.")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _until_disconnect(receive: Receive) -> None:
    with contextlib.suppress(Exception):  # a receive that fails means the client is gone too
        while (await receive())["type"] != "http.disconnect":
            pass


async def _race(work: Coroutine[Any, Any, _T], gone: asyncio.Task[None]) -> _T:
    """Run `work` unless the client goes away first (then cancel it and raise _ClientGone)."""
    task = asyncio.ensure_future(work)
    done, _ = await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
    raise _ClientGone


async def _within(work: Coroutine[Any, Any, _T], seconds: float) -> _T:
    async with asyncio.timeout(seconds):
        return await work


def _bearer(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            header: bytes = value
            scheme, _, token = header.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            return None
    return None


def _images(message: Any) -> int:
    if not isinstance(message, dict) or not isinstance(message.get("content"), list):
        return 0
    return sum(
        1
        for part in message["content"]
        if isinstance(part, dict) and part.get("type") in _IMAGE_PARTS
    )


def _usage_of(content: bytes) -> tuple[int | None, int | None]:
    try:
        usage = json.loads(content).get("usage") or {}
        prompt = int(usage["prompt_tokens"])
        completion = int(usage.get("completion_tokens") or 0)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None, None
    return prompt, completion


@dataclass(slots=True)
class _StreamState:
    usage: tuple[int, int] | None = None
    content_chunks: int = 0


def _chunk_usage(event: bytes) -> tuple[int, int] | None:
    data = _event_data(event)
    try:
        usage = json.loads(data).get("usage")
        if not usage:
            return None
        return int(usage["prompt_tokens"]), int(usage.get("completion_tokens") or 0)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


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


def _sse_error(message: str, code: str) -> bytes:
    error = {"message": message, "type": "upstream_error", "param": None, "code": code}
    return b"data: " + json.dumps({"error": error}).encode() + b"\n\n"


def _cap_refusal(outcome: CapExceeded) -> Refusal:
    cap = micros_to_cents(outcome.cap_micros)
    spent = micros_to_cents(outcome.spent_micros)
    reserved = micros_to_cents(outcome.reserved_micros)
    estimate = micros_to_cents(outcome.estimate_micros)
    return Refusal(
        429,
        "spend_cap_exceeded",
        f"This virtual key's monthly spend cap of {_dollars(cap)} is reached: {_dollars(spent)} "
        f"accrued this month and {_dollars(reserved)} reserved by requests in flight, and this "
        f"request may cost up to {_dollars(estimate)}. Raise the cap or wait for next month.",
        kind="insufficient_quota",
        extra={
            "spend_cap_cents": cap,
            "accrued_cents": spent,
            "reserved_cents": reserved,
            "estimate_cents": estimate,
        },
    )


def _dollars(cents: float) -> str:
    whole, _, fraction = f"{cents / 100:,.8f}".rstrip("0").partition(".")
    return f"${whole}.{fraction.ljust(2, '0')}"


def _upstream_refusal(exchange: Exchange, status: int, body: bytes) -> Refusal:
    message = f"The {exchange.provider} upstream answered {status}."
    code = "upstream_error"
    try:
        error = json.loads(body)["error"]
        message = f"{message} {error.get('message') or ''}".strip()
        code = error.get("code") or code
    except (ValueError, KeyError, TypeError, AttributeError):
        pass
    if status >= 500:
        return Refusal(502, "upstream_error", message, kind="upstream_error", retry=True)
    # The upstream found fault with the request (or rate-limited us): pass its verdict on.
    return Refusal(status, str(code), message, retry=status in (408, 409, 429))


async def _send_refusal(
    send: Send, refusal: Refusal, request_id: str, responded: bool = False, sse: bool = True
) -> None:
    if responded:
        # Headers are out: in an event stream the refusal becomes its last event; audio just ends.
        body = _sse_error(refusal.message, refusal.code) if sse else b""
        await send({"type": "http.response.body", "body": body, "more_body": False})
        return
    headers = [(b"x-should-retry", b"true" if refusal.retry else b"false")]
    if request_id:
        headers.append((b"x-crabglamp-request-id", request_id.encode()))
    await _send_whole(send, refusal.status, refusal.body(), "application/json", request_id, headers)


async def _send_whole(
    send: Send,
    status: int,
    body: bytes,
    content_type: str,
    request_id: str,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    all_headers = [
        (b"content-type", content_type.encode("latin-1")),
        (b"content-length", str(len(body)).encode()),
    ]
    if headers is not None:
        all_headers.extend(headers)
    elif request_id:
        all_headers.append((b"x-crabglamp-request-id", request_id.encode()))
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": body})


# Structured logs: one JSON object per line on stderr, never a secret


class _JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": utcnow().isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(fields)
        else:
            line["message"] = record.getMessage()
        return json.dumps(line, default=str)


def _log_to_stderr() -> None:
    if any(getattr(h, "_crabglamp", False) for h in logger.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonLines())
    handler._crabglamp = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def _emit(fields: dict[str, Any]) -> None:
    logger.info(fields.get("event", "proxy"), extra={"fields": fields})
