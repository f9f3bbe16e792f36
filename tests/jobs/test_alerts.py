"""Alerts against a real local receiver: signed, retried with backoff, each event once — anomalies
detected as usage arrives, and keys crossing 50, 80 and 100% of their caps."""

from __future__ import annotations

import ipaddress
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from api_support import ALICE, BOB, GINA, World, bearer, graphql, seed, serve, settings_for
from crabglamp.db import read_transaction, write_transaction
from crabglamp.db.tables import table_of
from crabglamp.ingest.ingestor import Ingestor
from crabglamp.ingest.records import LlmRecord
from crabglamp.jobs.alerts import deliveries, endpoints, outbox
from crabglamp.jobs.alerts.sender import AlertSender
from crabglamp.jobs.signing import verify_signature
from crabglamp.jobs.watch import UsageWatcher
from crabglamp.models import Account, AlertAttempt, AlertDelivery, AlertEndpoint, VirtualKey
from crabglamp.settings import AlertSettings, Thresholds
from webhook_support import Receiver, receiver

NOW = datetime(2026, 3, 17, 15, 30, tzinfo=UTC)
CENT = 1_000_000
_attempts = table_of(AlertAttempt)


async def _account(
    engine: AsyncEngine, *keys: tuple[str, int | None]
) -> tuple[uuid.UUID, list[uuid.UUID]]:
    account_id = uuid.uuid4()
    key_ids = [uuid.uuid4() for _ in keys]
    async with write_transaction(engine) as conn:
        await conn.execute(table_of(Account).insert(), [{"id": account_id, "name": "Hooli"}])
        await conn.execute(
            table_of(VirtualKey).insert(),
            [
                {
                    "id": key_id,
                    "account_id": account_id,
                    "name": name,
                    "provider": "openai",
                    "spend_cap_micros": None if cap_cents is None else cap_cents * CENT,
                    "status": "active",
                    "created_at": NOW - timedelta(days=60),
                }
                for key_id, (name, cap_cents) in zip(key_ids, keys, strict=True)
            ],
        )
    return account_id, key_ids


async def _endpoint(
    engine: AsyncEngine, account_id: uuid.UUID, url: str
) -> endpoints.EndpointWithSecret:
    async with write_transaction(engine) as conn:
        created = await endpoints.create_endpoint(conn, account_id, url, "ops pager", now=NOW)
    assert isinstance(created, endpoints.EndpointWithSecret)
    return created


_n = 0


def _spend(
    key_id: uuid.UUID, at: datetime, cents: float, count: int = 1, model: str = "gpt-4o-mini"
) -> list[LlmRecord]:
    global _n
    records = []
    for i in range(count):
        _n += 1
        records.append(
            LlmRecord(
                id=f"evt-{_n}",
                ts=at + timedelta(seconds=i),
                key_id=key_id,
                provider="openai",
                model=model,
                input_tokens=100,
                output_tokens=10,
                cost_micros=round(cents * CENT / count),
            )
        )
    return records


def _watcher(engine: AsyncEngine, settings: AlertSettings | None = None) -> UsageWatcher:
    return UsageWatcher(engine, Thresholds(), AlertSender(engine, settings or AlertSettings()))


def _events(hook: Receiver, kind: str) -> list[dict]:  # type: ignore[type-arg]
    return [r.json() for r in hook.ok() if r.json()["type"] == kind]


async def test_a_spike_is_alerted_once_signed_with_the_endpoints_secret(
    engine: AsyncEngine,
) -> None:
    account_id, (key_id,) = await _account(engine, ("legacy-zapier", None))
    ingestor = Ingestor(engine)
    # Five weeks of a few cents a day: a quiet key.
    history = [r for d in range(35, 0, -1) for r in _spend(key_id, NOW - timedelta(days=d), 4, 3)]
    await ingestor.record(history)
    with receiver() as hook:
        endpoint = await _endpoint(engine, account_id, hook.url)
        watcher = _watcher(engine)
        report = await watcher.run_once(NOW - timedelta(minutes=40))
        assert report.touched_keys == 1 and report.new_anomalies == [] and hook.requests == []

        # Its token leaks: ten dollars of gpt-4o in twenty minutes.
        await ingestor.record(_spend(key_id, NOW - timedelta(minutes=25), 1000, 200, "gpt-4o"))
        report = await watcher.run_once(NOW)
        assert [a.kind.value for a in report.new_anomalies] == ["SPIKE_ON_QUIET_KEY"]
        assert report.alerts_queued == 1 and report.delivered == 1
        (request,) = hook.requests
        body = request.json()
        assert body["type"] == "anomaly.detected"
        assert body["id"] == f"anomaly:SPIKE_ON_QUIET_KEY:{key_id}:2026-03"
        assert body["data"]["keyName"] == "legacy-zapier"
        assert body["data"]["suggestedAction"].startswith("If nobody on your team expected this")
        assert request.headers["idempotency-key"] == body["id"]

        # The signature verifies with the endpoint's secret, and with nothing else.
        signature = request.headers["x-crabglamp-signature"]
        assert verify_signature(endpoint.secret, signature, request.body, now=NOW)
        assert not verify_signature(endpoint.secret, signature, request.body + b" ", now=NOW)
        assert not verify_signature(endpoints.new_secret(), signature, request.body, now=NOW)
        assert not verify_signature(
            endpoint.secret, signature, request.body, now=NOW + timedelta(minutes=10)
        )

        # More of the leak, more runs, a restarted watcher: the same anomaly, never alerted again.
        await ingestor.record(_spend(key_id, NOW + timedelta(minutes=1), 1000, 200, "gpt-4o"))
        assert (await watcher.run_once(NOW + timedelta(minutes=2))).new_anomalies == []
        restarted = _watcher(engine)
        assert (await restarted.run_once(NOW + timedelta(minutes=3))).new_anomalies == []
        assert len(hook.requests) == 1


async def test_a_failing_receiver_is_retried_with_backoff_and_every_attempt_is_recorded(
    engine: AsyncEngine,
) -> None:
    account_id, _ = await _account(engine, ("prod", None))
    with receiver() as hook:
        hook.plan = [500, 503]
        endpoint = await _endpoint(engine, account_id, hook.url)
        async with write_transaction(engine) as conn:
            event = await outbox.send_test_alert(conn, endpoint.endpoint, NOW)
        sender = AlertSender(engine, AlertSettings(backoff_seconds=10))
        try:
            assert (await sender.deliver_due(NOW)).retrying == 1
            assert (await sender.deliver_due(NOW + timedelta(seconds=9))).attempted == 0
            assert (await sender.deliver_due(NOW + timedelta(seconds=10))).retrying == 1
            # The second retry waits twice as long.
            assert (await sender.deliver_due(NOW + timedelta(seconds=29))).attempted == 0
            assert (await sender.deliver_due(NOW + timedelta(seconds=30))).delivered == 1
            assert (await sender.deliver_due(NOW + timedelta(hours=1))).attempted == 0
        finally:
            await sender.close()

        assert [r.status for r in hook.requests] == [500, 503, 200]
        assert len({r.body for r in hook.requests}) == 1  # the same bytes every time
        assert {r.headers["idempotency-key"] for r in hook.requests} == {event.id}
        for request, second in zip(hook.requests, (0, 10, 30), strict=True):
            at = NOW + timedelta(seconds=second)
            assert verify_signature(
                endpoint.secret, request.headers["x-crabglamp-signature"], request.body, now=at
            )

    async with read_transaction(engine) as conn:
        (delivery,) = await deliveries.deliveries_of(conn, [account_id])
    assert delivery.status == "delivered" and delivery.attempts == 3
    assert [(a.attempt, a.status_code) for a in delivery.attempt_log] == [
        (1, 500),
        (2, 503),
        (3, 200),
    ]
    assert delivery.attempt_log[0].error is not None and delivery.attempt_log[2].error is None


async def test_a_delivery_fails_after_its_last_attempt_and_can_be_retried(
    engine: AsyncEngine,
) -> None:
    account_id, _ = await _account(engine, ("prod", None))
    with receiver() as hook:
        hook.plan = [500, 500]
        endpoint = await _endpoint(engine, account_id, hook.url)
        async with write_transaction(engine) as conn:
            await outbox.send_test_alert(conn, endpoint.endpoint, NOW)
        sender = AlertSender(engine, AlertSettings(max_attempts=2, backoff_seconds=1))
        try:
            await sender.deliver_due(NOW)
            assert (await sender.deliver_due(NOW + timedelta(seconds=1))).failed == 1
            assert (await sender.deliver_due(NOW + timedelta(hours=1))).attempted == 0
            async with write_transaction(engine) as conn:
                (failed,) = await deliveries.deliveries_of(conn, [account_id], status="failed")
                assert (
                    await deliveries.retry_delivery(conn, failed.id, NOW + timedelta(hours=2))
                    == failed.id
                )
            assert (await sender.deliver_due(NOW + timedelta(hours=2))).delivered == 1
        finally:
            await sender.close()
    assert [r.status for r in hook.requests] == [500, 500, 200]


async def test_an_unreachable_endpoint_records_why(engine: AsyncEngine) -> None:
    account_id, _ = await _account(engine, ("prod", None))
    with receiver() as hook:
        url = hook.url  # the receiver is gone after this block: its port refuses connections
    endpoint = await _endpoint(engine, account_id, url)
    async with write_transaction(engine) as conn:
        await outbox.send_test_alert(conn, endpoint.endpoint, NOW)
    sender = AlertSender(engine, AlertSettings(timeout_seconds=2))
    try:
        assert (await sender.deliver_due(NOW)).retrying == 1
    finally:
        await sender.close()
    async with read_transaction(engine) as conn:
        (delivery,) = await deliveries.deliveries_of(conn, [account_id])
    assert delivery.status == "pending" and delivery.last_status_code is None
    assert delivery.last_error == "connection failed"
    assert delivery.next_attempt_at == NOW + timedelta(seconds=10)


async def test_cap_crossings_at_50_80_and_100_percent_alert_once_each(engine: AsyncEngine) -> None:
    account_id, (steady, jumpy) = await _account(engine, ("support-prod", 1000), ("batch", 1000))
    ingestor = Ingestor(engine)
    with receiver() as hook:
        await _endpoint(engine, account_id, hook.url)
        watcher = _watcher(engine)
        moment = NOW
        crossed: list[int] = []
        for cents, expected in (
            (400, []),
            (150, [50]),
            (50, []),
            (250, [80]),
            (0, []),
            (150, [100]),
        ):
            moment += timedelta(minutes=1)
            if cents:
                await ingestor.record(_spend(steady, moment - timedelta(seconds=30), cents))
            if cents == 0:
                watcher = _watcher(engine)  # a restart between two crossings
            await watcher.run_once(moment)
            now_crossed = [
                e["data"]["thresholdPercent"]
                for e in _events(hook, "spend_cap.threshold_crossed")
                if e["data"]["keyId"] == str(steady)
            ]
            assert now_crossed == [*crossed, *expected], cents
            crossed = now_crossed
        # Spend past the cap does not cross anything again.
        await ingestor.record(_spend(steady, moment, 100))
        await watcher.run_once(moment + timedelta(minutes=1))

        # From nothing to 90% in one go: one alert, for 80%; 50% is not sent afterwards either.
        await ingestor.record(_spend(jumpy, moment, 900))
        await watcher.run_once(moment + timedelta(minutes=2))
        await _watcher(engine).run_once(moment + timedelta(minutes=3))

    crossings = _events(hook, "spend_cap.threshold_crossed")
    assert [(e["data"]["keyName"], e["data"]["thresholdPercent"]) for e in crossings] == [
        ("support-prod", 50),
        ("support-prod", 80),
        ("support-prod", 100),
        ("batch", 80),
    ]
    assert crossings[2]["data"]["percentUsed"] == 100.0
    assert "refused until the cap is raised" in crossings[2]["data"]["message"]
    assert len({e["id"] for e in crossings}) == 4
    async with read_transaction(engine) as conn:
        rows = await conn.execute(select(table_of(AlertDelivery).c.event_id))
        ids = [row[0] for row in rows]
    assert len(ids) == len(set(ids))  # one delivery per event and endpoint, ever


async def test_raising_the_cap_starts_its_thresholds_afresh(engine: AsyncEngine) -> None:
    account_id, (key_id,) = await _account(engine, ("prod", 1000))
    with receiver() as hook:
        await _endpoint(engine, account_id, hook.url)
        watcher = _watcher(engine)
        await Ingestor(engine).record(_spend(key_id, NOW - timedelta(minutes=5), 1000))
        await watcher.run_once(NOW)
        async with write_transaction(engine) as conn:
            await conn.execute(
                table_of(VirtualKey)
                .update()  # type: ignore[attr-defined]
                .where(table_of(VirtualKey).c.id == key_id)
                .values(spend_cap_micros=1500 * CENT)
            )
        await watcher.run_once(NOW + timedelta(minutes=1))  # a changed cap is a touched key
    assert [
        (e["data"]["spendCapCents"], e["data"]["thresholdPercent"])
        for e in _events(hook, "spend_cap.threshold_crossed")
    ] == [(1000.0, 100), (1500.0, 50)]


# Managing endpoints through GraphQL


@pytest.fixture
async def world(engine: AsyncEngine) -> World:
    return await seed(engine)


@pytest.fixture
async def client(
    engine: AsyncEngine, db_url: str, world: World
) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(engine, settings_for(db_url)) as client:
        yield client


CREATE = """
mutation ($input: CreateAlertEndpointInput!) {
  createAlertEndpoint(input: $input) {
    __typename
    ... on AlertEndpointSecretSuccess { signingSecret endpoint { id url description enabled secretHint } }
    ... on Error { code message }
    ... on InvalidInputError { field }
  }
}
"""
ENDPOINTS = "query ($a: ID) { alertEndpoints(accountId: $a) { id url enabled secretHint } }"
DELIVERIES = """
query ($a: ID, $status: AlertDeliveryStatus) {
  alertDeliveries(accountId: $a, status: $status) {
    eventId eventType status attempts lastStatusCode attemptLog { attempt statusCode error }
  }
}
"""


async def test_endpoints_are_managed_by_account_admins_through_graphql(
    client: httpx.AsyncClient, world: World, engine: AsyncEngine
) -> None:
    alice, bob, gina = bearer(**ALICE), bearer(**BOB), bearer(**GINA)  # type: ignore[arg-type]
    acme = str(world.acme)
    with receiver() as hook:
        wanted = {"accountId": acme, "url": hook.url, "description": "on-call"}
        created = (await graphql(client, CREATE, {"input": wanted}, alice))["data"][
            "createAlertEndpoint"
        ]
        assert created["__typename"] == "AlertEndpointSecretSuccess"
        secret, endpoint = created["signingSecret"], created["endpoint"]
        assert secret.startswith("whsec_") and endpoint["secretHint"] == secret[:10] + "…"

        refused = (await graphql(client, CREATE, {"input": wanted}, bob))["data"][
            "createAlertEndpoint"
        ]
        assert (refused["__typename"], refused["code"]) == ("NotAllowedError", "FORBIDDEN")
        foreign = (await graphql(client, CREATE, {"input": wanted}, gina))["data"][
            "createAlertEndpoint"
        ]
        assert foreign["__typename"] == "AccountNotFoundError"
        bad = {**wanted, "url": "ftp://example.com/hook"}
        invalid = (await graphql(client, CREATE, {"input": bad}, alice))["data"][
            "createAlertEndpoint"
        ]
        assert (invalid["__typename"], invalid["field"]) == ("InvalidInputError", "url")

        # Members read the endpoints (never the secret, and the URL only up to its origin);
        # other accounts do not see them.
        listed = (await graphql(client, ENDPOINTS, {"a": acme}, bob))["data"]["alertEndpoints"]
        assert listed == [
            {
                "id": endpoint["id"],
                "url": hook.url.split("/hook")[0] + "/…",
                "enabled": True,
                "secretHint": endpoint["secretHint"],
            }
        ]
        assert secret not in json.dumps(listed)
        assert (await graphql(client, ENDPOINTS, {}, gina))["data"]["alertEndpoints"] == []
        other = await graphql(client, ENDPOINTS, {"a": acme}, gina)
        assert other["errors"][0]["extensions"]["code"] == "FORBIDDEN"

        test = await graphql(
            client,
            "mutation ($id: ID!) { sendTestAlert(endpointId: $id) { __typename ... on SendTestAlertSuccess { eventId } } }",
            {"id": endpoint["id"]},
            alice,
        )
        event_id = test["data"]["sendTestAlert"]["eventId"]
        pending = (await graphql(client, DELIVERIES, {"a": acme}, bob))["data"]["alertDeliveries"]
        assert [(d["eventId"], d["status"], d["attempts"]) for d in pending] == [
            (event_id, "PENDING", 0)
        ]

        sender = AlertSender(engine)
        try:
            await sender.deliver_due()
        finally:
            await sender.close()
        (request,) = hook.requests
        assert verify_signature(secret, request.headers["x-crabglamp-signature"], request.body)
        done = (await graphql(client, DELIVERIES, {"a": acme, "status": "DELIVERED"}, bob))["data"]
        assert done["alertDeliveries"][0]["attemptLog"] == [
            {"attempt": 1, "statusCode": 200, "error": None}
        ]

        rotated = await graphql(
            client,
            "mutation ($id: ID!) { rotateAlertEndpointSecret(id: $id) { ... on AlertEndpointSecretSuccess { signingSecret } } }",
            {"id": endpoint["id"]},
            alice,
        )
        assert rotated["data"]["rotateAlertEndpointSecret"]["signingSecret"] not in {secret, None}
        paused = await graphql(
            client,
            "mutation ($i: UpdateAlertEndpointInput!) { updateAlertEndpoint(input: $i) { ... on AlertEndpointSuccess { endpoint { enabled } } } }",
            {"i": {"id": endpoint["id"], "enabled": False}},
            alice,
        )
        assert paused["data"]["updateAlertEndpoint"]["endpoint"]["enabled"] is False
        deleted = await graphql(
            client,
            "mutation ($id: ID!) { deleteAlertEndpoint(id: $id) { __typename } }",
            {"id": endpoint["id"]},
            bob,
        )
        assert deleted["data"]["deleteAlertEndpoint"]["__typename"] == "NotAllowedError"
        gone = await graphql(
            client,
            "mutation ($id: ID!) { deleteAlertEndpoint(id: $id) { __typename } }",
            {"id": endpoint["id"]},
            alice,
        )
        assert gone["data"]["deleteAlertEndpoint"]["__typename"] == "AlertEndpointSuccess"
        assert (await graphql(client, ENDPOINTS, {"a": acme}, alice))["data"][
            "alertEndpoints"
        ] == []


async def test_a_served_app_detects_and_alerts_as_usage_arrives(
    fixed_clock: datetime, engine: AsyncEngine, db_url: str
) -> None:
    import asyncio
    from dataclasses import replace

    from crabglamp.app import create_app
    from crabglamp.periods import utcnow

    now = utcnow()
    account_id, (key_id,) = await _account(engine, ("legacy-zapier", None))
    ingestor = Ingestor(engine)
    await ingestor.record(
        [r for d in range(35, 0, -1) for r in _spend(key_id, now - timedelta(days=d), 4, 3)]
    )
    settings = replace(settings_for(db_url), watch_interval_seconds=0.1)
    app = create_app(settings, engine, background=True)
    with receiver() as hook:
        await _endpoint(engine, account_id, hook.url)
        async with app.router.lifespan_context(app):
            await asyncio.sleep(0.3)  # the watcher has looked: nothing to say
            assert hook.requests == []
            await ingestor.record(
                _spend(key_id, utcnow() - timedelta(seconds=5), 1500, 100, "gpt-4o")
            )
            for _ in range(100):
                if hook.requests:
                    break
                await asyncio.sleep(0.05)
        (request,) = hook.requests
    assert request.json()["data"]["kind"] == "SPIKE_ON_QUIET_KEY"


# One account's failure is its own


async def _quiet_key_that_spikes(
    engine: AsyncEngine, ingestor: Ingestor, name: str
) -> tuple[uuid.UUID, uuid.UUID]:
    account_id, (key_id,) = await _account(engine, (name, None))
    await ingestor.record(
        [r for d in range(35, 0, -1) for r in _spend(key_id, NOW - timedelta(days=d), 4, 3)]
    )
    await ingestor.record(_spend(key_id, NOW - timedelta(minutes=25), 1000, 200, "gpt-4o"))
    return account_id, key_id


async def test_one_accounts_failing_detection_stops_no_one_elses_alerts(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from crabglamp.jobs import watch
    from crabglamp.jobs.failures import FAILURES_METRIC, StepFailures
    from crabglamp.proxy.metrics import Metrics

    ingestor = Ingestor(engine)
    broken, broken_key = await _quiet_key_that_spikes(engine, ingestor, "broken-tenant")
    fine, _ = await _quiet_key_that_spikes(engine, ingestor, "fine-tenant")
    real_detect = watch.detect_key

    def detect_key(activity: Any, *args: Any, **kwargs: Any) -> Any:
        if activity.key_id == broken_key:
            raise OverflowError("date value out of range")  # what a far-future row once did
        return real_detect(activity, *args, **kwargs)

    monkeypatch.setattr(watch, "detect_key", detect_key)
    metrics = Metrics()
    with receiver() as hook:
        await _endpoint(engine, fine, hook.url)
        broken_endpoint = await _endpoint(engine, broken, hook.url)
        # The broken account's own test alert is due too: its deliveries go on regardless.
        async with write_transaction(engine) as conn:
            test_alert = await outbox.send_test_alert(conn, broken_endpoint.endpoint, NOW)
        watcher = UsageWatcher(engine, Thresholds(), AlertSender(engine), StepFailures(metrics))
        report = await watcher.run_once(NOW)

        assert report.failed_accounts == [broken]
        assert [(a.account_id, a.kind.value) for a in report.new_anomalies] == [
            (fine, "SPIKE_ON_QUIET_KEY")
        ]
        delivered = {(r.json()["accountId"], r.json()["type"]) for r in hook.ok()}
        assert delivered == {(str(fine), "anomaly.detected"), (str(broken), "test")}
        assert any(r.json()["id"] == test_alert.id for r in hook.ok())
        assert metrics.value(FAILURES_METRIC, ("anomaly_detection",)) == 1
        assert metrics.value(FAILURES_METRIC, ("alert_delivery",)) == 0
        assert 'crabglamp_background_failures_total{step="anomaly_detection"} 1.0' in (
            metrics.render()
        )
        assert any(str(broken) in r.getMessage() for r in caplog.records if r.exc_info)

        # Fixed, the next pass judges the broken account's keys again: its spike is alerted.
        monkeypatch.setattr(watch, "detect_key", real_detect)
        again = await watcher.run_once(NOW + timedelta(minutes=1))
        assert [(a.account_id, a.kind.value) for a in again.new_anomalies] == [
            (broken, "SPIKE_ON_QUIET_KEY")
        ]
        assert again.failed_accounts == [] and again.delivered == 1
        await watcher.close()


async def test_a_far_future_row_from_old_data_breaks_no_pass(engine: AsyncEngine) -> None:
    """Rows from before the timestamp bounds may still be stored: inserted directly here, as
    an old database would hold them, they stop neither detection nor delivery nor billing."""
    from crabglamp.db.bulk import insert_rows
    from crabglamp.ingest._rollups import LLM_SUMS, add_llm_rollups
    from crabglamp.jobs.billing import BillingReporter
    from crabglamp.models import LlmEvent
    from crabglamp.settings import BillingSettings

    ingestor = Ingestor(engine)
    old, (old_key,) = await _account(engine, ("old-data", None))
    fine, _ = await _quiet_key_that_spikes(engine, ingestor, "fine-tenant")
    far = {
        "id": "far-future",
        "ts": datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC),
        "account_id": old,
        "key_id": old_key,
        "agent_id": None,
        "provider": "openai",
        "model": "gpt-4o-mini",
        "input_tokens": 1,
        "output_tokens": 1,
        "cost_micros": 5 * CENT,
        "status": "ok",
        # The token categories an old row gained by migration: zeros.
        **{column: 0 for column in LLM_SUMS[4:]},
    }
    async with write_transaction(engine) as conn:
        await insert_rows(conn, table_of(LlmEvent), [far])
        await add_llm_rollups(conn, [far])
    with receiver() as hook, receiver() as sink:
        await _endpoint(engine, fine, hook.url)
        watcher = _watcher(engine)
        report = await watcher.run_once(NOW)
        await watcher.close()
        reporter = BillingReporter(engine, BillingSettings(sink_url=sink.url))
        billed = await reporter.run_once(NOW)
        await reporter.close()
    assert [(a.account_id, a.kind.value) for a in report.new_anomalies] == [
        (fine, "SPIKE_ON_QUIET_KEY")
    ]
    assert report.delivered == 1 and report.failed_accounts == []
    assert billed.error is None and billed.sent >= 1
    reported = {r["accountId"] for request in sink.ok() for r in request.json()["reports"]}
    assert str(fine) in reported


# No webhook into our own network


@pytest.fixture
async def production(
    engine: AsyncEngine, db_url: str, world: World
) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(engine, settings_for(db_url, production=True)) as client:
        yield client


REFUSED_HOSTS = [
    ("127.0.0.1", "is a loopback address"),
    ("[::1]", "is a loopback address"),
    ("localhost", "is a loopback address"),
    ("0x7f000001", "is a loopback address"),
    ("2130706433", "is a loopback address"),
    ("127.1", "is a loopback address"),
    ("[::ffff:127.0.0.1]", "is a loopback address"),
    ("10.0.0.1", "is a private address"),
    ("192.168.1.20", "is a private address"),
    ("[fd12:3456::1]", "is a unique-local address"),
    ("169.254.10.1", "is a link-local address"),
    ("169.254.169.254", "is a cloud metadata address"),
    ("[fd00:ec2::254]", "is a cloud metadata address"),
    ("0.0.0.0", "is an unspecified address"),
    ("224.0.0.1", "is a multicast address"),
]


async def test_production_refuses_webhooks_into_our_own_network(
    production: httpx.AsyncClient, world: World, engine: AsyncEngine
) -> None:
    alice = bearer(**ALICE)  # type: ignore[arg-type]
    for host, why in REFUSED_HOSTS:
        url = f"https://{host}/hook"
        wanted = {"accountId": str(world.acme), "url": url}
        result = (await graphql(production, CREATE_REFUSED, {"input": wanted}, alice))["data"][
            "createAlertEndpoint"
        ]
        assert result["__typename"] == "AlertEndpointUrlRefusedError", (host, result)
        assert (result["code"], result["url"]) == ("URL_REFUSED", url)
        assert why in result["message"], (host, result["message"])
    async with read_transaction(engine) as conn:
        assert (await conn.execute(select(table_of(AlertEndpoint)))).all() == []

    # A public address is fine; moving it onto a loopback one is refused the same way.
    created = (
        await graphql(
            production,
            CREATE_REFUSED,
            {"input": {"accountId": str(world.acme), "url": "https://93.184.216.34/hook"}},
            alice,
        )
    )["data"]["createAlertEndpoint"]
    assert created["__typename"] == "AlertEndpointSecretSuccess"
    moved = await graphql(
        production,
        "mutation ($i: UpdateAlertEndpointInput!) { updateAlertEndpoint(input: $i) { __typename "
        "... on AlertEndpointUrlRefusedError { code url message } } }",
        {"i": {"id": created["endpoint"]["id"], "url": "https://0x7f000001:8080/hook"}},
        alice,
    )
    assert moved["data"]["updateAlertEndpoint"]["__typename"] == "AlertEndpointUrlRefusedError"


CREATE_REFUSED = """
mutation ($input: CreateAlertEndpointInput!) {
  createAlertEndpoint(input: $input) {
    __typename
    ... on AlertEndpointSecretSuccess { endpoint { id url } }
    ... on AlertEndpointUrlRefusedError { code message url }
    ... on Error { code message }
  }
}
"""


async def test_private_targets_are_allowed_only_when_the_setting_says_so(
    engine: AsyncEngine,
) -> None:
    from crabglamp.settings import Settings

    account_id, _ = await _account(engine, ("prod", None))
    production = Settings(production=True)
    on_premise = Settings.from_env(
        {"CRABGLAMP_PRODUCTION": "1", "CRABGLAMP_WEBHOOK_ALLOW_PRIVATE": "1"}
    )
    development = Settings()
    for settings, url, allowed in (
        (production, "https://10.0.0.1/hook", False),
        (on_premise, "https://10.0.0.1/hook", True),
        (on_premise, "https://127.0.0.1/hook", True),
        (on_premise, "https://169.254.169.254/latest", False),  # never the metadata service
        (development, "http://127.0.0.1:8080/hook", True),  # the tests' and demo's receivers
        (development, "http://10.0.0.1/hook", False),
    ):
        async with write_transaction(engine) as conn:
            created = await endpoints.create_endpoint(
                conn, account_id, url, now=NOW, targets=settings.webhook_targets
            )
        assert isinstance(created, endpoints.EndpointWithSecret) is allowed, (url, created)


async def test_only_the_status_code_of_a_refusal_is_stored_never_its_body(
    client: httpx.AsyncClient, world: World, engine: AsyncEngine
) -> None:
    alice, bob = bearer(**ALICE), bearer(**BOB)  # type: ignore[arg-type]
    with receiver() as hook:
        hook.plan = [500]
        hook.error_body = b"INTERNAL-SECRET-BODY: db password hunter2"
        wanted = {"accountId": str(world.acme), "url": hook.url}
        created = (await graphql(client, CREATE, {"input": wanted}, alice))["data"][
            "createAlertEndpoint"
        ]
        async with write_transaction(engine) as conn:
            endpoint = await endpoints.get_endpoint(conn, uuid.UUID(created["endpoint"]["id"]))
            assert endpoint is not None
            await outbox.send_test_alert(conn, endpoint, NOW)
        sender = AlertSender(engine)
        try:
            await sender.deliver_due(NOW)
        finally:
            await sender.close()
        assert [r.status for r in hook.requests] == [500]
    shown = await graphql(
        client,
        "query ($a: ID) { alertDeliveries(accountId: $a) { lastStatusCode lastError "
        "attemptLog { statusCode error } } }",
        {"a": str(world.acme)},
        bob,
    )
    (delivery,) = shown["data"]["alertDeliveries"]
    assert delivery == {
        "lastStatusCode": 500,
        "lastError": "HTTP 500",
        "attemptLog": [{"statusCode": 500, "error": "HTTP 500"}],
    }
    async with read_transaction(engine) as conn:
        stored = json.dumps([list(map(str, row)) for row in await conn.execute(select(_attempts))])
    assert "SECRET" not in stored and "hunter2" not in stored


async def test_a_redirect_is_not_followed(engine: AsyncEngine) -> None:
    account_id, _ = await _account(engine, ("prod", None))
    with receiver() as inside, receiver() as hook:
        hook.plan = [302]
        hook.location = inside.url
        hook.error_body = b"moved: see the internal service"
        endpoint = await _endpoint(engine, account_id, hook.url)
        async with write_transaction(engine) as conn:
            await outbox.send_test_alert(conn, endpoint.endpoint, NOW)
        sender = AlertSender(engine)
        try:
            assert (await sender.deliver_due(NOW)).retrying == 1
        finally:
            await sender.close()
        assert [r.status for r in hook.requests] == [302]
        assert inside.requests == []
    async with read_transaction(engine) as conn:
        (delivery,) = await deliveries.deliveries_of(conn, [account_id])
    assert (delivery.last_status_code, delivery.last_error) == (302, "HTTP 302")


async def test_a_send_connects_to_the_address_it_checked(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The host is resolved once per send and the connection made to that very address: a
    name our resolver never heard of is reached at the address the check saw."""
    from crabglamp.jobs import targets
    from crabglamp.settings import WebhookTargets

    looked_up: list[str] = []
    answers: dict[str, str] = {}

    async def resolve(host: str, port: int) -> list[Any]:
        looked_up.append(host)
        return [ipaddress.ip_address(answers[host])]

    monkeypatch.setattr(targets, "resolve_host", resolve)
    account_id, _ = await _account(engine, ("prod", None))
    with receiver() as hook:
        port = httpx.URL(hook.url).port
        answers["hooks.crabglamp-customer.test"] = "127.0.0.1"
        url = f"http://hooks.crabglamp-customer.test:{port}/hook"
        endpoint = await _endpoint(engine, account_id, url)  # development: loopback allowed
        looked_up.clear()
        async with write_transaction(engine) as conn:
            await outbox.send_test_alert(conn, endpoint.endpoint, NOW)
        sender = AlertSender(engine)
        try:
            assert (await sender.deliver_due(NOW)).delivered == 1
        finally:
            await sender.close()
        (request,) = hook.requests
        assert request.headers["host"] == f"hooks.crabglamp-customer.test:{port}"
        assert looked_up == ["hooks.crabglamp-customer.test"]

        # DNS rebinding: public when configured, loopback when sent. Production refuses it then,
        # and the receiver listening on that loopback address hears nothing.
        production = WebhookTargets(allow_loopback=False, allow_private=False)
        answers["rebind.crabglamp-customer.test"] = "93.184.216.34"
        rebinding = f"http://rebind.crabglamp-customer.test:{port}/hook"
        async with write_transaction(engine) as conn:
            created = await endpoints.create_endpoint(
                conn, account_id, rebinding, now=NOW, targets=production
            )
            assert isinstance(created, endpoints.EndpointWithSecret)
            await outbox.send_test_alert(conn, created.endpoint, NOW)
        answers["rebind.crabglamp-customer.test"] = "127.0.0.1"
        sender = AlertSender(engine, targets=production)
        try:
            report = await sender.deliver_due(NOW + timedelta(minutes=1))
        finally:
            await sender.close()
        assert report.retrying == 1 and len(hook.requests) == 1
    async with read_transaction(engine) as conn:
        found = await deliveries.deliveries_of(conn, [account_id], endpoint_id=created.endpoint.id)
    assert found[0].last_error == (
        "refused: the host rebind.crabglamp-customer.test resolves to a loopback address"
    )


async def test_one_accounts_failing_bill_delays_no_one_elses_reports(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from crabglamp.jobs import billing
    from crabglamp.jobs.failures import FAILURES_METRIC, StepFailures
    from crabglamp.proxy.metrics import Metrics
    from crabglamp.settings import BillingSettings

    ingestor = Ingestor(engine)
    broken, (broken_key,) = await _account(engine, ("broken", None))
    fine, (fine_key,) = await _account(engine, ("fine", None))
    await ingestor.record(_spend(broken_key, NOW - timedelta(hours=1), 100))
    await ingestor.record(_spend(fine_key, NOW - timedelta(hours=1), 100))
    real_invoice = billing.invoice

    async def invoice(conn: Any, query: Any, now: Any) -> Any:
        if query.account_ids == (broken,):
            raise OverflowError("date value out of range")
        return await real_invoice(conn, query, now)

    monkeypatch.setattr(billing, "invoice", invoice)
    metrics = Metrics()
    with receiver() as sink:
        reporter = billing.BillingReporter(
            engine, BillingSettings(sink_url=sink.url), failures=StepFailures(metrics)
        )
        try:
            run = await reporter.run_once(NOW)
        finally:
            await reporter.close()
    reported = {r["accountId"] for request in sink.ok() for r in request.json()["reports"]}
    assert reported == {str(fine)} and run.error is None
    assert metrics.value(FAILURES_METRIC, ("billing",)) == 1
