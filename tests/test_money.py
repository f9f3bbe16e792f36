"""Money: exact micro-cents in, continuous cents out, half-up whole cents on the invoice."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crabglamp.money import (
    MICROS_PER_CENT,
    cents_to_micros,
    micros_to_cents,
    mul_div_half_up,
    round_half_up_cents,
)


@pytest.mark.parametrize(
    ("micros", "cents"),
    [
        (12_500_000, 13),  # 12.5 cents: a half goes up
        (12_499_900, 12),  # 12.4999 cents
        (12_499_999, 12),
        (12_500_001, 13),
        (500_000, 1),
        (499_999, 0),
        (0, 0),
        (-12_500_000, -13),  # halves away from zero, both ways
        (-12_499_999, -12),
    ],
)
def test_invoice_rounding_is_half_up_to_whole_cents(micros: int, cents: int) -> None:
    assert round_half_up_cents(micros) == cents


@pytest.mark.parametrize(
    ("cents", "micros"),
    [
        ("0.0315", 31_500),
        (0.0315, 31_500),  # a float is read as the decimal it prints as
        (12.5, 12_500_000),
        ("12.4999", 12_499_900),
        (7, 7_000_000),
        (Decimal("0.000001"), 1),
        ("0.0000005", 1),  # beyond six places: half-up
        ("0.00000049999", 0),
        ("-0.0315", -31_500),
        (0.1 + 0.2, 300_000),  # 0.30000000000000004 cents
        ("0.12345649999999999999999999999999", 123_456),  # not rounded twice
        ("50000", 50_000 * MICROS_PER_CENT),
    ],
)
def test_cents_to_micros_is_exact(cents: float | int | str | Decimal, micros: int) -> None:
    assert cents_to_micros(cents) == micros


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("abc", "not a number"),
        ("", "not a number"),
        (True, "not a number"),
        ("nan", "not a finite number"),
        (float("inf"), "not a finite number"),
        ("1e12", "too large"),
        ("1e999999999", "too large"),
    ],
)
def test_cents_to_micros_refuses_what_is_not_an_amount(bad: object, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        cents_to_micros(bad)  # type: ignore[arg-type]


@given(st.decimals(min_value=-(10**8), max_value=10**8, places=6))
def test_any_amount_with_six_places_converts_exactly(value: Decimal) -> None:
    micros = int(value * MICROS_PER_CENT)
    assert cents_to_micros(str(value)) == micros
    assert cents_to_micros(value) == micros
    assert cents_to_micros(float(value)) == micros  # floats print their shortest decimal
    assert cents_to_micros(micros_to_cents(micros)) == micros


@given(st.integers(0, 10**15), st.integers(0, 10**12), st.integers(1, 10**13))
def test_mul_div_half_up_is_the_rounded_quotient(a: int, b: int, divisor: int) -> None:
    exact = Fraction(a * b, divisor)
    assert mul_div_half_up(a, b, divisor) == int(exact + Fraction(1, 2))


def test_micros_to_cents_keeps_sub_cent_precision() -> None:
    assert micros_to_cents(31_500) == 0.0315
    assert micros_to_cents(1) == 0.000001
    assert micros_to_cents(12_500_000) == 12.5
