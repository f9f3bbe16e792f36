"""Key lifecycle: createVirtualKey, rotateVirtualKey, revokeVirtualKey, setSpendCap,
suspendVirtualKey, resumeVirtualKey, setLeakPolicy.

Rotating, re-capping or suspending a key resolves its anomalies not resolved yet by that action
(crabglamp.jobs.anomalies.state), and the account's webhooks hear of it.

Each returns a union of its success and the expected failures, all of which implement `Error`;
only account admins (crabglamp.access.administers) may change a key. A key of an account the
caller cannot even read is reported as not found, so its existence does not leak.
"""

from __future__ import annotations

import math
import uuid
from datetime import datetime, timedelta
from typing import Annotated

import strawberry
from sqlalchemy.ext.asyncio import AsyncConnection

from crabglamp import keys
from crabglamp.access import administers, may_read
from crabglamp.api.graphql.anomalies.actions import announce, resolve_by_action
from crabglamp.api.graphql.context import Info
from crabglamp.api.graphql.virtual_keys.types import LeakPolicy, VirtualKeyType
from crabglamp.db import write_transaction
from crabglamp.jobs.anomalies.state import key_resumed
from crabglamp.models import VirtualKey
from crabglamp.money import cents_to_micros

# Errors


@strawberry.interface(name="Error", description="An expected failure of a mutation.")
class ErrorType:
    message: str = strawberry.field(description="What went wrong, for people.")
    code: str = strawberry.field(description="A stable code, for programs.")


@strawberry.type(description="The caller may not change keys of this account (admins only).")
class NotAllowedError(ErrorType):
    pass


@strawberry.type(description="No such key, or not one the caller may see.")
class KeyNotFoundError(ErrorType):
    key_id: strawberry.ID = strawberry.field(description="The key asked for.")


@strawberry.type(description="The key is revoked; a revoked key cannot be changed.")
class KeyRevokedError(ErrorType):
    key_id: strawberry.ID = strawberry.field(description="The revoked key.")


@strawberry.type(description="No such account, or not one the caller may see.")
class AccountNotFoundError(ErrorType):
    account_id: strawberry.ID = strawberry.field(description="The account asked for.")


@strawberry.type(description="An argument is out of range; `field` names it.")
class InvalidInputError(ErrorType):
    field: str = strawberry.field(description="The argument or input field at fault.")


# Successes

_SECRET = (
    "The secret to send as `Authorization: Bearer …` to the proxy. Shown this once: only its "
    "hash is stored."
)


@strawberry.type(description="The new key, and its secret: shown this once, never again.")
class CreateVirtualKeySuccess:
    key: VirtualKeyType = strawberry.field(description="The new key.")
    secret: str = strawberry.field(description=_SECRET)


@strawberry.type(
    description="The key (same id, history and cap) with its new secret, shown this once."
)
class RotateVirtualKeySuccess:
    key: VirtualKeyType = strawberry.field(description="The key, same id as before.")
    secret: str = strawberry.field(description=_SECRET)
    previous_secret_expires_at: datetime | None = strawberry.field(
        description="Until then the previous secret still works; null when it stopped at once."
    )


@strawberry.type(description="The key, revoked: refused from the next request on.")
class RevokeVirtualKeySuccess:
    key: VirtualKeyType = strawberry.field(description="The key, now revoked.")


@strawberry.type(description="The key with its new monthly cap.")
class SetSpendCapSuccess:
    key: VirtualKeyType = strawberry.field(description="The key with its new cap.")


@strawberry.type(description="The key, suspended: refused (403 key_suspended) until resumed.")
class SuspendVirtualKeySuccess:
    key: VirtualKeyType = strawberry.field(description="The key, now suspended.")


@strawberry.type(description="The key, active again from the next request on.")
class ResumeVirtualKeySuccess:
    key: VirtualKeyType = strawberry.field(description="The key, now active.")


@strawberry.type(description="The key with its new leak policy.")
class SetLeakPolicySuccess:
    key: VirtualKeyType = strawberry.field(description="The key with its new leak policy.")


SuspendVirtualKeyResult = Annotated[
    SuspendVirtualKeySuccess | KeyNotFoundError | KeyRevokedError | NotAllowedError,
    strawberry.union("SuspendVirtualKeyResult"),
]
ResumeVirtualKeyResult = Annotated[
    ResumeVirtualKeySuccess | KeyNotFoundError | KeyRevokedError | NotAllowedError,
    strawberry.union("ResumeVirtualKeyResult"),
]
SetLeakPolicyResult = Annotated[
    SetLeakPolicySuccess | KeyNotFoundError | KeyRevokedError | NotAllowedError,
    strawberry.union("SetLeakPolicyResult"),
]

CreateVirtualKeyResult = Annotated[
    CreateVirtualKeySuccess | AccountNotFoundError | InvalidInputError | NotAllowedError,
    strawberry.union("CreateVirtualKeyResult"),
]
RotateVirtualKeyResult = Annotated[
    RotateVirtualKeySuccess
    | KeyNotFoundError
    | KeyRevokedError
    | InvalidInputError
    | NotAllowedError,
    strawberry.union("RotateVirtualKeyResult"),
]
RevokeVirtualKeyResult = Annotated[
    RevokeVirtualKeySuccess | KeyNotFoundError | NotAllowedError,
    strawberry.union("RevokeVirtualKeyResult"),
]
SetSpendCapResult = Annotated[
    SetSpendCapSuccess | KeyNotFoundError | KeyRevokedError | InvalidInputError | NotAllowedError,
    strawberry.union("SetSpendCapResult"),
]


@strawberry.input(description="A new virtual key.")
class CreateVirtualKeyInput:
    account_id: strawberry.ID = strawberry.field(description="The account the key spends for.")
    name: str = strawberry.field(description="A name to recognise the key by, e.g. prod.")
    provider: str | None = strawberry.field(
        default=None, description="Only this provider's models (e.g. openai); null for any."
    )
    agent_id: strawberry.ID | None = strawberry.field(
        default=None, description="The agent the key is for, if any."
    )
    spend_cap_cents: float | None = strawberry.field(
        default=None, description="Monthly spend cap in cents; null for none."
    )


_POLICIES = {
    LeakPolicy.NOTIFY: "notify",
    LeakPolicy.SUSPEND: "suspend",
    LeakPolicy.LOWER_CAP: "lower_cap",
}


def _view(key: keys.KeyView) -> VirtualKeyType:
    return VirtualKeyType(
        key=VirtualKey(**{name: getattr(key, name) for name in keys.KeyView.__dataclass_fields__})
    )


def _not_allowed() -> NotAllowedError:
    return NotAllowedError(
        message="Only an administrator of the account may change its keys.", code="FORBIDDEN"
    )


def _key_not_found(key_id: uuid.UUID | str) -> KeyNotFoundError:
    return KeyNotFoundError(
        message=f"no virtual key {key_id}", code="KEY_NOT_FOUND", key_id=strawberry.ID(str(key_id))
    )


def _problem(
    problem: keys.KeyProblem,
) -> KeyNotFoundError | KeyRevokedError | AccountNotFoundError | InvalidInputError:
    if isinstance(problem, keys.KeyNotFound):
        return _key_not_found(problem.key_id or "")
    if isinstance(problem, keys.KeyRevoked):
        return KeyRevokedError(
            message=problem.message, code=problem.code, key_id=strawberry.ID(str(problem.key_id))
        )
    if isinstance(problem, keys.AccountNotFound):
        return AccountNotFoundError(
            message=problem.message,
            code=problem.code,
            account_id=strawberry.ID(str(problem.account_id)),
        )
    assert isinstance(problem, keys.InvalidKeyInput)
    return InvalidInputError(message=problem.message, code=problem.code, field=problem.field)


def _cap(cents: float | None) -> int | InvalidInputError | None:
    if cents is None:
        return None
    # Checked in cents first: far out of range (1e308) the conversion to micro-cents would fail.
    if not math.isfinite(cents) or not 0 <= cents <= keys.MAX_SPEND_CAP_CENTS:
        return InvalidInputError(
            message=f"spendCapCents must be {keys.SPEND_CAP_RANGE}, got {cents:g}",
            code="INVALID_INPUT",
            field="spendCapCents",
        )
    micros = cents_to_micros(cents)
    problem = keys.check_spend_cap(micros)
    if problem is not None:
        return InvalidInputError(message=problem.message, code=problem.code, field=problem.field)
    return micros


def _uuid(value: str, field: str) -> uuid.UUID | InvalidInputError:
    try:
        return uuid.UUID(value)
    except ValueError:
        return InvalidInputError(
            message=f"{field} must be a UUID, got {value!r}", code="INVALID_INPUT", field=field
        )


async def _guard_key(
    info: Info, conn: AsyncConnection, key_id: uuid.UUID
) -> keys.KeyView | KeyNotFoundError | NotAllowedError:
    """The key, if the caller administers its account."""
    key = await keys.get_key(conn, key_id, lock=True)
    caller = info.context.caller
    if key is None or not await may_read(conn, caller, key.account_id):
        return _key_not_found(key_id)
    if not await administers(conn, caller, key.account_id):
        return _not_allowed()
    return key


@strawberry.type
class VirtualKeyMutations:
    @strawberry.mutation(
        description="Create a virtual key. Its secret is in the result, and nowhere else, ever."
    )
    async def create_virtual_key(
        self,
        info: Info,
        input: Annotated[CreateVirtualKeyInput, strawberry.argument(description="The new key.")],
    ) -> CreateVirtualKeyResult:
        account_id = _uuid(input.account_id, "accountId")
        if isinstance(account_id, InvalidInputError):
            return account_id
        agent_id = None if input.agent_id is None else _uuid(input.agent_id, "agentId")
        if isinstance(agent_id, InvalidInputError):
            return agent_id
        cap = _cap(input.spend_cap_cents)
        if isinstance(cap, InvalidInputError):
            return cap
        caller = info.context.caller
        async with write_transaction(info.context.db.engine) as conn:
            if not await may_read(conn, caller, account_id):
                return AccountNotFoundError(
                    message=f"no account {account_id}",
                    code="ACCOUNT_NOT_FOUND",
                    account_id=strawberry.ID(str(account_id)),
                )
            if not await administers(conn, caller, account_id):
                return _not_allowed()
            created = await keys.create_key(
                conn, account_id, input.name, input.provider, cap, agent_id
            )
        if isinstance(created, keys.KeyProblem):
            return _problem(created)  # type: ignore[return-value]
        return CreateVirtualKeySuccess(key=_view(created.key), secret=created.secret)

    @strawberry.mutation(
        description="Give a key a new secret; the key keeps its id, history and cap. The old "
        "secret keeps working for gracePeriodSeconds (default 0: it stops at once)."
    )
    async def rotate_virtual_key(
        self,
        info: Info,
        key_id: Annotated[strawberry.ID, strawberry.argument(description="The key to rotate.")],
        grace_period_seconds: Annotated[
            int,
            strawberry.argument(
                description="How long the old secret keeps working, 0 to 2592000 (30 days)."
            ),
        ] = 0,
    ) -> RotateVirtualKeyResult:
        parsed = _uuid(key_id, "keyId")
        if isinstance(parsed, InvalidInputError):
            return parsed
        if not 0 <= grace_period_seconds <= keys.MAX_GRACE.total_seconds():
            return InvalidInputError(
                message="gracePeriodSeconds is between 0 and 2592000 (30 days)",
                code="INVALID_INPUT",
                field="gracePeriodSeconds",
            )
        async with write_transaction(info.context.db.engine) as conn:
            guarded = await _guard_key(info, conn, parsed)
            if not isinstance(guarded, keys.KeyView):
                return guarded
            rotated = await keys.rotate_key(conn, parsed, timedelta(seconds=grace_period_seconds))
            if isinstance(rotated, keys.RotatedKey):
                await resolve_by_action(info, conn, parsed, "rotated")
        if isinstance(rotated, keys.KeyProblem):
            return _problem(rotated)  # type: ignore[return-value]
        return RotateVirtualKeySuccess(
            key=_view(rotated.key),
            secret=rotated.secret,
            previous_secret_expires_at=rotated.previous_secret_expires_at,
        )

    @strawberry.mutation(description="Revoke a key: refused from the next request on.")
    async def revoke_virtual_key(
        self,
        info: Info,
        key_id: Annotated[strawberry.ID, strawberry.argument(description="The key to revoke.")],
    ) -> RevokeVirtualKeyResult:
        parsed = _uuid(key_id, "keyId")
        if isinstance(parsed, InvalidInputError):
            return _key_not_found(key_id)
        async with write_transaction(info.context.db.engine) as conn:
            guarded = await _guard_key(info, conn, parsed)
            if not isinstance(guarded, keys.KeyView):
                return guarded
            revoked = await keys.revoke_key(conn, parsed)
        if isinstance(revoked, keys.KeyProblem):
            return _problem(revoked)  # type: ignore[return-value]
        return RevokeVirtualKeySuccess(key=_view(revoked))

    @strawberry.mutation(
        description="Raise, lower or remove (null) a key's monthly spend cap. A cap below this "
        "month's spend is allowed: the key is then refused until the cap is raised again."
    )
    async def set_spend_cap(
        self,
        info: Info,
        key_id: Annotated[strawberry.ID, strawberry.argument(description="The key.")],
        spend_cap_cents: Annotated[
            float | None,
            strawberry.argument(description="The new monthly cap in cents; null for none."),
        ],
    ) -> SetSpendCapResult:
        parsed = _uuid(key_id, "keyId")
        if isinstance(parsed, InvalidInputError):
            return parsed
        cap = _cap(spend_cap_cents)
        if isinstance(cap, InvalidInputError):
            return cap
        async with write_transaction(info.context.db.engine) as conn:
            guarded = await _guard_key(info, conn, parsed)
            if not isinstance(guarded, keys.KeyView):
                return guarded
            changed = await keys.set_spend_cap(conn, parsed, cap)
            if isinstance(changed, keys.KeyView) and changed.spend_cap_micros != (
                guarded.spend_cap_micros
            ):
                await resolve_by_action(info, conn, parsed, "cap_changed")
        if isinstance(changed, keys.KeyProblem):
            return _problem(changed)  # type: ignore[return-value]
        return SetSpendCapSuccess(key=_view(changed))

    @strawberry.mutation(
        description="Suspend a key: refused from the next request on (403 key_suspended, with "
        "the reason) until resumeVirtualKey. Resolves its open anomalies as suspended."
    )
    async def suspend_virtual_key(
        self,
        info: Info,
        key_id: Annotated[strawberry.ID, strawberry.argument(description="The key to suspend.")],
        reason: Annotated[
            str | None, strawberry.argument(description="Why, as the proxy's refusal says it.")
        ] = None,
    ) -> SuspendVirtualKeyResult:
        parsed = _uuid(key_id, "keyId")
        if isinstance(parsed, InvalidInputError):
            return _key_not_found(key_id)
        context = info.context
        why = (reason or "").strip() or f"It was suspended by {context.caller.user_id}."
        async with write_transaction(context.db.engine) as conn:
            guarded = await _guard_key(info, conn, parsed)
            if not isinstance(guarded, keys.KeyView):
                return guarded
            suspended = await keys.suspend_key(conn, parsed, why, context.now)
            if isinstance(suspended, keys.KeyView):
                await resolve_by_action(info, conn, parsed, "suspended")
        if isinstance(suspended, keys.KeyProblem):
            return _problem(suspended)  # type: ignore[return-value]
        return SuspendVirtualKeySuccess(key=_view(suspended))

    @strawberry.mutation(
        description="Resume a suspended key (by hand or by its leak policy): it works again "
        "from the next request on."
    )
    async def resume_virtual_key(
        self,
        info: Info,
        key_id: Annotated[strawberry.ID, strawberry.argument(description="The key to resume.")],
    ) -> ResumeVirtualKeyResult:
        parsed = _uuid(key_id, "keyId")
        if isinstance(parsed, InvalidInputError):
            return _key_not_found(key_id)
        context = info.context
        async with write_transaction(context.db.engine) as conn:
            guarded = await _guard_key(info, conn, parsed)
            if not isinstance(guarded, keys.KeyView):
                return guarded
            resumed = await keys.resume_key(conn, parsed)
            if isinstance(resumed, keys.KeyView):
                reverted = await key_resumed(conn, parsed, context.caller.user_id, context.now)
                await announce(conn, reverted, "policy_reverted", context.now)
        if isinstance(resumed, keys.KeyProblem):
            return _problem(resumed)  # type: ignore[return-value]
        return ResumeVirtualKeySuccess(key=_view(resumed))

    @strawberry.mutation(
        description="Choose what a spike on a quiet key does: notify (default), suspend the "
        "key, or lower its cap to what it has spent; applied within seconds of detection."
    )
    async def set_leak_policy(
        self,
        info: Info,
        key_id: Annotated[strawberry.ID, strawberry.argument(description="The key.")],
        policy: Annotated[LeakPolicy, strawberry.argument(description="The new policy.")],
    ) -> SetLeakPolicyResult:
        parsed = _uuid(key_id, "keyId")
        if isinstance(parsed, InvalidInputError):
            return _key_not_found(key_id)
        async with write_transaction(info.context.db.engine) as conn:
            guarded = await _guard_key(info, conn, parsed)
            if not isinstance(guarded, keys.KeyView):
                return guarded
            changed = await keys.set_leak_policy(conn, parsed, _POLICIES[policy])
        if isinstance(changed, keys.KeyProblem):
            return _problem(changed)  # type: ignore[return-value]
        return SetLeakPolicySuccess(key=_view(changed))
