"""Through the database: the same keys in the rollups, read back as `anomalies` reads them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from crabglamp.db import make_engine, read_transaction, write_transaction
from crabglamp.db.tables import table_of
from crabglamp.dev.anomaly_eval.labels import ACCOUNT_ID, MONTH, LabelledKey
from crabglamp.dev.anomaly_eval.scoring import Evaluation, score
from crabglamp.jobs.anomalies.anomaly import Anomaly
from crabglamp.jobs.anomalies.period import anomalies_in_period
from crabglamp.migrate import upgrade
from crabglamp.models import NONE_ID, Account, Agent, LlmDaily, LlmHourly, VirtualKey
from crabglamp.periods import Period, day_start
from crabglamp.settings import Thresholds


async def load_into(engine: AsyncEngine, items: Sequence[LabelledKey]) -> None:
    """The account, its keys and agents, and the keys' daily and hourly rollup rows in the shape
    ingest leaves them: the cost and request counts that detection reads.

    Written straight to the rollups, not through the Ingestor: it records one event per request,
    and a seed's labelled keys make about 300 million requests (the tests' sample of 21 keys,
    about 19 million)."""
    agents = sorted(
        {
            p.agent_id
            for item in items
            for parts in item.activity.parts.values()
            for p in parts
            if p.agent_id is not None
        },
        key=str,
    )
    daily_rows, hourly_rows = [], []
    for item in items:
        a = item.activity
        for day, parts in a.parts.items():
            for p in parts:
                daily_rows.append(
                    {
                        "account_id": ACCOUNT_ID,
                        "day": day,
                        "key_id": a.key_id,
                        "agent_id": p.agent_id or NONE_ID,
                        "provider": p.provider,
                        "model": p.model,
                        "cost_micros": p.cost_micros,
                        "request_count": p.request_count,
                        "input_tokens": 0,
                        "output_tokens": 0,
                    }
                )
        for hour, cost in a.hourly.items():
            hourly_rows.append(
                {
                    "account_id": ACCOUNT_ID,
                    "key_id": a.key_id,
                    "hour": hour,
                    "cost_micros": cost,
                    "request_count": 1,
                }
            )
    async with write_transaction(engine) as conn:
        await conn.execute(_table(Account).insert(), [{"id": ACCOUNT_ID, "name": "Eval"}])
        if agents:
            await conn.execute(
                _table(Agent).insert(),
                [{"id": a, "account_id": ACCOUNT_ID, "name": f"agent-{a.hex[:6]}"} for a in agents],
            )
        await conn.execute(
            _table(VirtualKey).insert(),
            [
                {
                    "id": item.activity.key_id,
                    "account_id": ACCOUNT_ID,
                    "name": item.activity.name,
                    "spend_cap_micros": item.activity.cap_micros,
                    "status": "active",
                    "created_at": day_start(item.activity.since or MONTH.start),
                }
                for item in items
            ],
        )
        for table, rows in ((_table(LlmDaily), daily_rows), (_table(LlmHourly), hourly_rows)):
            for start in range(0, len(rows), 5000):
                await conn.execute(table.insert(), rows[start : start + 5000])


def _table(model: Any) -> Any:
    return table_of(model)


async def evaluate_in_database(
    url: str, items: Sequence[LabelledKey], t: Thresholds | None = None
) -> Evaluation:
    """The same keys written to a fresh database's rollups, judged as the `anomalies` query
    judges a past month."""
    t = t or Thresholds()
    engine = make_engine(url)
    try:
        await upgrade(engine)
        await load_into(engine, items)
        now = day_start(MONTH.end + timedelta(days=1))
        async with read_transaction(engine) as conn:
            found_all = await anomalies_in_period(
                conn, [ACCOUNT_ID], Period(MONTH.start, MONTH.end), now, t
            )
    finally:
        await engine.dispose()
    found: dict[uuid.UUID, list[Anomaly]] = {}
    for anomaly in found_all:
        if anomaly.key_id is not None:
            found.setdefault(anomaly.key_id, []).append(anomaly)
    return score(items, found)
