"""The value checks of a bundle's fields: each turns a JSON value into its Python value or says,
in a `Bad`, what is wrong with it."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Final

from crabglamp.ingest._validation import text_problem
from crabglamp.money import cents_to_micros
from crabglamp.periods import parse_date

# Sanity bounds: far above any real value, far below where integer sums of micro-cents overflow.
MAX_COUNT: Final = 10**12
MAX_CENTS: Final = 10**9


class Bad(ValueError):
    pass


def json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | Decimal):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def as_text(value: object) -> str:
    """A name or id: non-empty, within the length and characters the Ingestor stores."""
    if not isinstance(value, str):
        raise Bad(f"must be a string, not {json_kind(value)}")
    if not value.strip():
        raise Bad("must not be empty")
    problem = text_problem(value)
    if problem:
        raise Bad(problem)
    return value


def as_uuid(value: object) -> uuid.UUID:
    if not isinstance(value, str):
        raise Bad(f"must be a UUID string, not {json_kind(value)}")
    try:
        return uuid.UUID(value)
    except ValueError:
        raise Bad(f"must be a UUID, got {value!r}") from None


def as_count(value: object) -> int:
    if isinstance(value, Decimal):
        raise Bad(f"must be a whole number, got {value}")
    if isinstance(value, bool) or not isinstance(value, int):
        raise Bad(f"must be a whole number, not {json_kind(value)}")
    if value < 0:
        raise Bad(f"must not be negative, got {value}")
    if value > MAX_COUNT:
        raise Bad(f"is implausibly large ({value} > {MAX_COUNT})")
    return value


def as_cents(value: object) -> int:
    """Cents as a JSON number, returned as integer micro-cents."""
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise Bad(f"must be a number of cents, not {json_kind(value)}")
    if value < 0:
        raise Bad(f"must not be negative, got {value}")
    if value > MAX_CENTS:
        raise Bad(f"is implausibly large ({value} > {MAX_CENTS} cents)")
    return cents_to_micros(value)


def as_moment(value: object) -> datetime:
    if not isinstance(value, str):
        raise Bad(f"must be an ISO 8601 timestamp string, not {json_kind(value)}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise Bad(f"is not an ISO 8601 timestamp: {value!r}") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise Bad(f"has no time zone: {value!r} (end it with Z or an offset such as +02:00)")
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise Bad(f"is out of range: {value!r}") from None


def as_day(value: object) -> date:
    if not isinstance(value, str):
        raise Bad(f"must be a YYYY-MM-DD string, not {json_kind(value)}")
    try:
        return parse_date(value)
    except ValueError as exc:
        raise Bad(str(exc)) from None


def as_flag(value: object) -> bool:
    if not isinstance(value, bool):
        raise Bad(f"must be true or false, not {json_kind(value)}")
    return value


def one_of(*options: str) -> Callable[[object], str]:
    def convert(value: object) -> str:
        if value not in options:
            raise Bad(f"must be one of {', '.join(map(repr, options))}, got {value!r}")
        return str(value)

    return convert
