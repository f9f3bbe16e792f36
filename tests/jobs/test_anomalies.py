"""Anomaly detection: a fixed-seed labelled set, keys that must not alarm, the rollups read back
from both engines, and the demo's planted anomalies through GraphQL."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from api_support import bearer, graphql, serve, settings_for
from crabglamp.db import read_transaction
from crabglamp.dev import demo
from crabglamp.dev.anomaly_eval.database import load_into
from crabglamp.dev.anomaly_eval.labels import ACCOUNT_ID, MONTH
from crabglamp.dev.anomaly_eval.scenarios import DEFAULT_COUNTS, generate
from crabglamp.dev.anomaly_eval.scoring import evaluate, score
from crabglamp.dev.demo.planted import RUNAWAY_MODEL
from crabglamp.jobs.anomalies.activity import DayPart, KeyActivity
from crabglamp.jobs.anomalies.anomaly import AnomalyKind
from crabglamp.jobs.anomalies.detectors import detect_key
from crabglamp.jobs.anomalies.period import anomalies_in_period
from crabglamp.periods import Period, day_start, iter_days
from crabglamp.settings import AlertSettings, Settings, Thresholds

SEED = 2026
MICROS = 1_000_000  # per cent


@pytest.fixture(scope="module")
def labelled() -> list:  # type: ignore[type-arg]
    return generate(SEED)


def test_the_labelled_months_are_found_with_recall_1_and_precision_095(labelled: list) -> None:  # type: ignore[type-arg]
    assert {item.scenario for item in labelled} == set(DEFAULT_COUNTS)
    result = evaluate(labelled)
    for kind, s in result.scores.items():
        assert s.true_positives >= 40, kind
        assert s.recall == 1.0, (kind, s.misses)
        assert s.precision >= 0.95, (kind, s.false_alarms)
        # Each hit names what the customer needs: the agent that spends most, or the model and
        # its request count on the runaway day.
        assert s.named_right == s.true_positives, kind
    assert result.growing_spikes == 0


def test_looser_thresholds_do_raise_false_alarms_on_the_same_set(labelled: list) -> None:  # type: ignore[type-arg]
    # The set is not trivially clean: without the peak ratio and the floors, ordinary keys alarm.
    loose = Thresholds(
        spike_peak_ratio=1.2,
        spike_mad_factor=2.0,
        spike_hour_floor_cents=1,
        spike_day_floor_cents=1,
        cap_projection_ratio=0.6,
    )
    result = evaluate(labelled, loose)
    assert result.scores[AnomalyKind.SPIKE_ON_QUIET_KEY].precision < 0.8
    assert result.scores[AnomalyKind.CAP_TRAJECTORY].precision < 0.8


def _key(
    per_day_cents: float,
    growth: float,
    days: int = 63,
    cap_cents: int | None = None,
    hours: tuple[float, ...] = (0.2,) * 8 + (1.0,) * 10 + (0.4,) * 6,
) -> KeyActivity:
    """A key spending per_day_cents on its first day, growing by `growth` a day, shaped by hour."""
    first = MONTH.end - timedelta(days=days - 1)
    activity = KeyActivity(
        uuid.uuid4(), ACCOUNT_ID, "growing", cap_cents and cap_cents * MICROS, first
    )
    weight = sum(hours)
    for n, day in enumerate(iter_days(first, MONTH.end)):
        total = 0
        for h, w in enumerate(hours):
            cost = round(per_day_cents * (1 + growth) ** n * w / weight * MICROS)
            activity.hourly[day_start(day) + timedelta(hours=h)] = cost
            total += cost
        activity.add_part(
            day, DayPart(None, "openai", "gpt-4o-mini", total, max(1, total // MICROS))
        )
    return activity


@pytest.mark.parametrize("growth", [0.02, 0.05, 0.1, 0.2, 0.35])
@pytest.mark.parametrize("per_day_cents", [3, 200, 50_000])
def test_a_steadily_growing_key_never_raises_a_spike(per_day_cents: float, growth: float) -> None:
    activity = _key(per_day_cents, growth)
    found = detect_key(activity, MONTH.days, day_start(MONTH.end + timedelta(days=1)), Thresholds())
    assert [a for a in found if a.kind is AnomalyKind.SPIKE_ON_QUIET_KEY] == []
    # It does outgrow a cap set at the pace of the month's first day: the trajectory says so
    # before the cap is reached.
    capped = _key(per_day_cents, growth)
    capped.cap_micros = capped.daily[MONTH.start] * len(MONTH.days)
    end = day_start(MONTH.end + timedelta(days=1))
    (warning,) = [
        a
        for a in detect_key(capped, MONTH.days, end, Thresholds())
        if a.kind is AnomalyKind.CAP_TRAJECTORY
    ]
    spent = 0
    for day in MONTH.days:
        spent += capped.daily[day]
        if spent >= capped.cap_micros:
            assert warning.day < day
            break
    else:
        raise AssertionError("the key never reached its cap")


def _quiet_then(extra_cents: float, hours: int = 3) -> KeyActivity:
    """Ten cents a day for five weeks, then `extra_cents` in a few hours on March 20."""
    activity = _key(10, 0.0, days=66)
    day = date(2026, 3, 20)
    for h in range(hours):
        moment = day_start(day) + timedelta(hours=12 + h)
        cost = round(extra_cents / hours * MICROS)
        activity.hourly[moment] = activity.hourly.get(moment, 0) + cost
        activity.add_part(day, DayPart(None, "openai", "gpt-4o", cost, 50))
    return activity


def test_cents_do_not_alarm_but_dollars_do() -> None:
    end = day_start(MONTH.end + timedelta(days=1))
    # Twenty times the key's usual day, but a dollar and a half: nobody wants that alarm.
    assert detect_key(_quiet_then(150), MONTH.days, end, Thresholds()) == []
    (spike,) = detect_key(_quiet_then(3000), MONTH.days, end, Thresholds())
    assert spike.kind is AnomalyKind.SPIKE_ON_QUIET_KEY
    assert spike.day == date(2026, 3, 20)
    assert spike.details["granularity"] == "hour"
    assert "rotate key 'growing'" in spike.suggested_action
    assert "spent $10.01 in the hour from 12:00 UTC on Mar 20" in spike.message
    assert "it usually spends $0.10 a day" in spike.message


def test_thresholds_come_from_the_environment() -> None:
    t = Settings.from_env(
        {
            "CRABGLAMP_ANOMALY_SPIKE_HOUR_FLOOR_CENTS": "5000",
            "CRABGLAMP_ANOMALY_SPIKE_DAY_FLOOR_CENTS": "5000",
        }
    ).thresholds
    assert t.spike_hour_floor_cents == 5000 and t.spike_peak_ratio == Thresholds().spike_peak_ratio
    end = day_start(MONTH.end + timedelta(days=1))
    assert detect_key(_quiet_then(3000), MONTH.days, end, t) == []
    with pytest.raises(ValueError, match="CRABGLAMP_ANOMALY_SPIKE_PEAK_RATIO"):
        Settings.from_env({"CRABGLAMP_ANOMALY_SPIKE_PEAK_RATIO": "lots"})


def test_a_day_is_judged_as_of_its_own_end_never_with_later_data() -> None:
    activity = _quiet_then(3000)
    # Judged as of noon on March 20 (the leak starts at 12:00): nothing yet; at 13:00 it shows.
    noon = datetime(2026, 3, 20, 12, tzinfo=UTC)
    assert detect_key(activity, [date(2026, 3, 20)], noon, Thresholds()) == []
    (spike,) = detect_key(activity, [date(2026, 3, 20)], noon + timedelta(hours=1), Thresholds())
    assert spike.detected_at == noon + timedelta(hours=1)


@pytest.fixture(scope="module")
def sample(labelled: list) -> list:  # type: ignore[type-arg]
    """A few keys of every scenario (for the database, where each key costs real events)."""
    seen: dict[str, int] = {}
    picked = []
    for item in labelled:
        if seen.get(item.scenario, 0) < 3:
            seen[item.scenario] = seen.get(item.scenario, 0) + 1
            picked.append(item)
    return picked


async def test_the_rollups_read_back_give_the_same_detections(
    engine: AsyncEngine,
    sample: list,  # type: ignore[type-arg]
) -> None:
    # The same keys in the daily and hourly rollups, then `anomalies` for the past month, which
    # finds nothing stored and judges every day from what it reads.
    await load_into(engine, sample)
    now = day_start(MONTH.end + timedelta(days=5))
    async with read_transaction(engine) as conn:
        found = await anomalies_in_period(conn, [ACCOUNT_ID], Period(MONTH.start, MONTH.end), now)
    expected = evaluate(sample, now=now)
    by_key: dict[uuid.UUID, list] = {}  # type: ignore[type-arg]
    for anomaly in found:
        assert anomaly.key_id is not None
        by_key.setdefault(anomaly.key_id, []).append(anomaly)
    from_db = score(sample, by_key)
    assert sorted((a.key_id, a.kind, a.day) for a in found) == sorted(
        (a.key_id, a.kind, a.day) for anomalies in expected.found.values() for a in anomalies
    )
    for kind, s in from_db.scores.items():
        assert s.recall == 1.0 and s.precision == 1.0, (kind, s.misses, s.false_alarms)
    # Newest first, as the dashboard lists them.
    assert [a.day for a in found] == sorted((a.day for a in found), reverse=True)


# The demo, through GraphQL

MID = datetime(2026, 3, 17, 15, 42, 10, tzinfo=UTC)
ANOMALIES = """
query ($accountId: ID, $month: String) {
  anomalies(accountId: $accountId, month: $month) {
    kind keyId agentId date severity message suggestedAction
  }
}
"""


async def test_the_demos_planted_anomalies_appear_in_graphql(
    engine: AsyncEngine, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await demo.seed_demo(Settings(database_url=db_url), scale=0.02, now=MID, echo=False)
    planted = demo.PLANTED
    settings = settings_for(db_url)
    alice = bearer("user_demo_alice", org_id="org_demo_acme", org_role="admin")
    dave = bearer("user_demo_dave", org_id="org_demo_globex", org_role="admin")
    # `anomalies` judges today as of the request's moment: the demo's.
    monkeypatch.setattr("crabglamp.api.graphql.context.utcnow", lambda: MID)
    async with serve(engine, settings) as client:
        acme = (await graphql(client, ANOMALIES, {"month": "2026-03"}, alice))["data"]["anomalies"]
        globex = (await graphql(client, ANOMALIES, {"month": "2026-03"}, dave))["data"]["anomalies"]
        # Another account's anomalies are not Alice's to read.
        refused = await graphql(
            client, ANOMALIES, {"month": "2026-03", "accountId": str(demo.GLOBEX_ACCOUNT_ID)}, alice
        )

    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    kinds = {(a["kind"], a["keyId"]) for a in acme + globex}
    # Exactly the three planted anomalies, nothing on the other 23 keys.
    assert kinds == {
        ("SPIKE_ON_QUIET_KEY", str(planted["spike_key_id"])),
        ("CAP_TRAJECTORY", str(planted["cap_key_id"])),
        ("RUNAWAY_DAY", str(planted["runaway_key_id"])),
    }
    by_kind = {a["kind"]: a for a in acme + globex}
    spike = by_kind["SPIKE_ON_QUIET_KEY"]
    assert spike["date"] == "2026-03-17"
    assert "legacy-zapier" in spike["message"] and spike["suggestedAction"].startswith(
        "If nobody on your team expected this, rotate key"
    )
    cap = by_kind["CAP_TRAJECTORY"]
    assert "agent 'support-bot' spent the most" in cap["message"].lower()
    assert cap["suggestedAction"].startswith("Raise the cap of 'support-prod'")
    runaway = by_kind["RUNAWAY_DAY"]
    assert runaway["date"] == "2026-03-14"
    assert runaway["agentId"] == str(planted["runaway_agent_id"])
    assert RUNAWAY_MODEL in runaway["suggestedAction"]
    assert "requests" in runaway["suggestedAction"]
    for anomaly in acme + globex:
        assert anomaly["severity"] >= 1.0 and math.isfinite(anomaly["severity"])


def test_every_threshold_and_alert_setting_is_documented_with_its_default() -> None:
    from dataclasses import fields

    from crabglamp.api.dashboard import DOCS_DIR

    guide = (DOCS_DIR / "anomalies-and-alerts.md").read_text(encoding="utf-8")
    assert guide.startswith("# Anomalies and alerts\n")
    for prefix, settings in (
        ("CRABGLAMP_ANOMALY_", Thresholds()),
        ("CRABGLAMP_ALERT_", AlertSettings()),
    ):
        for f in fields(settings):
            default = getattr(settings, f.name)
            shown = f"{default:g}" if isinstance(default, float) else str(default)
            row = f"| `{prefix}{f.name.upper()}` | {shown} |"
            assert row in guide, row
