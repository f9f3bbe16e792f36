"""The three detectors, each judging one key on one day as of a moment of that day, and
`detect_key`, which runs them over days. Pure functions of a key's activity."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta

from crabglamp.jobs.anomalies._numbers import (
    MAD_TO_SIGMA,
    baseline_days,
    median_of,
    names_of,
    robust,
)
from crabglamp.jobs.anomalies.activity import HOUR, KeyActivity
from crabglamp.jobs.anomalies.anomaly import Anomaly, AnomalyKind
from crabglamp.jobs.anomalies.wording import agent_phrase, day_phrase, dollars, times
from crabglamp.periods import day_start, iter_days, month_period
from crabglamp.settings import Thresholds


def standing(activity: KeyActivity, day: date, as_of: datetime) -> dict[str, int | None]:
    """Where the key stood when the anomaly was detected: its month-to-date LLM spend as of
    that moment and its cap (the dashboard shows them beside where it stands now)."""
    month = month_period(day.year, day.month)
    spent = sum(activity.daily.get(d, 0) for d in iter_days(month.start, day - timedelta(days=1)))
    return {
        "monthSpentMicros": spent + activity.total_as_of(day, as_of),
        "capMicros": activity.cap_micros,
    }


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
    base = baseline_days(activity, day, t)
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
        median, mad = robust(hours)
        peak = max(hours, default=0)
        spread = max(MAD_TO_SIGMA * mad, t.micros(t.spike_hour_spread_floor_cents))
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
        median, mad = robust(base.values)
        peak = max(base.values, default=0)
        spread = max(MAD_TO_SIGMA * mad, t.micros(t.spike_day_spread_floor_cents))
        level = max(day_floor, median + t.spike_mad_factor * spread, t.spike_peak_ratio * peak)
        if total >= level:
            severity = max(severity, total / level)
            if found is None:
                found = (None, total, level, float(peak))
    if found is None:
        return None
    hour_at, value, alarm, busiest = found
    usual = median_of(sorted(base.values))
    name = f"'{activity.name}'"
    if hour_at is not None:
        when = f"in the hour from {hour_at:%H}:00 UTC on {day_phrase(day)}"
        compared = (
            f"{times(value / busiest)} its busiest hour of the previous {base.days} days "
            f"({dollars(busiest)})"
            if busiest
            else f"after no spend in any hour of the previous {base.days} days"
        )
    else:
        when = f"on {day_phrase(day)}"
        compared = (
            f"{times(value / busiest)} its busiest day of the previous {base.days} days "
            f"({dollars(busiest)})"
            if busiest
            else f"after no spend on any of the previous {base.days} days"
        )
    parts = activity.parts.get(day, [])
    models = names_of(parts, "model")
    agents = names_of(parts, "agent")
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
        f"leaked. Then open the log of {day_phrase(day)} to see who sent the requests."
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
            **standing(activity, day, as_of),
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
    base = baseline_days(activity, day, t)
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
    (provider, model), model_cost, model_requests = names_of(parts, "model")[0]
    agents = names_of(parts, "agent")
    top_agent = agents[0][0] if agents else None
    name = f"'{activity.name}'"
    message = (
        f"Key {name} spent {dollars(total)} on {day_phrase(day)} in {requests:,} requests, after "
        f"{base.zero_days} of the previous {base.days} days with no spend (its biggest day "
        f"before: {dollars(peak)}). {model} made {dollars(model_cost)} of it in "
        f"{model_requests:,} requests."
    )
    action = (
        f"Open the log of {day_phrase(day)} for key {name} ({model}, {model_requests:,} requests): "
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
            **standing(activity, day, as_of),
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
    agents = names_of(month_parts, "agent")
    top_agent, agent_spend = (agents[0][0], agents[0][1]) if agents else (None, 0)
    rate_days = window_hours / 24
    name = f"'{activity.name}'"
    days_early = (month.end_dt - reaches) / timedelta(days=1)
    who = agent_phrase(top_agent, agent_names)
    message = (
        f"Key {name} has spent {dollars(spent)} of its {dollars(cap)} cap this month "
        f"({spent * 100 / cap:.0f}%). At the rate of the last {rate_days:.0f} days "
        f"({dollars(per_hour * 24)} a day) it reaches the cap around {day_phrase(reaches.date())}, "
        f"{days_early:.0f} days before the month ends (projected {dollars(projected)}). "
        f"{who[0].upper()}{who[1:]} spent the most this month: {dollars(agent_spend)} "
        f"({agent_spend * 100 / max(spent, 1):.0f}%)."
    )
    action = (
        f"Raise the cap of {name} before {day_phrase(reaches.date())}, or find out why {who} "
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
            "monthSpentMicros": spent,
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
        if day > now.date():
            break  # the future (and a day near date.max would overflow below)
        as_of = min(now, day_start(day + timedelta(days=1)))
        if as_of <= day_start(day):
            break  # the future
        for detector in DETECTORS:
            anomaly = detector(activity, day, as_of, t, names)
            if anomaly is not None and anomaly.dedupe_key not in found:
                found[anomaly.dedupe_key] = anomaly
    return list(found.values())
