"""Daily and weekly rhythms of spend: weights per local hour of the day and per weekday (Monday
first).

The demo (`dev/demo/`) shapes its keys' traffic with them and the anomaly evaluation
(`dev/anomaly_eval/`) its synthetic keys' hours: one set of tables, so both tell the same day.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class Rhythm:
    hours: tuple[float, ...]
    week: tuple[float, ...]


# fmt: off
OFFICE: Final = Rhythm(
    (0.05, 0.04, 0.04, 0.04, 0.05, 0.08, 0.15, 0.35, 0.75, 1.0, 1.1, 1.1,
     0.85, 1.0, 1.1, 1.05, 0.9, 0.65, 0.4, 0.28, 0.2, 0.15, 0.1, 0.07),
    (1.0, 1.06, 1.05, 1.02, 0.86, 0.22, 0.18),
)
ALWAYS: Final = Rhythm(
    (0.45, 0.4, 0.38, 0.36, 0.38, 0.45, 0.6, 0.8, 0.95, 1.0, 1.05, 1.05,
     1.0, 1.0, 1.05, 1.05, 1.0, 0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.5),
    (1.0, 1.02, 1.02, 1.0, 0.96, 0.8, 0.76),
)
STEADY: Final = Rhythm((1.0,) * 24, (1.0,) * 7)
EVENING: Final = Rhythm(
    (0.15, 0.08, 0.03, 0.02, 0.02, 0.02, 0.05, 0.15, 0.2, 0.25, 0.3, 0.35,
     0.4, 0.35, 0.3, 0.3, 0.35, 0.5, 0.8, 1.0, 1.1, 1.0, 0.7, 0.35),
    (0.8, 0.75, 0.8, 0.85, 0.9, 1.5, 1.4),
)
NIGHTLY: Final = Rhythm(
    (0.9, 1.0, 1.0, 0.95, 0.8, 0.5, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3,
     0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.35, 0.4, 0.6, 0.8),
    (1.0,) * 7,
)
# fmt: on
# A batch job that runs once a week, on Sunday night: every other day is zero.
WEEKLY_JOB: Final = Rhythm((0, 0, 1.0, 0.6) + (0,) * 20, (0, 0, 0, 0, 0, 0, 1.0))


def hourly_weights(rhythm: Rhythm, utc_offset: int) -> list[float]:
    # Local hour h is UTC hour h - offset.
    return [rhythm.hours[(h + utc_offset) % 24] for h in range(24)]
