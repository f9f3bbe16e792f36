"""Alerts against a real local receiver: signed, retried with backoff, each event once — anomalies
detected as usage arrives, and keys crossing 50, 80 and 100% of their caps."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

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
from crabglamp.models import Account, AlertDelivery, VirtualKey
from crabglamp.settings import AlertSettings, Thresholds
from webhook_support import Receiver, receiver

NOW = datetime(2026, 3, 17, 15, 30, tzinfo=UTC)
CENT = 1_000_000


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

        # Members read the endpoints (never the secret); other accounts do not see them.
        listed = (await graphql(client, ENDPOINTS, {"a": acme}, bob))["data"]["alertEndpoints"]
        assert listed == [
            {
                "id": endpoint["id"],
                "url": hook.url,
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
