"""Spend caps: each key's from its expected month, and the planted key's from its month to date."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Final

from sqlalchemy import and_, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from crabglamp.db.tables import table_of
from crabglamp.dev.demo.planted import PLANTED
from crabglamp.dev.demo.specs import TOKEN_SIGMA, KeySpec
from crabglamp.models import LlmDaily, VirtualKey
from crabglamp.money import MICROS_PER_CENT
from crabglamp.periods import month_period, utcnow
from crabglamp.prices import default_price_book

_BOOK: Final = default_price_book()


def _price(model: str) -> tuple[int, int]:
    # Today's list price: a cap is set for the months ahead.
    rates = _BOOK.rates(_BOOK.provider_of(model), model, utcnow())
    return rates.input, rates.output


def expected_month_micros(spec: KeySpec, scale: float) -> float:
    """A key's expected month of spend, from its mix and the catalog (sets its cap)."""
    if not spec.mix:
        return 0.0
    spread = math.exp(TOKEN_SIGMA**2 / 2)
    per_request = sum(
        share * (tokens_in * _price(m)[0] + tokens_out * _price(m)[1]) * spread / 1_000_000
        for m, share, tokens_in, tokens_out in spec.mix
    ) / sum(share for _, share, _, _ in spec.mix)
    volume = spec.requests_per_day(scale) * sum(spec.rhythm.week) / 7
    growth = 1.2 * spec.second_month_boost  # a month of growth on top of the second-month boost
    return per_request * volume * 30.5 * growth


def nice_cap_micros(micros: float) -> int:
    """Round up to 1, 2, 2.5 or 5 times a power of ten dollars; at least five dollars."""
    cents = max(micros / MICROS_PER_CENT, 500.0)
    power = 10 ** math.floor(math.log10(cents))
    for step in (1, 2, 2.5, 5, 10):
        if cents <= step * power:
            return int(step * power * MICROS_PER_CENT)
    raise AssertionError(cents)


def cap_for(spent_micros: int, now: datetime) -> int:
    """A cap that month-to-date spend is 80-95% of (the dashboard's warning colours start at 75%),
    below the month-end projection, at any moment of the month: the 1st included."""
    month = month_period(now.year, now.month)
    elapsed = (now - month.start_dt).total_seconds() / (
        month.end_dt - month.start_dt
    ).total_seconds()
    elapsed = min(max(elapsed, 1e-6), 1.0)
    # 82%, not 80: rounding the cap up to three digits may take a point off.
    share = max(0.82 + 0.13 * elapsed, elapsed + (1.0 - elapsed) / 2)
    exact = spent_micros / share
    # Three significant digits when they keep the story; finer when the month is nearly over.
    digits = 3
    while True:
        step = 10 ** max(0, math.floor(math.log10(max(exact, 1.0))) - digits + 1)
        cap = int(math.ceil(exact / step) * step)
        if spent_micros / elapsed > cap or step == 1:
            return max(cap, 1)
        digits += 1


async def set_cap(conn: AsyncConnection, now: datetime) -> int:
    """Set the planted key's cap from its month to date (each run: the month may have turned).

    The key's text to speech goes through its own key (support-voice), so LLM spend is all the
    proxy counts against this cap."""
    daily = table_of(LlmDaily)
    month = month_period(now.year, now.month)
    spent = (
        await conn.execute(
            select(func.coalesce(func.sum(daily.c.cost_micros), 0)).where(
                and_(
                    daily.c.key_id == PLANTED["cap_key_id"],
                    daily.c.day >= month.start,
                    daily.c.day <= month.end,
                )
            )
        )
    ).scalar_one()
    keys = table_of(VirtualKey)
    if not spent:
        row = await conn.execute(
            select(keys.c.spend_cap_micros).where(keys.c.id == PLANTED["cap_key_id"])
        )
        return int(row.scalar_one() or 0)
    cap = cap_for(int(spent), now)
    await conn.execute(
        update(keys).where(keys.c.id == PLANTED["cap_key_id"]).values(spend_cap_micros=cap)
    )
    return cap
