"""`kill -9` under load loses no acknowledged request (CONTRACTS.md §1.5 and §7.2), and the
rollups still equal the sum of the events. Both engines."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import openai
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from crabglamp.dev.fake_upstream import create_fake_upstream
from proxy_support import (
    events,
    make_key,
    reservations,
    serve,
    spend,
    start_server,
    table_sql,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.slow

CENT = 1_000_000


async def test_kill_9_under_load_loses_no_acknowledged_request(
    engine: AsyncEngine, db_url: str, tmp_path: Path
) -> None:
    key = await make_key(engine, cap_micros=1_000_000 * CENT)
    acknowledged: list[str] = []
    failures = 0
    async with serve(create_fake_upstream()) as upstream_url:
        # The default deadline (max_request_seconds = 600): only the killed process's lease
        # can free its reservations in time (proxy/lease.py).
        config = write_config(tmp_path / "upstreams.toml", upstream_url, sweep_interval_seconds=0.2)
        log = tmp_path / "server.log"
        server = await asyncio.to_thread(start_server, db_url, config, log)
        client = openai.AsyncOpenAI(
            base_url=f"{server.url}/v1", api_key=key.secret, max_retries=0, timeout=10
        )
        stop = asyncio.Event()

        async def load(worker: int) -> None:
            nonlocal failures
            n = 0
            while not stop.is_set():
                n += 1
                try:
                    raw = await client.chat.completions.with_raw_response.create(
                        model="gpt-4o-mini",
                        messages=[
                            {"role": "user", "content": f"w{worker} n{n} [fake:output=random:40]"}
                        ],
                        max_tokens=40,
                    )
                    raw.parse()  # the whole answer arrived: this request was acknowledged
                    acknowledged.append(raw.headers["x-crabglamp-request-id"])
                except (openai.APIConnectionError, openai.APIStatusError):
                    failures += 1
                    await asyncio.sleep(0.01)

        try:
            workers = [asyncio.create_task(load(i)) for i in range(16)]
            await wait_until(_count_at_least(acknowledged, 150), within=30, interval=0.01)
            server.kill()  # kill -9
            await asyncio.sleep(0.3)
            stop.set()
            await asyncio.gather(*workers)
            assert failures > 0  # requests were in flight when it died

            restarted = await asyncio.to_thread(start_server, db_url, config, log)
            try:
                # The killed process's reservations are freed by the restarted one's first sweeps.
                async def swept() -> bool:
                    return await reservations(engine) == 0

                await wait_until(swept, within=15)
            finally:
                restarted.stop()
        finally:
            with contextlib.suppress(Exception):
                await client.close()
            server.stop()

    recorded = {e["id"]: e for e in await events(engine, key.key.id)}
    missing = [request_id for request_id in acknowledged if request_id not in recorded]
    assert missing == []
    assert all(recorded[request_id]["status"] == "ok" for request_id in acknowledged)

    # Rollups equal the sum of the events, per day and per hour, and so does the cap's spend.
    by_day = await table_sql(
        engine,
        "SELECT SUM(cost_micros), COUNT(*), SUM(input_tokens), SUM(output_tokens) FROM llm_event",
    )
    daily = await table_sql(
        engine,
        "SELECT SUM(cost_micros), SUM(request_count), SUM(input_tokens), SUM(output_tokens) "
        "FROM llm_daily",
    )
    hourly = await table_sql(engine, "SELECT SUM(cost_micros), SUM(request_count) FROM llm_hourly")
    assert tuple(daily[0]) == tuple(by_day[0])
    assert tuple(hourly[0]) == tuple(by_day[0])[:2]
    per_day_events = await table_sql(
        engine,
        "SELECT model, SUM(cost_micros), COUNT(*) FROM llm_event GROUP BY model ORDER BY model",
    )
    per_day_rollup = await table_sql(
        engine,
        "SELECT model, SUM(cost_micros), SUM(request_count) FROM llm_daily "
        "GROUP BY model ORDER BY model",
    )
    assert [tuple(r) for r in per_day_rollup] == [tuple(r) for r in per_day_events]
    month = await spend(engine, key.key.id)
    assert month.spent_micros == sum(e["cost_micros"] for e in recorded.values())
    assert month.reserved_micros == 0


def _count_at_least(items: list[str], n: int):  # type: ignore[no-untyped-def]
    async def check() -> bool:
        return len(items) >= n

    return check
