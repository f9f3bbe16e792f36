"""A compute interval's cost, split at UTC day boundaries (CONTRACTS.md §1.2).

Ingest writes these pieces into the daily rollups and the usage service accrues an open
interval with them, so both live below both.
"""

from __future__ import annotations

from datetime import date, datetime

from crabglamp.money import mul_div_half_up
from crabglamp.periods import US_PER_HOUR, split_by_day


def compute_cost_pieces(
    start: datetime, end: datetime, cents_per_hour_micros: int
) -> list[tuple[date, int, int]]:
    """(day, cost_micros, duration_us) per UTC day; the costs sum exactly to the whole interval."""
    pieces = []
    for day, offset, length in split_by_day(start, end):
        cost = mul_div_half_up(
            cents_per_hour_micros, offset + length, US_PER_HOUR
        ) - mul_div_half_up(cents_per_hour_micros, offset, US_PER_HOUR)
        pieces.append((day, cost, length))
    return pieces
