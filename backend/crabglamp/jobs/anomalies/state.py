"""What happens to an anomaly after it is detected: acknowledged, resolved by the action taken
(rotated, cap changed, suspended) or dismissed with a reason; and the key's leak policy, applied
by the watcher as a spike is detected and reverted by an administrator.

Only stored anomalies have a state. One found for a period but not stored yet (the watcher has
not seen it, or it was reconstructed for a day the watcher never judged) is stored the moment
someone acts on it, so that its state lasts. Core: no web framework; who may do this is the
caller's business (crabglamp.access.administers).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from crabglamp import keys
from crabglamp.db.changes import ChangeKind, announce
from crabglamp.db.tables import table_of
from crabglamp.jobs.anomalies.activity import load_activity
from crabglamp.jobs.anomalies.anomaly import Anomaly, AnomalyKind
from crabglamp.jobs.anomalies.detectors import detect_key
from crabglamp.jobs.anomalies.store import from_row, store_new
from crabglamp.jobs.anomalies.wording import dollars
from crabglamp.models import AnomalyRecord, VirtualKey
from crabglamp.periods import iter_days, month_period
from crabglamp.proxy.ledger import month_spend
from crabglamp.settings import Thresholds
from crabglamp.usage.spend import spend_of_keys

_anomalies = table_of(AnomalyRecord)
_keys = table_of(VirtualKey)

STATES = ("open", "acknowledged", "resolved")
RESOLUTIONS = ("rotated", "cap_changed", "suspended", "dismissed")
MAX_REASON_LENGTH = 500
# Who applied a leak policy: not a person.
POLICY_ACTOR = "leak policy"


@dataclass(frozen=True, slots=True)
class AnomalyProblem:
    """An expected failure; `code` is stable, `message` is for people."""

    code: str
    message: str


def _problem(code: str, message: str) -> AnomalyProblem:
    return AnomalyProblem(code, message)


@dataclass(frozen=True, slots=True)
class AnomalyRef:
    kind: AnomalyKind
    key_id: uuid.UUID
    month: date


def parse_id(anomaly_id: str) -> AnomalyRef | None:
    """`KIND:key-uuid:YYYY-MM` (Anomaly.id), or None when it is not one."""
    parts = anomaly_id.split(":")
    if len(parts) != 3:
        return None
    kind, key, month = parts
    try:
        parsed_kind = AnomalyKind(kind)
        key_id = uuid.UUID(key)
        year, number = (int(x) for x in month.split("-"))
        first = date(year, number, 1)
    except ValueError:
        return None
    if f"{first:%Y-%m}" != month:
        return None
    return AnomalyRef(parsed_kind, key_id, first)


async def _stored(conn: AsyncConnection, anomaly_id: str, lock: bool = False) -> Anomaly | None:
    statement = select(_anomalies).where(_anomalies.c.dedupe_key == anomaly_id)
    if lock:
        statement = statement.with_for_update()
    row = (await conn.execute(statement)).first()
    return from_row(row) if row is not None else None


async def account_of_key(conn: AsyncConnection, key_id: uuid.UUID) -> uuid.UUID | None:
    found: uuid.UUID | None = (
        await conn.execute(select(_keys.c.account_id).where(_keys.c.id == key_id))
    ).scalar()
    return found


async def _detected_this_month(
    conn: AsyncConnection,
    account_id: uuid.UUID,
    key_id: uuid.UUID,
    month: date,
    now: datetime,
    t: Thresholds,
) -> list[Anomaly]:
    """What the `anomalies` query finds for one key in one month (up to today)."""
    period = month_period(month.year, month.month)
    last = min(period.end, now.date())
    if last < period.start:
        return []
    activities, names = await load_activity(conn, [account_id], period.start, last, t, [key_id])
    days = list(iter_days(period.start, last))
    return [a for activity in activities for a in detect_key(activity, days, now, t, names)]


async def find_anomaly(
    conn: AsyncConnection, anomaly_id: str, now: datetime, t: Thresholds
) -> Anomaly | None:
    """The anomaly of that id, stored now if it was only found for its period so far."""
    ref = parse_id(anomaly_id)
    if ref is None:
        return None
    stored = await _stored(conn, anomaly_id, lock=True)
    if stored is not None:
        return stored
    account_id = await account_of_key(conn, ref.key_id)
    if account_id is None:
        return None
    found = [
        a
        for a in await _detected_this_month(conn, account_id, ref.key_id, ref.month, now, t)
        if a.id == anomaly_id
    ]
    if not found:
        return None
    await store_new(conn, found)
    return await _stored(conn, anomaly_id, lock=True)


async def _set(conn: AsyncConnection, anomaly_id: str, **values: Any) -> Anomaly:
    await conn.execute(
        update(_anomalies).where(_anomalies.c.dedupe_key == anomaly_id).values(**values)
    )
    changed = await _stored(conn, anomaly_id)
    assert changed is not None
    # An open page redraws the anomaly in its new state (acknowledged, resolved, reverted).
    await announce(conn, {changed.account_id: {ChangeKind.ANOMALIES}})
    return changed


async def acknowledge(
    conn: AsyncConnection, anomaly: Anomaly, by: str, now: datetime
) -> Anomaly | AnomalyProblem:
    """Someone has seen it and is on it. Idempotent; a resolved anomaly stays resolved."""
    if anomaly.state.state == "resolved":
        return _problem("ANOMALY_RESOLVED", "this anomaly is already resolved")
    if anomaly.state.state == "acknowledged":
        return anomaly
    return await _set(
        conn, anomaly.id, state="acknowledged", acknowledged_by=by, acknowledged_at=now
    )


async def dismiss(
    conn: AsyncConnection, anomaly: Anomaly, by: str, reason: str, now: datetime
) -> Anomaly | AnomalyProblem:
    """Resolved without an action on the key: expected spend, say, with the reason why."""
    reason = reason.strip()
    if not reason or len(reason) > MAX_REASON_LENGTH:
        return _problem("INVALID_INPUT", f"a reason of 1 to {MAX_REASON_LENGTH} characters")
    if anomaly.state.state == "resolved":
        return _problem("ANOMALY_RESOLVED", "this anomaly is already resolved")
    return await _set(
        conn,
        anomaly.id,
        state="resolved",
        resolution="dismissed",
        resolution_reason=reason,
        resolved_by=by,
        resolved_at=now,
    )


async def resolve_key_anomalies(
    conn: AsyncConnection,
    key_id: uuid.UUID,
    resolution: str,
    by: str,
    now: datetime,
    t: Thresholds,
) -> list[Anomaly]:
    """The key was rotated, re-capped or suspended: every anomaly of it not resolved yet is
    resolved by that action (this month's found-but-not-stored ones are stored first, so that
    the page shows them resolved too). Returns those it resolved."""
    assert resolution in RESOLUTIONS
    account_id = await account_of_key(conn, key_id)
    if account_id is None:
        return []
    month = date(now.year, now.month, 1)
    await store_new(conn, await _detected_this_month(conn, account_id, key_id, month, now, t))
    open_ids = [
        row[0]
        for row in await conn.execute(
            select(_anomalies.c.dedupe_key)
            .where(_anomalies.c.key_id == key_id, _anomalies.c.state != "resolved")
            .order_by(_anomalies.c.dedupe_key)
        )
    ]
    return [
        await _set(
            conn,
            anomaly_id,
            state="resolved",
            resolution=resolution,
            resolution_reason=None,
            resolved_by=by,
            resolved_at=now,
        )
        for anomaly_id in open_ids
    ]


# The leak policy


async def apply_leak_policies(
    conn: AsyncConnection, new: Sequence[Anomaly], now: datetime
) -> list[Anomaly]:
    """For each new spike on a quiet key whose key's policy is not `notify`: suspend the key or
    lower its cap to what it has spent this month, in the watcher's transaction (so the alert
    about the anomaly says what was done). The proxy refuses it from the next request on: the
    admission statement reads the key's status and cap. Returns `new` with their state."""
    spikes = {a.key_id: a for a in new if a.kind is AnomalyKind.SPIKE_ON_QUIET_KEY and a.key_id}
    if not spikes:
        return list(new)
    rows = await conn.execute(
        select(_keys.c.id, _keys.c.leak_policy, _keys.c.status, _keys.c.spend_cap_micros).where(
            _keys.c.id.in_(sorted(spikes, key=str)),
            _keys.c.leak_policy != "notify",
            _keys.c.status == "active",
        )
    )
    policies = {key_id: (policy, cap) for key_id, policy, _status, cap in rows}
    spent = await spend_of_keys(
        conn, [k for k, (policy, _cap) in policies.items() if policy == "lower_cap"], now.date()
    )
    changed: dict[str, Anomaly] = {}
    for key_id, (policy, cap) in sorted(policies.items(), key=lambda item: str(item[0])):
        anomaly = spikes[key_id]
        if policy == "suspend":
            reason = (
                f"It was suspended automatically at {now:%Y-%m-%d %H:%M} UTC by its leak policy: "
                f"{anomaly.message.split(';')[0]} (anomaly {anomaly.id})"
            )
            await keys.suspend_key(conn, key_id, reason, now, by_anomaly=anomaly.id)
            changed[anomaly.id] = await _set(
                conn,
                anomaly.id,
                policy_action="suspended",
                policy_applied_at=now,
                policy_previous_cap_micros=cap,
            )
        elif policy == "lower_cap":
            # What the proxy's admission counts (its ledger: spent and reserved) may lag what
            # was recorded another way (an import); the lower of the two refuses the next
            # request either way.
            ledger = await month_spend(conn, key_id, date(now.year, now.month, 1))
            lowered = min(spent[key_id], ledger.spent_micros + ledger.reserved_micros)
            lowered = lowered if cap is None else min(cap, lowered)
            await keys.set_spend_cap(conn, key_id, lowered)
            changed[anomaly.id] = await _set(
                conn,
                anomaly.id,
                policy_action="cap_lowered",
                policy_applied_at=now,
                policy_previous_cap_micros=cap,
            )
    return [changed.get(a.id, a) for a in new]


def policy_summary(anomaly: Anomaly) -> str | None:
    """The leak policy's action in words (the page and the webhook carry it)."""
    s = anomaly.state
    if s.policy_action is None or s.policy_applied_at is None:
        return None
    at = f"{s.policy_applied_at:%H:%M} UTC"
    if s.policy_action == "suspended":
        text = f"The key was suspended automatically at {at} by its leak policy."
    else:
        before = (
            "no cap"
            if s.policy_previous_cap_micros is None
            else dollars(s.policy_previous_cap_micros)
        )
        text = (
            f"The key's cap was lowered automatically at {at} to what it had spent, by its leak "
            f"policy (it was {before})."
        )
    if s.policy_reverted_at is not None:
        text += f" Reverted by {s.policy_reverted_by} at {s.policy_reverted_at:%H:%M} UTC."
    return text


async def revert_policy(
    conn: AsyncConnection, anomaly: Anomaly, by: str, now: datetime
) -> Anomaly | AnomalyProblem:
    """Undo what the leak policy did: resume the key, or give it back the cap it had."""
    s = anomaly.state
    if s.policy_action is None or anomaly.key_id is None:
        return _problem("NOTHING_TO_REVERT", "the key's leak policy did nothing on this anomaly")
    if s.policy_reverted_at is not None:
        return anomaly
    if s.policy_action == "suspended":
        resumed = await keys.resume_key(conn, anomaly.key_id)
        if isinstance(resumed, keys.KeyProblem):
            return _problem(resumed.code, resumed.message)
    else:
        restored = await keys.set_spend_cap(conn, anomaly.key_id, s.policy_previous_cap_micros)
        if isinstance(restored, keys.KeyProblem):
            return _problem(restored.code, restored.message)
    return await _set(conn, anomaly.id, policy_reverted_at=now, policy_reverted_by=by)


async def key_resumed(
    conn: AsyncConnection, key_id: uuid.UUID, by: str, now: datetime
) -> list[Anomaly]:
    """A key was resumed by hand: the suspensions its leak policy made are reverted."""
    ids = [
        row[0]
        for row in await conn.execute(
            select(_anomalies.c.dedupe_key).where(
                and_(
                    _anomalies.c.key_id == key_id,
                    _anomalies.c.policy_action == "suspended",
                    _anomalies.c.policy_reverted_at.is_(None),
                )
            )
        )
    ]
    return [await _set(conn, i, policy_reverted_at=now, policy_reverted_by=by) for i in ids]
