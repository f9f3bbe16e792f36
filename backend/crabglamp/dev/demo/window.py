"""The demo's days: from its first day (a month start, fixed once seeded) to now."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta


def _month_start_after(day: date) -> date:
    return date(day.year + (day.month == 12), day.month % 12 + 1, 1)


def previous_month_start(day: date) -> date:
    first = day.replace(day=1)
    return (first - timedelta(days=1)).replace(day=1)


@dataclass(slots=True)
class Window:
    prefix: str
    scale: float
    start: date  # the demo's first day (a month start), fixed once seeded
    now: datetime
    spike_start: datetime
    runaway_day: date

    @property
    def today(self) -> date:
        return self.now.date()

    @property
    def second_month(self) -> date:
        return _month_start_after(self.start)

    def days(self, resume: date | None = None) -> list[date]:
        day = max(self.start, resume) if resume else self.start
        days = []
        while day <= self.today:
            days.append(day)
            day += timedelta(days=1)
        return days
