"""Cap crossings: a key's month-to-date spend reaching 50, 80 or 100% of its cap, recorded once
per key, month, cap and threshold, and alerted."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from crabglamp.db.dialect import insert_for
from crabglamp.db.tables import table_of
from crabglamp.jobs.alerts.events import AlertEvent, cap_event
from crabglamp.models import CapCrossing
from crabglamp.usage.spend import spend_of_keys

_crossings = table_of(CapCrossing)

CAP_THRESHOLDS = (50, 80, 100)


@dataclass(frozen=True, slots=True)
class CappedKey:
    key_id: uuid.UUID
    account_id: uuid.UUID
    name: str
    cap_micros: int | None


async def record_cap_crossings(
    conn: AsyncConnection, keys: Sequence[CappedKey], now: datetime
) -> list[AlertEvent]:
    """Crossings of 50, 80 and 100% of each key's cap this month not recorded before. When
    several are crossed at once only the highest is alerted (the lower ones are recorded, so
    that they never fire later); a new cap value starts its thresholds afresh."""
    month = date(now.year, now.month, 1)
    events: list[AlertEvent] = []
    # What the cap is enforced on: the key's LLM and voice spend of the month.
    spend = await spend_of_keys(conn, [k.key_id for k in keys if k.cap_micros], month)
    for key in sorted(keys, key=lambda k: str(k.key_id)):
        cap = key.cap_micros
        if not cap or cap <= 0:
            continue
        spent = spend[key.key_id]
        crossed = [t for t in CAP_THRESHOLDS if spent * 100 >= t * cap]
        new: list[int] = []
        for threshold in crossed:
            done = await conn.execute(
                insert_for(conn, _crossings)
                .values(
                    key_id=key.key_id,
                    month=month,
                    cap_micros=cap,
                    threshold_percent=threshold,
                    account_id=key.account_id,
                    spent_micros=spent,
                    crossed_at=now,
                )
                .on_conflict_do_nothing()
                .returning(_crossings.c.threshold_percent)
            )
            if done.first() is not None:
                new.append(threshold)
        if new:
            events.append(
                cap_event(key.account_id, key.key_id, key.name, month, cap, spent, max(new), now)
            )
    return events
