"""Detection as usage arrives: a background task that re-judges the keys touched since its last
run, stores what it finds (so each anomaly is alerted once), applies the keys' leak policies to
new spikes, records cap crossings and sends the alerts that are due; and the loop that runs it and the billing reporter in the app's lifespan.

"Touched" is read from the hourly rollup: one indexed statement per run returns every key's
hours since the start of yesterday, and a key whose hours changed (or whose cap changed) since
the previous run is judged again for the days that changed. The first run after a start judges
every key active since yesterday. Older days are judged when someone asks for them
(`anomalies` for a past month) and are not alerted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import bindparam, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.selectable import TextualSelect

from crabglamp.db import read_transaction, write_transaction
from crabglamp.db.tables import table_of
from crabglamp.jobs.alerts.cap_crossings import CappedKey, record_cap_crossings
from crabglamp.jobs.alerts.events import anomaly_event
from crabglamp.jobs.alerts.outbox import enqueue
from crabglamp.jobs.alerts.sender import AlertSender
from crabglamp.jobs.anomalies.activity import load_activity
from crabglamp.jobs.anomalies.anomaly import Anomaly
from crabglamp.jobs.anomalies.detectors import detect_key
from crabglamp.jobs.anomalies.state import apply_leak_policies
from crabglamp.jobs.anomalies.store import store_new
from crabglamp.jobs.billing import BillingReporter
from crabglamp.jobs.failures import StepFailures
from crabglamp.models import LlmHourly, VirtualKey
from crabglamp.periods import as_utc, day_start, utcnow
from crabglamp.proxy.metrics import Metrics
from crabglamp.settings import Settings, Thresholds

log = logging.getLogger("crabglamp.jobs.watch")

_keys = table_of(VirtualKey)
_hourly = table_of(LlmHourly)


# Each key's recent hours as one range of the rollup's primary key (account, key, hour) per key,
# whatever the rollup's size: SQLite keeps the left table of a CROSS JOIN outer, PostgreSQL runs
# a LATERAL subquery per key (OFFSET 0 keeps it from being merged into a scan of the rollup).
_RECENT_HOURS_SQL = {
    "sqlite": (
        "SELECT h.key_id, h.hour, h.request_count, h.cost_micros "
        "FROM virtual_key AS k CROSS JOIN llm_hourly AS h "
        "WHERE h.account_id = k.account_id AND h.key_id = k.id AND h.hour >= :since"
    ),
    "postgresql": (
        "SELECT h.key_id, h.hour, h.request_count, h.cost_micros "
        "FROM virtual_key AS k CROSS JOIN LATERAL ("
        " SELECT x.key_id, x.hour, x.request_count, x.cost_micros FROM llm_hourly AS x"
        " WHERE x.account_id = k.account_id AND x.key_id = k.id AND x.hour >= :since"
        " OFFSET 0) AS h"
    ),
}


def _recent_hours(dialect: str) -> TextualSelect:
    return (
        text(_RECENT_HOURS_SQL[dialect])
        .bindparams(bindparam("since", type_=_hourly.c.hour.type))
        .columns(_hourly.c.key_id, _hourly.c.hour, _hourly.c.request_count, _hourly.c.cost_micros)
    )


@dataclass(slots=True)
class WatchReport:
    touched_keys: int = 0
    new_anomalies: list[Anomaly] = field(default_factory=list)
    alerts_queued: int = 0
    delivered: int = 0
    # Accounts whose detection or cap crossings failed this pass (logged, counted in /metrics).
    failed_accounts: list[uuid.UUID] = field(default_factory=list)


class UsageWatcher:
    """Judges touched keys, stores new anomalies and cap crossings, queues and sends alerts.

    Each account is judged, stored and checked for cap crossings on its own (a savepoint each),
    and deliveries are sent whatever happened before: one account's failure is logged and
    counted (`failures.py`), and its keys are judged again on the next pass.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        thresholds: Thresholds | None = None,
        sender: AlertSender | None = None,
        failures: StepFailures | None = None,
    ) -> None:
        self.engine = engine
        self.thresholds = thresholds or Thresholds()
        self.failures = failures or StepFailures()
        self.sender = sender or AlertSender(engine)
        self.sender.failures = self.failures  # one tally for every step
        # What the previous run saw: (key, hour) -> (requests, cost), and each key's cap.
        self._hours: dict[tuple[uuid.UUID, datetime], tuple[int, int]] = {}
        self._caps: dict[uuid.UUID, int | None] = {}

    async def close(self) -> None:
        await self.sender.close()

    async def run_once(self, now: datetime | None = None) -> WatchReport:
        now = as_utc(now or utcnow())
        report = WatchReport()
        try:
            await self._detect(now, report)
        except Exception:
            self.failures.failed("anomaly_detection", None)
        # Whatever detection did: what is due (anomalies, cap crossings, test alerts) goes out.
        try:
            report.delivered = (await self.sender.deliver_due(now)).delivered
        except Exception:
            self.failures.failed("alert_delivery", None)
        return report

    async def _detect(self, now: datetime, report: WatchReport) -> None:
        touched, keys, seen = await self._touched(now)
        report.touched_keys = len(touched)
        by_account: dict[uuid.UUID, list[uuid.UUID]] = {}
        for key_id in touched:
            if key_id in keys:
                by_account.setdefault(keys[key_id].account_id, []).append(key_id)
        failed: set[uuid.UUID] = set()
        found: dict[uuid.UUID, list[Anomaly]] = {}
        if by_account:
            found = await self._judge(by_account, touched, now, failed)
            async with write_transaction(self.engine) as conn:
                for account_id, key_ids in sorted(by_account.items()):
                    if account_id in found:
                        try:
                            async with conn.begin_nested():
                                new = await store_new(conn, found[account_id])
                                # A spike on a key whose leak policy says so suspends it (or lowers
                                # its cap) in this transaction: its alert says what was done.
                                new = await apply_leak_policies(conn, new, now)
                                events = [
                                    anomaly_event(a, keys[a.key_id].name)
                                    for a in new
                                    if a.key_id in keys
                                ]
                                queued = await enqueue(conn, events, now)
                            report.new_anomalies += new
                            report.alerts_queued += queued
                        except Exception:
                            self.failures.failed("anomaly_detection", account_id, "storing")
                            failed.add(account_id)
                    capped = [keys[k] for k in key_ids if keys[k].cap_micros]
                    if not capped:
                        continue
                    try:
                        async with conn.begin_nested():
                            crossings = await record_cap_crossings(conn, capped, now)
                            report.alerts_queued += await enqueue(conn, crossings, now)
                    except Exception:
                        self.failures.failed("cap_crossings", account_id)
                        failed.add(account_id)
        # Only once it committed: a failed account's keys are judged again next time.
        redo = {k for a in failed for k in by_account[a]}
        self._hours = {spot: v for spot, v in seen.items() if spot[0] not in redo} | {
            spot: v for spot, v in self._hours.items() if spot[0] in redo
        }
        self._caps = {k: self._caps.get(k) if k in redo else v.cap_micros for k, v in keys.items()}
        report.failed_accounts = sorted(failed)

    async def _touched(
        self, now: datetime
    ) -> tuple[
        dict[uuid.UUID, set[date]],
        dict[uuid.UUID, CappedKey],
        dict[tuple[uuid.UUID, datetime], tuple[int, int]],
    ]:
        since = day_start(now.date() - timedelta(days=1))
        async with read_transaction(self.engine) as conn:
            keys = {
                key_id: CappedKey(key_id, account_id, name, cap)
                for key_id, account_id, name, cap in await conn.execute(
                    select(_keys.c.id, _keys.c.account_id, _keys.c.name, _keys.c.spend_cap_micros)
                )
            }
            rows = await conn.execute(_recent_hours(conn.dialect.name), {"since": since})
            seen = {(key_id, as_utc(hour)): (count, cost) for key_id, hour, count, cost in rows}
        touched: dict[uuid.UUID, set[date]] = {}
        for (key_id, hour), value in seen.items():
            if self._hours.get((key_id, hour)) != value:
                touched.setdefault(key_id, set()).add(hour.date())
        for key_id, key in keys.items():
            if key_id in self._caps and self._caps[key_id] != key.cap_micros:
                touched.setdefault(key_id, set()).add(now.date())
        return touched, keys, seen

    async def _judge(
        self,
        by_account: Mapping[uuid.UUID, list[uuid.UUID]],
        touched: Mapping[uuid.UUID, set[date]],
        now: datetime,
        failed: set[uuid.UUID],
    ) -> dict[uuid.UUID, list[Anomaly]]:
        """Each account's findings; an account whose judging fails is left out (and in
        `failed`). A savepoint each: on PostgreSQL a failed statement spoils the transaction."""
        found: dict[uuid.UUID, list[Anomaly]] = {}
        async with read_transaction(self.engine) as conn:
            for account_id, key_ids in sorted(by_account.items()):
                try:
                    async with conn.begin_nested():
                        found[account_id] = await self._judge_account(
                            conn, account_id, key_ids, touched, now
                        )
                except Exception:
                    self.failures.failed("anomaly_detection", account_id, "judging")
                    failed.add(account_id)
        return found

    async def _judge_account(
        self,
        conn: AsyncConnection,
        account_id: uuid.UUID,
        key_ids: list[uuid.UUID],
        touched: Mapping[uuid.UUID, set[date]],
        now: datetime,
    ) -> list[Anomaly]:
        first = min(d for k in key_ids for d in touched[k])
        activities, names = await load_activity(
            conn, [account_id], first, now.date(), self.thresholds, key_ids
        )
        found: list[Anomaly] = []
        for activity in activities:
            found += detect_key(activity, touched[activity.key_id], now, self.thresholds, names)
        return found


# The background loops of a served app


class BackgroundJobs:
    """The watcher every `watch_interval_seconds` and, when a sink is set, the billing reporter
    every `billing.interval_seconds`; all of it from the app's Settings."""

    def __init__(
        self, engine: AsyncEngine, settings: Settings, metrics: Metrics | None = None
    ) -> None:
        failures = StepFailures(metrics)
        sender = AlertSender(engine, settings.alerts, targets=settings.webhook_targets)
        self.watcher = UsageWatcher(engine, settings.thresholds, sender, failures)
        self.watch_interval = settings.watch_interval_seconds
        billing = settings.billing
        self.reporter = (
            BillingReporter(engine, billing, failures=failures) if billing.sink_url else None
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        if self._tasks:
            return
        self._stopping.clear()
        self._tasks.append(
            asyncio.create_task(
                self._loop(self.watcher.run_once, self.watch_interval), name="crabglamp-watch"
            )
        )
        if self.reporter is not None:
            self._tasks.append(
                asyncio.create_task(
                    self._loop(self.reporter.run_once, self.reporter.settings.interval_seconds),
                    name="crabglamp-billing",
                )
            )

    async def stop(self, grace: float = 15.0) -> None:
        """Let a pass that is running finish (a transaction is never cut in half), then stop."""
        self._stopping.set()
        if self._tasks:
            _done, pending = await asyncio.wait(self._tasks, timeout=grace)
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._tasks.clear()
        await self.watcher.close()
        if self.reporter is not None:
            await self.reporter.close()

    async def _loop(self, run: Callable[[], Awaitable[object]], interval: float) -> None:
        while not self._stopping.is_set():
            try:
                await run()
            except Exception:  # a bad pass must not end the loop; the next one retries
                log.exception("background job failed; retrying in %.0f s", interval)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), interval)
