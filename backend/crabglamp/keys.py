"""The life of a virtual key: create (secret shown once), rotate, revoke, change its spend cap,
suspend and resume it, choose its leak policy.

Core service: plain SQLAlchemy on the caller's write transaction, no web framework. Who may do
this is the caller's business (crabglamp.access.administers). Expected failures are returned as
typed results; only bugs raise.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TextIO

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from crabglamp.db.changes import ChangeKind, announce
from crabglamp.db.tables import table_of
from crabglamp.key_secrets import (
    Environment,
    display_prefix,
    generate_secret,
    hash_secret,
    hashes_match,
)
from crabglamp.models import Account, Agent, VirtualKey, VirtualKeySecret
from crabglamp.periods import as_utc, utcnow

_keys = table_of(VirtualKey)
_retired = table_of(VirtualKeySecret)
_accounts = table_of(Account)
_agents = table_of(Agent)

PROVIDER_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
MAX_NAME_LENGTH = 200
# $10 million a month: far above any real cap, far below overflowing a 64-bit sum.
MAX_SPEND_CAP_CENTS = 1_000_000_000
MAX_SPEND_CAP_MICROS = MAX_SPEND_CAP_CENTS * 1_000_000
# The allowed caps, in the units customers set them in.
SPEND_CAP_RANGE = "from 0 to 1,000,000,000 cents ($10,000,000)"
MAX_GRACE = timedelta(days=30)
# What a spike on a quiet key does beyond the alert (jobs/anomalies/state.py applies it).
LEAK_POLICIES = ("notify", "suspend", "lower_cap")
MAX_REASON_LENGTH = 500


# What may be shown of a key: everything but its hash


@dataclass(frozen=True, slots=True)
class KeyView:
    id: uuid.UUID
    account_id: uuid.UUID
    name: str
    provider: str | None
    agent_id: uuid.UUID | None
    spend_cap_micros: int | None
    status: str
    secret_prefix: str | None
    created_at: datetime | None
    leak_policy: str = "notify"
    suspended_at: datetime | None = None
    suspended_reason: str | None = None
    suspended_by_anomaly: str | None = None

    @property
    def active(self) -> bool:
        return self.status == "active"

    @property
    def revoked(self) -> bool:
        """Revoked for good; a suspended key may still be rotated, re-capped and resumed."""
        return self.status == "revoked"


_VIEW_COLUMNS = [_keys.c[name] for name in KeyView.__dataclass_fields__]


def _view(row: Any) -> KeyView:
    values = dict(row._mapping)
    if values["suspended_at"] is not None:
        values["suspended_at"] = as_utc(values["suspended_at"])  # SQLite keeps no zone
    return KeyView(**{name: values[name] for name in KeyView.__dataclass_fields__})


# Results


@dataclass(frozen=True, slots=True)
class CreatedKey:
    key: KeyView
    # The only time the secret exists outside the caller's hands.
    secret: str


@dataclass(frozen=True, slots=True)
class RotatedKey:
    key: KeyView
    secret: str
    # Until then the previous secret still works; None when it stopped at once.
    previous_secret_expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class KeyProblem:
    """An expected failure; `code` is stable, `message` is for people."""

    code: str
    message: str


@dataclass(frozen=True, slots=True)
class KeyNotFound(KeyProblem):
    key_id: uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class KeyRevoked(KeyProblem):
    key_id: uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class AccountNotFound(KeyProblem):
    account_id: uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class InvalidKeyInput(KeyProblem):
    field: str = ""


def _not_found(key_id: uuid.UUID) -> KeyNotFound:
    return KeyNotFound("KEY_NOT_FOUND", f"no virtual key {key_id}", key_id)


def _revoked(key_id: uuid.UUID) -> KeyRevoked:
    return KeyRevoked("KEY_REVOKED", f"virtual key {key_id} is revoked", key_id)


def _invalid(field: str, message: str) -> InvalidKeyInput:
    return InvalidKeyInput("INVALID_INPUT", message, field)


def check_spend_cap(cap_micros: int | None) -> InvalidKeyInput | None:
    if cap_micros is None:
        return None
    if cap_micros < 0:
        return _invalid("spendCapCents", f"a spend cap cannot be negative: {SPEND_CAP_RANGE}")
    if cap_micros > MAX_SPEND_CAP_MICROS:
        return _invalid(
            "spendCapCents", f"a spend cap cannot exceed 1,000,000,000 cents: {SPEND_CAP_RANGE}"
        )
    return None


# Reading


async def get_key(conn: AsyncConnection, key_id: uuid.UUID, lock: bool = False) -> KeyView | None:
    statement = select(*_VIEW_COLUMNS).where(_keys.c.id == key_id)
    if lock:
        statement = statement.with_for_update()  # PostgreSQL; SQLite holds the write lock
    row = (await conn.execute(statement)).first()
    return _view(row) if row is not None else None


@dataclass(frozen=True, slots=True)
class SecretMatch:
    key: KeyView
    # False for a retired secret (rotated away); it works only until `expires_at`.
    current: bool
    expires_at: datetime | None = None

    def usable(self, now: datetime) -> bool:
        if not self.key.active:
            return False
        return self.current or (self.expires_at is not None and self.expires_at > now)


async def find_by_secret(conn: AsyncConnection, secret: str) -> SecretMatch | None:
    """The key a presented secret belongs to, by its hash, or None. The secret itself is neither
    stored nor compared: its hash is looked up through the unique index, then compared again
    in constant time."""
    digest = hash_secret(secret)
    row = (
        await conn.execute(
            select(*_VIEW_COLUMNS, _keys.c.secret_hash).where(_keys.c.secret_hash == digest)
        )
    ).first()
    if row is not None and hashes_match(row.secret_hash, secret):
        return SecretMatch(_view(row), current=True)
    retired = (
        await conn.execute(
            select(_retired.c.key_id, _retired.c.secret_hash, _retired.c.expires_at).where(
                _retired.c.secret_hash == digest
            )
        )
    ).first()
    if retired is None or not hashes_match(retired.secret_hash, secret):
        return None
    key = await get_key(conn, retired.key_id)
    if key is None:
        return None
    return SecretMatch(key, current=False, expires_at=as_utc(retired.expires_at))


# Changing


async def create_key(
    conn: AsyncConnection,
    account_id: uuid.UUID,
    name: str,
    provider: str | None = None,
    spend_cap_micros: int | None = None,
    agent_id: uuid.UUID | None = None,
    environment: Environment = "live",
) -> CreatedKey | AccountNotFound | InvalidKeyInput:
    name = name.strip()
    if not name or len(name) > MAX_NAME_LENGTH:
        return _invalid("name", f"a key needs a name of 1 to {MAX_NAME_LENGTH} characters")
    if provider is not None and not PROVIDER_RE.match(provider):
        return _invalid(
            "provider", "a provider is a lower-case name such as openai, anthropic or google"
        )
    problem = check_spend_cap(spend_cap_micros)
    if problem is not None:
        return problem
    found = await conn.execute(select(_accounts.c.id).where(_accounts.c.id == account_id))
    if found.first() is None:
        return AccountNotFound("ACCOUNT_NOT_FOUND", f"no account {account_id}", account_id)
    if agent_id is not None:
        owner = (
            await conn.execute(select(_agents.c.account_id).where(_agents.c.id == agent_id))
        ).scalar()
        if owner != account_id:
            return _invalid("agentId", f"agent {agent_id} is not an agent of this account")
    secret = generate_secret(environment)
    key = KeyView(
        id=uuid.uuid4(),
        account_id=account_id,
        name=name,
        provider=provider,
        agent_id=agent_id,
        spend_cap_micros=spend_cap_micros,
        status="active",
        secret_prefix=display_prefix(secret),
        created_at=utcnow(),
    )
    values = {column.name: getattr(key, column.name) for column in _VIEW_COLUMNS}
    await conn.execute(_keys.insert().values(**values, secret_hash=hash_secret(secret)))
    await announce(conn, {account_id: {ChangeKind.KEYS}})
    return CreatedKey(key, secret)


async def rotate_key(
    conn: AsyncConnection,
    key_id: uuid.UUID,
    grace: timedelta = timedelta(0),
    now: datetime | None = None,
) -> RotatedKey | KeyNotFound | KeyRevoked | InvalidKeyInput:
    """A new secret for the same key (its id, history and cap stay); the old one keeps working
    for `grace`, then never again."""
    if grace < timedelta(0) or grace > MAX_GRACE:
        return _invalid("gracePeriodSeconds", "the grace period is between 0 and 30 days")
    now = now or utcnow()
    key = await get_key(conn, key_id, lock=True)
    if key is None:
        return _not_found(key_id)
    if key.revoked:
        return _revoked(key_id)
    old_hash = (
        await conn.execute(select(_keys.c.secret_hash).where(_keys.c.id == key_id))
    ).scalar()
    expires_at = now + grace
    if old_hash is not None:
        # Kept even with no grace: it is the key's rotation history, and a retired secret that
        # is presented again is told apart from one that never existed.
        await conn.execute(
            _retired.insert().values(
                secret_hash=old_hash,
                key_id=key_id,
                secret_prefix=key.secret_prefix or "",
                retired_at=now,
                expires_at=expires_at,
            )
        )
    secret = generate_secret(_environment_of(key.secret_prefix))
    await conn.execute(
        update(_keys)
        .where(_keys.c.id == key_id)
        .values(secret_hash=hash_secret(secret), secret_prefix=display_prefix(secret))
    )
    rotated = await get_key(conn, key_id)
    assert rotated is not None
    await announce(conn, {key.account_id: {ChangeKind.KEYS}})
    return RotatedKey(rotated, secret, expires_at if grace > timedelta(0) else None)


def _environment_of(prefix: str | None) -> Environment:
    return "test" if prefix is not None and prefix.startswith("cg_test_") else "live"


async def revoke_key(
    conn: AsyncConnection, key_id: uuid.UUID, now: datetime | None = None
) -> KeyView | KeyNotFound:
    """Refused from the next request on, whichever of its secrets is presented. Idempotent."""
    now = now or utcnow()
    key = await get_key(conn, key_id, lock=True)
    if key is None:
        return _not_found(key_id)
    await conn.execute(update(_keys).where(_keys.c.id == key_id).values(status="revoked"))
    await conn.execute(
        update(_retired)
        .where(_retired.c.key_id == key_id, _retired.c.expires_at > now)
        .values(expires_at=now)
    )
    revoked = await get_key(conn, key_id)
    assert revoked is not None
    await announce(conn, {key.account_id: {ChangeKind.KEYS}})
    return revoked


async def set_spend_cap(
    conn: AsyncConnection, key_id: uuid.UUID, spend_cap_micros: int | None
) -> KeyView | KeyNotFound | KeyRevoked | InvalidKeyInput:
    """Raise, lower or remove (None) the monthly cap. A cap below this month's spend is allowed:
    the key is then refused until the month ends or the cap is raised again."""
    problem = check_spend_cap(spend_cap_micros)
    if problem is not None:
        return problem
    key = await get_key(conn, key_id, lock=True)
    if key is None:
        return _not_found(key_id)
    if key.revoked:
        return _revoked(key_id)
    await conn.execute(
        update(_keys).where(_keys.c.id == key_id).values(spend_cap_micros=spend_cap_micros)
    )
    changed = await get_key(conn, key_id)
    assert changed is not None
    await announce(conn, {key.account_id: {ChangeKind.KEYS}})
    return changed


async def suspend_key(
    conn: AsyncConnection,
    key_id: uuid.UUID,
    reason: str,
    now: datetime | None = None,
    by_anomaly: str | None = None,
) -> KeyView | KeyNotFound | KeyRevoked:
    """Refused from the next request on (403 `key_suspended`, in every process: the admission
    statement checks the status) until `resume_key`. Its secrets, cap and history stay."""
    now = now or utcnow()
    key = await get_key(conn, key_id, lock=True)
    if key is None:
        return _not_found(key_id)
    if key.revoked:
        return _revoked(key_id)
    if key.status != "suspended":
        await conn.execute(
            update(_keys)
            .where(_keys.c.id == key_id)
            .values(
                status="suspended",
                suspended_at=now,
                suspended_reason=reason[:MAX_REASON_LENGTH],
                suspended_by_anomaly=by_anomaly,
            )
        )
    suspended = await get_key(conn, key_id)
    assert suspended is not None
    return suspended


async def resume_key(
    conn: AsyncConnection, key_id: uuid.UUID
) -> KeyView | KeyNotFound | KeyRevoked:
    """A suspended key works again from the next request on. Idempotent on an active key."""
    key = await get_key(conn, key_id, lock=True)
    if key is None:
        return _not_found(key_id)
    if key.revoked:
        return _revoked(key_id)
    await conn.execute(
        update(_keys)
        .where(_keys.c.id == key_id)
        .values(
            status="active", suspended_at=None, suspended_reason=None, suspended_by_anomaly=None
        )
    )
    resumed = await get_key(conn, key_id)
    assert resumed is not None
    return resumed


async def set_leak_policy(
    conn: AsyncConnection, key_id: uuid.UUID, policy: str
) -> KeyView | KeyNotFound | KeyRevoked | InvalidKeyInput:
    if policy not in LEAK_POLICIES:
        return _invalid("policy", f"a leak policy is one of {', '.join(LEAK_POLICIES)}")
    key = await get_key(conn, key_id, lock=True)
    if key is None:
        return _not_found(key_id)
    if key.revoked:
        return _revoked(key_id)
    await conn.execute(update(_keys).where(_keys.c.id == key_id).values(leak_policy=policy))
    changed = await get_key(conn, key_id)
    assert changed is not None
    return changed


async def retired_secrets(conn: AsyncConnection, key_id: uuid.UUID) -> list[tuple[str, datetime]]:
    """The key's rotation history: display prefix and retirement time of each earlier secret."""
    rows = await conn.execute(
        select(_retired.c.secret_prefix, _retired.c.retired_at)
        .where(_retired.c.key_id == key_id)
        .order_by(_retired.c.retired_at)
    )
    return [(prefix, as_utc(retired_at)) for prefix, retired_at in rows]


async def create_command(
    database_url: str,
    account: str,
    name: str,
    provider: str | None,
    cap_cents: str | None,
    out: TextIO,
    err: TextIO,
) -> int:
    """`crabglamp key create`: the secret is printed once, on the last line of the output."""
    from crabglamp.db import make_engine, write_transaction
    from crabglamp.money import cents_to_micros

    try:
        account_id = uuid.UUID(account)
    except ValueError:
        print(f"error: --account must be an account id (UUID), got {account!r}", file=err)
        return 2
    try:
        cap = cents_to_micros(cap_cents) if cap_cents is not None else None
    except ValueError:
        print(f"error: --cap must be a number of cents, got {cap_cents!r}", file=err)
        return 2
    engine = make_engine(database_url)
    try:
        async with write_transaction(engine) as conn:
            result = await create_key(conn, account_id, name, provider, cap)
    finally:
        await engine.dispose()
    if not isinstance(result, CreatedKey):
        print(f"error: {result.message}", file=err)
        return 1
    key = result.key
    cap_text = "none" if key.spend_cap_micros is None else f"{key.spend_cap_micros / 1e6:g} cents"
    print(f"Created virtual key {key.name!r} ({key.id}) in account {key.account_id}", file=out)
    print(f"provider: {key.provider or 'any'}; monthly spend cap: {cap_text}", file=out)
    print("The secret is shown this once; store it now:", file=out)
    print(result.secret, file=out)
    return 0
