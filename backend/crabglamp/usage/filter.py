"""From what a caller asked for (REST parameters or the GraphQL `UsageFilter`) to a `UsageQuery`.

Both APIs go through here, so they parse, default and authorise a filter identically: the
period (a month, or an inclusive from/to range), the account (explicit, else the caller's
default, or platform-wide for admins), and agents and keys that must belong to that account.
Core: no web framework here.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from crabglamp.access import AccessDenied, Caller, default_account_id, readable_account_ids
from crabglamp.db.tables import table_of
from crabglamp.models import Agent, VirtualKey
from crabglamp.periods import Period, current_month, parse_date, parse_month
from crabglamp.usage.query import UsageQuery

# A daily array per axis for every day of the period: bound it, so one request stays cheap.
MAX_PERIOD_DAYS = 366
# The supported calendar; beyond it the exclusive end of a period (midnight after) overflows.
FIRST_DAY = date(1970, 1, 1)
LAST_DAY = date(9999, 12, 30)

_agents = table_of(Agent)
_keys = table_of(VirtualKey)


class FilterError(ValueError):
    """A malformed parameter (HTTP 400); `parameter` names it as the caller spelled it."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter
        self.message = message


@dataclass(frozen=True, slots=True)
class UsageFilter:
    """A usage filter as asked, ids already parsed; see CONTRACTS.md §2.2 for the meaning of each."""

    month: str | None = None
    date_from: date | None = None
    date_to: date | None = None
    account_id: uuid.UUID | None = None
    agent_id: uuid.UUID | None = None
    key_ids: tuple[uuid.UUID, ...] | None = None
    provider: str | None = None
    model: str | None = None
    voice_model: str | None = None
    admin: bool = False


def check_name(value: str | None, parameter: str) -> None:
    """A name compared with stored text: PostgreSQL's text holds no NUL character (a query with
    one fails), and no name in our tables has one, so it is the caller's mistake, on both engines.
    """
    if value is not None and "\x00" in value:
        raise FilterError(parameter, f"{parameter} must not contain a NUL character")


def parse_uuid(value: str, parameter: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except (ValueError, TypeError, AttributeError) as exc:
        raise FilterError(parameter, f"{parameter} must be a UUID, got {value!r}") from exc


def parse_day(value: str, parameter: str) -> date:
    try:
        return parse_date(value)
    except ValueError as exc:
        raise FilterError(
            parameter, f"{parameter} must be a date YYYY-MM-DD, got {value!r}"
        ) from exc


def period_of(
    month: str | None,
    date_from: date | None,
    date_to: date | None,
    now: datetime | None = None,
) -> Period:
    """`month`, or `from` and `to` (inclusive), or by default the current UTC month."""
    if month is not None and (date_from is not None or date_to is not None):
        raise FilterError("month", "give either month or from/to, not both")
    if month is not None:
        try:
            period = parse_month(month)
        except ValueError as exc:
            raise FilterError("month", f"month must be YYYY-MM, got {month!r}") from exc
        if period.end > LAST_DAY:
            raise FilterError("month", f"month must be before 9999-12, got {month!r}")
        return period
    if date_from is None and date_to is None:
        return current_month(now)
    if date_from is None:
        raise FilterError("from", "from is required with to")
    if date_to is None:
        raise FilterError("to", "to is required with from")
    for name, day in (("from", date_from), ("to", date_to)):
        if not FIRST_DAY <= day <= LAST_DAY:
            raise FilterError(name, f"{name} must lie between {FIRST_DAY} and {LAST_DAY}")
    if date_from > date_to:
        raise FilterError("from", f"from ({date_from}) is after to ({date_to})")
    if (date_to - date_from).days + 1 > MAX_PERIOD_DAYS:
        raise FilterError("to", f"a range spans at most {MAX_PERIOD_DAYS} days")
    return Period(date_from, date_to)


@dataclass(slots=True)
class CallerScope:
    """What one caller may read, looked up at most once per request (GraphQL asks many times)."""

    caller: Caller
    _readable: frozenset[uuid.UUID] | None = field(default=None, repr=False)
    _default: uuid.UUID | None = field(default=None, repr=False)
    _default_known: bool = field(default=False, repr=False)

    async def readable(self, conn: AsyncConnection) -> frozenset[uuid.UUID]:
        if self._readable is None:
            self._readable = frozenset(await readable_account_ids(conn, self.caller))
        return self._readable

    async def default_account(self, conn: AsyncConnection) -> uuid.UUID | None:
        if not self._default_known:
            self._default = await default_account_id(conn, self.caller)
            self._default_known = True
        return self._default

    async def may_read(self, conn: AsyncConnection, account_id: uuid.UUID) -> bool:
        return self.caller.is_platform_admin or account_id in await self.readable(conn)

    async def accounts(
        self, conn: AsyncConnection, account_id: uuid.UUID | None, admin: bool = False
    ) -> tuple[uuid.UUID, ...] | None:
        """The accounts to count; None is platform-wide. Raises AccessDenied."""
        if admin:
            # Only the signed claim makes an admin; the parameter merely asks for the view.
            if not self.caller.is_platform_admin:
                raise AccessDenied("admin=1 is for platform admins only")
            return None if account_id is None else (account_id,)
        if account_id is not None:
            if not await self.may_read(conn, account_id):
                raise AccessDenied(f"you may not read account {account_id}")
            return (account_id,)
        default = await self.default_account(conn)
        # No account at all (a new user): an empty scope, which reads as zero everywhere.
        return () if default is None else (default,)


async def check_owned(
    conn: AsyncConnection,
    account_ids: tuple[uuid.UUID, ...] | None,
    agent_id: uuid.UUID | None = None,
    key_ids: tuple[uuid.UUID, ...] | None = None,
) -> None:
    """An agent or key of another account is refused, never silently counted."""
    if account_ids is None:
        return
    if agent_id is not None:
        owner = (
            await conn.execute(select(_agents.c.account_id).where(_agents.c.id == agent_id))
        ).scalar()
        if owner not in account_ids:
            raise AccessDenied(f"agent {agent_id} is not an agent of the account you read")
    if key_ids:
        rows = await conn.execute(
            select(_keys.c.id, _keys.c.account_id).where(_keys.c.id.in_(sorted(set(key_ids))))
        )
        owners = {row[0]: row[1] for row in rows}
        for key_id in key_ids:
            if owners.get(key_id) not in account_ids:
                raise AccessDenied(f"key {key_id} is not a key of the account you read")


async def resolve(
    conn: AsyncConnection,
    scope: CallerScope,
    wanted: UsageFilter,
    now: datetime | None = None,
) -> UsageQuery:
    """The authorised query for a filter; raises FilterError (400) or AccessDenied (403)."""
    for parameter, name in (
        ("provider", wanted.provider),
        ("model", wanted.model),
        ("voiceModel", wanted.voice_model),
    ):
        check_name(name, parameter)
    period = period_of(wanted.month, wanted.date_from, wanted.date_to, now)
    account_ids = await scope.accounts(conn, wanted.account_id, wanted.admin)
    await check_owned(conn, account_ids, wanted.agent_id, wanted.key_ids)
    return UsageQuery(
        period=period,
        account_ids=account_ids,
        agent_id=wanted.agent_id,
        key_ids=tuple(sorted(set(wanted.key_ids))) if wanted.key_ids is not None else None,
        provider=wanted.provider,
        model=wanted.model,
        voice_model=wanted.voice_model,
    )
