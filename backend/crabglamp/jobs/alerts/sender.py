"""Sending due deliveries: claimed under a lease (several processes may send), POSTed signed and
concurrently, each attempt recorded, retried with backoff until `max_attempts`."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from crabglamp.db import write_transaction
from crabglamp.db.tables import table_of
from crabglamp.jobs._http import OwnedClient, refusal, transport_error
from crabglamp.jobs.failures import StepFailures
from crabglamp.jobs.signing import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, sign
from crabglamp.jobs.targets import webhook_client
from crabglamp.models import AlertAttempt, AlertDelivery, AlertEndpoint
from crabglamp.periods import utcnow
from crabglamp.settings import AlertSettings, WebhookTargets

_endpoints = table_of(AlertEndpoint)
_deliveries = table_of(AlertDelivery)
_attempts = table_of(AlertAttempt)

EVENT_TYPE_HEADER = "X-CrabGlamp-Event"


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
        *,
        targets: WebhookTargets | None = None,
        failures: StepFailures | None = None,
    ) -> None:
        self.engine = engine
        # A served app passes its Settings' (crabglamp.settings); the defaults otherwise.
        self.settings = settings or AlertSettings()
        self.targets = targets or WebhookTargets()
        self.failures = failures or StepFailures()
        # Every send resolves the host once and connects to the checked address (targets.py).
        self._http = OwnedClient(
            self.settings.timeout_seconds,
            client,
            make=lambda timeout: webhook_client(timeout, self.targets),
        )

    async def close(self) -> None:
        await self._http.close()

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
                    _deliveries.c.account_id,
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
        began = time.monotonic()
        try:
            return await self._post(row, now, began)
        except Exception:
            # One delivery's surprise is its own: the others of the batch are still recorded.
            self.failures.failed("alert_delivery", row.account_id, f"delivery {row.id}")
            return None, "delivery failed", _ms(began)

    async def _post(
        self, row: Any, now: datetime, began: float
    ) -> tuple[int | None, str | None, int]:
        body = row.payload.encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "CrabGlamp-Alerts/1",
            SIGNATURE_HEADER: sign(row.secret, int(now.timestamp()), body),
            IDEMPOTENCY_HEADER: row.event_id,
            EVENT_TYPE_HEADER: row.event_type,
        }
        try:
            response = await self._http.get().post(row.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return None, transport_error(exc), _ms(began)
        return response.status_code, refusal(response), _ms(began)


def _ms(began: float) -> int:
    return int((time.monotonic() - began) * 1000)
