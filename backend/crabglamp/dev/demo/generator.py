"""The demo's ordinary traffic: every key's requests, every agent's voice, every compute interval.

Each day of each thing that spends is drawn from its own `random.Random`, seeded by (prefix,
thing, day), so a record is a pure function of its slot and its id says which slot it fills.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Iterator, Sequence
from datetime import date, datetime, timedelta
from typing import Final

from crabglamp.dev.demo.planted import (
    PLANTED,
    RUNAWAY_MINUTES,
    RUNAWAY_PER_MINUTE,
    SPIKE_HOURS,
    SPIKE_PER_MINUTE,
)
from crabglamp.dev.demo.specs import (
    AGENT_BY_NAME,
    AGENTS,
    KEY_BY_NAME,
    KEYS,
    PLAIN_VMS,
    TOKEN_SIGMA,
    UTC_OFFSET,
    AgentSpec,
    KeySpec,
)
from crabglamp.dev.demo.window import Window
from crabglamp.dev.rhythm import ALWAYS, OFFICE, hourly_weights
from crabglamp.ingest.records import ComputeRecord, LlmRecord, Record, VoiceRecord
from crabglamp.money import MICROS_PER_CENT
from crabglamp.periods import day_start
from crabglamp.prices import PriceBook, default_price_book

_BOOK: Final = default_price_book()


def _provider(model: str) -> str:
    provider = _BOOK.provider_of(model)
    assert provider is not None, f"the demo's model {model} is not in the catalog"
    return provider


# Lognormal token counts without a gauss() per token: draws from one fixed table are as good
# for charts and several times cheaper.
_SPREAD_SIZE: Final = 4096


def _spread_table() -> tuple[float, ...]:
    rng = random.Random(0)
    return tuple(math.exp(TOKEN_SIGMA * rng.gauss(0.0, 1.0)) for _ in range(_SPREAD_SIZE))


_SPREAD: Final = _spread_table()
_ERROR_RATE: Final = 0.004


def _cumulative(weights: Sequence[float]) -> list[float]:
    total, out = 0.0, []
    for weight in weights:
        total += weight
        out.append(total)
    return [c / total for c in out]


def _hour_counts(
    rng: random.Random, per_day: float, weights: Sequence[float], weekday_factor: float
) -> list[int]:
    if per_day <= 0 or weekday_factor <= 0:
        return [0] * 24
    expected = per_day * weekday_factor * math.exp(rng.gauss(0.0, 0.12))
    total = sum(weights)
    counts = []
    for weight in weights:
        lam = expected * weight / total
        # Mean lam; a little spread hour to hour, and whole requests.
        counts.append(int(max(0.0, lam * (1.0 + 0.1 * rng.gauss(0.0, 1.0))) + rng.random()))
    return counts


class Generator:
    def __init__(self, window: Window, prices: PriceBook) -> None:
        self.w = window
        self.prices = prices

    def _growth(self, spec: KeySpec, day: date) -> float:
        growth = 1.0 + 0.0025 * (day - self.w.start).days
        if day >= self.w.second_month:
            growth *= spec.second_month_boost
        return growth

    def estimate(self, days: Sequence[date]) -> int:
        """About how many records the run will produce (for the progress bar)."""
        total = 0.0
        for day in days:
            for spec in KEYS:
                total += spec.requests_per_day(self.w.scale) * spec.rhythm.week[day.weekday()]
            for agent in AGENTS:
                total += agent.voice_per_day * self.w.scale
        if days:
            total += SPIKE_PER_MINUTE * SPIKE_HOURS * 60
        if self.w.runaway_day in days:
            total += RUNAWAY_PER_MINUTE * RUNAWAY_MINUTES
        return int(total * 1.05)

    def llm_day(self, spec: KeySpec, day: date) -> list[Record]:
        w = self.w
        if not spec.mix:
            return []
        if spec.id == PLANTED["runaway_key_id"] and day == w.runaway_day:
            return []  # that night the looping script ran instead of the weekly job
        rng = random.Random(f"{w.prefix}:llm:{spec.no}:{day.toordinal()}")
        per_day = spec.requests_per_day(w.scale) * self._growth(spec, day)
        weights = hourly_weights(spec.rhythm, UTC_OFFSET[spec.account_id])
        counts = _hour_counts(rng, per_day, weights, spec.rhythm.week[day.weekday()])
        models = [m for m, _, _, _ in spec.mix]
        cumulative = _cumulative([share for _, share, _, _ in spec.mix])
        shapes = [(tokens_in, tokens_out) for _, _, tokens_in, tokens_out in spec.mix]
        providers = [_provider(m) for m in models]
        key_id, agent_id = spec.id, AGENT_BY_NAME[spec.agent].id if spec.agent else None
        midnight = day_start(day)
        now = w.now
        uniform, spread, size = rng.random, _SPREAD, _SPREAD_SIZE
        out: list[Record] = []
        for hour, count in enumerate(counts):
            if not count:
                continue
            hour_start = midnight + timedelta(hours=hour)
            if hour_start > now:
                break
            stem = f"{w.prefix}-k{spec.no:02d}-{day:%Y%m%d}{hour:02d}-"
            for i in range(count):
                ts = hour_start + timedelta(milliseconds=int(uniform() * 3_600_000))
                pick = bisect.bisect_left(cumulative, uniform()) if len(models) > 1 else 0
                typical_in, typical_out = shapes[pick]
                tokens_in = max(1, int(typical_in * spread[int(uniform() * size)]))
                tokens_out = (
                    max(1, int(typical_out * spread[int(uniform() * size)])) if typical_out else 0
                )
                failed = uniform() < _ERROR_RATE
                if ts > now:
                    continue
                cost = None
                if spec.batch_discount and not failed:
                    full = self.prices.llm_cost(
                        providers[pick], models[pick], ts, tokens_in, tokens_out
                    )
                    cost = full // 2
                out.append(
                    LlmRecord(
                        stem + str(i),
                        ts,
                        key_id,
                        providers[pick],
                        models[pick],
                        tokens_in,
                        0 if failed else tokens_out,
                        cost,
                        agent_id,
                        "error" if failed else "ok",
                    )
                )
        return out

    def voice_day(self, agent: AgentSpec, day: date) -> list[Record]:
        if not agent.voice_models:
            return []
        w = self.w
        rng = random.Random(f"{w.prefix}:voice:{agent.no}:{day.toordinal()}")
        rhythm = OFFICE if agent.schedule == "office" else ALWAYS
        weights = hourly_weights(rhythm, UTC_OFFSET[agent.account_id])
        growth = 1.0 + 0.0025 * (day - w.start).days
        counts = _hour_counts(
            rng, agent.voice_per_day * w.scale * growth, weights, rhythm.week[day.weekday()]
        )
        models = [m for m, _ in agent.voice_models]
        cumulative = _cumulative([share for _, share in agent.voice_models])
        # Text to speech through the proxy carries the agent's voice key; ElevenLabs is direct.
        voice_key = KEY_BY_NAME[agent.voice_key].id if agent.voice_key else None
        midnight = day_start(day)
        out: list[Record] = []
        for hour, count in enumerate(counts):
            hour_start = midnight + timedelta(hours=hour)
            if hour_start > w.now:
                break
            for i in range(count):
                ts = hour_start + timedelta(milliseconds=int(rng.random() * 3_600_000))
                model = models[bisect.bisect_left(cumulative, rng.random())]
                characters = max(20, int(450 * math.exp(0.6 * rng.gauss(0.0, 1.0))))
                if ts > w.now:
                    continue
                out.append(
                    VoiceRecord(
                        f"{w.prefix}-v{agent.no:02d}-{day:%Y%m%d}{hour:02d}-{i}",
                        ts,
                        agent.account_id,
                        model,
                        characters,
                        agent_id=agent.id,
                        key_id=voice_key if _provider(model) == "openai" else None,
                    )
                )
        return out

    def compute(self) -> list[Record]:
        out: list[Record] = []
        for agent in AGENTS:
            for start, end, state in self._segments(
                f"a{agent.no}", agent.schedule, UTC_OFFSET[agent.account_id], paused=True
            ):
                rate = (
                    agent.running_cents_per_hour
                    if state == "running"
                    else agent.paused_cents_per_hour
                )
                out.append(
                    ComputeRecord(
                        f"{self.w.prefix}-a{agent.no:02d}-{start:%Y%m%d%H%M%S}",
                        agent.account_id,
                        start,
                        end,
                        round(rate * MICROS_PER_CENT),
                        state,
                        agent_id=agent.id,
                    )
                )
        for vm in PLAIN_VMS:
            for start, end, state in self._segments(
                f"m{vm.no}", vm.schedule, UTC_OFFSET[vm.account_id], paused=False
            ):
                out.append(
                    ComputeRecord(
                        f"{self.w.prefix}-m{vm.no:02d}-{start:%Y%m%d%H%M%S}",
                        vm.account_id,
                        start,
                        end,
                        round(vm.cents_per_hour * MICROS_PER_CENT),
                        state,
                        plain_vm_id=vm.id,
                    )
                )
        return out

    def _segments(
        self, name: str, schedule: str, utc_offset: int, *, paused: bool
    ) -> Iterator[tuple[datetime, datetime | None, str]]:
        """Intervals from the demo's first day to now; the one still running now is open."""
        w = self.w
        rng = random.Random(f"{w.prefix}:compute:{name}")
        origin = day_start(w.start)
        horizon = w.now + timedelta(days=12)
        running = list(_running_windows(rng, schedule, origin, horizon, utc_offset))
        segments: list[tuple[datetime, datetime, str]] = []
        cursor = origin
        for start, end in running:
            if paused and start > cursor:
                segments.append((cursor, start, "paused"))
            segments.append((start, end, "running"))
            cursor = end
        for start, end, state in segments:
            if start > w.now:
                break
            yield start, (end if end <= w.now else None), state


def _running_windows(
    rng: random.Random, schedule: str, origin: datetime, horizon: datetime, utc_offset: int
) -> Iterator[tuple[datetime, datetime]]:
    """When an agent or VM runs, whole seconds, in order, not overlapping."""

    def at(day: date, local_hours: float) -> datetime:
        return day_start(day) + timedelta(seconds=int((local_hours - utc_offset) * 3600))

    if schedule == "always":
        # Up for a day or three, then a short restart or maintenance pause.
        cursor = origin
        while cursor < horizon:
            end = cursor + timedelta(seconds=int(rng.uniform(6, 40) * 3600))
            yield cursor, end
            cursor = end + timedelta(seconds=int(rng.uniform(0.2, 1.5) * 3600))
        return
    if schedule == "bursty":
        cursor = origin + timedelta(seconds=int(rng.uniform(1, 4) * 86_400))
        while cursor < horizon:
            end = cursor + timedelta(seconds=int(rng.uniform(8, 60) * 3600))
            yield cursor, end
            cursor = end + timedelta(seconds=int(rng.uniform(3, 8) * 86_400))
        return
    day = origin.date() - timedelta(days=1)
    last_end = origin
    while day_start(day) < horizon:
        weekend = day.weekday() >= 5
        windows: list[tuple[float, float]] = []
        if schedule == "office" and not weekend:
            windows.append((8 + rng.uniform(-0.5, 0.75), 17.5 + rng.uniform(-0.5, 1.5)))
        elif schedule == "evening":
            if weekend and rng.random() < 0.7:
                windows.append((13 + rng.uniform(-1, 1), 17 + rng.uniform(-1, 1)))
            if rng.random() < 0.6:
                windows.append((18.5 + rng.uniform(-0.5, 1), 22.5 + rng.uniform(-0.5, 1)))
        elif schedule == "nightly":
            # The ETL window is in UTC, wherever its owners are.
            windows.append(
                (0.3 + rng.uniform(0, 0.4) + utc_offset, 3.8 + rng.uniform(-0.3, 0.6) + utc_offset)
            )
        for local_start, local_end in windows:
            start, end = at(day, local_start), at(day, local_end)
            if start >= last_end and end > start:
                yield start, end
                last_end = end
        day += timedelta(days=1)
