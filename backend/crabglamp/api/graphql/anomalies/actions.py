"""What acting on an anomaly shares between the anomaly and key mutations: telling the account's
webhooks what changed, in the mutation's own transaction (the watcher sends it within seconds)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from crabglamp.api.graphql.context import Info
from crabglamp.db.tables import table_of
from crabglamp.jobs.alerts.events import anomaly_change_event
from crabglamp.jobs.alerts.outbox import enqueue
from crabglamp.jobs.anomalies.anomaly import Anomaly
from crabglamp.jobs.anomalies.state import resolve_key_anomalies
from crabglamp.models import VirtualKey

_keys = table_of(VirtualKey)


async def announce(
    conn: AsyncConnection, changed: Sequence[Anomaly], change: str, now: datetime
) -> None:
    if not changed:
        return
    wanted = sorted({a.key_id for a in changed if a.key_id is not None}, key=str)
    names: dict[uuid.UUID, str] = {
        key_id: name
        for key_id, name in await conn.execute(
            select(_keys.c.id, _keys.c.name).where(_keys.c.id.in_(wanted))
        )
    }
    events = [
        anomaly_change_event(a, change, now, names.get(a.key_id) if a.key_id else None)
        for a in changed
    ]
    await enqueue(conn, events, now)


async def resolve_by_action(
    info: Info, conn: AsyncConnection, key_id: uuid.UUID, resolution: str
) -> None:
    """The key was rotated, re-capped or suspended through a mutation: its anomalies not
    resolved yet are resolved by that action, and the webhooks hear of it."""
    context = info.context
    changed = await resolve_key_anomalies(
        conn, key_id, resolution, context.caller.user_id, context.now, context.settings.thresholds
    )
    await announce(conn, changed, "resolved", context.now)
