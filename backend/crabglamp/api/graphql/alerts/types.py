"""`AlertEndpoint`, `AlertDelivery` and `AlertAttempt`: webhooks and what was sent to them."""

from __future__ import annotations

import enum
from datetime import datetime
from urllib.parse import urlsplit

import strawberry

from crabglamp.jobs.alerts.deliveries import DeliveryView
from crabglamp.jobs.alerts.endpoints import EndpointView


@strawberry.enum(name="AlertDeliveryStatus", description="Where a delivery stands.")
class AlertDeliveryStatus(enum.Enum):
    PENDING = strawberry.enum_value("pending", description="Not acknowledged yet; retried.")
    DELIVERED = strawberry.enum_value("delivered", description="The endpoint answered 2xx.")
    FAILED = strawberry.enum_value(
        "failed", description="Every attempt failed; retryAlertDelivery tries again."
    )


def redacted_url(url: str) -> str:
    """The URL's origin and '/…': which receiver, not how to post to it."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "…"
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if not parts.scheme or not host:
        return "…"
    return f"{parts.scheme}://{host}{'' if port is None else f':{port}'}/…"


@strawberry.type(
    name="AlertEndpoint",
    description="A webhook of an account: every alert (a new anomaly, a key crossing 50, 80 or "
    "100% of its cap) is POSTed there as JSON, signed in X-CrabGlamp-Signature "
    "(t=<unix seconds>,v1=<hex HMAC-SHA256 of '<t>.<body>'>).",
)
class AlertEndpointType:
    endpoint: strawberry.Private[EndpointView]
    # Whether the caller administers the endpoint's account (mutations are admins' only).
    admin: strawberry.Private[bool] = True

    @strawberry.field(description="The endpoint's id.")
    def id(self) -> strawberry.ID:
        return strawberry.ID(str(self.endpoint.id))

    @strawberry.field(description="The account whose alerts it receives.")
    def account_id(self) -> strawberry.ID:
        return strawberry.ID(str(self.endpoint.account_id))

    @strawberry.field(
        description="Where alerts are POSTed. Only the account's admins see the whole URL; "
        "other readers see its origin followed by '/…' (a webhook's path and query often carry "
        "the receiver's secret), e.g. 'https://hooks.example.com/…'."
    )
    def url(self) -> str:
        return self.endpoint.url if self.admin else redacted_url(self.endpoint.url)

    @strawberry.field(description="What it is for, in the account's words.")
    def description(self) -> str:
        return self.endpoint.description

    @strawberry.field(description="Disabled endpoints receive nothing; their queue waits.")
    def enabled(self) -> bool:
        return self.endpoint.enabled

    @strawberry.field(description="When it was added.")
    def created_at(self) -> datetime:
        return self.endpoint.created_at

    @strawberry.field(
        description="The start of the signing secret, to tell secrets apart; the whole "
        "secret is shown once, when the endpoint is created or its secret rotated."
    )
    def secret_hint(self) -> str:
        return self.endpoint.secret_hint


@strawberry.type(name="AlertAttempt", description="One try at delivering an alert.")
class AlertAttemptType:
    attempt: int = strawberry.field(description="1 for the first try, then 2, 3 ...")
    attempted_at: datetime = strawberry.field(description="When it was sent.")
    status_code: int | None = strawberry.field(
        description="The endpoint's HTTP status; null when there was no answer."
    )
    error: str | None = strawberry.field(description="Why it failed; null when it succeeded.")
    duration_ms: int = strawberry.field(description="How long the endpoint took to answer.")


@strawberry.type(
    name="AlertDelivery",
    description="One alert for one endpoint. Its eventId is the Idempotency-Key header of "
    "every attempt: an alert is delivered to an endpoint at most once.",
)
class AlertDeliveryType:
    delivery: strawberry.Private[DeliveryView]

    @strawberry.field(description="The delivery's id.")
    def id(self) -> strawberry.ID:
        return strawberry.ID(str(self.delivery.id))

    @strawberry.field(description="The endpoint it goes to.")
    def endpoint_id(self) -> strawberry.ID:
        return strawberry.ID(str(self.delivery.endpoint_id))

    @strawberry.field(
        description="The alert's id, e.g. anomaly:SPIKE_ON_QUIET_KEY:<key>:2026-11 or "
        "spend_cap:<key>:2026-11:<cap micro-cents>:80."
    )
    def event_id(self) -> str:
        return self.delivery.event_id

    @strawberry.field(description="anomaly.detected, spend_cap.threshold_crossed or test.")
    def event_type(self) -> str:
        return self.delivery.event_type

    @strawberry.field(description="The JSON body, the same bytes on every attempt.")
    def payload(self) -> str:
        return self.delivery.payload

    @strawberry.field(description="Pending, delivered or failed.")
    def status(self) -> AlertDeliveryStatus:
        return AlertDeliveryStatus(self.delivery.status)

    @strawberry.field(description="How many attempts were made.")
    def attempts(self) -> int:
        return self.delivery.attempts

    @strawberry.field(description="When it was queued.")
    def created_at(self) -> datetime:
        return self.delivery.created_at

    @strawberry.field(description="When the next attempt is due; null unless pending.")
    def next_attempt_at(self) -> datetime | None:
        return self.delivery.next_attempt_at

    @strawberry.field(description="When the endpoint acknowledged it.")
    def delivered_at(self) -> datetime | None:
        return self.delivery.delivered_at

    @strawberry.field(description="The HTTP status of the last attempt.")
    def last_status_code(self) -> int | None:
        return self.delivery.last_status_code

    @strawberry.field(description="Why the last attempt failed.")
    def last_error(self) -> str | None:
        return self.delivery.last_error

    @strawberry.field(description="Every attempt, first to last.")
    def attempt_log(self) -> list[AlertAttemptType]:
        return [
            AlertAttemptType(
                attempt=a.attempt,
                attempted_at=a.attempted_at,
                status_code=a.status_code,
                error=a.error,
                duration_ms=a.duration_ms,
            )
            for a in self.delivery.attempt_log
        ]
