"""Tenancy for resolvers, and the errors a caller is meant to see.

Refusals and malformed arguments become GraphQL errors with a `code` extension (FORBIDDEN,
BAD_USER_INPUT); anything else is a bug, masked in production (see `is_expected`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from graphql import GraphQLError

from crabglamp.access import AccessDenied
from crabglamp.api.graphql.context import Info
from crabglamp.usage.filter import FilterError, UsageFilter, parse_uuid, resolve
from crabglamp.usage.query import UsageQuery

FORBIDDEN = "FORBIDDEN"
BAD_USER_INPUT = "BAD_USER_INPUT"


def forbidden(message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": FORBIDDEN})


def bad_input(argument: str, message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": BAD_USER_INPUT, "argument": argument})


@contextmanager
def caller_errors() -> Iterator[None]:
    """Turn the core's refusals into errors a caller reads (never masked)."""
    try:
        yield
    except AccessDenied as exc:
        raise forbidden(str(exc)) from None
    except FilterError as exc:
        raise bad_input(exc.parameter, exc.message) from None


def is_expected(error: GraphQLError) -> bool:
    """GraphQL's own errors (syntax, validation, limits) and ours are shown; bugs are masked."""
    original = error.original_error
    return original is None or isinstance(original, GraphQLError)


def optional_uuid(value: str | None, argument: str) -> uuid.UUID | None:
    if value is None:
        return None
    with caller_errors():
        return parse_uuid(value, argument)


def uuids(values: list[str] | None, argument: str) -> tuple[uuid.UUID, ...] | None:
    if values is None:
        return None
    with caller_errors():
        return tuple(parse_uuid(value, argument) for value in values)


async def usage_query(info: Info, wanted: UsageFilter) -> UsageQuery:
    """The authorised `UsageQuery` of a filter, for this request's caller."""
    context = info.context
    with caller_errors():
        return await context.db.run(lambda conn: resolve(conn, context.scope, wanted, context.now))


async def account_scope(
    info: Info, account_id: uuid.UUID | None, admin: bool = False
) -> tuple[uuid.UUID, ...] | None:
    """The accounts a field reads: explicit, else the caller's default; None is platform-wide."""
    context = info.context
    with caller_errors():
        return await context.db.run(lambda conn: context.scope.accounts(conn, account_id, admin))
