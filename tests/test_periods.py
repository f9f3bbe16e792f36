"""UTC days and months, inclusive ranges, and intervals split at UTC midnights."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from crabglamp.periods import (
    Period,
    current_month,
    iter_days,
    month_of,
    parse_date,
    parse_month,
    split_by_day,
)

HOUR = 3_600_000_000
DAY = 24 * HOUR


def test_a_month_runs_from_its_first_to_its_last_day() -> None:
    november = parse_month("2026-11")
    assert (november.start, november.end) == (date(2026, 11, 1), date(2026, 11, 30))
    assert len(november.days) == 30
    assert november.start_dt == datetime(2026, 11, 1, tzinfo=UTC)
    assert november.end_dt == datetime(2026, 12, 1, tzinfo=UTC)  # exclusive
    assert len(parse_month("2028-02").days) == 29
    assert len(parse_month("2026-02").days) == 28
    assert parse_month("2026-12").end_dt == datetime(2027, 1, 1, tzinfo=UTC)


# Full-width and Arabic-Indic digits are digits to a regex's \d, and to int(), but not here.
@pytest.mark.parametrize(
    "bad",
    ["2026-13", "2026-00", "26-11", "2026-1", "2026-11-01", "2026/11", "2026-11\n", " 2026-11",
     "", "1969-12", "\uff12\uff10\uff12\uff16-\uff11\uff11", "\u0662\u0660\u0662\u0666-\u0661\u0661"],
)  # fmt: skip
def test_parse_month_refuses_anything_but_yyyy_mm(bad: str) -> None:
    with pytest.raises(ValueError, match="month must be YYYY-MM"):
        parse_month(bad)


def test_parse_date_reads_yyyy_mm_dd() -> None:
    assert parse_date("2026-11-03") == date(2026, 11, 3)
    assert parse_date("2028-02-29") == date(2028, 2, 29)


@pytest.mark.parametrize(
    "bad",
    ["2026-02-30", "2026-11-3", "20261103", "2026-11-03\n", "2026-11-03T00:00", "", "03/11/2026",
     "2026-W45-1", "\uff12\uff10\uff12\uff16-\uff11\uff11-\uff10\uff13"],
)  # fmt: skip
def test_parse_date_refuses_anything_but_a_real_yyyy_mm_dd(bad: str) -> None:
    with pytest.raises(ValueError, match="date must be YYYY-MM-DD"):
        parse_date(bad)


def test_a_range_is_inclusive_of_both_dates() -> None:
    period = Period(date(2026, 11, 30), date(2026, 12, 2))
    assert period.days == [date(2026, 11, 30), date(2026, 12, 1), date(2026, 12, 2)]
    assert Period(date(2026, 11, 3), date(2026, 11, 3)).days == [date(2026, 11, 3)]
    assert list(iter_days(date(2026, 12, 31), date(2027, 1, 1))) == [
        date(2026, 12, 31),
        date(2027, 1, 1),
    ]
    with pytest.raises(ValueError, match="before it starts"):
        Period(date(2026, 11, 3), date(2026, 11, 2))
    with pytest.raises(ValueError, match="must end before"):
        Period(date(2026, 11, 3), date.max)


def test_the_current_month_and_month_names() -> None:
    assert current_month(datetime(2026, 11, 30, 23, 59, tzinfo=UTC)) == parse_month("2026-11")
    assert month_of(date(2026, 3, 9)) == "2026-03"


def test_split_by_day_cuts_at_utc_midnights() -> None:
    start = datetime(2026, 11, 30, 23, tzinfo=UTC)
    assert split_by_day(start, datetime(2026, 12, 1, 2, tzinfo=UTC)) == [
        (date(2026, 11, 30), 0, HOUR),
        (date(2026, 12, 1), HOUR, 2 * HOUR),
    ]
    # An interval that ends at midnight has no empty piece on the next day.
    assert split_by_day(start, datetime(2026, 12, 1, tzinfo=UTC)) == [(date(2026, 11, 30), 0, HOUR)]
    assert split_by_day(start, start) == []
    midnight = datetime(2026, 12, 1, tzinfo=UTC)
    assert split_by_day(midnight, midnight + timedelta(days=2)) == [
        (date(2026, 12, 1), 0, DAY),
        (date(2026, 12, 2), DAY, DAY),
    ]
    # Microseconds survive.
    assert split_by_day(
        midnight - timedelta(microseconds=1), midnight + timedelta(microseconds=2)
    ) == [
        (date(2026, 11, 30), 0, 1),
        (date(2026, 12, 1), 1, 2),
    ]


def test_split_by_day_uses_utc_days_whatever_the_zone_or_its_clock_changes() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    # Berlin's 25-hour day (clocks go back on 2026-10-25) is still two 24-hour UTC pieces here.
    start = datetime(2026, 10, 25, 0, 0, tzinfo=berlin)  # 2026-10-24 22:00 UTC
    end = datetime(2026, 10, 27, 1, 0, tzinfo=berlin)  # 2026-10-27 00:00 UTC
    assert split_by_day(start, end) == [
        (date(2026, 10, 24), 0, 2 * HOUR),
        (date(2026, 10, 25), 2 * HOUR, DAY),
        (date(2026, 10, 26), 2 * HOUR + DAY, DAY),
    ]
    # Naive moments are UTC.
    assert split_by_day(datetime(2026, 11, 30, 23), datetime(2026, 12, 1, 1)) == [
        (date(2026, 11, 30), 0, HOUR),
        (date(2026, 12, 1), HOUR, HOUR),
    ]
