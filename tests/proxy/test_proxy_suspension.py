"""A key suspended, or its cap lowered, by another process (the watcher applying the key's leak
policy) is refused by a running proxy server from its very next request — whatever the server's
cache of key look-ups holds: 403 `key_suspended` naming the anomaly, or 429 at the new cap; and
resumed, it is served again. The proxy is a server process of its own; the watcher runs here."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from crabglamp import keys
from crabglamp.db import write_transaction
from crabglamp.db.tables import table_of
from crabglamp.dev.fake_upstream import create_fake_upstream
from crabglamp.ingest.ingestor import Ingestor
from crabglamp.jobs.watch import UsageWatcher
from crabglamp.models import VirtualKey
from leak_support import flood, quiet_history
from proxy_support import make_key, serve, start_server, write_config

pytestmark = pytest.mark.slow

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}


async def _ask(url: str, secret: str) -> httpx.Response:
    # Async: the fake upstream answers from this test's own event loop.
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.post(
            f"{url}/v1/chat/completions",
            json=CHAT,
            headers={"Authorization": f"Bearer {secret}"},
        )


async def _policy(engine: AsyncEngine, key_id: Any, policy: str) -> None:
    async with write_transaction(engine) as conn:
        await conn.execute(
            update(table_of(VirtualKey))
            .where(table_of(VirtualKey).c.id == key_id)
            .values(leak_policy=policy)
        )


@pytest.mark.parametrize("policy", ["suspend", "lower_cap"])
async def test_a_leak_policy_applied_elsewhere_is_enforced_on_the_next_request(
    engine: AsyncEngine, db_url: str, tmp_path: Path, policy: str
) -> None:
    key = await make_key(engine, cap_micros=50_000 * 1_000_000, name="legacy-zapier")
    await _policy(engine, key.key.id, policy)
    now = datetime.now(UTC)
    ingestor = Ingestor(engine)
    await ingestor.record(quiet_history(key.key.id, now))
    async with serve(create_fake_upstream()) as upstream:
        config = write_config(tmp_path / "upstreams.toml", upstream)
        server = start_server(db_url, config, tmp_path / "server.log")
        try:
            # Served (and its key look-up cached by the server) before the leak.
            assert (await _ask(server.url, key.secret)).status_code == 200
            await ingestor.record(flood(key.key.id, now))
            watcher = UsageWatcher(engine)
            try:
                report = await watcher.run_once()
            finally:
                await watcher.close()
            (anomaly,) = [a for a in report.new_anomalies if a.kind.value == "SPIKE_ON_QUIET_KEY"]

            refused = await _ask(server.url, key.secret)
            error = refused.json()["error"]
            if policy == "suspend":
                assert refused.status_code == 403
                assert error["code"] == "key_suspended"
                assert error["type"] == "invalid_request_error"
                assert "suspended" in error["message"] and anomaly.id in error["message"]
                assert error["anomaly_id"] == anomaly.id
                # And again: the server's cache now knows, and says the same.
                assert (await _ask(server.url, key.secret)).json()["error"][
                    "code"
                ] == "key_suspended"
                async with write_transaction(engine) as conn:
                    await keys.resume_key(conn, key.key.id)
            else:
                assert refused.status_code == 429
                assert error["code"] == "spend_cap_exceeded"
                async with write_transaction(engine) as conn:
                    await keys.set_spend_cap(conn, key.key.id, 50_000 * 1_000_000)
            # Reverted by an administrator: served again from the next request on.
            assert (await _ask(server.url, key.secret)).status_code == 200
        finally:
            server.stop()


async def test_a_suspended_key_is_refused_by_the_in_process_proxy_too(
    engine: AsyncEngine, db_url: str, tmp_path: Path
) -> None:
    from proxy_support import proxy_stack

    key = await make_key(engine, cap_micros=None)
    async with proxy_stack(engine, db_url, tmp_path) as stack:
        assert (await _ask(stack.url, key.secret)).status_code == 200
        async with write_transaction(engine) as conn:
            await keys.suspend_key(conn, key.key.id, "It was suspended by user_alice.")
        refused = await _ask(stack.url, key.secret)
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "key_suspended"
        assert "user_alice" in refused.json()["error"]["message"]
        assert refused.headers["x-should-retry"] == "false"
