"""Counters, gauges and histograms of the server, served as Prometheus text at `/metrics`.

prometheus-client keeps the figures. Under `crabglamp serve --workers N` each worker writes its
own to files in PROMETHEUS_MULTIPROC_DIR (which `serve` sets before the workers start), and the
worker that answers `/metrics` sums them all: every scrape sees the server's one set of counters.
Without the variable (one process, the tests) each `Metrics` keeps its figures in memory.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
    values,
)

MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)

# prometheus-client chooses between memory and shared files once, when it is first imported,
# from the environment variable: follow its choice rather than read the variable a second time.
_SHARED = values.ValueClass is not values.MutexValue
# No `<name>_created` series: the exposition never had them, and multiprocess mode has none.
# (prometheus-client leaves these three functions unannotated.)
disable_created_metrics()  # type: ignore[no-untyped-call]

GaugeMode = Literal["livesum", "livemax", "livemin", "max", "min", "sum", "mostrecent"]


class Metrics:
    def __init__(self) -> None:
        # A registry of its own: the tests run many proxies in one process. In shared mode it
        # still answers `value` with this process's figures.
        self._registry = CollectorRegistry()
        self._label_names: dict[str, tuple[str, ...]] = {}
        self._counted: dict[str, Counter | Gauge] = {}
        self._gauges: dict[str, Gauge] = {}
        self._histograms: dict[str, Histogram] = {}
        # Each metric's child per label values, looked up once: prometheus-client's `labels()`
        # checks and locks on every call (1.8 µs against 0.6 µs for the child's own `inc`, and
        # a proxied request makes about seven such calls). The label values are few: routes,
        # statuses, refusal codes, providers.
        self._children: dict[tuple[str, tuple[str, ...]], Any] = {}

    def counter(self, name: str, help: str, labels: Sequence[str] = ()) -> str:
        if name not in self._label_names:
            self._counted[name] = Counter(name, help, labels, registry=self._registry)
            self._label_names[name] = tuple(labels)
        return name

    def gauge(
        self, name: str, help: str, labels: Sequence[str] = (), *, across_workers: GaugeMode
    ) -> str:
        """`across_workers`: how the workers' values make the server's (prometheus-client's
        multiprocess_mode); a `live` mode forgets a worker once it is gone."""
        if name not in self._label_names:
            gauge = Gauge(
                name, help, labels, registry=self._registry, multiprocess_mode=across_workers
            )
            self._counted[name] = self._gauges[name] = gauge
            self._label_names[name] = tuple(labels)
        return name

    def histogram(
        self, name: str, help: str, buckets: Sequence[float], labels: Sequence[str] = ()
    ) -> str:
        if name not in self._label_names:
            self._histograms[name] = Histogram(
                name, help, labels, registry=self._registry, buckets=buckets
            )
            self._label_names[name] = tuple(labels)
        return name

    def _child(self, metrics: Mapping[str, Any], name: str, labels: tuple[str, ...]) -> Any:
        child = self._children.get((name, labels))
        if child is None:
            metric = metrics[name]
            child = self._children[(name, labels)] = metric.labels(*labels) if labels else metric
        return child

    def inc(self, name: str, labels: tuple[str, ...] = (), amount: float = 1) -> None:
        self._child(self._counted, name, labels).inc(amount)

    def set(self, name: str, labels: tuple[str, ...], value: float) -> None:
        self._child(self._gauges, name, labels).set(value)

    def observe(self, name: str, labels: tuple[str, ...], value: float) -> None:
        self._child(self._histograms, name, labels).observe(value)

    def value(self, name: str, labels: tuple[str, ...] = ()) -> float:
        """A counter's or gauge's value in this process."""
        found = self._registry.get_sample_value(
            name, dict(zip(self._label_names[name], labels, strict=True))
        )
        return found or 0

    def render(self) -> str:
        if not _SHARED:
            return generate_latest(self._registry).decode("utf-8")
        every_worker = CollectorRegistry()
        multiprocess.MultiProcessCollector(every_worker)  # type: ignore[no-untyped-call]
        return generate_latest(every_worker).decode("utf-8")

    def close(self) -> None:
        """This process stops serving: its `live` gauges no longer count (its counters do)."""
        if _SHARED:
            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


class MetricsEndpoint:
    """The ASGI endpoint of `/metrics` (plain ASGI: nothing here needs a framework).

    With a `token`, a scrape must send `Authorization: Bearer <token>`; `closed` (production
    without a token) refuses every scrape: the figures name routes, models and refusal codes,
    which are nobody's business who merely reaches the port.
    """

    def __init__(
        self,
        find: Callable[[dict[str, Any]], Metrics | None],
        token: str | None = None,
        closed: bool = False,
    ) -> None:
        self._find = find
        self._token = token.encode("utf-8") if token else None
        self._closed = closed and token is None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        refusal = self._refusal(scope)
        if refusal is not None:
            status, message = refusal
            await _send_text(
                send, status, message.encode("utf-8"), [(b"www-authenticate", b"Bearer")]
            )
            return
        metrics = self._find(scope)
        body = (metrics.render() if metrics is not None else "").encode("utf-8")
        await _send_text(send, 200, body, [], b"text/plain; version=0.0.4; charset=utf-8")

    def _refusal(self, scope: dict[str, Any]) -> tuple[int, str] | None:
        if self._closed:
            return 403, "/metrics is closed: set CRABGLAMP_METRICS_TOKEN and scrape with it\n"
        if self._token is None:
            return None
        sent = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, credentials = bytes(value).partition(b" ")
                if scheme.lower() == b"bearer":
                    sent = credentials.strip()
        # In constant time: the comparison tells nothing of how much of a guess was right.
        if not hmac.compare_digest(sent, self._token):
            return 401, "/metrics needs 'Authorization: Bearer <CRABGLAMP_METRICS_TOKEN>'\n"
        return None


async def _send_text(
    send: Any,
    status: int,
    body: bytes,
    headers: list[tuple[bytes, bytes]],
    content_type: bytes = b"text/plain; charset=utf-8",
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode("ascii")),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
