"""Writing a bundle's entities: upserts by id, parents before children."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Final, TypeVar

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncConnection

from crabglamp.bundle.checks import State
from crabglamp.bundle.lines import (
    AccountEntry,
    AgentEntry,
    Entity,
    KeyEntry,
    MemberEntry,
    PlainVmEntry,
)
from crabglamp.db.chunks import chunks
from crabglamp.db.dialect import insert_for
from crabglamp.db.tables import table_of
from crabglamp.models import Account, AccountAudit, Agent, Member, PlainVm, Price, VirtualKey
from crabglamp.periods import utcnow
from crabglamp.prices import UnitPrice, price_rows

_T = TypeVar("_T")

_ROW_CHUNK: Final = 500  # rows per upsert statement, well under both engines' parameter limits


async def _upsert(
    conn: AsyncConnection,
    table: Table,
    rows: Sequence[Mapping[str, object]],
    conflict: tuple[str, ...],
    update: tuple[str, ...],
) -> None:
    if not rows:
        return
    statement = insert_for(conn, table)
    statement = statement.on_conflict_do_update(
        index_elements=[table.c[c] for c in conflict],
        set_={c: statement.excluded[c] for c in update},
    )
    for chunk in chunks(rows, _ROW_CHUNK):
        await conn.execute(statement, list(chunk))


# The actor of an audit record made by `crabglamp import`, which runs with the database's rights.
OPERATOR: Final = "operator"


async def audit_organisations(
    conn: AsyncConnection,
    stored: State,
    changed: Sequence[Entity],
    actor: str,
    now: datetime,
) -> None:
    """One `account_audit` row per account whose Clerk organisation changes (or is set on a new
    account), in the import's transaction: no change without its record."""
    rows = []
    for item in changed:
        if not isinstance(item, AccountEntry):
            continue
        before = stored.entities.get(("account", item.id))
        old = before.clerk_org_id if isinstance(before, AccountEntry) else None
        if old != item.clerk_org_id:
            rows.append(
                {
                    "id": uuid.uuid4(),
                    "account_id": item.id,
                    "at": now,
                    "actor": actor,
                    "field": "clerk_org_id",
                    "old_value": old,
                    "new_value": item.clerk_org_id,
                }
            )
    if rows:
        await conn.execute(table_of(AccountAudit).insert(), rows)


async def write_entities(conn: AsyncConnection, changed: Sequence[Entity]) -> None:
    """Parents before children (PostgreSQL checks foreign keys), each in bundle order."""
    now = utcnow()

    def of(kind: type[_T]) -> list[_T]:
        return [item for item in changed if isinstance(item, kind)]

    await _upsert(
        conn,
        table_of(Account),
        [
            {
                "id": a.id,
                "name": a.name,
                "clerk_org_id": a.clerk_org_id,
                "owner_user_id": a.owner_user_id,
            }
            for a in of(AccountEntry)
        ],
        ("id",),
        ("name", "clerk_org_id", "owner_user_id"),
    )
    await _upsert(
        conn,
        table_of(Agent),
        [{"id": a.id, "account_id": a.account_id, "name": a.name} for a in of(AgentEntry)],
        ("id",),
        ("name",),
    )
    await _upsert(
        conn,
        table_of(PlainVm),
        [
            {
                "id": v.id,
                "account_id": v.account_id,
                "name": v.name,
                "cents_per_hour_micros": v.cents_per_hour_micros,
            }
            for v in of(PlainVmEntry)
        ],
        ("id",),
        ("name", "cents_per_hour_micros"),
    )
    await _upsert(
        conn,
        table_of(VirtualKey),
        [
            {
                "id": k.id,
                "account_id": k.account_id,
                "name": k.name,
                "provider": k.provider,
                "agent_id": k.agent_id,
                "spend_cap_micros": k.spend_cap_micros,
                "status": "active",
                "secret_hash": None,
                "secret_prefix": None,
                "created_at": now,
            }
            for k in of(KeyEntry)
        ],
        ("id",),
        # Status and secret belong to the key's life here (rotation, revocation), not the bundle.
        ("name", "provider", "agent_id", "spend_cap_micros"),
    )
    await _upsert(
        conn,
        table_of(Member),
        [
            {"account_id": m.account_id, "user_id": m.user_id, "role": m.role}
            for m in of(MemberEntry)
        ],
        ("account_id", "user_id"),
        ("role",),
    )
    await _upsert(
        conn,
        table_of(Price),
        price_rows(of(UnitPrice)),
        ("provider", "model", "valid_from"),
        ("kind", "input_micros_per_mtok", "output_micros_per_mtok", "micros_per_mchar"),
    )
