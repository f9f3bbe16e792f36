"""Owners: every event must point at things that exist, in the same account.

The ingestor caches owners it read from committed state only; telling committed state from a
transaction's own writes is the dialect-specific part at the end.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from crabglamp.db import WRITE_OPTION, is_sqlite
from crabglamp.db.chunks import chunks
from crabglamp.db.sqlite_direct import inline_sqlite
from crabglamp.db.tables import table_of
from crabglamp.ingest.records import ComputeRecord, LlmRecord, RecordProblem, VoiceRecord
from crabglamp.models import Account, Agent, PlainVm, VirtualKey


@dataclass(slots=True)
class Owners:
    """Which account owns each key, agent and plain VM, and which accounts exist.

    These facts never change once committed (nothing moves between accounts), so the ingestor
    keeps the ones it read from committed state; one batch sees that cache plus its own reads.
    """

    keys: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict)
    agents: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict)
    vms: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict)
    accounts: set[uuid.UUID] = field(default_factory=set)

    def remember(self, other: Owners) -> None:
        self.keys.update(other.keys)
        self.agents.update(other.agents)
        self.vms.update(other.vms)
        self.accounts.update(other.accounts)

    def clear(self) -> None:
        self.keys.clear()
        self.agents.clear()
        self.vms.clear()
        self.accounts.clear()


async def owners_of_batch(
    conn: AsyncConnection,
    cache: Owners,
    llm: Sequence[LlmRecord],
    voice: Sequence[VoiceRecord],
    compute: Sequence[ComputeRecord],
) -> Owners:
    """The owners of this batch: from the cache, else read in `conn` (and then cached when
    `conn` has written nothing yet, so that what it read was committed by others)."""
    keys = {r.key_id for r in llm}
    agents = {r.agent_id for r in llm if r.agent_id is not None}
    accounts = set()
    for v in voice:
        accounts.add(v.account_id)
        if v.key_id is not None:
            keys.add(v.key_id)
        if v.agent_id is not None:
            agents.add(v.agent_id)
    vms = set()
    for c in compute:
        accounts.add(c.account_id)
        if c.agent_id is not None:
            agents.add(c.agent_id)
        if c.plain_vm_id is not None:
            vms.add(c.plain_vm_id)
    owners, read = Owners(), Owners()
    await _owned_by(conn, VirtualKey, keys, cache.keys, owners.keys, read.keys)
    await _owned_by(conn, Agent, agents, cache.agents, owners.agents, read.agents)
    await _owned_by(conn, PlainVm, vms, cache.vms, owners.vms, read.vms)
    owners.accounts = accounts & cache.accounts
    missing = accounts - owners.accounts
    if missing:
        table = table_of(Account)
        for chunk in chunks(sorted(missing)):
            found = await conn.execute(select(table.c.id).where(table.c.id.in_(chunk)))
            read.accounts.update(row[0] for row in found)
        owners.accounts |= read.accounts
    if (read.keys or read.agents or read.vms or read.accounts) and await _sees_only_committed(conn):
        cache.remember(read)
    return owners


def check_owner(
    event_id: str,
    account_id: uuid.UUID,
    agent_id: uuid.UUID | None,
    owners: Owners,
    problems: list[RecordProblem],
    plain_vm_id: uuid.UUID | None = None,
) -> bool:
    if agent_id is not None and owners.agents.get(agent_id) != account_id:
        problems.append(
            RecordProblem(event_id, f"agentId {agent_id} is not an agent of this account")
        )
        return False
    if plain_vm_id is not None and owners.vms.get(plain_vm_id) != account_id:
        problems.append(
            RecordProblem(event_id, f"plainVmId {plain_vm_id} is not a plain VM of this account")
        )
        return False
    return True


async def _owned_by(
    conn: AsyncConnection,
    model: Any,
    ids: set[uuid.UUID],
    cached: dict[uuid.UUID, uuid.UUID],
    into: dict[uuid.UUID, uuid.UUID],
    read: dict[uuid.UUID, uuid.UUID],
) -> None:
    """Fill `into` with the owning account of each id, from `cached` or else the database
    (what came from the database also goes to `read`)."""
    missing = []
    for item in ids:
        account_id = cached.get(item)
        if account_id is None:
            missing.append(item)
        else:
            into[item] = account_id
    table = table_of(model)
    for chunk in chunks(sorted(missing)):
        rows = await conn.execute(
            select(table.c.id, table.c.account_id).where(table.c.id.in_(chunk))
        )
        read.update((row[0], row[1]) for row in rows)
    into.update(read)


_CHANGES_AT_BEGIN = "crabglamp_total_changes_at_begin"


def track_writes(engine: AsyncEngine) -> None:
    """On SQLite, mark where each write transaction begins (see `_sees_only_committed`)."""
    if is_sqlite(engine) and not event.contains(
        engine.sync_engine, "begin", _note_changes_at_begin
    ):
        event.listen(engine.sync_engine, "begin", _note_changes_at_begin)


def _note_changes_at_begin(connection: Any) -> None:
    # SQLite: how many rows this connection had changed when its write transaction began, so
    # that `_sees_only_committed` can tell whether the transaction has written since. Other
    # transactions get no mark, and their reads are not cached.
    if connection.get_execution_options().get(WRITE_OPTION, False):
        inline = inline_sqlite(connection.connection.driver_connection)
        if inline is not None:  # a writer thread's: asked directly, not with a statement
            total = inline.total_changes
        else:
            total = connection.exec_driver_sql("SELECT total_changes()").scalar()
        connection.info[_CHANGES_AT_BEGIN] = total
    else:
        connection.info.pop(_CHANGES_AT_BEGIN, None)


async def _sees_only_committed(conn: AsyncConnection) -> bool:
    """True while `conn`'s transaction has written nothing: every row it sees was then
    committed by another transaction, and stays committed whatever becomes of this one."""
    if conn.dialect.name == "postgresql":
        # A transaction gets an id with its first write (or row lock), in any savepoint too.
        return (await conn.execute(select(func.txid_current_if_assigned()))).scalar() is None
    if is_sqlite(conn):
        began = conn.info.get(_CHANGES_AT_BEGIN)
        changes = (await conn.execute(select(func.total_changes()))).scalar()
        return began is not None and began == changes
    return False
