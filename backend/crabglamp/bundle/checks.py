"""The checks of a bundle that need the database: what the lines refer to must exist (in the
bundle, earlier, or stored), belong to the same account, and be an account this import may
write."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import RowMapping, Table, select
from sqlalchemy.ext.asyncio import AsyncConnection

from crabglamp.access import Caller, is_org_admin
from crabglamp.bundle.lines import (
    ENTITY_TYPES,
    AccountEntry,
    AgentEntry,
    BundleLine,
    Entity,
    Item,
    KeyEntry,
    MemberEntry,
    ParsedBundle,
    PlainVmEntry,
    Problem,
    entity_key,
    entity_of,
)
from crabglamp.db.chunks import chunks
from crabglamp.db.tables import table_of
from crabglamp.ingest.records import ComputeRecord, LlmRecord, VoiceRecord
from crabglamp.models import Account, Agent, Member, PlainVm, Price, VirtualKey
from crabglamp.prices import UnitPrice, unit_price

_NOUNS: Final = {"account": "account", "agent": "agent", "plainVm": "plain VM", "key": "key"}


@dataclass(slots=True)
class State:
    """Accounts, members, agents, plain VMs, keys and prices by `entity_key`: as stored, or as
    the bundle has made them so far."""

    entities: dict[tuple[str, object], Entity] = field(default_factory=dict)
    clerk_owner: dict[str, uuid.UUID] = field(default_factory=dict)

    def copy(self) -> State:
        return State(dict(self.entities), dict(self.clerk_owner))

    def owner(self, kind: str, entity_id: uuid.UUID) -> uuid.UUID | None:
        """The account of an account, agent, plain VM or key; None where it is unknown."""
        found = self.entities.get((kind, entity_id))
        if isinstance(found, AccountEntry):
            return found.id
        return found.account_id if isinstance(found, AgentEntry | PlainVmEntry | KeyEntry) else None

    def put(self, item: Entity) -> None:
        key = entity_key(item)
        if isinstance(item, AccountEntry):
            old = self.entities.get(key)
            if isinstance(old, AccountEntry) and old.clerk_org_id:
                self.clerk_owner.pop(old.clerk_org_id, None)  # an organisation has one account
            if item.clerk_org_id:
                self.clerk_owner[item.clerk_org_id] = item.id
        self.entities[key] = item


async def _select_in(
    conn: AsyncConnection, table: Table, column: str, values: Iterable[Any]
) -> list[RowMapping]:
    rows: list[RowMapping] = []
    for chunk in chunks(sorted(set(values), key=str)):
        result = await conn.execute(select(table).where(table.c[column].in_(chunk)))
        rows.extend(result.mappings().all())
    return rows


async def load_state(conn: AsyncConnection, parsed: ParsedBundle) -> State:
    """What the database holds of everything the bundle defines or refers to."""
    ids: dict[str, set[uuid.UUID]] = {kind: set() for kind in ENTITY_TYPES}
    clerks: set[str] = set()
    member_accounts: set[uuid.UUID] = set()
    for line in parsed.lines:
        item = line.item
        if isinstance(item, AccountEntry):
            ids["account"].add(item.id)
            if item.clerk_org_id:
                clerks.add(item.clerk_org_id)
        elif isinstance(item, MemberEntry):
            ids["account"].add(item.account_id)
            member_accounts.add(item.account_id)
        elif isinstance(item, AgentEntry | PlainVmEntry | KeyEntry):
            ids["account"].add(item.account_id)
            ids[entity_key(item)[0]].add(item.id)
            if isinstance(item, KeyEntry) and item.agent_id:
                ids["agent"].add(item.agent_id)
        elif isinstance(item, LlmRecord | VoiceRecord | ComputeRecord):
            if isinstance(item, LlmRecord):
                ids["key"].add(item.key_id)
            else:
                ids["account"].add(item.account_id)
            if isinstance(item, VoiceRecord) and item.key_id:
                ids["key"].add(item.key_id)
            if item.agent_id:
                ids["agent"].add(item.agent_id)
            if isinstance(item, ComputeRecord) and item.plain_vm_id:
                ids["plainVm"].add(item.plain_vm_id)

    state = State()
    account_rows = await _select_in(conn, table_of(Account), "id", ids["account"])
    account_rows += await _select_in(conn, table_of(Account), "clerk_org_id", clerks)
    for row in account_rows:
        state.put(AccountEntry(row["id"], row["name"], row["clerk_org_id"], row["owner_user_id"]))
    for row in await _select_in(conn, table_of(Agent), "id", ids["agent"]):
        state.put(AgentEntry(row["id"], row["account_id"], row["name"]))
    for row in await _select_in(conn, table_of(PlainVm), "id", ids["plainVm"]):
        state.put(
            PlainVmEntry(row["id"], row["account_id"], row["name"], row["cents_per_hour_micros"])
        )
    for row in await _select_in(conn, table_of(VirtualKey), "id", ids["key"]):
        state.put(
            KeyEntry(
                row["id"],
                row["account_id"],
                row["name"],
                row["provider"],
                row["agent_id"],
                row["spend_cap_micros"],
            )
        )
    for row in await _select_in(conn, table_of(Member), "account_id", member_accounts):
        state.put(MemberEntry(row["account_id"], row["user_id"], row["role"]))
    if any(isinstance(line.item, UnitPrice) for line in parsed.lines):
        for row in (await conn.execute(select(table_of(Price)))).mappings():
            state.put(unit_price(row))
    return state


class Checker:
    """Walks the lines in order, as they would be applied, refusing what cannot be."""

    def __init__(
        self,
        parsed: ParsedBundle,
        stored: State,
        allowed: set[uuid.UUID] | None,
        caller: Caller | None = None,
    ) -> None:
        self.now = stored.copy()
        self.allowed = allowed
        self.caller = caller
        self.problems: list[Problem] = []
        self.refused = dict(parsed.refused_definitions)
        self.first_defined: dict[tuple[str, uuid.UUID], int] = dict(parsed.refused_definitions)
        for line in parsed.lines:
            spot = _definition(line.item)
            if spot is not None:
                self.first_defined[spot] = min(
                    line.number, self.first_defined.get(spot, line.number)
                )
        self.entities: list[BundleLine] = []
        self.events: list[BundleLine] = []

    def run(self, lines: Iterable[BundleLine]) -> None:
        for line in lines:
            reasons = self._reasons(line)
            entity = entity_of(line.item)
            if reasons:
                self.problems.extend(Problem(line.number, f, r) for f, r in reasons)
                spot = _definition(line.item)
                if spot is not None:
                    self.refused.setdefault(spot, line.number)
            elif entity is None:
                self.events.append(line)
            else:
                self.now.put(entity)
                self.entities.append(line)

    def _missing(self, kind: str, entity_id: uuid.UUID, line: int) -> str:
        noun = _NOUNS[kind]
        refused_at = self.refused.get((kind, entity_id))
        if refused_at is not None and refused_at < line:
            return f"{noun} {entity_id} is defined on line {refused_at}, which is refused"
        defined_at = self.first_defined.get((kind, entity_id))
        if defined_at is not None and defined_at > line:
            return (
                f"{noun} {entity_id} is defined only later, on line {defined_at}; define it first"
            )
        return f"no {noun} {entity_id} in the bundle or the database"

    def _account(
        self, name: str, account_id: uuid.UUID, line: int, out: list[tuple[str, str]]
    ) -> bool:
        if self.now.owner("account", account_id) is None:
            out.append((name, self._missing("account", account_id, line)))
            return False
        if self.allowed is not None and account_id not in self.allowed:
            out.append((name, f"account {account_id} is not one this import may write"))
            return False
        return True

    def _belongs(
        self,
        name: str,
        kind: str,
        entity_id: uuid.UUID | None,
        account_id: uuid.UUID,
        line: int,
        out: list[tuple[str, str]],
    ) -> None:
        if entity_id is None:
            return
        owner = self.now.owner(kind, entity_id)
        if owner is None:
            out.append((name, self._missing(kind, entity_id, line)))
        elif owner != account_id:
            out.append((name, f"{_NOUNS[kind]} {entity_id} belongs to another account"))

    def _stays(
        self, kind: str, entity_id: uuid.UUID, account_id: uuid.UUID, out: list[tuple[str, str]]
    ) -> None:
        owner = self.now.owner(kind, entity_id)
        if owner is not None and owner != account_id:
            # Its events are rolled up under its account: moving it would split its history.
            out.append(
                (
                    "accountId",
                    f"{_NOUNS[kind]} {entity_id} belongs to another account; it cannot move",
                )
            )

    def _binding(self, item: AccountEntry) -> list[tuple[str, str]]:
        """Binding an account to a Clerk organisation lets every member of it in: only a
        platform admin, an admin of that organisation (and of the one it leaves), or the
        operator's own import (no caller) may change it."""
        before = self.now.entities.get(("account", item.id))
        old = before.clerk_org_id if isinstance(before, AccountEntry) else None
        new = item.clerk_org_id
        caller = self.caller
        if new == old or caller is None or caller.is_platform_admin:
            return []
        out = []
        if new is not None and not is_org_admin(caller, new):
            out.append(
                (
                    "clerkOrgId",
                    f"only a platform admin or an admin of organisation {new} may bind an "
                    "account to it",
                )
            )
        if old is not None and not is_org_admin(caller, old):
            out.append(
                (
                    "clerkOrgId",
                    f"the account belongs to organisation {old}: only a platform admin or an "
                    f"admin of {old} may change that (send clerkOrgId {old!r} to keep it)",
                )
            )
        return out

    def _reasons(self, line: BundleLine) -> list[tuple[str, str]]:
        item, number = line.item, line.number
        out: list[tuple[str, str]] = []
        if isinstance(item, AccountEntry):
            if self.allowed is not None and item.id not in self.allowed:
                out.append(("id", f"account {item.id} is not one this import may write"))
            owner = self.now.clerk_owner.get(item.clerk_org_id or "")
            if item.clerk_org_id and owner not in (None, item.id):
                out.append(
                    ("clerkOrgId", f"organisation {item.clerk_org_id} has another account already")
                )
            else:
                out += self._binding(item)
        elif isinstance(item, MemberEntry):
            self._account("accountId", item.account_id, number, out)
        elif isinstance(item, AgentEntry | PlainVmEntry | KeyEntry):
            if self._account("accountId", item.account_id, number, out):
                self._stays(entity_key(item)[0], item.id, item.account_id, out)
                if isinstance(item, KeyEntry):
                    self._belongs("agentId", "agent", item.agent_id, item.account_id, number, out)
        elif isinstance(item, UnitPrice):
            if self.allowed is not None:
                out.append(
                    ("type", "the price catalog is platform-wide: only an admin may import prices")
                )
        elif isinstance(item, LlmRecord):
            account_id = self.now.owner("key", item.key_id)
            if account_id is None:
                out.append(("keyId", self._missing("key", item.key_id, number)))
            elif self.allowed is not None and account_id not in self.allowed:
                out.append(
                    ("keyId", f"key {item.key_id} is of an account this import may not write")
                )
            else:
                self._belongs("agentId", "agent", item.agent_id, account_id, number, out)
        else:
            if self._account("accountId", item.account_id, number, out):
                self._belongs("agentId", "agent", item.agent_id, item.account_id, number, out)
                if isinstance(item, VoiceRecord):
                    self._belongs("keyId", "key", item.key_id, item.account_id, number, out)
                else:
                    self._belongs(
                        "plainVmId", "plainVm", item.plain_vm_id, item.account_id, number, out
                    )
        return out


def _definition(item: Item) -> tuple[str, uuid.UUID] | None:
    """(type, id) of a line that defines an account, agent, plain VM or key."""
    entity = entity_of(item)
    if entity is None:
        return None
    kind, key = entity_key(entity)
    return (kind, key) if isinstance(key, uuid.UUID) else None
