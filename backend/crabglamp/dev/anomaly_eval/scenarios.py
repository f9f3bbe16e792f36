"""The scenarios of the labelled set (see the package's docstring), and `generate`."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta

from crabglamp.dev.anomaly_eval.labels import HISTORY_DAYS, MONTH, MONTH_DAYS, Label, LabelledKey
from crabglamp.dev.anomaly_eval.spending import (
    CHEAP_MODELS,
    DEAR_MODELS,
    Key,
    Usage,
    burst,
    draw_agents,
    idle_usage,
    log_uniform,
    new_id,
    noisy_usage,
    quiet_usage,
)
from crabglamp.jobs.anomalies.anomaly import AnomalyKind
from crabglamp.money import MICROS_PER_CENT
from crabglamp.periods import day_start

SCENARIOS = ("leak", "cap", "runaway", "noisy", "growing", "quiet", "idle")
DEFAULT_COUNTS = {
    "leak": 40,
    "cap": 40,
    "runaway": 40,
    "noisy": 80,
    "growing": 30,
    "quiet": 40,
    "idle": 40,
}


def _since() -> date:
    return MONTH.start - timedelta(days=HISTORY_DAYS)


def _ordinary(rng: random.Random, scenario: str, n: int) -> LabelledKey:
    since = _since()
    if scenario == "noisy":
        usage = noisy_usage(rng)
    elif scenario == "growing":
        usage = noisy_usage(rng)
        usage.per_day_cents = log_uniform(rng, 5, 300)
        usage.growth = rng.uniform(0.04, 0.12)
        usage.weekend = rng.uniform(0.6, 1.0)
        usage.noise = rng.uniform(0.05, 0.2)
        usage.busy_day_chance = 0.0
    elif scenario == "quiet":
        usage = quiet_usage(rng)
    else:
        usage = idle_usage(rng)
    key = Key(rng, scenario, f"{scenario}-{n}", since)
    if scenario == "noisy" and rng.random() < 0.25:
        # A break (holidays, an outage) of several zero days, then back to normal.
        pause = MONTH.start + timedelta(days=rng.randint(-20, MONTH_DAYS - 5))
        usage.spend(rng, key, since, pause - timedelta(days=1), since)
        usage.spend(rng, key, pause + timedelta(days=rng.randint(3, 12)), MONTH.end, since)
    else:
        usage.spend(rng, key, since, MONTH.end, since)
    if scenario == "idle":
        # One bigger day: a few times the usual run, or beyond that but below the floor.
        day = MONTH.start + timedelta(days=rng.randrange(MONTH_DAYS))
        big = (
            usage.per_day_cents * rng.uniform(2, 6)
            if rng.random() < 0.7
            else rng.uniform(200, 600)  # dollars, still clearly below the $10 floor
        )
        burst(
            rng,
            key,
            day_start(day) + timedelta(hours=rng.randrange(20)),
            2,
            big / 2,
            usage.cents_per_request,
            usage.models[0][0],
            usage.agents[0][0],
        )
    item = key.done()
    if scenario == "noisy" and rng.random() < 0.5:
        # Capped with headroom: what a month like this one ends at, and a good margin more.
        total = sum(item.activity.daily.get(d, 0) for d in MONTH.days)
        item.activity.cap_micros = max(round(total * rng.uniform(1.4, 3.0)), 500 * MICROS_PER_CENT)
    return item


def _leak(rng: random.Random, n: int) -> LabelledKey:
    since = _since()
    usage = quiet_usage(rng)
    key = Key(rng, "leak", f"leak-{n}", since)
    usage.spend(rng, key, since, MONTH.end, since)
    day = MONTH.start + timedelta(days=rng.randrange(1, MONTH_DAYS - 1))
    start = day_start(day) + timedelta(hours=rng.randrange(24))
    hours = rng.choice((1, 2, 3, 4, 6, 8, 12, 24, 48))
    model = rng.choice(DEAR_MODELS)
    burst(
        rng,
        key,
        start,
        hours,
        log_uniform(rng, 300, 6000),
        log_uniform(rng, 0.5, 3.0),
        model,
        None,
    )
    item = key.done()
    item.labels.append(Label(AnomalyKind.SPIKE_ON_QUIET_KEY, day, day + timedelta(days=1)))
    return item


def _runaway(rng: random.Random, n: int) -> LabelledKey:
    since = _since()
    usage = idle_usage(rng)
    key = Key(rng, "runaway", f"runaway-{n}", since)
    day = MONTH.start + timedelta(days=rng.randrange(1, MONTH_DAYS - 1))
    usage.spend(rng, key, since, day - timedelta(days=1), since)
    # At least one earlier run in its baseline weeks: a key that was used, then left alone.
    if not any(key.item.activity.hourly.get(h) for h in _hours(day - timedelta(days=28), day)):
        earlier = day - timedelta(days=rng.randint(2, 27))
        burst(
            rng,
            key,
            day_start(earlier) + timedelta(hours=rng.randrange(22)),
            2,
            usage.per_day_cents / 2,
            usage.cents_per_request,
            usage.models[0][0],
            usage.agents[0][0],
        )
    model = rng.choice(CHEAP_MODELS + DEAR_MODELS)
    cents = log_uniform(rng, 2000, 40_000)
    per_request = log_uniform(rng, 0.05, 1.0)
    hours = rng.randint(2, 20)
    start = day_start(day) + timedelta(hours=rng.randrange(24 - min(hours, 23)))
    burst(rng, key, start, hours, cents / hours, per_request, model, usage.agents[0][0])
    usage.spend(rng, key, day + timedelta(days=1), MONTH.end, since)
    item = key.done()
    requests = sum(p.request_count for p in item.activity.parts.get(day, []) if p.model == model[1])
    item.labels.append(
        Label(AnomalyKind.RUNAWAY_DAY, day, day, model=model[1], request_count=requests)
    )
    return item


def _hours(first: date, last: date) -> list[datetime]:
    start = day_start(first)
    return [start + timedelta(hours=i) for i in range((last - first).days * 24)]


def _cap(rng: random.Random, n: int) -> LabelledKey:
    since = _since()
    usage = noisy_usage(rng, growth_high=0.01)
    usage.noise = rng.uniform(0.1, 0.25)
    usage.busy_day_chance = 0.0
    usage.agents = draw_agents(rng, rng.randint(2, 3))
    key = Key(rng, "cap", f"cap-{n}", since)
    if rng.random() < 0.5:
        usage.spend(rng, key, since, MONTH.end, since)
    else:
        # A new agent starts mid-month and the key's spend steps up.
        step = MONTH.start + timedelta(days=rng.randint(5, 15))
        usage.spend(rng, key, since, step - timedelta(days=1), since)
        newcomer = Usage(**{f: getattr(usage, f) for f in usage.__dataclass_fields__})
        newcomer.per_day_cents = usage.per_day_cents * rng.uniform(1.5, 3.0)
        newcomer.agents = [(new_id(rng), 1.0)]
        usage.spend(rng, key, step, MONTH.end, since)
        newcomer.spend(rng, key, step, MONTH.end, since)
    item = key.done()
    activity = item.activity
    total = sum(activity.daily.get(d, 0) for d in MONTH.days)
    activity.cap_micros = round(total / rng.uniform(1.2, 1.8))
    spent, reached = 0, MONTH.end
    for day in MONTH.days:
        spent += activity.daily.get(day, 0)
        if spent >= activity.cap_micros:
            reached = day
            break
    item.labels.append(Label(AnomalyKind.CAP_TRAJECTORY, MONTH.start, reached - timedelta(days=1)))
    return item


def generate(seed: int, counts: dict[str, int] | None = None) -> list[LabelledKey]:
    """The labelled keys of one seed (the same seed gives the same keys, ids included)."""
    counts = counts or DEFAULT_COUNTS
    rng = random.Random(seed)
    keys: list[LabelledKey] = []
    for scenario in SCENARIOS:
        for n in range(counts.get(scenario, 0)):
            if scenario == "leak":
                keys.append(_leak(rng, n))
            elif scenario == "cap":
                keys.append(_cap(rng, n))
            elif scenario == "runaway":
                keys.append(_runaway(rng, n))
            else:
                keys.append(_ordinary(rng, scenario, n))
    return keys
