"""The cap under concurrency (CONTRACTS.md §7.2): 200 concurrent requests, each reserving $0.10 and
costing $0 to $0.10, against a key capped at $1.00, sent to two server processes that share the
database — on SQLite and PostgreSQL. Spend never passes the cap, and neither does spend plus
what is reserved, sampled all along. Their logs are JSON lines without a secret."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import openai
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from crabglamp.db import read_transaction
from crabglamp.db.tables import table_of
from crabglamp.dev.fake_upstream import create_fake_upstream
from crabglamp.models import KeySpend
from proxy_support import (
    CAP_MODEL,
    CAP_OUTPUT_MICROS_PER_TOKEN,
    add_cap_model_price,
    events,
    make_key,
    reservations,
    serve,
    spend,
    start_server,
    write_config,
)

pytestmark = pytest.mark.slow

CAP = 100_000_000  # $1.00 in micro-cents
ESTIMATE = 1000 * CAP_OUTPUT_MICROS_PER_TOKEN  # $0.10: max_tokens=1000, input free


async def _peak_commitment(engine: AsyncEngine, done: asyncio.Event, peaks: dict[str, int]) -> None:
    """Sample spent + reserved of every key until `done`, keeping the highest per key."""
    table = table_of(KeySpend)
    while not done.is_set():
        async with read_transaction(engine) as conn:
            rows = await conn.execute(
                select(table.c.key_id, table.c.spent_micros + table.c.reserved_micros)
            )
            for key_id, committed in rows:
                peaks[str(key_id)] = max(peaks.get(str(key_id), 0), committed)
        await asyncio.sleep(0.002)


async def test_two_servers_sharing_a_database_keep_spend_under_the_cap(
    engine: AsyncEngine, db_url: str, tmp_path: Path
) -> None:
    await add_cap_model_price(engine)
    bounded = await make_key(engine, cap_micros=CAP, name="with-max-tokens")
    unbounded = await make_key(
        engine, bounded.key.account_id, cap_micros=CAP, name="without-max-tokens"
    )
    async with serve(create_fake_upstream()) as upstream_url:
        # Without max_tokens a request is estimated at 1,000 output tokens: $0.10 as well.
        config = write_config(
            tmp_path / "upstreams.toml", upstream_url, default_max_output_tokens=1000
        )
        servers = await asyncio.gather(
            *(
                asyncio.to_thread(start_server, db_url, config, tmp_path / f"server-{i}.log")
                for i in range(2)
            )
        )
        try:
            clients = {
                (s.url, k.secret): openai.AsyncOpenAI(
                    base_url=f"{s.url}/v1", api_key=k.secret, max_retries=0, timeout=60
                )
                for s in servers
                for k in (bounded, unbounded)
            }

            async def one(i: int, secret: str, with_max: bool) -> int:
                client = clients[(servers[i % 2].url, secret)]
                # Actual output: 0..1,000 tokens ($0 to $0.10), the same for the same text.
                text = f"request {i} [fake:output=random:1000] [fake:delay=0.05]"
                extra = {"max_tokens": 1000} if with_max else {}
                try:
                    await client.chat.completions.create(
                        model=CAP_MODEL, messages=[{"role": "user", "content": text}], **extra
                    )
                except openai.RateLimitError as refused:
                    assert refused.code == "spend_cap_exceeded"
                    return 429
                return 200

            done = asyncio.Event()
            peaks: dict[str, int] = {}
            sampler = asyncio.create_task(_peak_commitment(engine, done, peaks))
            with_max = await asyncio.gather(*(one(i, bounded.secret, True) for i in range(200)))
            without_max = await asyncio.gather(
                *(one(i, unbounded.secret, False) for i in range(200))
            )
            done.set()
            await sampler
            for client in clients.values():
                await client.close()
        finally:
            for server in servers:
                server.stop()

    for key, outcomes in ((bounded, with_max), (unbounded, without_max)):
        month = await spend(engine, key.key.id)
        recorded = await events(engine, key.key.id)
        admitted = outcomes.count(200)
        assert admitted >= 10, admitted  # at least the first ten $0.10 reservations fit
        assert outcomes.count(429) > 0
        assert len(recorded) == admitted
        assert month.spent_micros == sum(e["cost_micros"] for e in recorded)
        assert month.reserved_micros == 0
        # Each request's estimate was its true maximum, so neither key passed its cap at all
        # (and certainly not by more than one request's maximum cost).
        assert month.spent_micros <= CAP
        assert 0 < peaks[str(key.key.id)] <= CAP
    assert await reservations(engine) == 0

    secrets = (bounded.secret, unbounded.secret)
    logged = 0
    for server in servers:
        text = server.log.read_text()
        assert not any(secret in text for secret in secrets)
        assert not any(secret[12:] in text for secret in secrets)
        for line in text.splitlines():
            if line.startswith("{"):
                entry = json.loads(line)
                if entry.get("event") == "proxy_request":
                    logged += 1
    assert logged == 400
