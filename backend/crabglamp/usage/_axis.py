"""What the three axes share: a rollup scoped to the query, a period read from monthly and daily
rollups, the names of agents and VMs, and one order for every breakdown."""

from __future__ import annotations

import calendar
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache
from typing import Any, TypeVar

from sqlalchemy import (
    BigInteger,
    Select,
    String,
    Table,
    bindparam,
    cast,
    func,
    select,
    type_coerce,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from crabglamp.db.chunks import chunks
from crabglamp.db.tables import table_of
from crabglamp.models import NONE_ID
from crabglamp.periods import Period
from crabglamp.usage.query import UsageQuery

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Shape:
    """What the text of a query's statements depends on; the values go in as named parameters
    (`parameters`). The statements are built once per shape (`functools.cache`): SQLAlchemy takes
    a few tenths of a millisecond to build a select, and a month's answer reads about ten."""

    accounts: bool  # limited to some accounts (otherwise platform-wide)
    one_account: bool  # limited to exactly one: its rollup rows need no summing (`per_key`)
    agent: bool  # limited to one agent
    months: bool  # has whole months, read from the monthly rollups
    days: int  # ranges of days left over at either end of them: 0, 1 or 2


def shape_of(query: UsageQuery) -> Shape:
    spans = spans_of(query.period)
    accounts = query.account_ids
    return Shape(
        accounts is not None,
        accounts is not None and len(set(accounts)) == 1,
        query.agent_id is not None,
        bool(spans.months),
        len(spans.days),
    )


def parameters(query: UsageQuery) -> dict[str, Any]:
    """The values of the parameters the statements of `shape_of(query)` name."""
    spans = spans_of(query.period)
    values: dict[str, Any] = {"start": query.period.start, "end": query.period.end}
    if query.account_ids is not None:
        values["accounts"] = list(query.account_ids)
    if query.agent_id is not None:
        values["agent"] = query.agent_id
    if spans.months:
        values["month_first"], values["month_last"] = spans.months[0], spans.months[-1]
    for i, days in enumerate(spans.days):
        values[f"days_{i}_start"], values[f"days_{i}_end"] = days.start, days.end
    return values


def in_period(table: Any, shape: Shape) -> list[Any]:
    return [
        table.c.day >= bindparam("start"),
        table.c.day <= bindparam("end"),
        *in_accounts(table, shape.accounts),
    ]


def per_key(
    table: Table, shape: Shape, keys: tuple[str, ...], sums: tuple[str, ...]
) -> Select[Any]:
    """The period's `sums` per `keys` from a daily rollup keyed by (account_id, *keys).

    One account's rows are already one per key, read as they are: summing them anyway took
    SQLite twice as long for a big account's month (1.2 against 0.55 ms for llm_daily_model).
    Several accounts, or all of them, share keys, and the database sums them."""
    if [column.name for column in table.primary_key.columns] != ["account_id", *keys]:
        raise ValueError(f"{table.name} is not keyed by (account_id, {', '.join(keys)})")
    key_columns = [table.c[name] for name in keys]
    conditions = in_period(table, shape)
    if shape.one_account:
        return select(*key_columns, *(table.c[name] for name in sums)).where(*conditions)
    return (
        select(*key_columns, *(total(table.c[name]) for name in sums))
        .where(*conditions)
        .group_by(*key_columns)
    )


@dataclass(frozen=True, slots=True)
class Spans:
    """A period as the whole UTC months inside it and the days left over at either end."""

    months: tuple[date, ...]  # the first day of each, in order
    days: tuple[Period, ...]  # none, one or two ranges


def spans_of(period: Period) -> Spans:
    # The day after a month is only computed below the period's end, which is a real date: the
    # calendar's last month (December 9999) has no month after it.
    first = period.start
    if first.day != 1:
        last = _last_of_month(first)
        if last >= period.end:
            return Spans((), (period,))
        first = last + timedelta(days=1)
    months: list[date] = []
    month = first
    while (last := _last_of_month(month)) <= period.end:
        months.append(month)
        if last == period.end:
            break
        month = last + timedelta(days=1)
    if not months:
        return Spans((), (period,))
    days = []
    if period.start < months[0]:
        days.append(Period(period.start, months[0] - timedelta(days=1)))
    after = _last_of_month(months[-1])
    if after < period.end:
        days.append(Period(after + timedelta(days=1), period.end))
    return Spans(tuple(months), tuple(days))


def _last_of_month(day: date) -> date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def in_accounts(table: Any, limited: bool) -> list[Any]:
    """`table.account_id` among the query's accounts (`Shape.accounts`), unless platform-wide."""
    if not limited:
        return []
    return [table.c.account_id.in_(bindparam("accounts", expanding=True))]


@cache
def spanning(
    monthly: Table, daily: Table, shape: Shape, keys: tuple[str, ...], sums: tuple[str, ...]
) -> Select[Any]:
    """The period's `sums` per `keys` (read raw, see `raw_id`) in one statement: whole months
    from `monthly` (keyed by `month`), the days left at either end from `daily` (by `day`), which
    must share those columns. A month's list is then a row per entry, not one per entry and day.
    """
    parts: list[Select[Any]] = []
    if shape.months:
        month = monthly.c.month
        parts.append(
            select(*(monthly.c[name] for name in (*keys, *sums))).where(
                month >= bindparam("month_first"),
                month <= bindparam("month_last"),
                *in_accounts(monthly, shape.accounts),
            )
        )
    for i in range(shape.days):
        day = daily.c.day
        parts.append(
            select(*(daily.c[name] for name in (*keys, *sums))).where(
                day >= bindparam(f"days_{i}_start"),
                day <= bindparam(f"days_{i}_end"),
                *in_accounts(daily, shape.accounts),
            )
        )
    source = parts[0].subquery() if len(parts) == 1 else union_all(*parts).subquery()
    grouped = [source.c[name] for name in keys]
    return select(
        *(raw_id(column) for column in grouped), *(total(source.c[name]) for name in sums)
    ).group_by(*grouped)


def scope(table: Any, shape: Shape) -> list[Any]:
    """The period, the accounts and the agent filter (the filters every rollup can answer)."""
    conditions = in_period(table, shape)
    if shape.agent:
        conditions.append(table.c.agent_id == bindparam("agent"))
    return conditions


def total(column: Any) -> ColumnElement[int]:
    """SUM of an integer column as an integer: PostgreSQL's SUM of a BIGINT is a NUMERIC, which
    the driver decodes into a Decimal (several times the cost of an int, thousands per answer).
    A sum past a BIGINT (92 trillion dollars in micro-cents) is an error, never a wrong number."""
    return cast(func.sum(column), BigInteger)


def raw_id(column: Any) -> ColumnElement[Any]:
    """An id column read as the driver gives it (SQLite: 32 hex digits; PostgreSQL: a UUID),
    for `Ids` to turn into UUIDs: a rollup read repeats a few ids over thousands of rows."""
    return type_coerce(column, String).label(column.name)


class Ids:
    """Raw ids as UUIDs, each parsed once per answer (SQLAlchemy's own result processing
    parses every value on SQLite, a few microseconds each); NULL and NONE_ID are None.

    `key(raw)` is what to index a month's entries by: a small int per distinct id, None for
    none. A UUID's hash is a Python call, and a month's answer looks entries up thousands of
    times; the same id read as NULL from one table and NONE_ID from another gets one key.
    """

    __slots__ = ("_by_id", "_keys", "_known")

    def __init__(self) -> None:
        self._known: dict[Any, uuid.UUID | None] = {None: None}
        self._keys: dict[Any, int | None] = {None: None}
        self._by_id: dict[uuid.UUID, int] = {}

    def __call__(self, raw: Any) -> uuid.UUID | None:
        try:
            return self._known[raw]
        except KeyError:
            parsed = raw if isinstance(raw, uuid.UUID) else uuid.UUID(raw)
            known = self._known[raw] = None if parsed == NONE_ID else parsed
            return known

    def key(self, raw: Any) -> int | None:
        try:
            return self._keys[raw]
        except KeyError:
            parsed = self(raw)
            key = None if parsed is None else self._by_id.setdefault(parsed, len(self._by_id))
            self._keys[raw] = key
            return key


async def names_of(
    conn: AsyncConnection, model: Any, ids: Iterable[uuid.UUID | None]
) -> dict[uuid.UUID, str]:
    wanted = sorted({i for i in ids if i is not None})
    statement = _names(table_of(model))
    names: dict[uuid.UUID, str] = {}
    for chunk in chunks(wanted):
        names.update((row[0], row[1]) for row in await conn.execute(statement, {"ids": chunk}))
    return names


@cache
def _names(table: Table) -> Select[Any]:
    return select(table.c.id, table.c.name).where(table.c.id.in_(bindparam("ids", expanding=True)))


def _identity(item: Any) -> tuple[str, str]:
    # The first two fields name an entry (model and provider, or an id and its name).
    first, second = type(item).__slots__[:2]
    return str(getattr(item, first)), str(getattr(item, second))


def sorted_by_cost(items: Iterable[_T], cost: Callable[[_T], int]) -> list[_T]:
    # Biggest spender first; ties broken by identity so that every caller sees one order.
    listed = list(items)
    costs = [cost(item) for item in listed]
    if len(set(costs)) == len(costs):
        # No tie, so identities would never be compared: spare formatting them (a month's
        # answer sorts over a thousand entries, most of them per day).
        order = sorted(range(len(listed)), key=costs.__getitem__, reverse=True)
        return [listed[i] for i in order]
    return sorted(listed, key=lambda item: (-cost(item), _identity(item)))
