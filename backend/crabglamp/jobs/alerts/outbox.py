"""The outbox: events turned into deliveries, one per endpoint and event, due at once; what the
sender (sender.py) sends."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from crabglamp.db.dialect import insert_for
from crabglamp.db.tables import table_of
from crabglamp.jobs.alerts.endpoints import EndpointView
from crabglamp.jobs.alerts.events import AlertEvent
from crabglamp.models import AlertDelivery, AlertEndpoint

_endpoints = table_of(AlertEndpoint)
_deliveries = table_of(AlertDelivery)


async def enqueue(
    conn: AsyncConnection,
    events: Sequence[AlertEvent],
    now: datetime,
    endpoint_id: uuid.UUID | None = None,
) -> int:
    """One delivery per enabled endpoint of each event's account (or just `endpoint_id`), due
    now; an event already delivered (or queued) to an endpoint is not queued again."""
    if not events:
        return 0
    accounts = sorted({e.account_id for e in events})
    statement = select(_endpoints.c.id, _endpoints.c.account_id).where(
        _endpoints.c.account_id.in_(accounts), _endpoints.c.enabled.is_(True)
    )
    if endpoint_id is not None:
        statement = statement.where(_endpoints.c.id == endpoint_id)
    targets: dict[uuid.UUID, list[uuid.UUID]] = {}
    for target, account_id in await conn.execute(statement):
        targets.setdefault(account_id, []).append(target)
    rows = [
        {
            "id": uuid.uuid4(),
            "endpoint_id": target,
            "account_id": event.account_id,
            "event_id": event.id,
            "event_type": event.type,
            "payload": event.body(),
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for event in events
        for target in sorted(targets.get(event.account_id, []))
    ]
    queued = 0
    for row in rows:
        done = await conn.execute(
            insert_for(conn, _deliveries)
            .values(**row)
            .on_conflict_do_nothing(
                index_elements=[_deliveries.c.endpoint_id, _deliveries.c.event_id]
            )
            .returning(_deliveries.c.id)
        )
        queued += done.first() is not None
    return queued


async def send_test_alert(
    conn: AsyncConnection, endpoint: EndpointView, now: datetime
) -> AlertEvent:
    event = AlertEvent(
        id=f"test:{uuid.uuid4()}",
        type="test",
        account_id=endpoint.account_id,
        created_at=now,
        data={"message": "A test alert from CrabGlamp Usage: this endpoint receives alerts."},
    )
    await enqueue(conn, [event], now, endpoint_id=endpoint.id)
    return event
