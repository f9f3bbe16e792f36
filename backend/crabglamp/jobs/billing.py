"""Reporting usage to billing: each account's running totals, per invoice line and month, sent to
a billing sink (a webhook) every minute, exactly once each.

A report says: account A's line L (COMPUTE, LLM, VOICE) in month M stands at T micro-cents as of
moment t, which is D more than the previous report said; it covers the window from the previous
report's moment to t. Its id, "{A}:{L}:{M}:{seq}", is the idempotency key: seq counts the line's
reports, 1, 2, 3 ... without gaps.

Exactly once across retries and restarts: the next report is persisted (billing_line, one row
per account, line and month) before it is sent, and only an acknowledgement (a 2xx) moves it
from pending to reported. Until then every run resends that same report (same id, same
numbers); a new report is composed only after it, from the persisted total, never from memory.
So a sink that drops repeated ids sees every report once, and its sum of deltas (or its latest
total) is the running total.

A month is reported while it is current and for `close_after_seconds` after it ends (late
events, open compute intervals); then a last report marked `final` closes it. Its final total is
the month's invoice, line by line (`invoice.py`, the same numbers as `usage`). Events recorded
after that are not reported. Core: no web framework here.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from crabglamp.db import read_transaction, write_transaction
from crabglamp.db.dialect import insert_for
from crabglamp.db.tables import table_of
from crabglamp.jobs._http import OwnedClient, refusal, transport_error
from crabglamp.jobs.failures import StepFailures
from crabglamp.jobs.signing import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, sign
from crabglamp.models import (
    Account,
    BillingLine,
    ComputeDaily,
    ComputeInterval,
    LlmDaily,
    VoiceDaily,
)
from crabglamp.money import micros_to_cents, round_half_up_cents
from crabglamp.periods import Period, as_utc, month_of, month_period, parse_month, utcnow
from crabglamp.settings import BillingSettings
from crabglamp.usage.invoice import invoice
from crabglamp.usage.query import UsageQuery

_lines = table_of(BillingLine)
_accounts = table_of(Account)
_intervals = table_of(ComputeInterval)
_DAILY: tuple[Any, ...] = (
    table_of(LlmDaily),
    table_of(VoiceDaily),
    table_of(ComputeDaily),
)

LINES = ("COMPUTE", "LLM", "VOICE")  # the invoice's axes, in its order


def report_id(account_id: uuid.UUID, line: str, month: str, seq: int) -> str:
    return f"{account_id}:{line}:{month}:{seq}"


@dataclass(frozen=True, slots=True)
class Report:
    id: str
    account_id: uuid.UUID
    line: str
    month: str
    seq: int
    window_start: datetime | None
    window_end: datetime
    total_micros: int
    delta_micros: int
    final: bool

    def payload(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "accountId": str(self.account_id),
            "line": self.line,
            "period": self.month,
            "sequence": self.seq,
            "windowStart": self.window_start.isoformat() if self.window_start else None,
            "windowEnd": self.window_end.isoformat(),
            "totalMicros": self.total_micros,
            "totalCents": micros_to_cents(self.total_micros),
            # What the invoice line would charge today: the running total rounded half-up.
            "amountCents": round_half_up_cents(self.total_micros),
            "deltaMicros": self.delta_micros,
            "deltaCents": micros_to_cents(self.delta_micros),
            "final": self.final,
        }


def _report(row: Any) -> Report:
    return Report(
        id=report_id(row.account_id, row.line, row.month, row.pending_seq),
        account_id=row.account_id,
        line=row.line,
        month=row.month,
        seq=row.pending_seq,
        window_start=as_utc(row.reported_as_of) if row.reported_as_of else None,
        window_end=as_utc(row.pending_as_of),
        total_micros=row.pending_total_micros,
        delta_micros=row.pending_total_micros - row.reported_total_micros,
        final=row.pending_final,
    )


@dataclass(slots=True)
class RunReport:
    composed: int = 0
    sent: int = 0
    failed: int = 0
    error: str | None = None


def _previous_month(day: date) -> Period:
    first = day.replace(day=1) - timedelta(days=1)
    return month_period(first.year, first.month)


async def _active_accounts(conn: AsyncConnection, period: Period) -> set[uuid.UUID]:
    """Accounts with any usage in the period: rollup rows or an open compute interval."""
    conditions = [
        exists().where(
            t.c.account_id == _accounts.c.id, t.c.day >= period.start, t.c.day <= period.end
        )
        for t in _DAILY
    ]
    conditions.append(
        exists().where(
            _intervals.c.account_id == _accounts.c.id,
            _intervals.c.end.is_(None),
            _intervals.c.start < period.end_dt,
        )
    )
    rows = await conn.execute(select(_accounts.c.id).where(or_(*conditions)))
    return {row[0] for row in rows}


class BillingReporter:
    def __init__(
        self,
        engine: AsyncEngine,
        settings: BillingSettings | None = None,
        client: httpx.AsyncClient | None = None,
        *,
        failures: StepFailures | None = None,
    ) -> None:
        self.engine = engine
        # A served app passes its Settings' (crabglamp.settings); the defaults otherwise.
        self.settings = settings or BillingSettings()
        self.failures = failures or StepFailures()
        # The sink is the operator's own (CRABGLAMP_BILLING_SINK_URL), not a tenant's: it may
        # well be on a private network, so the webhook target rules (targets.py) do not apply.
        self._http = OwnedClient(self.settings.timeout_seconds, client)

    async def close(self) -> None:
        await self._http.close()

    async def run_once(self, now: datetime | None = None) -> RunReport:
        """Send what is pending, compose the next reports, send them."""
        now = as_utc(now or utcnow())
        run = RunReport()
        await self.send_pending(now, run)
        run.composed = await self.compose(now)
        await self.send_pending(now, run)
        return run

    # Composing

    async def _months(self, conn: AsyncConnection, now: datetime) -> list[Period]:
        current = month_period(now.year, now.month)
        months = {current, _previous_month(now.date())}
        # Months whose final report was not acknowledged yet, however old (the reporter was down).
        rows = await conn.execute(
            select(_lines.c.month).where(_lines.c.closed.is_(False)).distinct()
        )
        months.update(parse_month(row[0]) for row in rows)
        return sorted(months, key=lambda p: p.start)

    async def compose(self, now: datetime) -> int:
        """Persist the next report of every line whose total moved (or whose month closes) and
        that has nothing pending. Totals are read in one snapshot, written in a short transaction."""
        close_after = timedelta(seconds=self.settings.close_after_seconds)
        wanted: list[tuple[uuid.UUID, str, str, int, bool]] = []
        async with read_transaction(self.engine) as conn:
            months = await self._months(conn, now)
            for period in months:
                month = month_of(period.start)
                closing = now >= period.end_dt + close_after
                states = {
                    (row.account_id, row.line): row
                    for row in await conn.execute(select(_lines).where(_lines.c.month == month))
                }
                accounts = await _active_accounts(conn, period) | {a for a, _ in states}
                for account_id in sorted(accounts):
                    # Each account on its own (a savepoint: on PostgreSQL a failed statement
                    # spoils the transaction): one account's bad data delays only its reports.
                    try:
                        async with conn.begin_nested():
                            bill = await invoice(conn, UsageQuery(period, (account_id,)), now)
                    except Exception:
                        self.failures.failed("billing", account_id, f"composing {month}")
                        continue
                    for bill_line in bill.lines:
                        axis = bill_line.axis.value
                        state = states.get((account_id, axis))
                        total = bill_line.continuous_micros
                        if state is None:
                            if total != 0:
                                wanted.append((account_id, axis, month, total, closing))
                            continue
                        if state.closed or state.pending_seq is not None:
                            continue
                        if total != state.reported_total_micros or closing:
                            wanted.append((account_id, axis, month, total, closing))
        if not wanted:
            return 0
        composed = 0
        async with write_transaction(self.engine) as conn:
            for account_id, line, month, total, final in wanted:
                key = and_(
                    _lines.c.account_id == account_id,
                    _lines.c.line == line,
                    _lines.c.month == month,
                )
                await conn.execute(
                    insert_for(self.engine, _lines)
                    .values(
                        account_id=account_id,
                        line=line,
                        month=month,
                        reported_seq=0,
                        reported_total_micros=0,
                        pending_final=False,
                        closed=False,
                        attempts=0,
                    )
                    .on_conflict_do_nothing()
                )
                # Conditional: another process that composed this line first wins.
                done = await conn.execute(
                    update(_lines)
                    .where(key, _lines.c.pending_seq.is_(None), _lines.c.closed.is_(False))
                    .values(
                        pending_seq=_lines.c.reported_seq + 1,
                        pending_total_micros=total,
                        pending_as_of=now,
                        pending_final=final,
                        attempts=0,
                        last_error=None,
                    )
                )
                composed += done.rowcount
        return composed

    # Sending

    async def _claim(self, now: datetime) -> tuple[uuid.UUID, list[Report]]:
        token = uuid.uuid4()
        lease = now + timedelta(seconds=self.settings.lease_seconds)
        free = or_(_lines.c.lease_until.is_(None), _lines.c.lease_until < now)
        async with write_transaction(self.engine) as conn:
            picked = (
                select(_lines.c.account_id, _lines.c.line, _lines.c.month)
                .where(_lines.c.pending_seq.is_not(None), free)
                .order_by(_lines.c.month, _lines.c.account_id, _lines.c.line)
                .limit(self.settings.batch)
            )
            for account_id, line, month in list(await conn.execute(picked)):
                await conn.execute(
                    update(_lines)
                    .where(
                        _lines.c.account_id == account_id,
                        _lines.c.line == line,
                        _lines.c.month == month,
                        _lines.c.pending_seq.is_not(None),
                        free,
                    )
                    .values(lease_until=lease, lease_token=token)
                )
            rows = await conn.execute(
                select(_lines)
                .where(_lines.c.lease_token == token)
                .order_by(_lines.c.month, _lines.c.account_id, _lines.c.line)
            )
            return token, [_report(row) for row in rows]

    async def send_pending(self, now: datetime, run: RunReport | None = None) -> int:
        """Send every pending report (in batches); mark them reported once acknowledged."""
        run = run or RunReport()
        sent_before = run.sent
        assert self.settings.sink_url, "no billing sink configured"
        while True:
            token, reports = await self._claim(now)
            if not reports:
                break
            error = await self._post(reports, now)
            async with write_transaction(self.engine) as conn:
                for report in reports:
                    key = and_(
                        _lines.c.account_id == report.account_id,
                        _lines.c.line == report.line,
                        _lines.c.month == report.month,
                        _lines.c.lease_token == token,
                        _lines.c.pending_seq == report.seq,
                    )
                    if error is None:
                        values: dict[str, Any] = {
                            "reported_seq": report.seq,
                            "reported_total_micros": report.total_micros,
                            "reported_as_of": report.window_end,
                            "reported_at": now,
                            "pending_seq": None,
                            "pending_total_micros": None,
                            "pending_as_of": None,
                            "pending_final": False,
                            "closed": report.final,
                            "attempts": 0,
                            "last_error": None,
                        }
                    else:
                        values = {"attempts": _lines.c.attempts + 1, "last_error": error}
                    await conn.execute(
                        update(_lines)
                        .where(key)
                        .values(**values, lease_until=None, lease_token=None)
                    )
            if error is not None:
                run.failed += len(reports)
                run.error = error
                break  # the sink is down: the next run tries again, same reports, same ids
            run.sent += len(reports)
        return run.sent - sent_before

    async def _post(self, reports: Sequence[Report], now: datetime) -> str | None:
        body = json.dumps(
            {"reports": [r.payload() for r in reports]}, sort_keys=True, separators=(",", ":")
        ).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "CrabGlamp-Billing/1",
            # The batch's own key: a resend of exactly these reports carries the same one.
            IDEMPOTENCY_HEADER: hashlib.sha256(
                ",".join(r.id for r in reports).encode()
            ).hexdigest(),
        }
        if self.settings.sink_secret:
            # The same scheme as alert webhooks, so one verifier serves both.
            headers[SIGNATURE_HEADER] = sign(self.settings.sink_secret, int(now.timestamp()), body)
        assert self.settings.sink_url
        try:
            response = await self._http.get().post(
                self.settings.sink_url, content=body, headers=headers
            )
        except httpx.HTTPError as exc:
            return transport_error(exc)
        return refusal(response)


# What the sink was told (for people and tests)


@dataclass(frozen=True, slots=True)
class LineState:
    account_id: uuid.UUID
    line: str
    month: str
    reported_seq: int
    reported_total_micros: int
    pending_seq: int | None
    closed: bool
    attempts: int
    last_error: str | None


async def line_states(conn: AsyncConnection, month: str | None = None) -> list[LineState]:
    statement = select(_lines).order_by(_lines.c.month, _lines.c.account_id, _lines.c.line)
    if month is not None:
        statement = statement.where(_lines.c.month == month)
    return [
        LineState(
            row.account_id,
            row.line,
            row.month,
            row.reported_seq,
            row.reported_total_micros,
            row.pending_seq,
            row.closed,
            row.attempts,
            row.last_error,
        )
        for row in await conn.execute(statement)
    ]
