"""The month's invoice: the continuous total of each axis, rounded half-up to whole cents.

Only the invoice rounds (CONTRACTS.md §1.1): each line rounds its own continuous total, and the invoice
total is the sum of the rounded lines, so the customer can add up what they are charged.
Core: no web framework here.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from crabglamp.money import round_half_up_cents
from crabglamp.periods import Period, month_of, month_period
from crabglamp.usage.query import UsageQuery
from crabglamp.usage.results import Usage
from crabglamp.usage.service import usage


class UsageAxis(enum.Enum):
    COMPUTE = "COMPUTE"
    LLM = "LLM"
    VOICE = "VOICE"


@dataclass(frozen=True, slots=True)
class InvoiceLine:
    axis: UsageAxis
    continuous_micros: int

    @property
    def amount_cents(self) -> int:
        return round_half_up_cents(self.continuous_micros)


@dataclass(frozen=True, slots=True)
class Invoice:
    month: str
    lines: tuple[InvoiceLine, ...]

    @property
    def total_cents(self) -> int:
        return sum(line.amount_cents for line in self.lines)

    @property
    def continuous_micros(self) -> int:
        return sum(line.continuous_micros for line in self.lines)


def invoice_from_usage(month: str, spent: Usage) -> Invoice:
    """The invoice of a month whose usage is already known (one line per axis, zero included)."""
    return Invoice(
        month=month,
        lines=(
            InvoiceLine(UsageAxis.COMPUTE, spent.compute.total_micros),
            InvoiceLine(UsageAxis.LLM, spent.llm.total_micros),
            InvoiceLine(UsageAxis.VOICE, spent.voice.total_micros),
        ),
    )


def month_name(period: Period) -> str:
    if period != month_period(period.start.year, period.start.month):
        raise ValueError(f"an invoice covers one calendar month, not {period}")
    return month_of(period.start)


async def invoice(conn: AsyncConnection, query: UsageQuery, now: datetime | None = None) -> Invoice:
    """The invoice of `query` (a whole month, unfiltered by agent, key or model)."""
    return invoice_from_usage(month_name(query.period), await usage(conn, query, now))
