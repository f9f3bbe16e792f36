"""The statistics the detectors share: robust centre and spread, a key's baseline days, and
its spend grouped by agent or model."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from crabglamp.jobs.anomalies.activity import DayPart, KeyActivity
from crabglamp.periods import iter_days
from crabglamp.settings import Thresholds

MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution times this is its standard deviation


def median_of(ordered: Sequence[int]) -> float:
    n = len(ordered)
    middle = n // 2
    return float(ordered[middle]) if n % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def robust(values: Sequence[int]) -> tuple[float, float]:
    """Median and median absolute deviation."""
    ordered = sorted(values)
    median = median_of(ordered)
    deviations = sorted(abs(v - median) for v in ordered)
    return median, median_of(deviations)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Baseline:
    """A key's days (or hours) before the day judged, zero-filled from when it existed."""

    values: list[int]
    zero_days: int
    days: int

    @property
    def zero_share(self) -> float:
        return self.zero_days / self.days if self.days else 1.0


def baseline_days(activity: KeyActivity, day: date, t: Thresholds) -> Baseline | None:
    if activity.since is None:
        return None
    first = max(day - timedelta(days=t.baseline_days), activity.since)
    if (day - first).days < t.min_history_days:
        return None  # too new to have a baseline of its own
    values = [activity.daily.get(d, 0) for d in iter_days(first, day - timedelta(days=1))]
    zero = t.micros(t.zero_day_cents)
    return Baseline(values, sum(1 for v in values if v < zero), len(values))


def names_of(parts: Iterable[DayPart], by: str) -> list[tuple[Any, int, int]]:
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
