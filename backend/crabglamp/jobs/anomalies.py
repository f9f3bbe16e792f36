"""Anomaly detection over the daily and hourly LLM rollups (DESIGN 1, issue 6).

Three patterns, each judged per key against the key's own history:

- SPIKE_ON_QUIET_KEY: an hour or a day far above the key's robust baseline (median and MAD of
  its trailing four weeks) *and* several times its busiest hour or day of those weeks, above an
  absolute floor so that cents never alarm. Keys idle on most days are left to RUNAWAY_DAY.
- CAP_TRAJECTORY: month-to-date spend plus the last week's run rate until the month ends
  reaches the cap before the month is over; names the agent that spent the most.
- RUNAWAY_DAY: a key idle on most days of its trailing weeks (yet used before) has one day far
  above its biggest earlier day; names the model and its request count.

Detection is a pure function of a key's rollups as of a moment (`detect_key`), so the live
watcher (watch.py), the `anomalies` query for a past month and the evaluation
(anomaly_eval.py) all run the same code. Thresholds live in `Thresholds`, overridable from the
environment. Core: no web framework here.
"""

from __future__ import annotations

import enum
import json
import os
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import date, datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from crabglamp.db.chunks import chunks
from crabglamp.db.dialect import insert_for
from crabglamp.db.tables import table_of
from crabglamp.models import NONE_ID, Agent, AnomalyRecord, LlmDaily, LlmHourly, VirtualKey
from crabglamp.money import MICROS_PER_CENT
from crabglamp.periods import Period, as_utc, day_start, iter_days, month_of, month_period

_keys = table_of(VirtualKey)
_agents = table_of(Agent)
_daily = table_of(LlmDaily)
_hourly = table_of(LlmHourly)
_anomalies = table_of(AnomalyRecord)

HOUR = timedelta(hours=1)
_MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution times this is its standard deviation


class AnomalyKind(enum.Enum):
    SPIKE_ON_QUIET_KEY = "SPIKE_ON_QUIET_KEY"
    CAP_TRAJECTORY = "CAP_TRAJECTORY"
    RUNAWAY_DAY = "RUNAWAY_DAY"


# Thresholds


ENV_PREFIX = "CRABGLAMP_ANOMALY_"


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Every number detection uses. Each field can be overridden by the environment variable
    CRABGLAMP_ANOMALY_<FIELD> (upper case), e.g. CRABGLAMP_ANOMALY_SPIKE_HOUR_FLOOR_CENTS=500.
    Documented in docs/anomalies.md."""

    # History a key needs before it can be judged against itself, and how far back it looks.
    min_history_days: int = 7
    baseline_days: int = 28
    # A day below this counts as a zero day; a key with at least this share of zero days in its
    # baseline is idle ("mostly-zero days"): a big day there is RUNAWAY_DAY, not a spike.
    zero_day_cents: int = 1
    mostly_zero_share: float = 0.5
    # SPIKE_ON_QUIET_KEY: an hour (or a day) at least the floor, at least the baseline median
    # plus `spike_mad_factor` robust standard deviations (1.4826 x MAD, never below the spread
    # floor), and at least `spike_peak_ratio` times the busiest hour (day) of the baseline.
    spike_hour_floor_cents: int = 200
    spike_day_floor_cents: int = 500
    spike_hour_spread_floor_cents: int = 10
    spike_day_spread_floor_cents: int = 50
    spike_mad_factor: float = 8.0
    spike_peak_ratio: float = 5.0
    # RUNAWAY_DAY: a day of at least the floor and the request count, and at least
    # `runaway_peak_ratio` times the biggest day of the baseline.
    runaway_floor_cents: int = 1000
    runaway_peak_ratio: float = 10.0
    runaway_min_requests: int = 20
    # CAP_TRAJECTORY: the run rate is the spend of the last `cap_rate_days` (at least
    # `cap_min_history_hours` of the key's life); alarm when month-to-date spend plus that rate
    # until the month ends is at least `cap_projection_ratio` times the cap.
    cap_rate_days: int = 7
    cap_min_history_hours: int = 48
    cap_projection_ratio: float = 1.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Thresholds:
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = environ.get(ENV_PREFIX + f.name.upper())
            if raw is None or raw.strip() == "":
                continue
            kind = int if f.type in ("int", int) else float
            try:
                value = kind(raw.strip())
            except ValueError as exc:
                raise ValueError(
                    f"{ENV_PREFIX}{f.name.upper()} must be a number, got {raw!r}"
                ) from exc
            if value < 0:
                raise ValueError(f"{ENV_PREFIX}{f.name.upper()} must not be negative")
            values[f.name] = value
        return cls(**values)

    def micros(self, cents: int) -> int:
        return cents * MICROS_PER_CENT


@cache
def configured_thresholds() -> Thresholds:
    """The process's thresholds, read from the environment once."""
    return Thresholds.from_env()


# What detection reads: one key's rollups


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


@dataclass(frozen=True, slots=True)
class Anomaly:
    kind: AnomalyKind
    account_id: uuid.UUID
    key_id: uuid.UUID | None
    agent_id: uuid.UUID | None
    day: date
    severity: float
    message: str
    suggested_action: str
    detected_at: datetime
    # The numbers behind the message (webhook payloads carry them; the evaluation reads them).
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def dedupe_key(self) -> str:
        """One anomaly per key, kind and calendar month: what alerts fire once for."""
        return f"{self.kind.value}:{self.key_id}:{month_of(self.day)}"


# Small numbers


def _median(ordered: Sequence[int]) -> float:
    n = len(ordered)
    middle = n // 2
    return float(ordered[middle]) if n % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def _robust(values: Sequence[int]) -> tuple[float, float]:
    """Median and median absolute deviation."""
    ordered = sorted(values)
    median = _median(ordered)
    deviations = sorted(abs(v - median) for v in ordered)
    return median, _median(deviations)  # type: ignore[arg-type]


def dollars(micros: float) -> str:
    dollars_ = micros / MICROS_PER_CENT / 100
    if 0 < abs(dollars_) < 0.01:
        return "less than $0.01"
    return f"${dollars_:,.2f}"


def _day(day: date) -> str:
    return f"{day:%b} {day.day}"


def _times(ratio: float) -> str:
    return f"{ratio:,.0f} times" if ratio >= 10 else f"{ratio:,.1f} times"


@dataclass(frozen=True, slots=True)
class _Baseline:
    """A key's days (or hours) before the day judged, zero-filled from when it existed."""

    values: list[int]
    zero_days: int
    days: int

    @property
    def zero_share(self) -> float:
        return self.zero_days / self.days if self.days else 1.0


def _baseline_days(activity: KeyActivity, day: date, t: Thresholds) -> _Baseline | None:
    if activity.since is None:
        return None
    first = max(day - timedelta(days=t.baseline_days), activity.since)
    if (day - first).days < t.min_history_days:
        return None  # too new to have a baseline of its own
    values = [activity.daily.get(d, 0) for d in iter_days(first, day - timedelta(days=1))]
    zero = t.micros(t.zero_day_cents)
    return _Baseline(values, sum(1 for v in values if v < zero), len(values))


def _names_of(parts: Iterable[DayPart], by: str) -> list[tuple[Any, int, int]]:
    """(what, cost, requests) grouped by `agent` or `model`, biggest cost first."""
    sums: dict[Any, list[int]] = {}
    for part in parts:
        what = part.agent_id if by == "agent" else (part.provider, part.model)
        acc = sums.setdefault(what, [0, 0])
        acc[0] += part.cost_micros
        acc[1] += part.request_count
    return sorted(
        ((what, cost, count) for what, (cost, count) in sums.items()),
        key=lambda item: (-item[1], str(item[0])),
    )


def _agent_phrase(agent_id: uuid.UUID | None, agent_names: Mapping[uuid.UUID, str]) -> str:
    if agent_id is None:
        return "requests without an agent"
    return f"agent '{agent_names.get(agent_id, str(agent_id))}'"


# The detectors: each judges one key on one day, as of a moment of that day


def spike_on_quiet_key(
    activity: KeyActivity,
    day: date,
    as_of: datetime,
    t: Thresholds,
    agent_names: Mapping[uuid.UUID, str],
) -> Anomaly | None:
    total = activity.total_as_of(day, as_of)
    hour_floor, day_floor = t.micros(t.spike_hour_floor_cents), t.micros(t.spike_day_floor_cents)
    if total < min(hour_floor, day_floor):
        return None
    base = _baseline_days(activity, day, t)
    if base is None or base.zero_share >= t.mostly_zero_share:
        return None  # too new, or idle on most days: RUNAWAY_DAY's ground
    found: tuple[datetime | None, int, float, float] | None = None  # (hour, value, level, peak)
    severity = 0.0
    # Cheap first: no hour of the day can alarm unless it beats the baseline's busiest hour.
    day_peak = activity.hour_peak(day)
    earlier_peak = max(
        (activity.hour_peak(day - timedelta(days=i)) for i in range(1, base.days + 1)), default=0
    )
    if day_peak >= hour_floor and day_peak >= t.spike_peak_ratio * earlier_peak:
        start = day_start(day) - timedelta(days=base.days)
        hours = [activity.hourly.get(start + HOUR * i, 0) for i in range(base.days * 24)]
        median, mad = _robust(hours)
        peak = max(hours, default=0)
        spread = max(_MAD_TO_SIGMA * mad, t.micros(t.spike_hour_spread_floor_cents))
        level = max(hour_floor, median + t.spike_mad_factor * spread, t.spike_peak_ratio * peak)
        hour = day_start(day)
        while hour < as_of and hour < day_start(day) + timedelta(days=1):
            value = activity.hourly.get(hour, 0)
            if value >= level:
                severity = max(severity, value / level)
                if found is None:
                    found = (hour, value, level, float(peak))
            hour += HOUR
    if total >= day_floor:
        median, mad = _robust(base.values)
        peak = max(base.values, default=0)
        spread = max(_MAD_TO_SIGMA * mad, t.micros(t.spike_day_spread_floor_cents))
        level = max(day_floor, median + t.spike_mad_factor * spread, t.spike_peak_ratio * peak)
        if total >= level:
            severity = max(severity, total / level)
            if found is None:
                found = (None, total, level, float(peak))
    if found is None:
        return None
    hour_at, value, alarm, busiest = found
    usual = _median(sorted(base.values))
    name = f"'{activity.name}'"
    if hour_at is not None:
        when = f"in the hour from {hour_at:%H}:00 UTC on {_day(day)}"
        compared = (
            f"{_times(value / busiest)} its busiest hour of the previous {base.days} days "
            f"({dollars(busiest)})"
            if busiest
            else f"after no spend in any hour of the previous {base.days} days"
        )
    else:
        when = f"on {_day(day)}"
        compared = (
            f"{_times(value / busiest)} its busiest day of the previous {base.days} days "
            f"({dollars(busiest)})"
            if busiest
            else f"after no spend on any of the previous {base.days} days"
        )
    parts = activity.parts.get(day, [])
    models = _names_of(parts, "model")
    agents = _names_of(parts, "agent")
    top_agent = agents[0][0] if agents and agents[0][1] * 2 >= total else None
    model_phrase = ""
    if models:
        (_provider, model), cost, count = models[0]
        model_phrase = (
            f" {model} took the biggest share of the day: {dollars(cost)} in {count:,} requests."
        )
    message = (
        f"Key {name} spent {dollars(value)} {when}, {compared}; it usually spends "
        f"{dollars(usual)} a day.{model_phrase}"
    )
    action = (
        f"If nobody on your team expected this, rotate key {name} now: its secret may have "
        f"leaked. Then open the log of {_day(day)} to see who sent the requests."
    )
    return Anomaly(
        kind=AnomalyKind.SPIKE_ON_QUIET_KEY,
        account_id=activity.account_id,
        key_id=activity.key_id,
        agent_id=top_agent,
        day=day,
        severity=round(severity, 3),
        message=message,
        suggested_action=action,
        detected_at=as_of,
        details={
            "granularity": "hour" if hour_at is not None else "day",
            "hour": hour_at.isoformat() if hour_at is not None else None,
            "observedMicros": value,
            "thresholdMicros": round(alarm),
            "baselinePeakMicros": round(busiest),
            "baselineMedianDayMicros": round(usual),
            "dayTotalMicros": total,
        },
    )


def runaway_day(
    activity: KeyActivity,
    day: date,
    as_of: datetime,
    t: Thresholds,
    agent_names: Mapping[uuid.UUID, str],
) -> Anomaly | None:
    total = activity.total_as_of(day, as_of)
    floor = t.micros(t.runaway_floor_cents)
    if total < floor:
        return None
    base = _baseline_days(activity, day, t)
    if base is None or base.zero_share < t.mostly_zero_share:
        return None
    if base.zero_days == base.days:
        return None  # never used before: a key's first day of work is its launch, not a runaway
    parts = activity.parts.get(day, [])
    requests = sum(p.request_count for p in parts)
    if requests < t.runaway_min_requests:
        return None
    peak = max(base.values)
    level = max(floor, t.runaway_peak_ratio * peak)
    if total < level:
        return None
    (provider, model), model_cost, model_requests = _names_of(parts, "model")[0]
    agents = _names_of(parts, "agent")
    top_agent = agents[0][0] if agents else None
    name = f"'{activity.name}'"
    message = (
        f"Key {name} spent {dollars(total)} on {_day(day)} in {requests:,} requests, after "
        f"{base.zero_days} of the previous {base.days} days with no spend (its biggest day "
        f"before: {dollars(peak)}). {model} made {dollars(model_cost)} of it in "
        f"{model_requests:,} requests."
    )
    action = (
        f"Open the log of {_day(day)} for key {name} ({model}, {model_requests:,} requests): "
        f"a script may be stuck in a loop. Stop it, and consider a lower cap for the key."
    )
    return Anomaly(
        kind=AnomalyKind.RUNAWAY_DAY,
        account_id=activity.account_id,
        key_id=activity.key_id,
        agent_id=top_agent,
        day=day,
        severity=round(total / level, 3),
        message=message,
        suggested_action=action,
        detected_at=as_of,
        details={
            "dayTotalMicros": total,
            "requestCount": requests,
            "provider": provider,
            "model": model,
            "modelMicros": model_cost,
            "modelRequestCount": model_requests,
            "zeroDays": base.zero_days,
            "baselineDays": base.days,
            "baselinePeakMicros": peak,
            "thresholdMicros": round(level),
        },
    )


def cap_trajectory(
    activity: KeyActivity,
    day: date,
    as_of: datetime,
    t: Thresholds,
    agent_names: Mapping[uuid.UUID, str],
) -> Anomaly | None:
    cap = activity.cap_micros
    if not cap or cap <= 0 or activity.since is None:
        return None
    month = month_period(day.year, day.month)
    spent = sum(activity.daily.get(d, 0) for d in iter_days(month.start, day - timedelta(days=1)))
    spent += activity.total_as_of(day, as_of)
    if spent >= cap:
        return None  # already there: the 100% crossing alert says so
    window_start = max(as_of - timedelta(days=t.cap_rate_days), day_start(activity.since))
    window_hours = (as_of - window_start) / HOUR
    if window_hours < t.cap_min_history_hours:
        return None
    hour = window_start.replace(minute=0, second=0, microsecond=0)
    recent = 0
    while hour < as_of:
        recent += activity.hourly.get(hour, 0)
        hour += HOUR
    if recent <= 0:
        return None
    per_hour = recent / window_hours
    remaining_hours = max((month.end_dt - as_of) / HOUR, 0.0)
    projected = spent + per_hour * remaining_hours
    if projected < t.cap_projection_ratio * cap:
        return None
    reaches = as_of + HOUR * ((cap - spent) / per_hour)
    month_parts = [p for d in iter_days(month.start, day) for p in activity.parts.get(d, [])]
    agents = _names_of(month_parts, "agent")
    top_agent, agent_spend = (agents[0][0], agents[0][1]) if agents else (None, 0)
    rate_days = window_hours / 24
    name = f"'{activity.name}'"
    days_early = (month.end_dt - reaches) / timedelta(days=1)
    who = _agent_phrase(top_agent, agent_names)
    message = (
        f"Key {name} has spent {dollars(spent)} of its {dollars(cap)} cap this month "
        f"({spent * 100 / cap:.0f}%). At the rate of the last {rate_days:.0f} days "
        f"({dollars(per_hour * 24)} a day) it reaches the cap around {_day(reaches.date())}, "
        f"{days_early:.0f} days before the month ends (projected {dollars(projected)}). "
        f"{who[0].upper()}{who[1:]} spent the most this month: {dollars(agent_spend)} "
        f"({agent_spend * 100 / max(spent, 1):.0f}%)."
    )
    action = (
        f"Raise the cap of {name} before {_day(reaches.date())}, or find out why {who} "
        f"spends this much."
    )
    return Anomaly(
        kind=AnomalyKind.CAP_TRAJECTORY,
        account_id=activity.account_id,
        key_id=activity.key_id,
        agent_id=top_agent,
        day=day,
        severity=round(projected / cap, 3),
        message=message,
        suggested_action=action,
        detected_at=as_of,
        details={
            "spentMicros": spent,
            "capMicros": cap,
            "projectedMicros": round(projected),
            "ratePerDayMicros": round(per_hour * 24),
            "reachesCapAt": reaches.isoformat(),
            "topAgentId": str(top_agent) if top_agent else None,
            "topAgentMicros": agent_spend,
        },
    )


DETECTORS = (spike_on_quiet_key, cap_trajectory, runaway_day)


def detect_key(
    activity: KeyActivity,
    days: Iterable[date],
    now: datetime,
    t: Thresholds,
    agent_names: Mapping[uuid.UUID, str] | None = None,
) -> list[Anomaly]:
    """What was (or would have been) detected on each day, judged as of that day's end (or
    `now`, for today); the first detection of each kind per calendar month is kept."""
    names = agent_names or {}
    found: dict[str, Anomaly] = {}
    for day in sorted(days):
        as_of = min(now, day_start(day + timedelta(days=1)))
        if as_of <= day_start(day):
            break  # the future
        for detector in DETECTORS:
            anomaly = detector(activity, day, as_of, t, names)
            if anomaly is not None and anomaly.dedupe_key not in found:
                found[anomaly.dedupe_key] = anomaly
    return list(found.values())


# Reading rollups


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


# Stored anomalies: what the watcher detected as usage arrived


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
    return new


def _from_row(row: Any) -> Anomaly:
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
    return [_from_row(row) for row in rows]


def newest_first(found: Iterable[Anomaly]) -> list[Anomaly]:
    return sorted(found, key=lambda a: (-a.day.toordinal(), -a.severity, a.dedupe_key))


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
    t = t or configured_thresholds()
    found = {a.dedupe_key: a for a in await stored_anomalies(conn, account_ids, period)}
    last = min(period.end, now.date())
    if last >= period.start:
        activities, names = await load_activity(conn, account_ids, period.start, last, t)
        days = list(iter_days(period.start, last))
        for activity in activities:
            for anomaly in detect_key(activity, days, now, t, names):
                found.setdefault(anomaly.dedupe_key, anomaly)
    return newest_first(found.values())
