"""Managing alert endpoints: create, update, delete, rotate the signing secret, send a test alert,
retry a failed delivery.

Only administrators of the account (crabglamp.access.administers) may; an endpoint or delivery
of an account the caller cannot read is reported as not found. Expected failures are typed
results implementing `Error`, as for the key mutations.
"""

from __future__ import annotations

import uuid
from typing import Annotated

import strawberry
from sqlalchemy.ext.asyncio import AsyncConnection

from crabglamp.access import administers, may_read
from crabglamp.api.graphql.alerts.types import AlertDeliveryType, AlertEndpointType
from crabglamp.api.graphql.context import Info
from crabglamp.api.graphql.virtual_keys.mutations import (
    AccountNotFoundError,
    ErrorType,
    InvalidInputError,
    NotAllowedError,
)
from crabglamp.db import write_transaction
from crabglamp.jobs.alerts import deliveries, endpoints, outbox


@strawberry.type(description="No such alert endpoint, or not one the caller may see.")
class AlertEndpointNotFoundError(ErrorType):
    endpoint_id: strawberry.ID


@strawberry.type(description="No such alert delivery, or not one the caller may see.")
class AlertDeliveryNotFoundError(ErrorType):
    delivery_id: strawberry.ID


@strawberry.type(
    description="The URL's host is, or resolves to, an address alert webhooks may not reach "
    "(loopback, private, link-local, unique-local, multicast or cloud metadata); the message "
    "says which."
)
class AlertEndpointUrlRefusedError(ErrorType):
    url: str


@strawberry.type(description="Only a failed delivery can be retried; this one is not failed.")
class AlertDeliveryNotFailedError(ErrorType):
    delivery_id: strawberry.ID


@strawberry.type(
    description="The endpoint and its signing secret: shown this once. Verify each alert's "
    "X-CrabGlamp-Signature with it."
)
class AlertEndpointSecretSuccess:
    endpoint: AlertEndpointType
    signing_secret: str


@strawberry.type(description="The endpoint as it now is (or was, when deleted).")
class AlertEndpointSuccess:
    endpoint: AlertEndpointType


@strawberry.type(description="A test alert is queued for the endpoint; it is sent within seconds.")
class SendTestAlertSuccess:
    event_id: str


@strawberry.type(description="The delivery, pending again: it is tried within seconds.")
class RetryAlertDeliverySuccess:
    delivery: AlertDeliveryType


CreateAlertEndpointResult = Annotated[
    AlertEndpointSecretSuccess
    | AccountNotFoundError
    | InvalidInputError
    | AlertEndpointUrlRefusedError
    | NotAllowedError,
    strawberry.union("CreateAlertEndpointResult"),
]
UpdateAlertEndpointResult = Annotated[
    AlertEndpointSuccess
    | AlertEndpointNotFoundError
    | InvalidInputError
    | AlertEndpointUrlRefusedError
    | NotAllowedError,
    strawberry.union("UpdateAlertEndpointResult"),
]
DeleteAlertEndpointResult = Annotated[
    AlertEndpointSuccess | AlertEndpointNotFoundError | NotAllowedError,
    strawberry.union("DeleteAlertEndpointResult"),
]
RotateAlertEndpointSecretResult = Annotated[
    AlertEndpointSecretSuccess | AlertEndpointNotFoundError | NotAllowedError,
    strawberry.union("RotateAlertEndpointSecretResult"),
]
SendTestAlertResult = Annotated[
    SendTestAlertSuccess | AlertEndpointNotFoundError | NotAllowedError,
    strawberry.union("SendTestAlertResult"),
]
RetryAlertDeliveryResult = Annotated[
    RetryAlertDeliverySuccess
    | AlertDeliveryNotFoundError
    | AlertDeliveryNotFailedError
    | NotAllowedError,
    strawberry.union("RetryAlertDeliveryResult"),
]


@strawberry.input(description="A new alert endpoint.")
class CreateAlertEndpointInput:
    account_id: strawberry.ID
    url: str = strawberry.field(
        description="http(s) URL; https only in production. Its host may not be, or resolve "
        "to, a loopback, private or metadata address (unless the deployment allows private "
        "targets; loopback is allowed in development)."
    )
    description: str = strawberry.field(default="", description="What it is for.")


@strawberry.input(description="Changes to an alert endpoint; null leaves a field as it is.")
class UpdateAlertEndpointInput:
    id: strawberry.ID
    url: str | None = None
    description: str | None = None
    enabled: bool | None = None


def _not_allowed() -> NotAllowedError:
    return NotAllowedError(
        message="Only an administrator of the account may change its alert endpoints.",
        code="FORBIDDEN",
    )


def _endpoint_not_found(endpoint_id: object) -> AlertEndpointNotFoundError:
    return AlertEndpointNotFoundError(
        message=f"no alert endpoint {endpoint_id}",
        code="NOT_FOUND",
        endpoint_id=strawberry.ID(str(endpoint_id)),
    )


def _delivery_not_found(delivery_id: object) -> AlertDeliveryNotFoundError:
    return AlertDeliveryNotFoundError(
        message=f"no alert delivery {delivery_id}",
        code="NOT_FOUND",
        delivery_id=strawberry.ID(str(delivery_id)),
    )


def _invalid(
    problem: endpoints.AlertProblem, url: str | None
) -> InvalidInputError | AlertEndpointUrlRefusedError:
    if problem.code == "URL_REFUSED":
        return AlertEndpointUrlRefusedError(
            message=problem.message, code=problem.code, url=(url or "").strip()
        )
    return InvalidInputError(message=problem.message, code=problem.code, field=problem.field or "")


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


async def _guard_account(
    info: Info, conn: AsyncConnection, account_id: uuid.UUID
) -> NotAllowedError | bool:
    """True when the caller administers the account; False when it may not even read it."""
    caller = info.context.caller
    if not await may_read(conn, caller, account_id):
        return False
    if not await administers(conn, caller, account_id):
        return _not_allowed()
    return True


async def _guard_endpoint(
    info: Info, conn: AsyncConnection, endpoint_id: str
) -> endpoints.EndpointView | AlertEndpointNotFoundError | NotAllowedError:
    parsed = _uuid(endpoint_id)
    endpoint = None if parsed is None else await endpoints.get_endpoint(conn, parsed)
    if endpoint is None:
        return _endpoint_not_found(endpoint_id)
    allowed = await _guard_account(info, conn, endpoint.account_id)
    if allowed is False:
        return _endpoint_not_found(endpoint_id)
    if isinstance(allowed, NotAllowedError):
        return allowed
    return endpoint


def _require_https(info: Info) -> bool:
    return info.context.settings.production


@strawberry.type
class AlertMutations:
    @strawberry.mutation(
        description="Add a webhook for the account's alerts. Its signing secret is in the "
        "result, and shown nowhere else."
    )
    async def create_alert_endpoint(
        self, info: Info, input: CreateAlertEndpointInput
    ) -> CreateAlertEndpointResult:
        account_id = _uuid(input.account_id)
        if account_id is None:
            return InvalidInputError(
                message=f"accountId must be a UUID, got {input.account_id!r}",
                code="INVALID_INPUT",
                field="accountId",
            )
        async with write_transaction(info.context.db.engine) as conn:
            allowed = await _guard_account(info, conn, account_id)
            if allowed is False:
                return AccountNotFoundError(
                    message=f"no account {account_id}",
                    code="ACCOUNT_NOT_FOUND",
                    account_id=strawberry.ID(str(account_id)),
                )
            if isinstance(allowed, NotAllowedError):
                return allowed
            created = await endpoints.create_endpoint(
                conn,
                account_id,
                input.url,
                input.description,
                _require_https(info),
                info.context.now,
                info.context.settings.webhook_targets,
            )
        if isinstance(created, endpoints.AlertProblem):
            return _invalid(created, input.url)
        return AlertEndpointSecretSuccess(
            endpoint=AlertEndpointType(endpoint=created.endpoint), signing_secret=created.secret
        )

    @strawberry.mutation(description="Change an endpoint's URL or description, or pause it.")
    async def update_alert_endpoint(
        self, info: Info, input: UpdateAlertEndpointInput
    ) -> UpdateAlertEndpointResult:
        async with write_transaction(info.context.db.engine) as conn:
            guarded = await _guard_endpoint(info, conn, input.id)
            if not isinstance(guarded, endpoints.EndpointView):
                return guarded
            updated = await endpoints.update_endpoint(
                conn,
                guarded.id,
                input.url,
                input.description,
                input.enabled,
                _require_https(info),
                info.context.settings.webhook_targets,
            )
        if isinstance(updated, endpoints.AlertProblem):
            if updated.code == "NOT_FOUND":
                return _endpoint_not_found(input.id)
            return _invalid(updated, input.url)
        return AlertEndpointSuccess(endpoint=AlertEndpointType(endpoint=updated))

    @strawberry.mutation(description="Remove an endpoint and its delivery history.")
    async def delete_alert_endpoint(
        self, info: Info, id: strawberry.ID
    ) -> DeleteAlertEndpointResult:
        async with write_transaction(info.context.db.engine) as conn:
            guarded = await _guard_endpoint(info, conn, id)
            if not isinstance(guarded, endpoints.EndpointView):
                return guarded
            deleted = await endpoints.delete_endpoint(conn, guarded.id)
        if isinstance(deleted, endpoints.AlertProblem):
            return _endpoint_not_found(id)
        return AlertEndpointSuccess(endpoint=AlertEndpointType(endpoint=deleted))

    @strawberry.mutation(
        description="A new signing secret, used from the next attempt on; shown this once."
    )
    async def rotate_alert_endpoint_secret(
        self, info: Info, id: strawberry.ID
    ) -> RotateAlertEndpointSecretResult:
        async with write_transaction(info.context.db.engine) as conn:
            guarded = await _guard_endpoint(info, conn, id)
            if not isinstance(guarded, endpoints.EndpointView):
                return guarded
            rotated = await endpoints.rotate_endpoint_secret(conn, guarded.id)
        if isinstance(rotated, endpoints.AlertProblem):
            return _endpoint_not_found(id)
        return AlertEndpointSecretSuccess(
            endpoint=AlertEndpointType(endpoint=rotated.endpoint), signing_secret=rotated.secret
        )

    @strawberry.mutation(description="Queue a test alert for the endpoint.")
    async def send_test_alert(self, info: Info, endpoint_id: strawberry.ID) -> SendTestAlertResult:
        async with write_transaction(info.context.db.engine) as conn:
            guarded = await _guard_endpoint(info, conn, endpoint_id)
            if not isinstance(guarded, endpoints.EndpointView):
                return guarded
            event = await outbox.send_test_alert(conn, guarded, info.context.now)
        return SendTestAlertSuccess(event_id=event.id)

    @strawberry.mutation(description="Try a failed delivery again, with a fresh round of attempts.")
    async def retry_alert_delivery(self, info: Info, id: strawberry.ID) -> RetryAlertDeliveryResult:
        parsed = _uuid(id)
        if parsed is None:
            return _delivery_not_found(id)
        async with write_transaction(info.context.db.engine) as conn:
            account_id = await deliveries.account_of_delivery(conn, parsed)
            if account_id is None:
                return _delivery_not_found(id)
            allowed = await _guard_account(info, conn, account_id)
            if allowed is False:
                return _delivery_not_found(id)
            if isinstance(allowed, NotAllowedError):
                return allowed
            retried = await deliveries.retry_delivery(conn, parsed, info.context.now)
            if isinstance(retried, endpoints.AlertProblem):
                return AlertDeliveryNotFailedError(
                    message=retried.message, code=retried.code, delivery_id=strawberry.ID(id)
                )
            (delivery,) = await deliveries.deliveries_of(conn, [account_id], delivery_id=parsed)
        return RetryAlertDeliverySuccess(delivery=AlertDeliveryType(delivery=delivery))
