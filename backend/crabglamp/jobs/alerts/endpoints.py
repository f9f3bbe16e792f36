"""An account's webhook endpoints: checked URLs, signing secrets shown once, and their changes."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from crabglamp.db.tables import table_of
from crabglamp.jobs.targets import target_problem
from crabglamp.models import AlertAttempt, AlertDelivery, AlertEndpoint
from crabglamp.periods import as_utc, utcnow
from crabglamp.settings import WebhookTargets

_endpoints = table_of(AlertEndpoint)
_deliveries = table_of(AlertDelivery)
_attempts = table_of(AlertAttempt)

MAX_URL_LENGTH = 2000
MAX_DESCRIPTION_LENGTH = 200
SECRET_PREFIX = "whsec_"


@dataclass(frozen=True, slots=True)
class EndpointView:
    id: uuid.UUID
    account_id: uuid.UUID
    url: str
    description: str
    enabled: bool
    created_at: datetime
    # Enough of the secret to tell two apart; the whole secret is shown once only.
    secret_hint: str


@dataclass(frozen=True, slots=True)
class EndpointWithSecret:
    endpoint: EndpointView
    secret: str


@dataclass(frozen=True, slots=True)
class AlertProblem:
    """An expected failure: `code` is stable, `message` is for people, `field` names the input."""

    code: str
    message: str
    field: str | None = None


def _view(row: Any) -> EndpointView:
    return EndpointView(
        id=row.id,
        account_id=row.account_id,
        url=row.url,
        description=row.description,
        enabled=row.enabled,
        created_at=as_utc(row.created_at),
        secret_hint=row.secret[: len(SECRET_PREFIX) + 4] + "…",
    )


def check_url(url: str, require_https: bool) -> AlertProblem | None:
    url = url.strip()
    if not url or len(url) > MAX_URL_LENGTH:
        return AlertProblem("INVALID_INPUT", f"a URL of 1 to {MAX_URL_LENGTH} characters", "url")
    parts = urlsplit(url)
    allowed = ("https",) if require_https else ("https", "http")
    if parts.scheme not in allowed or not parts.hostname:
        scheme = "an https" if require_https else "an http or https"
        return AlertProblem("INVALID_INPUT", f"the endpoint needs {scheme} URL", "url")
    if parts.username or parts.password:
        return AlertProblem("INVALID_INPUT", "credentials in the URL are not allowed", "url")
    return None


async def check_target(url: str, targets: WebhookTargets) -> AlertProblem | None:
    """Refused when the URL's host is, or resolves to, an address webhooks may not reach
    (`jobs/targets.py`; each send checks again)."""
    problem = await target_problem(url.strip(), targets)
    return None if problem is None else AlertProblem("URL_REFUSED", problem, "url")


def _check_description(description: str) -> AlertProblem | None:
    if len(description) > MAX_DESCRIPTION_LENGTH:
        return AlertProblem(
            "INVALID_INPUT",
            f"a description has at most {MAX_DESCRIPTION_LENGTH} characters",
            "description",
        )
    return None


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


async def get_endpoint(conn: AsyncConnection, endpoint_id: uuid.UUID) -> EndpointView | None:
    row = (await conn.execute(select(_endpoints).where(_endpoints.c.id == endpoint_id))).first()
    return _view(row) if row is not None else None


async def endpoints_of(
    conn: AsyncConnection, account_ids: Sequence[uuid.UUID]
) -> list[EndpointView]:
    if not account_ids:
        return []
    rows = await conn.execute(
        select(_endpoints)
        .where(_endpoints.c.account_id.in_(sorted(set(account_ids))))
        .order_by(_endpoints.c.created_at, _endpoints.c.id)
    )
    return [_view(row) for row in rows]


async def create_endpoint(
    conn: AsyncConnection,
    account_id: uuid.UUID,
    url: str,
    description: str = "",
    require_https: bool = False,
    now: datetime | None = None,
    targets: WebhookTargets | None = None,
) -> EndpointWithSecret | AlertProblem:
    problem = (
        check_url(url, require_https)
        or _check_description(description)
        or await check_target(url, targets or WebhookTargets())
    )
    if problem is not None:
        return problem
    secret = new_secret()
    endpoint_id = uuid.uuid4()
    await conn.execute(
        _endpoints.insert().values(
            id=endpoint_id,
            account_id=account_id,
            url=url.strip(),
            description=description.strip(),
            secret=secret,
            enabled=True,
            created_at=now or utcnow(),
        )
    )
    view = await get_endpoint(conn, endpoint_id)
    assert view is not None
    return EndpointWithSecret(view, secret)


def _not_found(endpoint_id: uuid.UUID) -> AlertProblem:
    return AlertProblem("NOT_FOUND", f"no alert endpoint {endpoint_id}")


async def update_endpoint(
    conn: AsyncConnection,
    endpoint_id: uuid.UUID,
    url: str | None = None,
    description: str | None = None,
    enabled: bool | None = None,
    require_https: bool = False,
    targets: WebhookTargets | None = None,
) -> EndpointView | AlertProblem:
    changes: dict[str, Any] = {}
    if url is not None:
        problem = check_url(url, require_https) or await check_target(
            url, targets or WebhookTargets()
        )
        if problem is not None:
            return problem
        changes["url"] = url.strip()
    if description is not None:
        problem = _check_description(description)
        if problem is not None:
            return problem
        changes["description"] = description.strip()
    if enabled is not None:
        changes["enabled"] = enabled
    if changes:
        await conn.execute(
            update(_endpoints).where(_endpoints.c.id == endpoint_id).values(**changes)
        )
    view = await get_endpoint(conn, endpoint_id)
    return view if view is not None else _not_found(endpoint_id)


async def rotate_endpoint_secret(
    conn: AsyncConnection, endpoint_id: uuid.UUID
) -> EndpointWithSecret | AlertProblem:
    """A new signing secret from the next attempt on; the old one stops signing at once."""
    secret = new_secret()
    done = await conn.execute(
        update(_endpoints).where(_endpoints.c.id == endpoint_id).values(secret=secret)
    )
    if done.rowcount != 1:
        return _not_found(endpoint_id)
    view = await get_endpoint(conn, endpoint_id)
    assert view is not None
    return EndpointWithSecret(view, secret)


async def delete_endpoint(
    conn: AsyncConnection, endpoint_id: uuid.UUID
) -> EndpointView | AlertProblem:
    """The endpoint and its delivery history go; nothing more is sent to it."""
    view = await get_endpoint(conn, endpoint_id)
    if view is None:
        return _not_found(endpoint_id)
    ids = select(_deliveries.c.id).where(_deliveries.c.endpoint_id == endpoint_id)
    await conn.execute(delete(_attempts).where(_attempts.c.delivery_id.in_(ids)))
    await conn.execute(delete(_deliveries).where(_deliveries.c.endpoint_id == endpoint_id))
    await conn.execute(delete(_endpoints).where(_endpoints.c.id == endpoint_id))
    return view
