"""The admission statements, built once, and the slow path's reasons for a refusal."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import bindparam, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from crabglamp.db.tables import table_of
from crabglamp.models import KeySpend, SpendReservation, VirtualKey, VirtualKeySecret
from crabglamp.periods import as_utc
from crabglamp.proxy.ledger import open_month
from crabglamp.proxy.reservation import UNCAPPED, CapExceeded, KeyRefused

_spend = table_of(KeySpend)
_reservations = table_of(SpendReservation)
_keys = table_of(VirtualKey)
_retired = table_of(VirtualKeySecret)


def _admission() -> Any:
    """The conditional UPDATE that admits a request, built once: per request only its
    parameters (`admission_params`) change, so neither building the
    expression nor computing its cache key is paid on the hot path."""
    key_id = bindparam("admit_key_id", type_=_keys.c.id.type)
    month = bindparam("admit_month", type_=_spend.c.month.type)
    secret_hash = bindparam("admit_secret_hash", type_=_keys.c.secret_hash.type)
    estimate = bindparam("admit_estimate", type_=_spend.c.reserved_micros.type)
    now = bindparam("admit_now", type_=_retired.c.expires_at.type)
    # Uncorrelated subqueries: PostgreSQL evaluates them once, while spent and reserved are read
    # from the row itself, so a request that waited for the row lock re-checks the sum against
    # the row as the previous admission left it. The key's status and the presented secret are
    # checked here too, so a key revoked (or a secret retired) in another process is refused by
    # this very statement, whatever a process's cache of key look-ups still holds.
    cap = select(_keys.c.spend_cap_micros).where(_keys.c.id == key_id).scalar_subquery()
    presented = or_(
        _keys.c.secret_hash == secret_hash,
        exists().where(
            _retired.c.secret_hash == secret_hash,
            _retired.c.key_id == key_id,
            _retired.c.expires_at > now,
        ),
    )
    usable = exists().where(_keys.c.id == key_id, _keys.c.status == "active", presented)
    return (
        update(_spend)
        .where(
            _spend.c.key_id == key_id,
            _spend.c.month == month,
            usable,
            _spend.c.spent_micros + _spend.c.reserved_micros + estimate
            <= func.coalesce(cap, UNCAPPED),
        )
        .values(reserved_micros=_spend.c.reserved_micros + estimate)
    )


def _admit_and_reserve() -> Any:
    """PostgreSQL: the admission feeding the reservation's INSERT, one statement (built once;
    adds the parameters `admit_id`, `admit_expires_at` and `admit_lease_id`)."""
    admitted = _admission().returning(_spend.c.key_id).cte("admitted")
    values = select(
        bindparam("admit_id", type_=_reservations.c.id.type),
        admitted.c.key_id,
        bindparam("admit_month", type_=_reservations.c.month.type),
        bindparam("admit_estimate", type_=_reservations.c.amount_micros.type),
        bindparam("admit_now", type_=_reservations.c.created_at.type),
        bindparam("admit_expires_at", type_=_reservations.c.expires_at.type),
        bindparam("admit_lease_id", type_=_reservations.c.lease_id.type),
    ).select_from(admitted)
    columns = ["id", "key_id", "month", "amount_micros", "created_at", "expires_at", "lease_id"]
    return _reservations.insert().from_select(columns, values).returning(_reservations.c.id)


ADMISSION = _admission()
ADMIT_AND_RESERVE = _admit_and_reserve()


# Named apart from the columns: SQLAlchemy would take a parameter named like a column of the
# UPDATE's table for a value to SET.
def admission_params(
    key_id: uuid.UUID, month: date, secret_hash: str, estimate: int, now: datetime
) -> dict[str, Any]:
    return {
        "admit_key_id": key_id,
        "admit_month": month,
        "admit_secret_hash": secret_hash,
        "admit_estimate": estimate,
        "admit_now": now,
    }


async def why_refused(
    conn: AsyncConnection,
    key_id: uuid.UUID,
    month: date,
    secret_hash: str,
    estimate: int,
    now: datetime,
    last: bool = False,
) -> CapExceeded | KeyRefused | None:
    """Why the admission failed, or None when it should simply be tried again (on the `last`
    attempt a request that keeps losing the race for the room left is refused too)."""
    key = (
        await conn.execute(
            select(
                _keys.c.status,
                _keys.c.secret_hash,
                _keys.c.spend_cap_micros,
                _keys.c.suspended_reason,
                _keys.c.suspended_by_anomaly,
            ).where(_keys.c.id == key_id)
        )
    ).first()
    if key is None:
        return KeyRefused("invalid_api_key", "Incorrect API key provided.")
    if key.status == "revoked":
        return KeyRefused("key_revoked", "This virtual key has been revoked.")
    if key.secret_hash != secret_hash:
        expires = (
            await conn.execute(
                select(_retired.c.expires_at).where(_retired.c.secret_hash == secret_hash)
            )
        ).scalar()
        if expires is None or as_utc(expires) <= now:
            return KeyRefused(
                "invalid_api_key",
                "This virtual key was rotated and its previous secret's grace period has ended; "
                "use the new secret.",
            )
    if key.status != "active":
        # Suspended (by an admin or its leak policy): the secret is right, the key may not spend.
        return KeyRefused(
            "key_suspended",
            key.suspended_reason or "",
            status=403,
            anomaly_id=key.suspended_by_anomaly,
        )
    spend = (
        await conn.execute(
            select(_spend.c.spent_micros, _spend.c.reserved_micros).where(
                _spend.c.key_id == key_id, _spend.c.month == month
            )
        )
    ).first()
    if spend is None:
        await open_month(conn, key_id, month)
        return None if not last else CapExceeded(key.spend_cap_micros or 0, 0, 0, estimate)
    cap = key.spend_cap_micros
    fits = cap is None or spend.spent_micros + spend.reserved_micros + estimate <= cap
    if fits and not last:
        return None
    return CapExceeded(
        UNCAPPED if cap is None else cap, spend.spent_micros, spend.reserved_micros, estimate
    )
