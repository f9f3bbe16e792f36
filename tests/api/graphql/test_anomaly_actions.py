"""Acting on anomalies through GraphQL: administrators acknowledge, dismiss with a reason and
undo a leak policy; members see (viewerMayAct: false) and are refused with a typed error;
rotating, re-capping or suspending a key resolves its anomalies, which stay listed; the
Anomalies document's statements do not grow with the number of anomalies (no N+1)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from api_support import ALICE, BOB, GINA, World, bearer, count_statements, graphql
from crabglamp.db import write_transaction
from crabglamp.db.tables import table_of
from crabglamp.ingest.ingestor import Ingestor
from crabglamp.models import VirtualKey
from leak_support import flood, quiet_history

ANOMALIES_DOCUMENT = (
    Path(__file__).parents[3] / "frontend" / "src" / "graphql" / "Anomalies.graphql"
).read_text()
LIST = """
query List($from: Date, $to: Date) {
  anomalies(from: $from, to: $to) {
    id kind keyId state acknowledgedBy resolution resolutionReason resolvedBy viewerMayAct
    atDetection { accruedCents spendCapCents }
    key { id status accruedCents spendCapCents leakPolicy }
  }
}
"""
ACK = "mutation($id: ID!) { acknowledgeAnomaly(id: $id) { __typename ... on Error { code message } ... on AnomalySuccess { anomaly { state acknowledgedBy } } } }"
DISMISS = "mutation($id: ID!, $r: String!) { dismissAnomaly(id: $id, reason: $r) { __typename ... on Error { code } ... on InvalidInputError { field } ... on AnomalySuccess { anomaly { state resolution resolutionReason } } } }"
ROTATE = "mutation($k: ID!) { rotateVirtualKey(keyId: $k) { __typename } }"
CAP = "mutation($k: ID!, $c: Float) { setSpendCap(keyId: $k, spendCapCents: $c) { __typename } }"
SUSPEND = "mutation($k: ID!) { suspendVirtualKey(keyId: $k) { __typename ... on Error { code } ... on SuspendVirtualKeySuccess { key { status suspendedReason } } } }"
RESUME = "mutation($k: ID!) { resumeVirtualKey(keyId: $k) { __typename ... on ResumeVirtualKeySuccess { key { status } } } }"
POLICY = "mutation($k: ID!, $p: LeakPolicy!) { setLeakPolicy(keyId: $k, policy: $p) { __typename ... on Error { code } ... on SetLeakPolicySuccess { key { leakPolicy } } } }"


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _window() -> dict[str, str]:
    # The flood is minutes old: today, or just before midnight, yesterday.
    today = _now().date()
    return {"from": (today - timedelta(days=1)).isoformat(), "to": today.isoformat()}


async def _leak(engine: AsyncEngine, key_id: uuid.UUID) -> None:
    now = _now()
    await Ingestor(engine).record(quiet_history(key_id, now) + flood(key_id, now))


async def _more_keys(engine: AsyncEngine, w: World, n: int) -> list[uuid.UUID]:
    ids = [uuid.uuid4() for _ in range(n)]
    async with write_transaction(engine) as conn:
        await conn.execute(
            table_of(VirtualKey).insert(),
            [
                {
                    "id": key_id,
                    "account_id": w.acme,
                    "name": f"leaky-{i}",
                    "provider": "openai",
                    "spend_cap_micros": 10_000 * 1_000_000,
                    "status": "active",
                    "created_at": _now() - timedelta(days=60),
                }
                for i, key_id in enumerate(ids)
            ],
        )
    return ids


async def _list(client: httpx.AsyncClient, who: dict[str, Any]) -> list[dict[str, Any]]:
    answer = await graphql(client, LIST, _window(), bearer(**who))
    assert "errors" not in answer, answer
    found: list[dict[str, Any]] = answer["data"]["anomalies"]
    return found


async def _spike(client: httpx.AsyncClient, key_id: uuid.UUID) -> dict[str, Any]:
    (found,) = [
        a
        for a in await _list(client, ALICE)
        if a["keyId"] == str(key_id) and a["kind"] == "SPIKE_ON_QUIET_KEY"
    ]
    return found


async def test_members_see_anomalies_but_only_administrators_act(
    client: httpx.AsyncClient, engine: AsyncEngine, world: World
) -> None:
    (key_id,) = await _more_keys(engine, world, 1)
    await _leak(engine, key_id)
    spike = await _spike(client, key_id)
    assert spike["viewerMayAct"] is True and spike["state"] == "OPEN"
    as_bob = [a for a in await _list(client, BOB) if a["id"] == spike["id"]]
    assert [a["viewerMayAct"] for a in as_bob] == [False]

    refused = await graphql(client, ACK, {"id": spike["id"]}, bearer(**BOB))
    assert refused["data"]["acknowledgeAnomaly"]["__typename"] == "NotAllowedError"
    assert refused["data"]["acknowledgeAnomaly"]["code"] == "FORBIDDEN"
    for who, anomaly_id in [
        (GINA, spike["id"]),
        (ALICE, "nonsense"),
        (ALICE, f"RUNAWAY_DAY:{uuid.uuid4()}:2026-03"),
    ]:
        answer = await graphql(client, ACK, {"id": anomaly_id}, bearer(**who))
        assert answer["data"]["acknowledgeAnomaly"]["__typename"] == "AnomalyNotFoundError"
    member_policy = await graphql(client, POLICY, {"k": str(key_id), "p": "SUSPEND"}, bearer(**BOB))
    assert member_policy["data"]["setLeakPolicy"]["__typename"] == "NotAllowedError"
    member_suspend = await graphql(client, SUSPEND, {"k": str(key_id)}, bearer(**BOB))
    assert member_suspend["data"]["suspendVirtualKey"]["__typename"] == "NotAllowedError"
    # Nothing a member tried changed anything.
    assert (await _spike(client, key_id))["state"] == "OPEN"


async def test_acknowledge_dismiss_and_resolve_by_rotating(
    client: httpx.AsyncClient, engine: AsyncEngine, world: World
) -> None:
    first, second = await _more_keys(engine, world, 2)
    await _leak(engine, first)
    await _leak(engine, second)
    spike = await _spike(client, first)
    # Detected vs now: the figures of the moment of detection, and the key's as it stands.
    assert spike["atDetection"]["spendCapCents"] == 10_000.0
    assert spike["atDetection"]["accruedCents"] <= spike["key"]["accruedCents"]

    acked = await graphql(client, ACK, {"id": spike["id"]}, bearer(**ALICE))
    assert acked["data"]["acknowledgeAnomaly"] == {
        "__typename": "AnomalySuccess",
        "anomaly": {"state": "ACKNOWLEDGED", "acknowledgedBy": "user_alice"},
    }
    empty = await graphql(client, DISMISS, {"id": spike["id"], "r": " "}, bearer(**ALICE))
    assert empty["data"]["dismissAnomaly"]["__typename"] == "InvalidInputError"
    assert empty["data"]["dismissAnomaly"]["field"] == "reason"

    rotated = await graphql(client, ROTATE, {"k": str(first)}, bearer(**ALICE))
    assert rotated["data"]["rotateVirtualKey"]["__typename"] == "RotateVirtualKeySuccess"
    after = await _spike(client, first)
    assert (after["state"], after["resolution"], after["resolvedBy"]) == (
        "RESOLVED",
        "ROTATED",
        "user_alice",
    )
    again = await graphql(client, DISMISS, {"id": spike["id"], "r": "late"}, bearer(**ALICE))
    assert again["data"]["dismissAnomaly"]["__typename"] == "AnomalyResolvedError"

    # The other key: a cap change resolves it as such; its neighbour stays as it was.
    other = await _spike(client, second)
    capped = await graphql(client, CAP, {"k": str(second), "c": 20_000}, bearer(**ALICE))
    assert capped["data"]["setSpendCap"]["__typename"] == "SetSpendCapSuccess"
    assert (await _spike(client, second))["resolution"] == "CAP_CHANGED"
    assert (await _spike(client, first))["resolution"] == "ROTATED"
    assert other["id"] != spike["id"]


async def test_suspend_resume_and_the_leak_policy_on_the_key(
    client: httpx.AsyncClient, engine: AsyncEngine, world: World
) -> None:
    (key_id,) = await _more_keys(engine, world, 1)
    await _leak(engine, key_id)
    spike = await _spike(client, key_id)
    assert spike["key"]["leakPolicy"] == "NOTIFY"
    chosen = await graphql(client, POLICY, {"k": str(key_id), "p": "LOWER_CAP"}, bearer(**ALICE))
    assert chosen["data"]["setLeakPolicy"]["key"] == {"leakPolicy": "LOWER_CAP"}
    suspended = await graphql(client, SUSPEND, {"k": str(key_id)}, bearer(**ALICE))
    assert suspended["data"]["suspendVirtualKey"]["key"]["status"] == "suspended"
    assert "user_alice" in suspended["data"]["suspendVirtualKey"]["key"]["suspendedReason"]
    after = await _spike(client, key_id)
    assert (after["state"], after["resolution"], after["key"]["status"]) == (
        "RESOLVED",
        "SUSPENDED",
        "suspended",
    )
    resumed = await graphql(client, RESUME, {"k": str(key_id)}, bearer(**ALICE))
    assert resumed["data"]["resumeVirtualKey"]["key"] == {"status": "active"}


async def test_the_anomalies_document_does_not_grow_with_the_number_of_anomalies(
    client: httpx.AsyncClient, engine: AsyncEngine, world: World
) -> None:
    variables = {"accountId": str(world.acme), **_window()}

    async def run() -> tuple[int, int]:
        with count_statements(engine) as statements:
            answer = await graphql(client, ANOMALIES_DOCUMENT, variables, bearer(**ALICE))
        assert "errors" not in answer, answer
        return len(answer["data"]["anomalies"]), len(statements)

    keys = await _more_keys(engine, world, 7)
    await _leak(engine, keys[0])
    few, small = await run()
    for key_id in keys[1:]:
        await _leak(engine, key_id)
    many, large = await run()
    assert many >= few + 6
    assert large == small, f"{small} statements for {few} anomalies, {large} for {many}"
