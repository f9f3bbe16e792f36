"""Counters and histograms of one server process, served as Prometheus text at `/metrics`.

Small on purpose: a label set is a tuple, a histogram is cumulative bucket counts, and rendering
follows the text exposition format 0.0.4. Each worker process has its own registry; Prometheus
tells them apart by instance, as with any multi-process server.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

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


@dataclass(slots=True)
class Histogram:
    buckets: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    n: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.buckets) + 1)

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value
        self.n += 1


@dataclass(slots=True)
class _Family:
    name: str
    kind: str  # "counter" | "histogram" | "gauge"
    help: str
    label_names: tuple[str, ...]
    buckets: tuple[float, ...] = ()
    values: dict[tuple[str, ...], Any] = field(default_factory=dict)


class Metrics:
    def __init__(self) -> None:
        self._families: dict[str, _Family] = {}
        self._collectors: list[Callable[[], None]] = []

    def counter(self, name: str, help: str, labels: Sequence[str] = ()) -> str:
        self._families.setdefault(name, _Family(name, "counter", help, tuple(labels)))
        return name

    def gauge(self, name: str, help: str, labels: Sequence[str] = ()) -> str:
        self._families.setdefault(name, _Family(name, "gauge", help, tuple(labels)))
        return name

    def histogram(
        self, name: str, help: str, buckets: Sequence[float], labels: Sequence[str] = ()
    ) -> str:
        self._families.setdefault(
            name, _Family(name, "histogram", help, tuple(labels), tuple(buckets))
        )
        return name

    def inc(self, name: str, labels: tuple[str, ...] = (), amount: float = 1) -> None:
        values = self._families[name].values
        values[labels] = values.get(labels, 0) + amount

    def set(self, name: str, labels: tuple[str, ...], value: float) -> None:
        self._families[name].values[labels] = value

    def observe(self, name: str, labels: tuple[str, ...], value: float) -> None:
        family = self._families[name]
        found = family.values.get(labels)
        if found is None:
            found = family.values[labels] = Histogram(family.buckets)
        found.observe(value)

    def put_histogram(self, name: str, labels: tuple[str, ...], histogram: Histogram) -> None:
        self._families[name].values[labels] = histogram

    def on_render(self, collect: Callable[[], None]) -> None:
        """`collect` runs before each rendering, to copy figures kept elsewhere (the writer's)."""
        self._collectors.append(collect)

    def value(self, name: str, labels: tuple[str, ...] = ()) -> Any:
        return self._families[name].values.get(labels, 0)

    def render(self) -> str:
        for collect in self._collectors:
            collect()
        lines: list[str] = []
        for family in self._families.values():
            lines.append(f"# HELP {family.name} {family.help}")
            lines.append(f"# TYPE {family.name} {family.kind}")
            for labels, value in sorted(family.values.items()):
                pairs = list(zip(family.label_names, labels, strict=True))
                if family.kind == "histogram":
                    lines.extend(_histogram_lines(family.name, pairs, value))
                else:
                    lines.append(f"{family.name}{_labels(pairs)} {_number(value)}")
        return "\n".join(lines) + "\n"


def _histogram_lines(name: str, pairs: list[tuple[str, str]], h: Histogram) -> list[str]:
    lines = []
    running = 0
    for bound, count in zip((*h.buckets, math.inf), h.counts, strict=True):
        running += count
        le = "+Inf" if bound == math.inf else _number(bound)
        lines.append(f"{name}_bucket{_labels([*pairs, ('le', le)])} {running}")
    lines.append(f"{name}_sum{_labels(pairs)} {_number(h.total)}")
    lines.append(f"{name}_count{_labels(pairs)} {h.n}")
    return lines


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs: Sequence[tuple[str, str]]) -> str:
    if not pairs:
        return ""
    return "{" + ",".join(f'{key}="{_escape(value)}"' for key, value in pairs) + "}"


def _number(value: float) -> str:
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return str(int(value))
    return repr(float(value))


class MetricsEndpoint:
    """The ASGI endpoint of `/metrics` (plain ASGI: nothing here needs a framework)."""

    def __init__(self, find: Callable[[dict[str, Any]], Metrics | None]) -> None:
        self._find = find

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        metrics = self._find(scope)
        body = (metrics.render() if metrics is not None else "").encode("utf-8")
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/plain; version=0.0.4; charset=utf-8"),
                    (b"content-length", str(len(body)).encode("ascii")),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
