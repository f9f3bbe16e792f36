"""Reading accounts and what they own (agents, plain VMs), many accounts at a time.

The GraphQL loaders' batch functions call these: one statement per batch, never one per account.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from crabglamp.db.tables import table_of
from crabglamp.models import Account, Agent, PlainVm

_accounts = table_of(Account)
_agents = table_of(Agent)
_plain_vms = table_of(PlainVm)


async def accounts_by_id(
    conn: AsyncConnection, account_ids: Sequence[uuid.UUID] | None
) -> dict[uuid.UUID, Account]:
    """Accounts by id; None is every account (platform admins)."""
    statement = select(_accounts).order_by(_accounts.c.name, _accounts.c.id)
    if account_ids is not None:
        statement = statement.where(_accounts.c.id.in_(sorted(set(account_ids))))
    return {row.id: Account(**dict(row._mapping)) for row in await conn.execute(statement)}


async def agents_of_accounts(
    conn: AsyncConnection, account_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[Agent]]:
    rows = await conn.execute(
        select(_agents)
        .where(_agents.c.account_id.in_(sorted(set(account_ids))))
        .order_by(_agents.c.name, _agents.c.id)
    )
    found: dict[uuid.UUID, list[Agent]] = {}
    for row in rows:
        agent = Agent(**dict(row._mapping))
        found.setdefault(agent.account_id, []).append(agent)
    return found


async def plain_vms_of_accounts(
    conn: AsyncConnection, account_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[PlainVm]]:
    rows = await conn.execute(
        select(_plain_vms)
        .where(_plain_vms.c.account_id.in_(sorted(set(account_ids))))
        .order_by(_plain_vms.c.name, _plain_vms.c.id)
    )
    found: dict[uuid.UUID, list[PlainVm]] = {}
    for row in rows:
        vm = PlainVm(**dict(row._mapping))
        found.setdefault(vm.account_id, []).append(vm)
    return found
