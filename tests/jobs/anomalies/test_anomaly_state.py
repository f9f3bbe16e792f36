"""An anomaly's life after detection: the key's leak policy applied by the watcher within the
same pass that detects the spike (suspend, or lower the cap to what it spent), recorded on the
anomaly and in the webhook; reverted by an administrator; acknowledged, dismissed with a reason,
resolved by the action taken on the key; the figures of the moment it was detected."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from crabglamp import keys
from crabglamp.db import read_transaction, write_transaction
from crabglamp.db.tables import table_of
from crabglamp.ingest.ingestor import Ingestor
from crabglamp.jobs.alerts import endpoints
from crabglamp.jobs.alerts.sender import AlertSender
from crabglamp.jobs.anomalies import state
from crabglamp.jobs.anomalies.anomaly import AnomalyKind
from crabglamp.jobs.anomalies.period import anomalies_in_period
from crabglamp.jobs.watch import UsageWatcher
from crabglamp.models import Account, VirtualKey
from crabglamp.periods import month_period
from crabglamp.settings import AlertSettings, Thresholds
from crabglamp.usage.spend import spend_of_keys
from leak_support import CENT, flood, quiet_history, spend
from webhook_support import receiver

NOW = datetime(2026, 3, 17, 15, 30, tzinfo=UTC)
# What the original `anomaly.detected` payload held: every field stays (CONTRACTS.md §9).
ORIGINAL_FIELDS = {
    "kind",
    "keyId",
    "keyName",
    "agentId",
    "date",
    "severity",
    "message",
    "suggestedAction",
    "details",
}


async def _key(
    engine: AsyncEngine, policy: str = "notify", cap_cents: int | None = None
) -> tuple[uuid.UUID, uuid.UUID]:
    account_id, key_id = uuid.uuid4(), uuid.uuid4()
    async with write_transaction(engine) as conn:
        await conn.execute(table_of(Account).insert(), [{"id": account_id, "name": "Hooli"}])
        await conn.execute(
            table_of(VirtualKey).insert(),
            [
                {
                    "id": key_id,
                    "account_id": account_id,
                    "name": "legacy-zapier",
                    "provider": "openai",
                    "spend_cap_micros": None if cap_cents is None else cap_cents * CENT,
                    "status": "active",
                    "leak_policy": policy,
                    "created_at": NOW - timedelta(days=60),
                }
            ],
        )
    return account_id, key_id


def _watcher(engine: AsyncEngine) -> UsageWatcher:
    return UsageWatcher(engine, Thresholds(), AlertSender(engine, AlertSettings()))


async def _key_row(engine: AsyncEngine, key_id: uuid.UUID) -> keys.KeyView:
    async with read_transaction(engine) as conn:
        key = await keys.get_key(conn, key_id)
    assert key is not None
    return key


async def _leak(engine: AsyncEngine, key_id: uuid.UUID) -> UsageWatcher:
    """A quiet key, watched, then flooded; returns the watcher after the pass that saw it."""
    ingestor = Ingestor(engine)
    await ingestor.record(quiet_history(key_id, NOW))
    watcher = _watcher(engine)
    assert (await watcher.run_once(NOW - timedelta(minutes=30))).new_anomalies == []
    await ingestor.record(flood(key_id, NOW))
    return watcher


async def test_the_suspend_policy_suspends_the_key_in_the_detecting_pass_and_says_so(
    engine: AsyncEngine,
) -> None:
    account_id, key_id = await _key(engine, "suspend", cap_cents=5000)
    with receiver() as hook:
        async with write_transaction(engine) as conn:
            await endpoints.create_endpoint(conn, account_id, hook.url, "pager", now=NOW)
        watcher = await _leak(engine, key_id)
        try:
            report = await watcher.run_once(NOW)
        finally:
            await watcher.close()
        (anomaly,) = report.new_anomalies
        assert anomaly.kind is AnomalyKind.SPIKE_ON_QUIET_KEY
        key = await _key_row(engine, key_id)
        # The key is suspended, by this anomaly, from this very pass on: the proxy's admission
        # statement reads the status on the next request.
        assert key.status == "suspended" and key.suspended_at == NOW
        assert key.suspended_by_anomaly == anomaly.id
        assert anomaly.id in (key.suspended_reason or "")
        assert key.spend_cap_micros == 5000 * CENT  # suspended, not re-capped
        assert anomaly.state.policy_action == "suspended"
        assert anomaly.state.policy_applied_at == NOW
        assert anomaly.state.state == "open"  # still needs someone: rotate, then resume
        (request,) = hook.ok()
        body = request.json()
        assert body["type"] == "anomaly.detected"
        data = body["data"]
        assert set(data) >= ORIGINAL_FIELDS
        assert data["anomalyId"] == anomaly.id and data["state"] == "open"
        assert data["policy"] == {
            "action": "suspended",
            "appliedAt": NOW.isoformat(),
            "previousSpendCapCents": 5000.0,
            "revertedAt": None,
            "revertedBy": None,
        }

    # An administrator resumes it through the anomaly: the key works again, the anomaly says who.
    async with write_transaction(engine) as conn:
        found = await state.find_anomaly(conn, anomaly.id, NOW, Thresholds())
        assert found is not None
        reverted = await state.revert_policy(conn, found, "user_alice", NOW + timedelta(minutes=5))
    assert not isinstance(reverted, state.AnomalyProblem)
    assert reverted.state.policy_reverted_by == "user_alice"
    assert (await _key_row(engine, key_id)).status == "active"
    assert "Reverted by user_alice" in (state.policy_summary(reverted) or "")


@pytest.mark.parametrize("cap_cents", [None, 5000])
async def test_the_lower_cap_policy_caps_the_key_at_what_it_spent_and_restores_it(
    engine: AsyncEngine, cap_cents: int | None
) -> None:
    _account, key_id = await _key(engine, "lower_cap", cap_cents=cap_cents)
    watcher = await _leak(engine, key_id)
    try:
        (anomaly,) = (await watcher.run_once(NOW)).new_anomalies
    finally:
        await watcher.close()
    async with read_transaction(engine) as conn:
        spent = (await spend_of_keys(conn, [key_id], NOW.date()))[key_id]
    key = await _key_row(engine, key_id)
    assert key.status == "active" and key.spend_cap_micros == spent
    assert anomaly.state.policy_action == "cap_lowered"
    assert anomaly.state.policy_previous_cap_micros == (cap_cents and cap_cents * CENT)
    async with write_transaction(engine) as conn:
        found = await state.find_anomaly(conn, anomaly.id, NOW, Thresholds())
        assert found is not None
        reverted = await state.revert_policy(conn, found, "user_alice", NOW)
        # Reverting twice is harmless.
        again = await state.revert_policy(conn, found, "user_alice", NOW)
    assert not isinstance(reverted, state.AnomalyProblem)
    assert not isinstance(again, state.AnomalyProblem)
    assert (await _key_row(engine, key_id)).spend_cap_micros == (cap_cents and cap_cents * CENT)


async def test_the_notify_policy_changes_nothing_but_the_alert(engine: AsyncEngine) -> None:
    _account, key_id = await _key(engine, cap_cents=5000)
    watcher = await _leak(engine, key_id)
    try:
        (anomaly,) = (await watcher.run_once(NOW)).new_anomalies
    finally:
        await watcher.close()
    key = await _key_row(engine, key_id)
    assert key.status == "active" and key.spend_cap_micros == 5000 * CENT
    assert anomaly.state.policy_action is None
    async with write_transaction(engine) as conn:
        problem = await state.revert_policy(conn, anomaly, "user_alice", NOW)
    assert isinstance(problem, state.AnomalyProblem) and problem.code == "NOTHING_TO_REVERT"


async def test_a_spike_is_stored_with_the_keys_spend_and_cap_of_that_moment(
    engine: AsyncEngine,
) -> None:
    _account, key_id = await _key(engine, cap_cents=5000)
    watcher = await _leak(engine, key_id)
    try:
        (anomaly,) = (await watcher.run_once(NOW)).new_anomalies
    finally:
        await watcher.close()
    async with read_transaction(engine) as conn:
        month_so_far = (await spend_of_keys(conn, [key_id], NOW.date()))[key_id]
    assert anomaly.details["monthSpentMicros"] == month_so_far
    assert anomaly.details["capMicros"] == 5000 * CENT
    # More spend later moves the key on; the anomaly keeps what was true when it was detected.
    await Ingestor(engine).record(spend(key_id, NOW + timedelta(minutes=5), 300, 10))
    async with read_transaction(engine) as conn:
        (stored,) = await anomalies_in_period(
            conn, [anomaly.account_id], month_period(2026, 3), NOW + timedelta(minutes=10)
        )
    assert stored.details["monthSpentMicros"] == month_so_far
    assert stored.detected_at == NOW


async def test_acknowledge_then_dismiss_with_a_reason_and_a_resolved_one_stays_resolved(
    engine: AsyncEngine,
) -> None:
    _account, key_id = await _key(engine)
    watcher = await _leak(engine, key_id)
    try:
        (anomaly,) = (await watcher.run_once(NOW)).new_anomalies
    finally:
        await watcher.close()
    later = NOW + timedelta(minutes=3)
    async with write_transaction(engine) as conn:
        seen = await state.acknowledge(conn, anomaly, "user_bob", later)
        assert not isinstance(seen, state.AnomalyProblem)
        assert (seen.state.state, seen.state.acknowledged_by) == ("acknowledged", "user_bob")
        assert seen.state.acknowledged_at == later
        # Acknowledging again keeps the first who and when.
        again = await state.acknowledge(conn, seen, "user_alice", later + timedelta(minutes=1))
        assert not isinstance(again, state.AnomalyProblem)
        assert again.state.acknowledged_by == "user_bob"
        no_reason = await state.dismiss(conn, seen, "user_alice", "   ", later)
        assert isinstance(no_reason, state.AnomalyProblem) and no_reason.code == "INVALID_INPUT"
        done = await state.dismiss(conn, seen, "user_alice", "a planned load test", later)
        assert not isinstance(done, state.AnomalyProblem)
        assert (done.state.state, done.state.resolution) == ("resolved", "dismissed")
        assert done.state.resolution_reason == "a planned load test"
        refused = await state.acknowledge(conn, done, "user_bob", later)
        assert isinstance(refused, state.AnomalyProblem) and refused.code == "ANOMALY_RESOLVED"
        # Rotating later leaves a dismissed anomaly as it was resolved.
        assert (
            await state.resolve_key_anomalies(conn, key_id, "rotated", "u", later, Thresholds())
            == []
        )
    async with read_transaction(engine) as conn:
        (kept,) = await anomalies_in_period(
            conn, [anomaly.account_id], month_period(2026, 3), later
        )
    assert kept.state.resolution == "dismissed"  # still in the month's history


async def test_acting_on_a_key_resolves_anomalies_the_watcher_never_stored(
    engine: AsyncEngine,
) -> None:
    # Imported usage: the anomaly exists only as the period's reconstruction, until acted on.
    account_id, key_id = await _key(engine)
    await Ingestor(engine).record(quiet_history(key_id, NOW) + flood(key_id, NOW))
    async with read_transaction(engine) as conn:
        (found,) = await anomalies_in_period(conn, [account_id], month_period(2026, 3), NOW)
    assert found.state.state == "open"
    async with write_transaction(engine) as conn:
        resolved = await state.resolve_key_anomalies(
            conn, key_id, "rotated", "user_alice", NOW, Thresholds()
        )
    assert [(a.id, a.state.resolution) for a in resolved] == [(found.id, "rotated")]
    async with read_transaction(engine) as conn:
        (after,) = await anomalies_in_period(conn, [account_id], month_period(2026, 3), NOW)
    assert (after.state.state, after.state.resolved_by) == ("resolved", "user_alice")


def test_anomaly_ids_parse_back_and_nonsense_does_not() -> None:
    key_id = uuid.uuid4()
    ref = state.parse_id(f"RUNAWAY_DAY:{key_id}:2026-03")
    assert ref is not None and (ref.kind, ref.key_id) == (AnomalyKind.RUNAWAY_DAY, key_id)
    for bad in [
        "",
        "RUNAWAY_DAY",
        f"NOPE:{key_id}:2026-03",
        f"RUNAWAY_DAY:{key_id}:2026-13",
        "RUNAWAY_DAY:not-a-uuid:2026-03",
        f"RUNAWAY_DAY:{key_id}:2026-3",
    ]:
        assert state.parse_id(bad) is None, bad
