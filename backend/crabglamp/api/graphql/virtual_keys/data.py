"""Reading virtual keys, many at a time (the loaders' batch functions); their spend is
`usage.spend`."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from crabglamp.db.tables import table_of
from crabglamp.models import VirtualKey

_keys = table_of(VirtualKey)
# Everything but the hash: the secret's hash never leaves the database.
_PUBLIC = [column for column in _keys.c if column.name != "secret_hash"]


def _key(row: object) -> VirtualKey:
    return VirtualKey(**dict(row._mapping))  # type: ignore[attr-defined]


def _ordered(keys: list[VirtualKey]) -> list[VirtualKey]:
    return sorted(keys, key=lambda k: (k.name, str(k.id)))


async def keys_of_accounts(
    conn: AsyncConnection, account_ids: Sequence[uuid.UUID] | None
) -> dict[uuid.UUID, list[VirtualKey]]:
    """Keys per account; None is every account (platform admins)."""
    statement = select(*_PUBLIC)
    if account_ids is not None:
        statement = statement.where(_keys.c.account_id.in_(sorted(set(account_ids))))
    found: dict[uuid.UUID, list[VirtualKey]] = {}
    for row in await conn.execute(statement):
        key = _key(row)
        found.setdefault(key.account_id, []).append(key)
    return {account: _ordered(keys) for account, keys in found.items()}


async def keys_by_id(
    conn: AsyncConnection, key_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, VirtualKey]:
    rows = await conn.execute(select(*_PUBLIC).where(_keys.c.id.in_(sorted(set(key_ids)))))
    return {key.id: key for key in map(_key, rows)}
