"""Stored anomalies: what the watcher detected as usage arrived, once per key, kind and month."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from crabglamp.db.changes import ChangeKind, ChangeSet, announce
from crabglamp.db.dialect import insert_for
from crabglamp.db.tables import table_of
from crabglamp.jobs.anomalies.anomaly import Anomaly, AnomalyKind, AnomalyState
from crabglamp.models import AnomalyRecord
from crabglamp.periods import Period, as_utc

_anomalies = table_of(AnomalyRecord)


def _row(anomaly: Anomaly) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "dedupe_key": anomaly.dedupe_key,
        "kind": anomaly.kind.value,
        "account_id": anomaly.account_id,
        "key_id": anomaly.key_id,
        "agent_id": anomaly.agent_id,
        "day": anomaly.day,
        "severity": anomaly.severity,
        "message": anomaly.message,
        "suggested_action": anomaly.suggested_action,
        "details": json.dumps(anomaly.details, sort_keys=True),
        "detected_at": anomaly.detected_at,
    }


async def store_new(conn: AsyncConnection, found: Sequence[Anomaly]) -> list[Anomaly]:
    """Store anomalies not stored before (by key, kind and month); returns the new ones."""
    new: list[Anomaly] = []
    for anomaly in sorted(found, key=lambda a: a.dedupe_key):
        done = await conn.execute(
            insert_for(conn, _anomalies)
            .values(**_row(anomaly))
            .on_conflict_do_nothing(index_elements=[_anomalies.c.dedupe_key])
            .returning(_anomalies.c.id)
        )
        if done.first() is not None:
            new.append(anomaly)
    changed = ChangeSet()
    for anomaly in new:
        changed.add(anomaly.account_id, ChangeKind.ANOMALIES)
    await announce(conn, changed)
    return new


def _moment(value: Any) -> Any:
    return None if value is None else as_utc(value)


def state_of_row(row: Any) -> AnomalyState:
    return AnomalyState(
        state=row.state,
        acknowledged_by=row.acknowledged_by,
        acknowledged_at=_moment(row.acknowledged_at),
        resolution=row.resolution,
        resolution_reason=row.resolution_reason,
        resolved_by=row.resolved_by,
        resolved_at=_moment(row.resolved_at),
        policy_action=row.policy_action,
        policy_applied_at=_moment(row.policy_applied_at),
        policy_previous_cap_micros=row.policy_previous_cap_micros,
        policy_reverted_at=_moment(row.policy_reverted_at),
        policy_reverted_by=row.policy_reverted_by,
    )


def from_row(row: Any) -> Anomaly:
    return Anomaly(
        kind=AnomalyKind(row.kind),
        account_id=row.account_id,
        key_id=row.key_id,
        agent_id=row.agent_id,
        day=row.day,
        severity=row.severity,
        message=row.message,
        suggested_action=row.suggested_action,
        detected_at=as_utc(row.detected_at),
        details=json.loads(row.details),
        state=state_of_row(row),
    )


async def stored_anomalies(
    conn: AsyncConnection, account_ids: Sequence[uuid.UUID], period: Period
) -> list[Anomaly]:
    if not account_ids:
        return []
    rows = await conn.execute(
        select(_anomalies).where(
            _anomalies.c.account_id.in_(sorted(set(account_ids))),
            _anomalies.c.day >= period.start,
            _anomalies.c.day <= period.end,
        )
    )
    return [from_row(row) for row in rows]


def newest_first(found: Iterable[Anomaly]) -> list[Anomaly]:
    return sorted(found, key=lambda a: (-a.day.toordinal(), -a.severity, a.dedupe_key))
