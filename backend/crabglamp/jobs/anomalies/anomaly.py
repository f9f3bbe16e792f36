"""What detection finds: an anomaly of one of three kinds, for one key on one day."""

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

    @property
    def dedupe_key(self) -> str:
        """One anomaly per key, kind and calendar month: what alerts fire once for."""
        return f"{self.kind.value}:{self.key_id}:{month_of(self.day)}"
