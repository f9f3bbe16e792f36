"""`just eval-anomalies`: labelled months of synthetic keys, and how well detection finds them.

Every key gets five weeks of history and one calendar month, hour by hour, from one of these
scenarios (the labels say which anomalies it must raise, and when):

- leak: a quiet key (cents a day, used most days) whose token leaks on day L: dollars an hour
  on an expensive model for a few hours or days. Label: SPIKE_ON_QUIET_KEY on day L or L+1.
- cap: a busy key heading for its cap (steady, or stepping up when a new agent starts); the cap
  is reached before the month ends. Label: CAP_TRAJECTORY before the day the cap is reached,
  naming the agent that spent the most so far.
- runaway: an idle key (a job a few days a month) with one huge day R, one model, many
  requests. Label: RUNAWAY_DAY on day R, naming that model and its request count.
- noisy: ordinary busy keys with a weekly rhythm, day-to-day noise, busy days and growth, some
  with a break of several zero days; half of them capped with headroom. No label: they must not
  alarm.
- growing: keys that grow steadily and fast (4-12% a day). Must never raise SPIKE_ON_QUIET_KEY.
- quiet and idle: like leak and runaway keys without the incident (some with a busy day, some
  with a big day that stays below the absolute floor). No label.

Each month is judged day by day as `anomalies` judges a past month (`detect_key`), and
precision and recall are reported per kind. The test suite runs a fixed seed
(tests/test_anomalies.py); `--database URL` also judges a seed from a database's rollups.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from crabglamp.db import make_engine, read_transaction, write_transaction
from crabglamp.db.tables import table_of
from crabglamp.jobs.anomalies.activity import DayPart, KeyActivity
from crabglamp.jobs.anomalies.anomaly import Anomaly, AnomalyKind
from crabglamp.jobs.anomalies.detectors import detect_key
from crabglamp.jobs.anomalies.period import anomalies_in_period
from crabglamp.migrate import upgrade
from crabglamp.models import NONE_ID, Account, Agent, LlmDaily, LlmHourly, VirtualKey
from crabglamp.money import MICROS_PER_CENT
from crabglamp.periods import Period, day_start, iter_days, month_period
from crabglamp.settings import Settings, Thresholds

MONTH = month_period(2026, 3)
MONTH_DAYS = len(MONTH.days)
HISTORY_DAYS = 35

# Hour-of-day weights (UTC) and weekday weights (Monday first).
# fmt: off
OFFICE = (0.05, 0.04, 0.04, 0.04, 0.05, 0.08, 0.15, 0.35, 0.75, 1.0, 1.1, 1.1,
          0.85, 1.0, 1.1, 1.05, 0.9, 0.65, 0.4, 0.28, 0.2, 0.15, 0.1, 0.07)
ALWAYS = (0.45, 0.4, 0.38, 0.36, 0.38, 0.45, 0.6, 0.8, 0.95, 1.0, 1.05, 1.05,
          1.0, 1.0, 1.05, 1.05, 1.0, 0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.5)
FLAT = (1.0,) * 24
# fmt: on
CHEAP_MODELS = (
    ("openai", "gpt-4o-mini"),
    ("anthropic", "claude-haiku-4-5"),
    ("google", "gemini-2.5-flash"),
)
DEAR_MODELS = (("openai", "gpt-4o"), ("anthropic", "claude-sonnet-4-5"), ("openai", "gpt-4.1"))

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


@dataclass(slots=True)
class Label:
    kind: AnomalyKind
    first_day: date  # the detection must fall on a day in [first_day, last_day]
    last_day: date
    agent_id: uuid.UUID | None = None  # CAP_TRAJECTORY: the agent to name (None: any)
    model: str | None = None  # RUNAWAY_DAY: the model to name
    request_count: int | None = None  # RUNAWAY_DAY: that model's requests that day


@dataclass(slots=True)
class LabelledKey:
    scenario: str
    activity: KeyActivity
    labels: list[Label] = field(default_factory=list)
    # What the generator produced per agent and day (to check the agent that is named).
    agent_days: dict[tuple[uuid.UUID | None, date], int] = field(default_factory=dict)


# Drawing numbers


def _log_uniform(rng: random.Random, low: float, high: float) -> float:
    return math.exp(rng.uniform(math.log(low), math.log(high)))


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 40:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def _cents(value: float) -> int:
    return round(value * MICROS_PER_CENT)


def _new_id(rng: random.Random) -> uuid.UUID:
    # From the seed, not os.urandom: the same seed gives the same ids.
    return uuid.UUID(int=rng.getrandbits(128), version=4)


# Building one key


class _Key:
    """Accumulates a key's generated hours into the shape detection reads."""

    def __init__(self, rng: random.Random, scenario: str, name: str, since: date) -> None:
        self.item = LabelledKey(scenario, KeyActivity(_new_id(rng), ACCOUNT_ID, name, None, since))
        self._parts: dict[tuple[date, uuid.UUID | None, str, str], list[int]] = {}

    def add(
        self,
        hour: datetime,
        agent_id: uuid.UUID | None,
        model: tuple[str, str],
        cost_micros: int,
        requests: int,
    ) -> None:
        if requests <= 0:
            return
        activity = self.item.activity
        activity.hourly[hour] = activity.hourly.get(hour, 0) + cost_micros
        acc = self._parts.setdefault((hour.date(), agent_id, *model), [0, 0])
        acc[0] += cost_micros
        acc[1] += requests
        day_key = (agent_id, hour.date())
        self.item.agent_days[day_key] = self.item.agent_days.get(day_key, 0) + cost_micros

    def done(self) -> LabelledKey:
        for (day, agent_id, provider, model), (cost, count) in sorted(
            self._parts.items(), key=lambda item: (item[0][0], str(item[0][1]), item[0][2:])
        ):
            self.item.activity.add_part(day, DayPart(agent_id, provider, model, cost, count))
        return self.item


ACCOUNT_ID = uuid.UUID(int=1)


@dataclass(slots=True)
class _Usage:
    """An ordinary way of spending: so much a day, shaped by hour and weekday, noisy, growing."""

    per_day_cents: float
    hours: Sequence[float]
    weekend: float
    noise: float
    growth: float
    cents_per_request: float
    agents: list[tuple[uuid.UUID | None, float]]
    models: list[tuple[tuple[str, str], float]]
    busy_day_chance: float = 0.0
    active_chance: float = 1.0  # idle keys spend on this share of days, in a few hours
    run_hours: int = 24

    def spend(self, rng: random.Random, key: _Key, first: date, last: date, start: date) -> None:
        weight_sum = sum(self.hours)
        days = list(iter_days(first, last))
        if self.active_chance < 1:
            # Idle keys: exactly this share of days, so that "mostly zero" is what they are.
            days = sorted(rng.sample(days, round(self.active_chance * len(days))))
        for day in days:
            factor = (1 + self.growth) ** (day - start).days
            factor *= self.weekend if day.weekday() >= 5 else 1.0
            factor *= math.exp(rng.gauss(0.0, self.noise))
            if rng.random() < self.busy_day_chance:
                factor *= rng.uniform(1.5, 2.5)
            daily = self.per_day_cents * factor
            if self.run_hours < 24:
                begin = rng.randrange(24)
                hours = [(begin + i) % 24 for i in range(self.run_hours)]
                weights = dict.fromkeys(hours, 1.0 / len(hours))
            else:
                weights = {h: w / weight_sum for h, w in enumerate(self.hours)}
            for hour, weight in weights.items():
                self._hour(rng, key, day_start(day) + timedelta(hours=hour), daily * weight)

    def _hour(self, rng: random.Random, key: _Key, hour: datetime, cents: float) -> None:
        requests = _poisson(rng, cents / self.cents_per_request)
        if not requests:
            return
        cost = requests * self.cents_per_request * math.exp(rng.gauss(0.0, 0.2))
        combos = [
            (agent, agent_share * model_share, model)
            for agent, agent_share in self.agents
            for model, model_share in self.models
        ]
        total_share = sum(share for _, share, _ in combos)
        given = 0
        for i, (agent, share, model) in enumerate(combos):
            part = share / total_share
            count = requests - given if i == len(combos) - 1 else round(requests * part)
            count = min(count, requests - given)
            given += count
            key.add(hour, agent, model, _cents(cost * part), count)


def _agents(rng: random.Random, count: int) -> list[tuple[uuid.UUID | None, float]]:
    shares = sorted((rng.uniform(0.1, 1.0) for _ in range(count)), reverse=True)
    if count > 1:
        shares[0] = sum(shares[1:]) * rng.uniform(1.2, 2.0)  # one agent clearly spends the most
    ids: list[uuid.UUID | None] = [_new_id(rng) for _ in range(count)]
    if rng.random() < 0.2:
        ids[-1] = None  # some requests come without an agent
    return list(zip(ids, shares, strict=True))


def _models(rng: random.Random) -> list[tuple[tuple[str, str], float]]:
    first = rng.choice(CHEAP_MODELS)
    if rng.random() < 0.5:
        return [(first, 1.0)]
    return [(first, rng.uniform(0.5, 0.9)), (rng.choice(DEAR_MODELS), rng.uniform(0.1, 0.5))]


def _noisy_usage(rng: random.Random, growth_high: float = 0.03) -> _Usage:
    return _Usage(
        per_day_cents=_log_uniform(rng, 300, 20_000),
        hours=rng.choice((OFFICE, ALWAYS)),
        weekend=rng.uniform(0.15, 0.8),
        noise=rng.uniform(0.1, 0.35),
        growth=rng.uniform(0.0, growth_high),
        cents_per_request=_log_uniform(rng, 0.05, 3.0),
        agents=_agents(rng, rng.randint(1, 3)),
        models=_models(rng),
        busy_day_chance=0.1,
    )


def _quiet_usage(rng: random.Random) -> _Usage:
    per_day = _log_uniform(rng, 5, 80)
    return _Usage(
        per_day_cents=per_day,
        hours=rng.choice((OFFICE, ALWAYS, FLAT)),
        weekend=rng.uniform(0.4, 1.0),
        noise=0.3,
        growth=0.0,
        cents_per_request=_log_uniform(rng, 0.01, per_day / 10),
        agents=_agents(rng, 1),
        models=[(rng.choice(CHEAP_MODELS), 1.0)],
        busy_day_chance=0.08,
    )


def _idle_usage(rng: random.Random) -> _Usage:
    return _Usage(
        per_day_cents=_log_uniform(rng, 5, 100),
        hours=FLAT,
        weekend=1.0,
        noise=0.4,
        growth=0.0,
        cents_per_request=_log_uniform(rng, 0.05, 1.0),
        agents=_agents(rng, 1),
        models=[(rng.choice(CHEAP_MODELS), 1.0)],
        active_chance=rng.uniform(0.05, 0.25),
        run_hours=rng.randint(1, 3),
    )


def _burst(
    rng: random.Random,
    key: _Key,
    start: datetime,
    hours: int,
    cents_per_hour: float,
    cents_per_request: float,
    model: tuple[str, str],
    agent: uuid.UUID | None,
) -> None:
    for i in range(hours):
        cents = cents_per_hour * math.exp(rng.gauss(0.0, 0.25))
        requests = max(1, _poisson(rng, cents / cents_per_request))
        key.add(
            start + timedelta(hours=i), agent, model, _cents(requests * cents_per_request), requests
        )


# Scenarios


def _since() -> date:
    return MONTH.start - timedelta(days=HISTORY_DAYS)


def _ordinary(rng: random.Random, scenario: str, n: int) -> LabelledKey:
    since = _since()
    if scenario == "noisy":
        usage = _noisy_usage(rng)
    elif scenario == "growing":
        usage = _noisy_usage(rng)
        usage.per_day_cents = _log_uniform(rng, 5, 300)
        usage.growth = rng.uniform(0.04, 0.12)
        usage.weekend = rng.uniform(0.6, 1.0)
        usage.noise = rng.uniform(0.05, 0.2)
        usage.busy_day_chance = 0.0
    elif scenario == "quiet":
        usage = _quiet_usage(rng)
    else:
        usage = _idle_usage(rng)
    key = _Key(rng, scenario, f"{scenario}-{n}", since)
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
        _burst(
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
    usage = _quiet_usage(rng)
    key = _Key(rng, "leak", f"leak-{n}", since)
    usage.spend(rng, key, since, MONTH.end, since)
    day = MONTH.start + timedelta(days=rng.randrange(1, MONTH_DAYS - 1))
    start = day_start(day) + timedelta(hours=rng.randrange(24))
    hours = rng.choice((1, 2, 3, 4, 6, 8, 12, 24, 48))
    model = rng.choice(DEAR_MODELS)
    _burst(
        rng,
        key,
        start,
        hours,
        _log_uniform(rng, 300, 6000),
        _log_uniform(rng, 0.5, 3.0),
        model,
        None,
    )
    item = key.done()
    item.labels.append(Label(AnomalyKind.SPIKE_ON_QUIET_KEY, day, day + timedelta(days=1)))
    return item


def _runaway(rng: random.Random, n: int) -> LabelledKey:
    since = _since()
    usage = _idle_usage(rng)
    key = _Key(rng, "runaway", f"runaway-{n}", since)
    day = MONTH.start + timedelta(days=rng.randrange(1, MONTH_DAYS - 1))
    usage.spend(rng, key, since, day - timedelta(days=1), since)
    # At least one earlier run in its baseline weeks: a key that was used, then left alone.
    if not any(key.item.activity.hourly.get(h) for h in _hours(day - timedelta(days=28), day)):
        earlier = day - timedelta(days=rng.randint(2, 27))
        _burst(
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
    cents = _log_uniform(rng, 2000, 40_000)
    per_request = _log_uniform(rng, 0.05, 1.0)
    hours = rng.randint(2, 20)
    start = day_start(day) + timedelta(hours=rng.randrange(24 - min(hours, 23)))
    _burst(rng, key, start, hours, cents / hours, per_request, model, usage.agents[0][0])
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
    usage = _noisy_usage(rng, growth_high=0.01)
    usage.noise = rng.uniform(0.1, 0.25)
    usage.busy_day_chance = 0.0
    usage.agents = _agents(rng, rng.randint(2, 3))
    key = _Key(rng, "cap", f"cap-{n}", since)
    if rng.random() < 0.5:
        usage.spend(rng, key, since, MONTH.end, since)
    else:
        # A new agent starts mid-month and the key's spend steps up.
        step = MONTH.start + timedelta(days=rng.randint(5, 15))
        usage.spend(rng, key, since, step - timedelta(days=1), since)
        newcomer = _Usage(**{f: getattr(usage, f) for f in usage.__dataclass_fields__})
        newcomer.per_day_cents = usage.per_day_cents * rng.uniform(1.5, 3.0)
        newcomer.agents = [(_new_id(rng), 1.0)]
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


# Scoring


@dataclass(slots=True)
class KindScore:
    kind: AnomalyKind
    true_positives: int = 0
    false_positives: int = 0
    false_negatives: int = 0
    named_right: int = 0  # true positives naming the expected agent or model and count
    misses: list[str] = field(default_factory=list)
    false_alarms: list[str] = field(default_factory=list)

    @property
    def precision(self) -> float:
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else 1.0

    @property
    def recall(self) -> float:
        wanted = self.true_positives + self.false_negatives
        return self.true_positives / wanted if wanted else 1.0


@dataclass(slots=True)
class Evaluation:
    keys: int
    scores: dict[AnomalyKind, KindScore]
    growing_spikes: int  # SPIKE_ON_QUIET_KEY on a steadily growing key (must be 0)
    found: dict[uuid.UUID, list[Anomaly]]

    def table(self) -> str:
        lines = [
            f"{'kind':<20} {'precision':>9} {'recall':>7} {'TP':>4} {'FP':>4} {'FN':>4} {'named':>6}"
        ]
        for kind, s in self.scores.items():
            lines.append(
                f"{kind.value:<20} {s.precision:>9.3f} {s.recall:>7.3f} {s.true_positives:>4} "
                f"{s.false_positives:>4} {s.false_negatives:>4} "
                f"{s.named_right:>3}/{s.true_positives:<3}"
            )
        lines.append(f"SPIKE_ON_QUIET_KEY on steadily growing keys: {self.growing_spikes}")
        return "\n".join(lines)


def _top_agent(item: LabelledKey, until: date) -> uuid.UUID | None:
    spent: dict[uuid.UUID | None, int] = {}
    for (agent, day), cost in item.agent_days.items():
        if MONTH.start <= day <= until:
            spent[agent] = spent.get(agent, 0) + cost
    return max(spent.items(), key=lambda kv: kv[1])[0] if spent else None


def score(
    items: Sequence[LabelledKey],
    found: dict[uuid.UUID, list[Anomaly]],
) -> Evaluation:
    scores = {kind: KindScore(kind) for kind in AnomalyKind}
    growing_spikes = 0
    for item in items:
        key_id = item.activity.key_id
        detected = {a.kind: a for a in found.get(key_id, [])}
        labels = {label.kind: label for label in item.labels}
        for kind in AnomalyKind:
            s, label, anomaly = scores[kind], labels.get(kind), detected.get(kind)
            name = f"{item.activity.name}"
            if anomaly is not None and item.scenario == "growing":
                growing_spikes += kind is AnomalyKind.SPIKE_ON_QUIET_KEY
            if label is None:
                if anomaly is not None:
                    s.false_positives += 1
                    s.false_alarms.append(f"{name} on {anomaly.day}: {anomaly.message}")
                continue
            if anomaly is None or not label.first_day <= anomaly.day <= label.last_day:
                s.false_negatives += 1
                when = "not detected" if anomaly is None else f"detected on {anomaly.day}"
                s.misses.append(f"{name}: wanted {label.first_day}..{label.last_day}, {when}")
                if anomaly is not None:
                    s.false_positives += 1
                continue
            s.true_positives += 1
            if kind is AnomalyKind.CAP_TRAJECTORY:
                s.named_right += anomaly.agent_id == _top_agent(item, anomaly.day)
            elif kind is AnomalyKind.RUNAWAY_DAY:
                s.named_right += (
                    anomaly.details.get("model") == label.model
                    and anomaly.details.get("modelRequestCount") == label.request_count
                )
            else:
                s.named_right += 1
    return Evaluation(len(items), scores, growing_spikes, found)


def evaluate(
    items: Sequence[LabelledKey], t: Thresholds | None = None, now: datetime | None = None
) -> Evaluation:
    """Judge every key's month as `anomalies` judges a past month."""
    t = t or Thresholds()
    now = now or day_start(MONTH.end + timedelta(days=1))
    days = MONTH.days
    found = {item.activity.key_id: detect_key(item.activity, days, now, t) for item in items}
    return score(items, found)


# Through the database: the same keys in the rollups, read back as `anomalies` reads them


async def load_into(engine: AsyncEngine, items: Sequence[LabelledKey]) -> None:
    """The account, its keys and agents, and the keys' daily and hourly rollup rows exactly as
    ingest leaves them (one event per request would be millions of rows for the big days)."""
    agents = sorted(
        {
            p.agent_id
            for item in items
            for parts in item.activity.parts.values()
            for p in parts
            if p.agent_id is not None
        },
        key=str,
    )
    daily_rows, hourly_rows = [], []
    for item in items:
        a = item.activity
        for day, parts in a.parts.items():
            for p in parts:
                daily_rows.append(
                    {
                        "account_id": ACCOUNT_ID,
                        "day": day,
                        "key_id": a.key_id,
                        "agent_id": p.agent_id or NONE_ID,
                        "provider": p.provider,
                        "model": p.model,
                        "cost_micros": p.cost_micros,
                        "request_count": p.request_count,
                        "input_tokens": 0,
                        "output_tokens": 0,
                    }
                )
        for hour, cost in a.hourly.items():
            hourly_rows.append(
                {
                    "account_id": ACCOUNT_ID,
                    "key_id": a.key_id,
                    "hour": hour,
                    "cost_micros": cost,
                    "request_count": 1,
                }
            )
    async with write_transaction(engine) as conn:
        await conn.execute(_table(Account).insert(), [{"id": ACCOUNT_ID, "name": "Eval"}])
        if agents:
            await conn.execute(
                _table(Agent).insert(),
                [{"id": a, "account_id": ACCOUNT_ID, "name": f"agent-{a.hex[:6]}"} for a in agents],
            )
        await conn.execute(
            _table(VirtualKey).insert(),
            [
                {
                    "id": item.activity.key_id,
                    "account_id": ACCOUNT_ID,
                    "name": item.activity.name,
                    "spend_cap_micros": item.activity.cap_micros,
                    "status": "active",
                    "created_at": day_start(item.activity.since or MONTH.start),
                }
                for item in items
            ],
        )
        for table, rows in ((_table(LlmDaily), daily_rows), (_table(LlmHourly), hourly_rows)):
            for start in range(0, len(rows), 5000):
                await conn.execute(table.insert(), rows[start : start + 5000])


def _table(model: Any) -> Any:
    return table_of(model)


async def evaluate_in_database(
    url: str, items: Sequence[LabelledKey], t: Thresholds | None = None
) -> Evaluation:
    """The same keys written to a fresh database's rollups, judged as the `anomalies` query
    judges a past month."""
    t = t or Thresholds()
    engine = make_engine(url)
    try:
        await upgrade(engine)
        await load_into(engine, items)
        now = day_start(MONTH.end + timedelta(days=1))
        async with read_transaction(engine) as conn:
            found_all = await anomalies_in_period(
                conn, [ACCOUNT_ID], Period(MONTH.start, MONTH.end), now, t
            )
    finally:
        await engine.dispose()
    found: dict[uuid.UUID, list[Anomaly]] = {}
    for anomaly in found_all:
        if anomaly.key_id is not None:
            found.setdefault(anomaly.key_id, []).append(anomaly)
    return score(items, found)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="eval-anomalies", description="Precision and recall of anomaly detection"
    )
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every scenario count")
    parser.add_argument("--seeds", type=int, default=5, help="how many seeds from --seed on")
    parser.add_argument("--verbose", "-v", action="store_true", help="list misses and false alarms")
    parser.add_argument(
        "--database",
        metavar="URL",
        help="also judge the first seed from a fresh database's rollups (e.g. an empty SQLite file)",
    )
    args = parser.parse_args(argv)
    counts = {k: max(1, round(v * args.scale)) for k, v in DEFAULT_COUNTS.items()}
    t = Settings.from_env().thresholds
    worst_ok = True
    for seed in range(args.seed, args.seed + args.seeds):
        items = generate(seed, counts)
        result = evaluate(items, t)
        print(f"seed {seed}: {result.keys} keys, {MONTH.start:%Y-%m} judged day by day")
        print(result.table())
        if args.verbose:
            for s in result.scores.values():
                for line in s.misses + s.false_alarms:
                    print("   ", s.kind.value, line)
        print()
        worst_ok &= all(s.recall == 1.0 and s.precision >= 0.95 for s in result.scores.values())
        worst_ok &= result.growing_spikes == 0
        if args.database and seed == args.seed:
            from_db = asyncio.run(evaluate_in_database(args.database, items, t))
            print(f"seed {seed} through the rollups of {args.database}:")
            print(from_db.table())
            print()
            worst_ok &= from_db.table() == result.table()
    return 0 if worst_ok else 1


if __name__ == "__main__":
    sys.exit(main())
