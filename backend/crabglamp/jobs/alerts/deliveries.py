"""Reading deliveries and their attempts, and retrying a failed one."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from crabglamp.db.tables import table_of
from crabglamp.jobs.alerts.endpoints import AlertProblem
from crabglamp.models import AlertAttempt, AlertDelivery
from crabglamp.periods import as_utc

_deliveries = table_of(AlertDelivery)
_attempts = table_of(AlertAttempt)


@dataclass(frozen=True, slots=True)
class AttemptView:
    attempt: int
    attempted_at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int


@dataclass(frozen=True, slots=True)
class DeliveryView:
    id: uuid.UUID
    endpoint_id: uuid.UUID
    account_id: uuid.UUID
    event_id: str
    event_type: str
    payload: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    created_at: datetime
    delivered_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    attempt_log: tuple[AttemptView, ...] = field(default_factory=tuple)


DELIVERY_STATUSES = ("pending", "delivered", "failed")


async def deliveries_of(
    conn: AsyncConnection,
    account_ids: Sequence[uuid.UUID],
    endpoint_id: uuid.UUID | None = None,
    status: str | None = None,
    limit: int = 50,
    delivery_id: uuid.UUID | None = None,
) -> list[DeliveryView]:
    """Newest first, each with its attempts (two statements, whatever the count)."""
    if not account_ids:
        return []
    statement = select(_deliveries).where(_deliveries.c.account_id.in_(sorted(set(account_ids))))
    if endpoint_id is not None:
        statement = statement.where(_deliveries.c.endpoint_id == endpoint_id)
    if status is not None:
        statement = statement.where(_deliveries.c.status == status)
    if delivery_id is not None:
        statement = statement.where(_deliveries.c.id == delivery_id)
    rows = list(
        await conn.execute(
            statement.order_by(_deliveries.c.created_at.desc(), _deliveries.c.id).limit(limit)
        )
    )
    attempts: dict[uuid.UUID, list[AttemptView]] = {}
    if rows:
        found = await conn.execute(
            select(_attempts)
            .where(_attempts.c.delivery_id.in_([row.id for row in rows]))
            .order_by(_attempts.c.delivery_id, _attempts.c.attempt)
        )
        for a in found:
            attempts.setdefault(a.delivery_id, []).append(
                AttemptView(
                    a.attempt, as_utc(a.attempted_at), a.status_code, a.error, a.duration_ms
                )
            )
    return [
        DeliveryView(
            id=row.id,
            endpoint_id=row.endpoint_id,
            account_id=row.account_id,
            event_id=row.event_id,
            event_type=row.event_type,
            payload=row.payload,
            status=row.status,
            attempts=row.attempts,
            next_attempt_at=as_utc(row.next_attempt_at) if row.status == "pending" else None,
            created_at=as_utc(row.created_at),
            delivered_at=as_utc(row.delivered_at) if row.delivered_at else None,
            last_status_code=row.last_status_code,
            last_error=row.last_error,
            attempt_log=tuple(attempts.get(row.id, ())),
        )
        for row in rows
    ]


async def retry_delivery(
    conn: AsyncConnection, delivery_id: uuid.UUID, now: datetime
) -> uuid.UUID | AlertProblem:
    """A failed delivery is tried again now (with a fresh round of attempts)."""
    done = await conn.execute(
        update(_deliveries)
        .where(_deliveries.c.id == delivery_id, _deliveries.c.status == "failed")
        .values(status="pending", attempts=0, next_attempt_at=now, lease_until=None)
    )
    if done.rowcount == 1:
        return delivery_id
    exists = (
        await conn.execute(select(_deliveries.c.status).where(_deliveries.c.id == delivery_id))
    ).scalar()
    if exists is None:
        return AlertProblem("NOT_FOUND", f"no alert delivery {delivery_id}")
    return AlertProblem("NOT_FAILED", f"delivery {delivery_id} is {exists}, not failed")


async def account_of_delivery(conn: AsyncConnection, delivery_id: uuid.UUID) -> uuid.UUID | None:
    """The account a delivery belongs to (None: no such delivery), to check who may touch it."""
    found: uuid.UUID | None = (
        await conn.execute(select(_deliveries.c.account_id).where(_deliveries.c.id == delivery_id))
    ).scalar()
    return found
