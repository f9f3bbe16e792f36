"""Acting on an anomaly: acknowledgeAnomaly, dismissAnomaly(reason), restoreSpendCap.

Account administrators only (crabglamp.access.administers): a member gets `NotAllowedError`;
an anomaly of an account the caller cannot read is reported as not found. Each change is told
to the account's webhooks (`anomaly.acknowledged`, `anomaly.resolved`,
`anomaly.policy_reverted`). Resolving by an action on the key (rotating, changing its cap,
suspending it) happens in the key mutations.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

import strawberry
from sqlalchemy.ext.asyncio import AsyncConnection

from crabglamp.access import administers, may_read
from crabglamp.api.graphql.anomalies.actions import announce
from crabglamp.api.graphql.anomalies.types import AnomalyType
from crabglamp.api.graphql.context import Info
from crabglamp.api.graphql.virtual_keys.mutations import (
    ErrorType,
    InvalidInputError,
    KeyRevokedError,
    NotAllowedError,
)
from crabglamp.db import write_transaction
from crabglamp.jobs.anomalies import state
from crabglamp.jobs.anomalies.anomaly import Anomaly


@strawberry.type(description="No such anomaly, or not one the caller may see.")
class AnomalyNotFoundError(ErrorType):
    anomaly_id: strawberry.ID = strawberry.field(description="The anomaly asked for.")


@strawberry.type(description="The anomaly is resolved already; it stays as it was resolved.")
class AnomalyResolvedError(ErrorType):
    anomaly_id: strawberry.ID = strawberry.field(description="The resolved anomaly.")


@strawberry.type(description="The key's leak policy did nothing on this anomaly to undo.")
class NothingToRevertError(ErrorType):
    anomaly_id: strawberry.ID = strawberry.field(description="The anomaly.")


@strawberry.type(description="The anomaly as it now is.")
class AnomalySuccess:
    anomaly: AnomalyType = strawberry.field(description="The anomaly, with its new state.")


AcknowledgeAnomalyResult = Annotated[
    AnomalySuccess | AnomalyNotFoundError | AnomalyResolvedError | NotAllowedError,
    strawberry.union("AcknowledgeAnomalyResult"),
]
DismissAnomalyResult = Annotated[
    AnomalySuccess
    | AnomalyNotFoundError
    | AnomalyResolvedError
    | InvalidInputError
    | NotAllowedError,
    strawberry.union("DismissAnomalyResult"),
]
RestoreSpendCapResult = Annotated[
    AnomalySuccess
    | AnomalyNotFoundError
    | NothingToRevertError
    | KeyRevokedError
    | NotAllowedError,
    strawberry.union("RestoreSpendCapResult"),
]


def _not_found(anomaly_id: str) -> AnomalyNotFoundError:
    return AnomalyNotFoundError(
        message=f"no anomaly {anomaly_id}",
        code="ANOMALY_NOT_FOUND",
        anomaly_id=strawberry.ID(anomaly_id),
    )


def _not_allowed() -> NotAllowedError:
    return NotAllowedError(
        message="Only an administrator of the account may act on its anomalies.",
        code="FORBIDDEN",
    )


async def _guard(
    info: Info, conn: AsyncConnection, anomaly_id: str
) -> Anomaly | AnomalyNotFoundError | NotAllowedError:
    context = info.context
    # Checked before looking it up: a member's refusal never stores anything.
    ref = state.parse_id(anomaly_id)
    account_id = None if ref is None else await state.account_of_key(conn, ref.key_id)
    if account_id is None or not await may_read(conn, context.caller, account_id):
        return _not_found(anomaly_id)
    if not await administers(conn, context.caller, account_id):
        return _not_allowed()
    found = await state.find_anomaly(conn, anomaly_id, context.now, context.settings.thresholds)
    return _not_found(anomaly_id) if found is None else found


def _failed(
    problem: state.AnomalyProblem, anomaly_id: str
) -> AnomalyResolvedError | InvalidInputError | NothingToRevertError | KeyRevokedError:
    ident = strawberry.ID(anomaly_id)
    if problem.code == "ANOMALY_RESOLVED":
        return AnomalyResolvedError(message=problem.message, code=problem.code, anomaly_id=ident)
    if problem.code == "NOTHING_TO_REVERT":
        return NothingToRevertError(message=problem.message, code=problem.code, anomaly_id=ident)
    if problem.code == "KEY_REVOKED":
        return KeyRevokedError(
            message=problem.message,
            code=problem.code,
            key_id=strawberry.ID(anomaly_id.split(":")[1]),
        )
    return InvalidInputError(message=problem.message, code=problem.code, field="reason")


# What an action does to the anomaly it was allowed on: its new self, or why not.
Change = Callable[[AsyncConnection, Anomaly], Awaitable[Anomaly | state.AnomalyProblem]]


async def _act(info: Info, anomaly_id: str, change: Change, event: str) -> object:
    """The one way each mutation acts: checked, changed in one transaction, and told to the
    account's webhooks only when something changed (acting twice is idempotent)."""
    async with write_transaction(info.context.db.engine) as conn:
        found = await _guard(info, conn, anomaly_id)
        if not isinstance(found, Anomaly):
            return found
        done = await change(conn, found)
        if isinstance(done, state.AnomalyProblem):
            return _failed(done, anomaly_id)
        if done.state != found.state:
            await announce(conn, [done], event, info.context.now)
    return AnomalySuccess(anomaly=AnomalyType(anomaly=done))


@strawberry.type
class AnomalyMutations:
    @strawberry.mutation(
        description="Say that someone has seen the anomaly and is on it (who and when are "
        "kept). Idempotent."
    )
    async def acknowledge_anomaly(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="Anomaly.id.")],
    ) -> AcknowledgeAnomalyResult:
        context = info.context

        def change(
            conn: AsyncConnection, found: Anomaly
        ) -> Awaitable[Anomaly | state.AnomalyProblem]:
            return state.acknowledge(conn, found, context.caller.user_id, context.now)

        return await _act(info, id, change, "acknowledged")  # type: ignore[return-value]

    @strawberry.mutation(
        description="Resolve the anomaly without acting on the key (expected spend, say), with "
        "the reason why; it stays in the period's history as dismissed."
    )
    async def dismiss_anomaly(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="Anomaly.id.")],
        reason: Annotated[str, strawberry.argument(description="Why, 1 to 500 characters.")],
    ) -> DismissAnomalyResult:
        context = info.context

        def change(
            conn: AsyncConnection, found: Anomaly
        ) -> Awaitable[Anomaly | state.AnomalyProblem]:
            return state.dismiss(conn, found, context.caller.user_id, reason, context.now)

        return await _act(info, id, change, "resolved")  # type: ignore[return-value]

    @strawberry.mutation(
        description="Undo what the key's leak policy did on this anomaly: give the key back the "
        "cap it had (or resume it, if the policy suspended it)."
    )
    async def restore_spend_cap(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="Anomaly.id.")],
    ) -> RestoreSpendCapResult:
        context = info.context

        def change(
            conn: AsyncConnection, found: Anomaly
        ) -> Awaitable[Anomaly | state.AnomalyProblem]:
            return state.revert_policy(conn, found, context.caller.user_id, context.now)

        return await _act(info, id, change, "policy_reverted")  # type: ignore[return-value]
