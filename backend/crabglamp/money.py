"""Money is an integer number of micro-cents; these are the only conversions."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

MICROS_PER_CENT = 1_000_000
_ONE_MICRO = Decimal("0.000001")


def cents_to_micros(cents: float | int | str | Decimal) -> int:
    """Exact for any decimal written with up to six fractional digits; rounds half-up beyond."""
    try:
        value = Decimal(str(cents)) if not isinstance(cents, Decimal) else cents
    except InvalidOperation as exc:
        raise ValueError(f"not a number: {cents!r}") from exc
    if not value.is_finite():
        raise ValueError(f"not a finite number: {cents!r}")
    # Far beyond any bill, and it keeps "1e999999999" from becoming a gigantic integer.
    if value.adjusted() >= 12:
        raise ValueError(f"too large for an amount of cents: {cents!r}")
    # quantize rounds from the exact value; multiplying first would round to 28 digits first.
    return int(value.quantize(_ONE_MICRO, rounding=ROUND_HALF_UP).scaleb(6))


def micros_to_cents(micros: int) -> float:
    """The continuous value the API returns: a float with sub-cent precision."""
    return micros / MICROS_PER_CENT


def round_half_up_cents(micros: int) -> int:
    """Invoice rounding: whole cents, halves away from zero."""
    whole, rest = divmod(abs(micros), MICROS_PER_CENT)
    if rest * 2 >= MICROS_PER_CENT:
        whole += 1
    return whole if micros >= 0 else -whole


def mul_div_half_up(a: int, b: int, divisor: int) -> int:
    """a * b / divisor rounded half-up, in integers, for non-negative a and b."""
    quotient, rest = divmod(a * b, divisor)
    return quotient + (1 if rest * 2 >= divisor else 0)
