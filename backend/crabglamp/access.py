"""Who may read or administer which account (CONTRACTS.md §6). Core: no web framework here.

A caller is what a verified session token says; the rules below are the only place that turns it
into accounts. Platform admins are recognised by a signed claim only, never by a parameter.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from crabglamp.db.tables import table_of
from crabglamp.models import Account, Member

_accounts = table_of(Account)
_members = table_of(Member)


@dataclass(frozen=True, slots=True)
class Caller:
    user_id: str
    org_id: str | None = None
    # Clerk's organisation role claim (`o.rol`, e.g. "admin"); organisation admins administer
    # their organisation's account.
    org_role: str | None = None
    is_platform_admin: bool = False


ORG_ADMIN_ROLES = frozenset({"admin", "org:admin"})


def is_org_admin(caller: Caller, org_id: str) -> bool:
    """The caller's token is of this Clerk organisation, with its admin role."""
    return caller.org_id == org_id and caller.org_role in ORG_ADMIN_ROLES


class AccessDenied(PermissionError):
    """The caller is authenticated but may not do this (HTTP 403)."""


async def readable_account_ids(conn: AsyncConnection, caller: Caller) -> list[uuid.UUID]:
    """Accounts the caller may read as a customer (platform admins use account_ids=None)."""
    conditions = [_accounts.c.owner_user_id == caller.user_id]
    if caller.org_id:
        conditions.append(_accounts.c.clerk_org_id == caller.org_id)
    member_of = select(_members.c.account_id).where(_members.c.user_id == caller.user_id)
    conditions.append(_accounts.c.id.in_(member_of))
    rows = await conn.execute(
        select(_accounts.c.id).where(or_(*conditions)).order_by(_accounts.c.name)
    )
    return [row[0] for row in rows]


async def may_read(conn: AsyncConnection, caller: Caller, account_id: uuid.UUID) -> bool:
    if caller.is_platform_admin:
        return True
    return account_id in await readable_account_ids(conn, caller)


async def administers(conn: AsyncConnection, caller: Caller, account_id: uuid.UUID) -> bool:
    """Owner, admin member, admin of the account's organisation, or platform admin."""
    if caller.is_platform_admin:
        return True
    row = (
        await conn.execute(
            select(_accounts.c.owner_user_id, _accounts.c.clerk_org_id).where(
                _accounts.c.id == account_id
            )
        )
    ).first()
    if row is None:
        return False
    owner, org = row
    if owner == caller.user_id:
        return True
    if org is not None and is_org_admin(caller, org):
        return True
    role = (
        await conn.execute(
            select(_members.c.role).where(
                _members.c.account_id == account_id, _members.c.user_id == caller.user_id
            )
        )
    ).scalar()
    return role == "admin"


async def administers_any(conn: AsyncConnection, caller: Caller) -> bool:
    """Whether the caller administers at least one account (the rules of `administers`): one
    that administers none can write nothing, which `POST /api/events` knows before it parses."""
    if caller.is_platform_admin:
        return True
    conditions = [_accounts.c.owner_user_id == caller.user_id]
    if caller.org_id and caller.org_role in {"admin", "org:admin"}:
        conditions.append(_accounts.c.clerk_org_id == caller.org_id)
    admin_of = select(_members.c.account_id).where(
        _members.c.user_id == caller.user_id, _members.c.role == "admin"
    )
    conditions.append(_accounts.c.id.in_(admin_of))
    found = (await conn.execute(select(_accounts.c.id).where(or_(*conditions)).limit(1))).first()
    return found is not None


async def default_account_id(conn: AsyncConnection, caller: Caller) -> uuid.UUID | None:
    """The active organisation's account, else the caller's personal account, else the first
    account it is a member of."""
    if caller.org_id:
        found: uuid.UUID | None = (
            await conn.execute(
                select(_accounts.c.id).where(_accounts.c.clerk_org_id == caller.org_id)
            )
        ).scalar()
        if found is not None:
            return found
    personal: uuid.UUID | None = (
        await conn.execute(
            select(_accounts.c.id)
            .where(_accounts.c.owner_user_id == caller.user_id, _accounts.c.clerk_org_id.is_(None))
            .order_by(_accounts.c.name)
            .limit(1)
        )
    ).scalar()
    if personal is not None:
        return personal
    readable = await readable_account_ids(conn, caller)
    return readable[0] if readable else None
