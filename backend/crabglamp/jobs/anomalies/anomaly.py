"""What detection finds: an anomaly of one of three kinds, for one key on one day, and the state
people (and the key's leak policy) gave it since."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from crabglamp.periods import month_of


class AnomalyKind(enum.Enum):
    SPIKE_ON_QUIET_KEY = "SPIKE_ON_QUIET_KEY"
    CAP_TRAJECTORY = "CAP_TRAJECTORY"
    RUNAWAY_DAY = "RUNAWAY_DAY"


@dataclass(frozen=True, slots=True)
class AnomalyState:
    """Open, acknowledged (by whom, when) or resolved (by which action); and what the key's leak
    policy did on detection (jobs/anomalies/state.py changes it)."""

    state: str = "open"  # "open" | "acknowledged" | "resolved"
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    # "rotated" | "cap_changed" | "suspended" | "dismissed" (with a reason)
    resolution: str | None = None
    resolution_reason: str | None = None
    resolved_by: str | None = None
    resolved_at: datetime | None = None
    policy_action: str | None = None  # "suspended" | "cap_lowered"; None: notified only
    policy_applied_at: datetime | None = None
    policy_previous_cap_micros: int | None = None
    policy_reverted_at: datetime | None = None
    policy_reverted_by: str | None = None


OPEN = AnomalyState()


@dataclass(frozen=True, slots=True)
class Anomaly:
    kind: AnomalyKind
    account_id: uuid.UUID
    key_id: uuid.UUID | None
    agent_id: uuid.UUID | None
    day: date
    severity: float
    message: str
    suggested_action: str
    detected_at: datetime
    # The numbers behind the message (webhook payloads carry them; the evaluation reads them).
    details: Mapping[str, Any] = field(default_factory=dict)
    # Not stored yet (found for a past period, or not seen by the watcher yet): open.
    state: AnomalyState = OPEN

    @property
    def id(self) -> str:
        """The anomaly's stable id: one per key, kind and month, like its alert."""
        return self.dedupe_key

    @property
    def dedupe_key(self) -> str:
        """One anomaly per key, kind and calendar month: what alerts fire once for."""
        return f"{self.kind.value}:{self.key_id}:{month_of(self.day)}"
