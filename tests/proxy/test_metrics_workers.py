"""`/metrics` of `crabglamp serve --workers 2` is the server's one set of counters, whichever
worker answers; its families keep the names, types and help texts that scrapers know."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.metrics_core import Metric
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncEngine

from crabglamp.cli import _metrics_across_workers
from crabglamp.dev.fake_upstream import create_fake_upstream
from devsupport.servers import Spawned, free_port, running
from proxy_support import REPO, make_key, proxy_stack, serve, write_config

REQUESTS = 200
CHAT_OK = {"route": "chat", "status": "200"}

# The families of /metrics as they were written by hand before prometheus-client kept them.
FAMILIES = {
    ("crabglamp_proxy_requests", "counter", "Proxied requests by route and HTTP status."),
    (
        "crabglamp_proxy_refusals",
        "counter",
        "Requests refused before reaching an upstream, by error code.",
    ),
    (
        "crabglamp_proxy_upstream_latency_seconds",
        "histogram",
        "Time from forwarding a request to the upstream's response headers.",
    ),
    (
        "crabglamp_proxy_request_duration_seconds",
        "histogram",
        "Time from a request's arrival to its last byte, recording included.",
    ),
    (
        "crabglamp_proxy_recorded_spend_micros",
        "counter",
        "Spend recorded by the proxy, in micro-cents.",
    ),
    ("crabglamp_proxy_recorded_events", "counter", "Events recorded by the proxy."),
    # Added with list prices by token category (test_proxy_prices.py counts them).
    (
        "crabglamp_proxy_unpriced_models",
        "counter",
        "Requests refused because neither the list nor an override prices their model.",
    ),
    (
        "crabglamp_proxy_unpriced_tier",
        "counter",
        "Answers at a service tier the catalog does not price, priced at the admitted tier.",
    ),
    (
        "crabglamp_proxy_reservations_released",
        "counter",
        "Reservations given back (upstream error, timeout, client gone).",
    ),
    (
        "crabglamp_proxy_reservations_swept",
        "counter",
        "Reservations freed by the sweeper after their request's deadline.",
    ),
    ("crabglamp_proxy_in_flight", "gauge", "Requests being proxied right now."),
    ("crabglamp_writer_batch_size", "histogram", "Events per group-commit transaction."),
    ("crabglamp_writer_batches", "counter", "Group-commit transactions committed."),
    ("crabglamp_writer_events", "counter", "Events committed by the group-commit writer."),
}


def _families(exposition: str) -> dict[str, Metric]:
    return {family.name: family for family in text_string_to_metric_families(exposition)}


def _value(family: Metric, name: str, labels: dict[str, str] | None = None) -> float:
    return sum(
        sample.value
        for sample in family.samples
        if sample.name == name and (labels is None or sample.labels == labels)
    )


@contextlib.contextmanager
def _serve_workers(db_url: str, config: Path, shared: Path, log: Path) -> Iterator[Spawned]:
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "CRABGLAMP_UPSTREAM_CONFIG": str(config),
        "CRABGLAMP_BACKGROUND": "0",
        "PROMETHEUS_MULTIPROC_DIR": str(shared),
    }
    command = [
        sys.executable,
        "-m",
        "crabglamp.cli",
        "serve",
        "--port",
        str(port),
        "--workers",
        "2",
    ]
    with running(command, port=port, log=log, env=env, cwd=REPO, ready="/healthz") as server:
        yield server


def _stale_run(shared: Path) -> None:
    """A file left by an earlier run's worker: its 1,000 requests must not count in this run."""
    shared.mkdir()
    stale = MmapedDict(str(shared / "counter_1.db"))
    key = mmap_key(
        "crabglamp_proxy_requests",
        "crabglamp_proxy_requests_total",
        ["route", "status"],
        ["chat", "200"],
        "Proxied requests by route and HTTP status.",
    )
    stale.write_value(key, 1000.0, 0.0)
    stale.close()


@pytest.mark.slow
async def test_two_workers_expose_one_consistent_set_of_counters(
    engine: AsyncEngine, db_url: str, tmp_path: Path
) -> None:
    key = await make_key(engine)
    shared = tmp_path / "metrics"
    _stale_run(shared)
    async with serve(create_fake_upstream()) as upstream_url:
        config = write_config(tmp_path / "upstreams.toml", upstream_url)
        with _serve_workers(db_url, config, shared, tmp_path / "server.log") as server:
            # No keep-alive: each request a connection of its own, accepted by either worker.
            limits = httpx.Limits(max_connections=20, max_keepalive_connections=0)
            async with httpx.AsyncClient(limits=limits, timeout=60) as client:

                async def one(i: int) -> int:
                    answer = await client.post(
                        f"{server.url}/v1/chat/completions",
                        headers={"Authorization": f"Bearer {key.secret}"},
                        json={
                            "model": "gpt-4o-mini",
                            "messages": [{"role": "user", "content": f"{i}"}],
                        },
                    )
                    return answer.status_code

                assert await asyncio.gather(*(one(i) for i in range(REQUESTS))) == [200] * REQUESTS

                async def scrape() -> dict[str, Metric]:
                    answer = await client.get(f"{server.url}/metrics")
                    assert (
                        answer.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
                    )
                    return _families(answer.text)

                # A worker counts a request once its last byte is sent: let the last ones land.
                for _ in range(100):
                    requests = (await scrape())["crabglamp_proxy_requests"]
                    if _value(requests, "crabglamp_proxy_requests_total", CHAT_OK) >= REQUESTS:
                        break
                    await asyncio.sleep(0.05)
                for _ in range(10):
                    families = await scrape()
                    requests = families["crabglamp_proxy_requests"]
                    assert _value(requests, "crabglamp_proxy_requests_total", CHAT_OK) == REQUESTS
                    events = families["crabglamp_writer_events"]
                    assert _value(events, "crabglamp_writer_events_total") == REQUESTS
                    in_flight = families["crabglamp_proxy_in_flight"]
                    assert _value(in_flight, "crabglamp_proxy_in_flight") == 0
            # Both workers answered some of the requests: each counted them in its own file.
            served = []
            for path in shared.glob("counter_*.db"):
                merged = MultiProcessCollector.merge([str(path)], accumulate=True)
                by_name = {family.name: family for family in merged}
                if "crabglamp_proxy_requests" in by_name:
                    family = by_name["crabglamp_proxy_requests"]
                    served.append(_value(family, "crabglamp_proxy_requests_total", CHAT_OK))
            assert len([count for count in served if count > 0]) == 2, served
            assert sum(served) == REQUESTS


async def test_metrics_families_keep_their_names_types_and_help(
    engine: AsyncEngine, db_url: str, tmp_path: Path
) -> None:
    async with proxy_stack(engine, db_url, tmp_path) as stack, httpx.AsyncClient() as client:
        exposition = (await client.get(f"{stack.url}/metrics")).text
    found = {(f.name, f.type, f.documentation) for f in text_string_to_metric_families(exposition)}
    assert found == FAMILIES


def test_serve_shares_a_fresh_folder_between_workers_unless_one_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    with _metrics_across_workers(1):
        assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ  # one worker: in memory
    with _metrics_across_workers(2):
        made = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
        assert made.is_dir() and not list(made.iterdir())
    assert not made.exists() and "PROMETHEUS_MULTIPROC_DIR" not in os.environ
    named = tmp_path / "named"
    named.mkdir()
    (named / "counter_1.db").write_bytes(b"stale")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(named))
    with _metrics_across_workers(2):
        assert not list(named.iterdir())
    assert named.is_dir()
