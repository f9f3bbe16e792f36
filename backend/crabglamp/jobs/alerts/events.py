"""What an alert says: an event with a stable id (its idempotency key) and a JSON body, for an
anomaly or a key crossing a share of its cap."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from crabglamp.jobs.anomalies.anomaly import Anomaly
from crabglamp.jobs.anomalies.wording import dollars
from crabglamp.money import micros_to_cents
from crabglamp.periods import month_of


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


def _moment(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def anomaly_data(anomaly: Anomaly, key_name: str | None = None) -> dict[str, Any]:
    """What every anomaly event carries: the detection (the original fields, kept as they were)
    and, added since, its id, state and what the key's leak policy did (CONTRACTS.md §9)."""
    s = anomaly.state
    return {
        "kind": anomaly.kind.value,
        "keyId": str(anomaly.key_id) if anomaly.key_id else None,
        "keyName": key_name,
        "agentId": str(anomaly.agent_id) if anomaly.agent_id else None,
        "date": anomaly.day.isoformat(),
        "severity": anomaly.severity,
        "message": anomaly.message,
        "suggestedAction": anomaly.suggested_action,
        "details": dict(anomaly.details),
        "anomalyId": anomaly.id,
        "detectedAt": anomaly.detected_at.isoformat(),
        "state": s.state,
        "acknowledgedBy": s.acknowledged_by,
        "acknowledgedAt": _moment(s.acknowledged_at),
        "resolution": s.resolution,
        "resolutionReason": s.resolution_reason,
        "resolvedBy": s.resolved_by,
        "resolvedAt": _moment(s.resolved_at),
        "policy": None
        if s.policy_action is None
        else {
            "action": s.policy_action,
            "appliedAt": _moment(s.policy_applied_at),
            "previousSpendCapCents": None
            if s.policy_previous_cap_micros is None
            else micros_to_cents(s.policy_previous_cap_micros),
            "revertedAt": _moment(s.policy_reverted_at),
            "revertedBy": s.policy_reverted_by,
        },
    }


def anomaly_event(anomaly: Anomaly, key_name: str | None = None) -> AlertEvent:
    return AlertEvent(
        id=f"anomaly:{anomaly.dedupe_key}",
        type="anomaly.detected",
        account_id=anomaly.account_id,
        created_at=anomaly.detected_at,
        data=anomaly_data(anomaly, key_name),
    )


# What changed about an anomaly after its detection: each change is an event of its own.
ANOMALY_CHANGES = ("acknowledged", "resolved", "policy_reverted")


def anomaly_change_event(
    anomaly: Anomaly, change: str, now: datetime, key_name: str | None = None
) -> AlertEvent:
    assert change in ANOMALY_CHANGES
    return AlertEvent(
        id=f"anomaly.{change}:{anomaly.dedupe_key}:{now.isoformat()}",
        type=f"anomaly.{change}",
        account_id=anomaly.account_id,
        created_at=now,
        data=anomaly_data(anomaly, key_name),
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
