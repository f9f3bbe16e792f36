"""What the three axes share: one order for every breakdown, ids read as the driver gives them,
and a period cut into the whole months the monthly rollups answer and the days left over."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crabglamp.db.tables import table_of
from crabglamp.models import NONE_ID, LlmDailyModel
from crabglamp.periods import Period, iter_days, parse_month
from crabglamp.usage._axis import Ids, Spans, per_key, shape_of, sorted_by_cost, spans_of
from crabglamp.usage.filter import FIRST_DAY, LAST_DAY
from crabglamp.usage.query import UsageQuery
from crabglamp.usage.results import PlainVmUsage

_A = uuid.UUID("00000000-0000-0000-0000-00000000000a")
_B = uuid.UUID("00000000-0000-0000-0000-00000000000b")
_C = uuid.UUID("00000000-0000-0000-0000-00000000000c")


def _vms(*entries: tuple[uuid.UUID, str, int]) -> list[PlainVmUsage]:
    return [PlainVmUsage(vm_id, name, cost) for vm_id, name, cost in entries]


def _order(vms: list[PlainVmUsage]) -> list[uuid.UUID]:
    return [v.plain_vm_id for v in sorted_by_cost(vms, lambda v: v.cost_micros)]


def test_the_biggest_spender_comes_first() -> None:
    assert _order(_vms((_A, "a", 5), (_B, "b", 30), (_C, "c", 12))) == [_B, _C, _A]


def test_equal_spend_is_ordered_by_identity_whatever_order_it_came_in() -> None:
    tied = [(_C, "c", 7), (_A, "a", 7), (_B, "b", 9)]
    assert _order(_vms(*tied)) == [_B, _A, _C]
    assert _order(_vms(*reversed(tied))) == [_B, _A, _C]


def test_raw_ids_become_uuids_and_no_agent_becomes_none() -> None:
    ids = Ids()
    assert ids(_A.hex) == _A  # SQLite's 32 hex digits
    assert ids(_A) == _A  # PostgreSQL's driver gives a UUID
    assert ids(_A.hex) is ids(_A.hex)
    assert ids(NONE_ID.hex) is None
    assert ids(NONE_ID) is None
    assert ids(None) is None


def test_a_calendar_month_is_one_whole_month_and_no_days() -> None:
    assert spans_of(parse_month("2028-02")) == Spans((date(2028, 2, 1),), ())


def test_a_range_is_its_whole_months_and_the_days_at_either_end() -> None:
    spans = spans_of(Period(date(2026, 10, 31), date(2027, 1, 2)))
    assert spans.months == (date(2026, 11, 1), date(2026, 12, 1))
    assert spans.days == (
        Period(date(2026, 10, 31), date(2026, 10, 31)),
        Period(date(2027, 1, 1), date(2027, 1, 2)),
    )


def test_a_range_inside_one_month_or_across_two_is_days_only() -> None:
    inside = Period(date(2026, 12, 2), date(2026, 12, 30))
    assert spans_of(inside) == Spans((), (inside,))
    across = Period(date(2026, 11, 15), date(2026, 12, 15))
    assert spans_of(across) == Spans((), (across,))


def test_the_calendars_last_month_has_no_month_after_it() -> None:
    # The supported calendar ends on 9999-12-30 (usage/filter.py LAST_DAY).
    assert spans_of(Period(date(9999, 11, 1), date(9999, 12, 30))) == Spans(
        (date(9999, 11, 1),), (Period(date(9999, 12, 1), date(9999, 12, 30)),)
    )
    late = Period(date(9999, 12, 2), date(9999, 12, 30))
    assert spans_of(late) == Spans((), (late,))


@given(start=st.dates(FIRST_DAY, LAST_DAY), length=st.integers(0, 400))
def test_every_day_of_a_period_is_counted_exactly_once(start: date, length: int) -> None:
    period = Period(start, start + timedelta(days=min(length, (LAST_DAY - start).days)))
    spans = spans_of(period)
    covered = [d for days in spans.days for d in iter_days(days.start, days.end)]
    for month in spans.months:
        whole = parse_month(f"{month:%Y-%m}")
        covered.extend(iter_days(whole.start, whole.end))
    assert sorted(covered) == period.days
    assert len(set(covered)) == len(covered)


def test_a_rollup_is_read_per_key_only_by_the_key_it_has() -> None:
    # Reading one account's rows as they are is right only where (account_id, *keys) is the
    # rollup's primary key: each key is then one row.
    shape = shape_of(UsageQuery(parse_month("2026-11"), (_A,)))
    assert shape.one_account
    per_key(table_of(LlmDailyModel), shape, ("day", "provider", "model"), ("cost_micros",))
    with pytest.raises(ValueError, match="not keyed by"):
        per_key(table_of(LlmDailyModel), shape, ("day", "model"), ("cost_micros",))
    assert not shape_of(UsageQuery(parse_month("2026-11"), (_A, _B))).one_account
    assert not shape_of(UsageQuery(parse_month("2026-11"), None)).one_account
