"""The judged month, and the labels: which anomalies a synthetic key must raise, and when."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date

from crabglamp.jobs.anomalies.activity import KeyActivity
from crabglamp.jobs.anomalies.anomaly import AnomalyKind
from crabglamp.periods import month_period

MONTH = month_period(2026, 3)
MONTH_DAYS = len(MONTH.days)
HISTORY_DAYS = 35

ACCOUNT_ID = uuid.UUID(int=1)


@dataclass(slots=True)
class Label:
    kind: AnomalyKind
    first_day: date  # the detection must fall on a day in [first_day, last_day]
    last_day: date
    agent_id: uuid.UUID | None = None  # CAP_TRAJECTORY: the agent to name (None: any)
    model: str | None = None  # RUNAWAY_DAY: the model to name
    request_count: int | None = None  # RUNAWAY_DAY: that model's requests that day


@dataclass(slots=True)
class LabelledKey:
    scenario: str
    activity: KeyActivity
    labels: list[Label] = field(default_factory=list)
    # What the generator produced per agent and day (to check the agent that is named).
    agent_days: dict[tuple[uuid.UUID | None, date], int] = field(default_factory=dict)
