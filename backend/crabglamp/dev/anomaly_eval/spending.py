"""How a synthetic key spends: ordinary days shaped by a rhythm, and bursts, hour by hour."""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from crabglamp.dev.anomaly_eval.labels import ACCOUNT_ID, LabelledKey
from crabglamp.dev.rhythm import ALWAYS, OFFICE, STEADY
from crabglamp.jobs.anomalies.activity import DayPart, KeyActivity
from crabglamp.money import MICROS_PER_CENT
from crabglamp.periods import day_start, iter_days

CHEAP_MODELS = (
    ("openai", "gpt-4o-mini"),
    ("anthropic", "claude-haiku-4-5"),
    ("google", "gemini-2.5-flash"),
)
DEAR_MODELS = (("openai", "gpt-4o"), ("anthropic", "claude-sonnet-4-5"), ("openai", "gpt-4.1"))


# Drawing numbers


def log_uniform(rng: random.Random, low: float, high: float) -> float:
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


def new_id(rng: random.Random) -> uuid.UUID:
    # From the seed, not os.urandom: the same seed gives the same ids.
    return uuid.UUID(int=rng.getrandbits(128), version=4)


# Building one key


class Key:
    """Accumulates a key's generated hours into the shape detection reads."""

    def __init__(self, rng: random.Random, scenario: str, name: str, since: date) -> None:
        self.item = LabelledKey(scenario, KeyActivity(new_id(rng), ACCOUNT_ID, name, None, since))
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


@dataclass(slots=True)
class Usage:
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

    def spend(self, rng: random.Random, key: Key, first: date, last: date, start: date) -> None:
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

    def _hour(self, rng: random.Random, key: Key, hour: datetime, cents: float) -> None:
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


def draw_agents(rng: random.Random, count: int) -> list[tuple[uuid.UUID | None, float]]:
    shares = sorted((rng.uniform(0.1, 1.0) for _ in range(count)), reverse=True)
    if count > 1:
        shares[0] = sum(shares[1:]) * rng.uniform(1.2, 2.0)  # one agent clearly spends the most
    ids: list[uuid.UUID | None] = [new_id(rng) for _ in range(count)]
    if rng.random() < 0.2:
        ids[-1] = None  # some requests come without an agent
    return list(zip(ids, shares, strict=True))


def _models(rng: random.Random) -> list[tuple[tuple[str, str], float]]:
    first = rng.choice(CHEAP_MODELS)
    if rng.random() < 0.5:
        return [(first, 1.0)]
    return [(first, rng.uniform(0.5, 0.9)), (rng.choice(DEAR_MODELS), rng.uniform(0.1, 0.5))]


def noisy_usage(rng: random.Random, growth_high: float = 0.03) -> Usage:
    return Usage(
        per_day_cents=log_uniform(rng, 300, 20_000),
        hours=rng.choice((OFFICE.hours, ALWAYS.hours)),
        weekend=rng.uniform(0.15, 0.8),
        noise=rng.uniform(0.1, 0.35),
        growth=rng.uniform(0.0, growth_high),
        cents_per_request=log_uniform(rng, 0.05, 3.0),
        agents=draw_agents(rng, rng.randint(1, 3)),
        models=_models(rng),
        busy_day_chance=0.1,
    )


def quiet_usage(rng: random.Random) -> Usage:
    per_day = log_uniform(rng, 5, 80)
    return Usage(
        per_day_cents=per_day,
        hours=rng.choice((OFFICE.hours, ALWAYS.hours, STEADY.hours)),
        weekend=rng.uniform(0.4, 1.0),
        noise=0.3,
        growth=0.0,
        cents_per_request=log_uniform(rng, 0.01, per_day / 10),
        agents=draw_agents(rng, 1),
        models=[(rng.choice(CHEAP_MODELS), 1.0)],
        busy_day_chance=0.08,
    )


def idle_usage(rng: random.Random) -> Usage:
    return Usage(
        per_day_cents=log_uniform(rng, 5, 100),
        hours=STEADY.hours,
        weekend=1.0,
        noise=0.4,
        growth=0.0,
        cents_per_request=log_uniform(rng, 0.05, 1.0),
        agents=draw_agents(rng, 1),
        models=[(rng.choice(CHEAP_MODELS), 1.0)],
        active_chance=rng.uniform(0.05, 0.25),
        run_hours=rng.randint(1, 3),
    )


def burst(
    rng: random.Random,
    key: Key,
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
