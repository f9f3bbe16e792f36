"""UTC days, months and ranges, and splitting intervals at day boundaries."""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

# ASCII digits only, and no trailing newline (which `$` would let through).
MONTH_RE = re.compile(r"([0-9]{4})-([0-9]{2})")
US_PER_DAY = 86_400_000_000
US_PER_HOUR = 3_600_000_000


@dataclass(frozen=True, slots=True)
class Period:
    """An inclusive range of UTC calendar days."""

    start: date
    end: date

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"period ends ({self.end}) before it starts ({self.start})")
        if self.end >= date.max:
            # end_dt is the midnight after the last day, which must exist.
            raise ValueError(f"period must end before {date.max.isoformat()}")

    @property
    def days(self) -> list[date]:
        return list(iter_days(self.start, self.end))

    @property
    def start_dt(self) -> datetime:
        return day_start(self.start)

    @property
    def end_dt(self) -> datetime:
        """The exclusive upper bound: midnight after the last day."""
        return day_start(self.end + timedelta(days=1))


def parse_month(value: str) -> Period:
    match = MONTH_RE.fullmatch(value)
    if not match:
        raise ValueError(f"month must be YYYY-MM, got {value!r}")
    year, month = int(match.group(1)), int(match.group(2))
    if not 1 <= month <= 12 or year < 1970:
        raise ValueError(f"month must be YYYY-MM, got {value!r}")
    return month_period(year, month)


def month_period(year: int, month: int) -> Period:
    last = calendar.monthrange(year, month)[1]
    return Period(date(year, month, 1), date(year, month, last))


def current_month(now: datetime | None = None) -> Period:
    now = now or utcnow()
    return month_period(now.year, now.month)


def month_of(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def parse_date(value: str) -> date:
    try:
        if not DATE_RE.fullmatch(value):
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"date must be YYYY-MM-DD, got {value!r}") from exc


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """Naive datetimes from SQLite are UTC by construction; give them their zone back."""
    if moment.tzinfo is UTC:
        return moment  # the usual case, several times per ingested event: no conversion
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def iter_days(start: date, end: date) -> Iterator[date]:
    day = start
    while day <= end:
        yield day
        day += timedelta(days=1)


def micros_between(start: datetime, end: datetime) -> int:
    delta = end - start
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def split_by_day(start: datetime, end: datetime) -> list[tuple[date, int, int]]:
    """Split [start, end) at UTC midnights into (day, offset_us, length_us) pieces.

    Offsets are measured from `start`, so cumulative rounding over them partitions any
    quantity proportional to time exactly.
    """
    start, end = as_utc(start), as_utc(end)
    pieces: list[tuple[date, int, int]] = []
    cursor = start
    offset = 0
    while cursor < end:
        next_midnight = day_start(cursor.date() + timedelta(days=1))
        piece_end = min(next_midnight, end)
        length = micros_between(cursor, piece_end)
        pieces.append((cursor.date(), offset, length))
        offset += length
        cursor = piece_end
    return pieces
