"""The fixed moments date-sensitive tests also run at: month ends, month starts, a leap day and
a new year. Each is a UTC moment; tests seed relative to it, never to today."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

FIXED_CLOCKS = {
    "1st-of-march": datetime(2027, 3, 1, 9, 30, tzinfo=UTC),  # after a 28-day February
    "2nd-of-june": datetime(2027, 6, 2, 8, 15, tzinfo=UTC),
    "28th-of-february": datetime(2027, 2, 28, 18, 0, tzinfo=UTC),  # the last day of the month
    "29th-of-february": datetime(2028, 2, 29, 12, 0, tzinfo=UTC),
    "31st-of-october": datetime(2026, 10, 31, 23, 30, tzinfo=UTC),
    "1st-of-january": datetime(2027, 1, 1, 0, 40, tzinfo=UTC),  # minutes into a new year
}


def earlier_this_month(now: datetime, by: timedelta) -> datetime:
    """A moment `by` before `now`, but never before the month of `now` began: what "a moment
    ago" means for a test about this month's figures, on the 1st at midnight too."""
    return max(now - by, now.replace(day=1, hour=0, minute=0, second=0, microsecond=0))
