"""Scalars beyond GraphQL's own: `BigInt`, and `Date`/`DateTime` with strict ISO formats."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, NewType

import strawberry
from graphql import IntValueNode, ValueNode
from strawberry.schema.types.base_scalars import DateTimeDefinition, wrap_parser
from strawberry.types.scalar import ScalarDefinition

from crabglamp.periods import parse_date

# Token and character counts of a month overflow GraphQL's 32-bit Int on a busy platform.
BigInt = NewType("BigInt", int)

_MAX_SAFE = 2**53 - 1  # what a JSON number holds exactly in every client


def _serialize(value: Any) -> int:
    number = int(value)
    if not -_MAX_SAFE <= number <= _MAX_SAFE:
        raise ValueError(f"BigInt cannot represent {number} exactly")
    return number


def _parse_value(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"BigInt must be an integer, got {value!r}")
    return _serialize(value)


def _parse_literal(node: ValueNode, _variables: dict[str, Any] | None = None) -> int:
    if not isinstance(node, IntValueNode):
        raise ValueError("BigInt must be an integer literal")
    return _serialize(int(node.value))


def _isoformat(value: date | datetime) -> str:
    return value.isoformat()


SCALARS: dict[object, ScalarDefinition] = {
    # Strawberry's own Date takes any ISO 8601 form; ours takes exactly what REST takes.
    date: strawberry.scalar(
        name="Date",
        description="A UTC calendar day, YYYY-MM-DD.",
        serialize=_isoformat,
        parse_value=wrap_parser(parse_date, "Date", include_error=False),
    ),
    datetime: strawberry.scalar(
        name="DateTime",
        description="A moment in UTC, ISO 8601 (e.g. 2026-11-03T12:00:00.123000+00:00).",
        serialize=_isoformat,
        parse_value=DateTimeDefinition.parse_value,
    ),
    BigInt: strawberry.scalar(
        name="BigInt",
        description="A whole number up to 2^53 - 1 (a JSON number); counts of tokens, "
        "characters and requests.",
        serialize=_serialize,
        parse_value=_parse_value,
        parse_literal=_parse_literal,
    ),
}
