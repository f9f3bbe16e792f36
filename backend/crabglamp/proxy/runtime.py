"""The metering proxy's runtime: OpenAI-compatible requests capped, forwarded and durably recorded.

    POST /v1/chat/completions   plain and streamed (SSE passed through as it arrives)
    POST /v1/embeddings
    POST /v1/audio/speech       voice: priced by the characters of `input`

A request is authenticated by `Authorization: Bearer <virtual key secret>`, its maximum cost is
reserved against the key's monthly cap (admission.py, caps.py), it is forwarded to the provider
that the price catalog names for its model (forward.py, streaming.py), and its event is
committed together with the settlement of the reservation (recording.py, writer.py) before the
response completes: the client never sees the end of a response whose cost is not on record.

A `Proxy` is one process's share of that: its HTTP client to the upstreams, its spend caps,
its key cache, its metrics, and the sweeper that frees the reservations of requests that are
certainly over. The routes (routes.py) hand each request to `Proxy.handle`.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
import traceback
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from crabglamp.db import is_sqlite
from crabglamp.periods import utcnow
from crabglamp.prices import PriceBook
from crabglamp.proxy._asgi import ClientGone, Receive, Scope, Send, until_disconnect
from crabglamp.proxy.admission import admit, read_body
from crabglamp.proxy.caps import SpendCaps
from crabglamp.proxy.exchange import Exchange
from crabglamp.proxy.forward import plain
from crabglamp.proxy.keycache import KeyCache
from crabglamp.proxy.metrics import BATCH_BUCKETS, LATENCY_BUCKETS, Metrics
from crabglamp.proxy.recording import release
from crabglamp.proxy.refusals import Refusal, send_refusal
from crabglamp.proxy.requestlog import emit, log_request, log_to_stderr
from crabglamp.proxy.reservation import month_of
from crabglamp.proxy.streaming import speech, stream
from crabglamp.proxy.upstream_client import UpstreamClient
from crabglamp.proxy.upstreams import ProxyConfig
from crabglamp.proxy.writer import GroupCommitWriter

_SQLITE_SWITCH_INTERVAL = 0.0005


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
        self.caps = SpendCaps(
            engine,
            ttl,
            lock=writer.lock,
            thread=writer.thread,
            lease_ttl=timedelta(seconds=config.lease_ttl_seconds),
            heartbeat_seconds=config.heartbeat_seconds,
        )
        self.http = UpstreamClient(config.timeout_seconds, config.connect_timeout_seconds)
        self.key_cache = KeyCache(engine)
        self._sweeper: asyncio.Task[None] | None = None
        self._declare_metrics()
        if config.request_log:
            log_to_stderr()

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
        first = True
        while True:
            # The first round runs at once: a process restarted after a crash frees what its
            # predecessor held without waiting a whole interval.
            if not first:
                await asyncio.sleep(self.config.sweep_interval_seconds)
            first = False
            try:
                freed = await self.caps.sweep()
                if freed:
                    self.metrics.inc("crabglamp_proxy_reservations_swept_total", (), freed)
                    emit({"event": "reservations_swept", "count": freed})
                if time.monotonic() - last_reconcile >= self.config.reconcile_interval_seconds:
                    last_reconcile = time.monotonic()
                    await self.caps.reconcile(month_of(utcnow()))
            except Exception as exc:  # the database may be briefly away; try again next round
                emit({"event": "sweep_failed", "error": type(exc).__name__})

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
        # No model label: the names are the clients' to choose, and would be unbounded.
        m.counter(
            "crabglamp_proxy_unpriced_models_total",
            "Requests refused because neither the list nor an override prices their model.",
        )
        m.counter(
            "crabglamp_proxy_unpriced_tier_total",
            "Answers at a service tier the catalog does not price, priced at the admitted tier.",
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
            exchange.body = await read_body(receive, self.config.max_body_bytes)
            gone = asyncio.ensure_future(until_disconnect(receive))
            await admit(self, exchange, scope)
            if route == "speech":
                status = await speech(self, exchange, tracked, gone)
            elif exchange.stream:
                status = await stream(self, exchange, tracked, gone)
            else:
                status = await plain(self, exchange, tracked, gone)
        except Refusal as refusal:
            status = refusal.status
            if exchange.reservation is None:
                self.metrics.inc("crabglamp_proxy_refusals_total", (refusal.code,))
                if refusal.code == "model_not_found":
                    self.metrics.inc("crabglamp_proxy_unpriced_models_total")
            exchange.log.setdefault("code", refusal.code)
            await send_refusal(
                tracked, refusal, exchange.request_id, exchange.responded, route != "speech"
            )
        except ClientGone:
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
                await send_refusal(
                    tracked, failure, exchange.request_id, exchange.responded, route != "speech"
                )
        finally:
            if gone is not None:
                gone.cancel()
            if exchange.reservation is not None and not exchange.settled:
                await release(self, exchange, exchange.log.get("outcome", "failed"))
            self.metrics.inc("crabglamp_proxy_in_flight", (), -1)
            elapsed = time.perf_counter() - exchange.started
            self.metrics.inc("crabglamp_proxy_requests_total", (route, str(status)))
            self.metrics.observe("crabglamp_proxy_request_duration_seconds", (route,), elapsed)
            if self.config.request_log:
                log_request(exchange, status, elapsed)
