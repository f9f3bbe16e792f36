"""What the three axes share: a rollup scoped to the query, the names of agents and VMs, and
one order for every breakdown."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from crabglamp.db.chunks import chunks
from crabglamp.db.tables import table_of
from crabglamp.models import NONE_ID
from crabglamp.usage.query import UsageQuery

_T = TypeVar("_T")


def in_period(table: Any, query: UsageQuery) -> list[Any]:
    conditions = [table.c.day >= query.period.start, table.c.day <= query.period.end]
    if query.account_ids is not None:
        conditions.append(table.c.account_id.in_(query.account_ids))
    return conditions


def scope(table: Any, query: UsageQuery) -> list[Any]:
    """The period, the accounts and the agent filter (the filters every rollup can answer)."""
    conditions = in_period(table, query)
    if query.agent_id is not None:
        conditions.append(table.c.agent_id == query.agent_id)
    return conditions


def agent_of(agent_id: uuid.UUID) -> uuid.UUID | None:
    # Rollups key "no agent" as NONE_ID (a NULL cannot be part of their primary key).
    return None if agent_id == NONE_ID else agent_id


async def names_of(
    conn: AsyncConnection, model: Any, ids: Iterable[uuid.UUID | None]
) -> dict[uuid.UUID, str]:
    wanted = sorted({i for i in ids if i is not None})
    table = table_of(model)
    names: dict[uuid.UUID, str] = {}
    for chunk in chunks(wanted):
        rows = await conn.execute(select(table.c.id, table.c.name).where(table.c.id.in_(chunk)))
        names.update((row[0], row[1]) for row in rows)
    return names


def _identity(item: Any) -> tuple[str, str]:
    # The first two fields name an entry (model and provider, or an id and its name).
    first, second = type(item).__slots__[:2]
    return str(getattr(item, first)), str(getattr(item, second))


def sorted_by_cost(items: Iterable[_T], cost: Callable[[_T], int]) -> list[_T]:
    # Biggest spender first; ties broken by identity so that every caller sees one order.
    return sorted(items, key=lambda item: (-cost(item), _identity(item)))
