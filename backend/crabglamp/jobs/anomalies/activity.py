"""What detection reads: one key's daily and hourly rollups, and the statements that load them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from crabglamp.db.chunks import chunks
from crabglamp.db.tables import table_of
from crabglamp.models import NONE_ID, Agent, LlmDaily, LlmHourly, VirtualKey
from crabglamp.periods import as_utc, day_start
from crabglamp.settings import Thresholds

_keys = table_of(VirtualKey)
_agents = table_of(Agent)
_daily = table_of(LlmDaily)
_hourly = table_of(LlmHourly)

HOUR = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class DayPart:
    """One row of the daily rollup of a key: an agent's requests to one model on one day."""

    agent_id: uuid.UUID | None
    provider: str
    model: str
    cost_micros: int
    request_count: int


@dataclass(slots=True)
class KeyActivity:
    key_id: uuid.UUID
    account_id: uuid.UUID
    name: str
    cap_micros: int | None
    # The first day the key existed or was used, whichever is earlier (None: never seen).
    since: date | None
    daily: dict[date, int] = field(default_factory=dict)
    hourly: dict[datetime, int] = field(default_factory=dict)
    parts: dict[date, list[DayPart]] = field(default_factory=dict)

    _peaks: dict[date, int] | None = field(default=None, repr=False)

    def add_part(self, day: date, part: DayPart) -> None:
        self.parts.setdefault(day, []).append(part)
        self.daily[day] = self.daily.get(day, 0) + part.cost_micros

    def total_as_of(self, day: date, as_of: datetime) -> int:
        """The day's spend recorded before `as_of` (all of it once the day is over)."""
        start = day_start(day)
        if as_of >= start + timedelta(days=1):
            return self.daily.get(day, 0)
        hour, total = start, 0
        while hour < as_of:
            total += self.hourly.get(hour, 0)
            hour += HOUR
        return total

    def hour_peak(self, day: date) -> int:
        """The day's busiest hour (computed once for all days: read after loading)."""
        if self._peaks is None:
            peaks: dict[date, int] = {}
            for hour, cost in self.hourly.items():
                if cost > peaks.get(hour.date(), 0):
                    peaks[hour.date()] = cost
            self._peaks = peaks
        return self._peaks.get(day, 0)


def window_start(first_day: date, t: Thresholds) -> date:
    """The first day detection reads for judging `first_day`: its baseline and its month."""
    return min(first_day - timedelta(days=t.baseline_days), first_day.replace(day=1))


async def load_activity(
    conn: AsyncConnection,
    account_ids: Sequence[uuid.UUID],
    first_day: date,
    last_day: date,
    t: Thresholds,
    key_ids: Sequence[uuid.UUID] | None = None,
) -> tuple[list[KeyActivity], dict[uuid.UUID, str]]:
    """The keys of the accounts (or just `key_ids`) with what detection needs to judge the days
    from `first_day` to `last_day`; and the accounts' agent names."""
    if not account_ids:
        return [], {}
    accounts = sorted(set(account_ids))
    start = window_start(first_day, t)
    first_use = (
        select(func.min(_hourly.c.hour))
        .where(_hourly.c.account_id == _keys.c.account_id, _hourly.c.key_id == _keys.c.id)
        .scalar_subquery()
    )
    statement = select(
        _keys.c.id,
        _keys.c.account_id,
        _keys.c.name,
        _keys.c.spend_cap_micros,
        _keys.c.created_at,
        first_use,
    ).where(_keys.c.account_id.in_(accounts))
    if key_ids is not None:
        statement = statement.where(_keys.c.id.in_(sorted(set(key_ids))))
    keys: dict[uuid.UUID, KeyActivity] = {}
    for key_id, account_id, name, cap, created_at, first_hour in await conn.execute(statement):
        candidates = [as_utc(m).date() for m in (created_at, first_hour) if m is not None]
        keys[key_id] = KeyActivity(
            key_id, account_id, name, cap, min(candidates) if candidates else None
        )
    if not keys:
        return [], {}
    wanted = sorted(keys)
    for chunk in chunks(wanted):
        rows = await conn.execute(
            select(
                _daily.c.key_id,
                _daily.c.day,
                _daily.c.agent_id,
                _daily.c.provider,
                _daily.c.model,
                _daily.c.cost_micros,
                _daily.c.request_count,
            ).where(
                _daily.c.account_id.in_(accounts),
                _daily.c.day >= start,
                _daily.c.day <= last_day,
                _daily.c.key_id.in_(chunk),
            )
        )
        for key_id, day, agent_id, provider, model, cost, count in rows:
            keys[key_id].add_part(
                day,
                DayPart(None if agent_id == NONE_ID else agent_id, provider, model, cost, count),
            )
        hours = await conn.execute(
            select(_hourly.c.key_id, _hourly.c.hour, _hourly.c.cost_micros).where(
                _hourly.c.account_id.in_(accounts),
                _hourly.c.key_id.in_(chunk),
                _hourly.c.hour >= day_start(start),
                _hourly.c.hour < day_start(last_day + timedelta(days=1)),
            )
        )
        for key_id, hour, cost in hours:
            keys[key_id].hourly[as_utc(hour)] = cost
    names = await conn.execute(
        select(_agents.c.id, _agents.c.name).where(_agents.c.account_id.in_(accounts))
    )
    return [keys[k] for k in wanted], {agent_id: name for agent_id, name in names}
