"""The anomalies of a period, as the `anomalies` query returns them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from crabglamp.jobs.anomalies.activity import load_activity
from crabglamp.jobs.anomalies.anomaly import Anomaly
from crabglamp.jobs.anomalies.detectors import detect_key
from crabglamp.jobs.anomalies.store import newest_first, stored_anomalies
from crabglamp.periods import Period, iter_days
from crabglamp.settings import Thresholds


async def anomalies_in_period(
    conn: AsyncConnection,
    account_ids: Sequence[uuid.UUID],
    period: Period,
    now: datetime,
    t: Thresholds | None = None,
) -> list[Anomaly]:
    """What was detected during the period, or would have been: the stored detections, and
    each day of the period judged as of its end (today as of now) for what is not stored.
    One per key, kind and month; newest first."""
    t = t or Thresholds()  # the defaults; the API passes the served app's (crabglamp.settings)
    found = {a.dedupe_key: a for a in await stored_anomalies(conn, account_ids, period)}
    last = min(period.end, now.date())
    if last >= period.start:
        activities, names = await load_activity(conn, account_ids, period.start, last, t)
        days = list(iter_days(period.start, last))
        for activity in activities:
            for anomaly in detect_key(activity, days, now, t, names):
                found.setdefault(anomaly.dedupe_key, anomaly)
    return newest_first(found.values())
