"""Alerts: per-account webhook endpoints, HMAC-signed deliveries with retries, each event once.

An alert is an event with a stable id — an anomaly's `dedupe_key`, or a key crossing 50, 80 or
100% of its cap in a month — turned into one delivery per enabled endpoint of the account, in
the same transaction that records the anomaly or the crossing. The unique (endpoint, event id)
makes a second delivery of the same event impossible; the event id travels as the
`Idempotency-Key` header, the same on every retry, for receivers to drop duplicates.

Each attempt is POSTed with `X-CrabGlamp-Signature: t=<unix seconds>,v1=<hex>`, the HMAC-SHA256
of "<t>.<body>" under the endpoint's secret (`verify_signature` checks one). A non-2xx answer,
a timeout or a refused connection is retried with exponential backoff; every attempt is
recorded and readable (GraphQL `alertDeliveries`). Core: no web framework here.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import secrets
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from crabglamp.db import write_transaction
from crabglamp.db.dialect import insert_for
from crabglamp.db.tables import table_of
from crabglamp.jobs.anomalies import Anomaly, dollars
from crabglamp.models import AlertAttempt, AlertDelivery, AlertEndpoint, CapCrossing
from crabglamp.money import micros_to_cents
from crabglamp.periods import as_utc, month_of, utcnow
from crabglamp.usage.spend import spend_of_keys

_endpoints = table_of(AlertEndpoint)
_deliveries = table_of(AlertDelivery)
_attempts = table_of(AlertAttempt)
_crossings = table_of(CapCrossing)

SIGNATURE_HEADER = "X-CrabGlamp-Signature"
EVENT_TYPE_HEADER = "X-CrabGlamp-Event"
IDEMPOTENCY_HEADER = "Idempotency-Key"
CAP_THRESHOLDS = (50, 80, 100)
MAX_URL_LENGTH = 2000
MAX_DESCRIPTION_LENGTH = 200
SECRET_PREFIX = "whsec_"


@dataclass(frozen=True, slots=True)
class AlertSettings:
    """Delivery of alerts; each field can be set by CRABGLAMP_ALERT_<FIELD> (upper case)."""

    max_attempts: int = 8
    # The n-th retry waits backoff_seconds * 2^(n-1), at most max_backoff_seconds: 10 s, 20 s,
    # 40 s ... about 21 minutes from the first attempt to the eighth.
    backoff_seconds: float = 10.0
    max_backoff_seconds: float = 3600.0
    timeout_seconds: float = 10.0
    # A sender owns the deliveries it picked for this long (another process leaves them alone).
    lease_seconds: float = 120.0
    batch: int = 50

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AlertSettings:
        settings: AlertSettings = _from_env(cls, "CRABGLAMP_ALERT_", environ)
        return settings

    def backoff(self, attempts: int) -> timedelta:
        """The wait after the `attempts`-th failed attempt."""
        seconds = self.backoff_seconds * 2 ** max(attempts - 1, 0)
        return timedelta(seconds=min(seconds, self.max_backoff_seconds))


def _from_env(cls: Any, prefix: str, environ: Mapping[str, str] | None) -> Any:
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for f in fields(cls):
        raw = environ.get(prefix + f.name.upper())
        if raw is None or not raw.strip():
            continue
        kind = int if f.type in ("int", int) else float
        try:
            value = kind(raw.strip())
        except ValueError as exc:
            raise ValueError(f"{prefix}{f.name.upper()} must be a number, got {raw!r}") from exc
        if value <= 0:
            raise ValueError(f"{prefix}{f.name.upper()} must be positive, got {raw!r}")
        values[f.name] = value
    return cls(**values)


# Signatures


def sign(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def verify_signature(
    secret: str,
    header: str | None,
    body: bytes,
    now: datetime | None = None,
    tolerance: timedelta = timedelta(minutes=5),
) -> bool:
    """What a receiver runs: the signature matches the body and its timestamp is recent."""
    if not header:
        return False
    items = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(items.get("t", ""))
    except ValueError:
        return False
    moment = (now or utcnow()).timestamp()
    if abs(moment - timestamp) > tolerance.total_seconds():
        return False  # a replay of an old delivery
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, items.get("v1", ""))


# Endpoints


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
) -> EndpointWithSecret | AlertProblem:
    problem = check_url(url, require_https) or _check_description(description)
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
) -> EndpointView | AlertProblem:
    changes: dict[str, Any] = {}
    if url is not None:
        problem = check_url(url, require_https)
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


# Events and deliveries


@dataclass(frozen=True, slots=True)
class AlertEvent:
    id: str  # the idempotency key: the same event never makes a second delivery
    type: str
    account_id: uuid.UUID
    created_at: datetime
    data: Mapping[str, Any]

    def body(self) -> str:
        return json.dumps(
            {
                "id": self.id,
                "type": self.type,
                "createdAt": self.created_at.isoformat(),
                "accountId": str(self.account_id),
                "data": self.data,
            },
            sort_keys=True,
            separators=(",", ":"),
        )


def anomaly_event(anomaly: Anomaly, key_name: str | None = None) -> AlertEvent:
    return AlertEvent(
        id=f"anomaly:{anomaly.dedupe_key}",
        type="anomaly.detected",
        account_id=anomaly.account_id,
        created_at=anomaly.detected_at,
        data={
            "kind": anomaly.kind.value,
            "keyId": str(anomaly.key_id) if anomaly.key_id else None,
            "keyName": key_name,
            "agentId": str(anomaly.agent_id) if anomaly.agent_id else None,
            "date": anomaly.day.isoformat(),
            "severity": anomaly.severity,
            "message": anomaly.message,
            "suggestedAction": anomaly.suggested_action,
            "details": dict(anomaly.details),
        },
    )


def cap_event(
    account_id: uuid.UUID,
    key_id: uuid.UUID,
    key_name: str,
    month: date,
    cap_micros: int,
    spent_micros: int,
    threshold: int,
    now: datetime,
) -> AlertEvent:
    percent = spent_micros * 100 / cap_micros
    return AlertEvent(
        id=f"spend_cap:{key_id}:{month_of(month)}:{cap_micros}:{threshold}",
        type="spend_cap.threshold_crossed",
        account_id=account_id,
        created_at=now,
        data={
            "keyId": str(key_id),
            "keyName": key_name,
            "month": month_of(month),
            "thresholdPercent": threshold,
            "spendCapCents": micros_to_cents(cap_micros),
            "accruedCents": micros_to_cents(spent_micros),
            "percentUsed": round(percent, 2),
            "message": (
                f"Key '{key_name}' has used {percent:.0f}% of its monthly cap "
                f"({dollars(spent_micros)} of {dollars(cap_micros)})."
                + (
                    " Requests are refused until the cap is raised or the month ends."
                    if threshold >= 100
                    else ""
                )
            ),
            "suggestedAction": (
                f"Raise the cap of '{key_name}' if this spend is expected; otherwise find out "
                "which agent spends it."
            ),
        },
    )


def _insert_ignore(conn: AsyncConnection, table: Any) -> Any:
    return insert_for(conn, table)


async def enqueue(
    conn: AsyncConnection,
    events: Sequence[AlertEvent],
    now: datetime,
    endpoint_id: uuid.UUID | None = None,
) -> int:
    """One delivery per enabled endpoint of each event's account (or just `endpoint_id`), due
    now; an event already delivered (or queued) to an endpoint is not queued again."""
    if not events:
        return 0
    accounts = sorted({e.account_id for e in events})
    statement = select(_endpoints.c.id, _endpoints.c.account_id).where(
        _endpoints.c.account_id.in_(accounts), _endpoints.c.enabled.is_(True)
    )
    if endpoint_id is not None:
        statement = statement.where(_endpoints.c.id == endpoint_id)
    targets: dict[uuid.UUID, list[uuid.UUID]] = {}
    for target, account_id in await conn.execute(statement):
        targets.setdefault(account_id, []).append(target)
    rows = [
        {
            "id": uuid.uuid4(),
            "endpoint_id": target,
            "account_id": event.account_id,
            "event_id": event.id,
            "event_type": event.type,
            "payload": event.body(),
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for event in events
        for target in sorted(targets.get(event.account_id, []))
    ]
    queued = 0
    for row in rows:
        done = await conn.execute(
            _insert_ignore(conn, _deliveries)
            .values(**row)
            .on_conflict_do_nothing(
                index_elements=[_deliveries.c.endpoint_id, _deliveries.c.event_id]
            )
            .returning(_deliveries.c.id)
        )
        queued += done.first() is not None
    return queued


# Cap crossings


@dataclass(frozen=True, slots=True)
class CappedKey:
    key_id: uuid.UUID
    account_id: uuid.UUID
    name: str
    cap_micros: int | None


async def record_cap_crossings(
    conn: AsyncConnection, keys: Sequence[CappedKey], now: datetime
) -> list[AlertEvent]:
    """Crossings of 50, 80 and 100% of each key's cap this month not recorded before. When
    several are crossed at once only the highest is alerted (the lower ones are recorded, so
    that they never fire later); a new cap value starts its thresholds afresh."""
    month = date(now.year, now.month, 1)
    events: list[AlertEvent] = []
    # What the cap is enforced on: the key's LLM and voice spend of the month.
    spend = await spend_of_keys(conn, [k.key_id for k in keys if k.cap_micros], month)
    for key in sorted(keys, key=lambda k: str(k.key_id)):
        cap = key.cap_micros
        if not cap or cap <= 0:
            continue
        spent = spend[key.key_id]
        crossed = [t for t in CAP_THRESHOLDS if spent * 100 >= t * cap]
        new: list[int] = []
        for threshold in crossed:
            done = await conn.execute(
                _insert_ignore(conn, _crossings)
                .values(
                    key_id=key.key_id,
                    month=month,
                    cap_micros=cap,
                    threshold_percent=threshold,
                    account_id=key.account_id,
                    spent_micros=spent,
                    crossed_at=now,
                )
                .on_conflict_do_nothing()
                .returning(_crossings.c.threshold_percent)
            )
            if done.first() is not None:
                new.append(threshold)
        if new:
            events.append(
                cap_event(key.account_id, key.key_id, key.name, month, cap, spent, max(new), now)
            )
    return events


# Reading deliveries


@dataclass(frozen=True, slots=True)
class AttemptView:
    attempt: int
    attempted_at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int


@dataclass(frozen=True, slots=True)
class DeliveryView:
    id: uuid.UUID
    endpoint_id: uuid.UUID
    account_id: uuid.UUID
    event_id: str
    event_type: str
    payload: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    created_at: datetime
    delivered_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    attempt_log: tuple[AttemptView, ...] = field(default_factory=tuple)


DELIVERY_STATUSES = ("pending", "delivered", "failed")


async def deliveries_of(
    conn: AsyncConnection,
    account_ids: Sequence[uuid.UUID],
    endpoint_id: uuid.UUID | None = None,
    status: str | None = None,
    limit: int = 50,
    delivery_id: uuid.UUID | None = None,
) -> list[DeliveryView]:
    """Newest first, each with its attempts (two statements, whatever the count)."""
    if not account_ids:
        return []
    statement = select(_deliveries).where(_deliveries.c.account_id.in_(sorted(set(account_ids))))
    if endpoint_id is not None:
        statement = statement.where(_deliveries.c.endpoint_id == endpoint_id)
    if status is not None:
        statement = statement.where(_deliveries.c.status == status)
    if delivery_id is not None:
        statement = statement.where(_deliveries.c.id == delivery_id)
    rows = list(
        await conn.execute(
            statement.order_by(_deliveries.c.created_at.desc(), _deliveries.c.id).limit(limit)
        )
    )
    attempts: dict[uuid.UUID, list[AttemptView]] = {}
    if rows:
        found = await conn.execute(
            select(_attempts)
            .where(_attempts.c.delivery_id.in_([row.id for row in rows]))
            .order_by(_attempts.c.delivery_id, _attempts.c.attempt)
        )
        for a in found:
            attempts.setdefault(a.delivery_id, []).append(
                AttemptView(
                    a.attempt, as_utc(a.attempted_at), a.status_code, a.error, a.duration_ms
                )
            )
    return [
        DeliveryView(
            id=row.id,
            endpoint_id=row.endpoint_id,
            account_id=row.account_id,
            event_id=row.event_id,
            event_type=row.event_type,
            payload=row.payload,
            status=row.status,
            attempts=row.attempts,
            next_attempt_at=as_utc(row.next_attempt_at) if row.status == "pending" else None,
            created_at=as_utc(row.created_at),
            delivered_at=as_utc(row.delivered_at) if row.delivered_at else None,
            last_status_code=row.last_status_code,
            last_error=row.last_error,
            attempt_log=tuple(attempts.get(row.id, ())),
        )
        for row in rows
    ]


async def retry_delivery(
    conn: AsyncConnection, delivery_id: uuid.UUID, now: datetime
) -> uuid.UUID | AlertProblem:
    """A failed delivery is tried again now (with a fresh round of attempts)."""
    done = await conn.execute(
        update(_deliveries)
        .where(_deliveries.c.id == delivery_id, _deliveries.c.status == "failed")
        .values(status="pending", attempts=0, next_attempt_at=now, lease_until=None)
    )
    if done.rowcount == 1:
        return delivery_id
    exists = (
        await conn.execute(select(_deliveries.c.status).where(_deliveries.c.id == delivery_id))
    ).scalar()
    if exists is None:
        return AlertProblem("NOT_FOUND", f"no alert delivery {delivery_id}")
    return AlertProblem("NOT_FAILED", f"delivery {delivery_id} is {exists}, not failed")


async def send_test_alert(
    conn: AsyncConnection, endpoint: EndpointView, now: datetime
) -> AlertEvent:
    event = AlertEvent(
        id=f"test:{uuid.uuid4()}",
        type="test",
        account_id=endpoint.account_id,
        created_at=now,
        data={"message": "A test alert from CrabGlamp Usage: this endpoint receives alerts."},
    )
    await enqueue(conn, [event], now, endpoint_id=endpoint.id)
    return event


# Sending


@dataclass(slots=True)
class SendReport:
    attempted: int = 0
    delivered: int = 0
    retrying: int = 0
    failed: int = 0


class AlertSender:
    """Sends due deliveries. Safe to run in several processes: each claims what it sends."""

    def __init__(
        self,
        engine: AsyncEngine,
        settings: AlertSettings | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings or AlertSettings.from_env()
        self._client = client
        self._own_client = client is None

    async def close(self) -> None:
        if self._own_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self.settings.timeout_seconds, follow_redirects=False
            )
        return self._client

    async def _claim(self, now: datetime) -> list[Any]:
        token = uuid.uuid4()
        lease = now + timedelta(seconds=self.settings.lease_seconds)
        async with write_transaction(self.engine) as conn:
            due = (
                select(_deliveries.c.id)
                .join(_endpoints, _endpoints.c.id == _deliveries.c.endpoint_id)
                .where(
                    _deliveries.c.status == "pending",
                    _deliveries.c.next_attempt_at <= now,
                    or_(_deliveries.c.lease_until.is_(None), _deliveries.c.lease_until < now),
                    _endpoints.c.enabled.is_(True),
                )
                .order_by(_deliveries.c.next_attempt_at, _deliveries.c.id)
                .limit(self.settings.batch)
            )
            ids = [row[0] for row in await conn.execute(due)]
            if not ids:
                return []
            # Conditional: a concurrent sender that claimed one first keeps it.
            await conn.execute(
                update(_deliveries)
                .where(
                    _deliveries.c.id.in_(ids),
                    _deliveries.c.status == "pending",
                    or_(_deliveries.c.lease_until.is_(None), _deliveries.c.lease_until < now),
                )
                .values(lease_until=lease, lease_token=token)
            )
            rows = await conn.execute(
                select(
                    _deliveries.c.id,
                    _deliveries.c.event_id,
                    _deliveries.c.event_type,
                    _deliveries.c.payload,
                    _deliveries.c.attempts,
                    _endpoints.c.url,
                    _endpoints.c.secret,
                )
                .join(_endpoints, _endpoints.c.id == _deliveries.c.endpoint_id)
                .where(_deliveries.c.lease_token == token)
            )
            return list(rows)

    async def deliver_due(self, now: datetime | None = None) -> SendReport:
        """One attempt for every delivery that is due, concurrently; results recorded."""
        now = now or utcnow()
        report = SendReport()
        claimed = await self._claim(now)
        if not claimed:
            return report
        outcomes = await asyncio.gather(*(self._attempt(row, now) for row in claimed))
        async with write_transaction(self.engine) as conn:
            for row, (status_code, error, duration_ms) in zip(claimed, outcomes, strict=True):
                attempt = row.attempts + 1
                await conn.execute(
                    _attempts.insert().values(
                        delivery_id=row.id,
                        attempt=attempt,
                        attempted_at=now,
                        status_code=status_code,
                        error=error,
                        duration_ms=duration_ms,
                    )
                )
                values: dict[str, Any] = {
                    "attempts": attempt,
                    "last_status_code": status_code,
                    "last_error": error,
                    "lease_until": None,
                    "lease_token": None,
                }
                if error is None:
                    values |= {"status": "delivered", "delivered_at": now}
                    report.delivered += 1
                elif attempt >= self.settings.max_attempts:
                    values["status"] = "failed"
                    report.failed += 1
                else:
                    values["next_attempt_at"] = now + self.settings.backoff(attempt)
                    report.retrying += 1
                await conn.execute(
                    update(_deliveries)
                    .where(and_(_deliveries.c.id == row.id, _deliveries.c.status == "pending"))
                    .values(**values)
                )
        report.attempted = len(claimed)
        return report

    async def _attempt(self, row: Any, now: datetime) -> tuple[int | None, str | None, int]:
        body = row.payload.encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "CrabGlamp-Alerts/1",
            SIGNATURE_HEADER: sign(row.secret, int(now.timestamp()), body),
            IDEMPOTENCY_HEADER: row.event_id,
            EVENT_TYPE_HEADER: row.event_type,
        }
        began = time.monotonic()
        try:
            response = await self._http().post(row.url, content=body, headers=headers)
        except httpx.TimeoutException:
            return None, "timed out", _ms(began)
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"[:500], _ms(began)
        status = response.status_code
        if 200 <= status < 300:
            return status, None, _ms(began)
        return status, f"HTTP {status}: {response.text[:200]}", _ms(began)


def _ms(began: float) -> int:
    return int((time.monotonic() - began) * 1000)
