"""`Anomaly` and `AnomalyKind` (CONTRACTS.md §3.1)."""

from __future__ import annotations

import enum
from datetime import date

import strawberry


@strawberry.enum(name="AnomalyKind", description="What looks wrong.")
class AnomalyKind(enum.Enum):
    SPIKE_ON_QUIET_KEY = strawberry.enum_value(
        "SPIKE_ON_QUIET_KEY",
        description="A sudden spike on a previously quiet key: a leaked token? Rotate it.",
    )
    CAP_TRAJECTORY = strawberry.enum_value(
        "CAP_TRAJECTORY",
        description="Spend climbing toward the cap mid-month: raise the cap or find the agent.",
    )
    RUNAWAY_DAY = strawberry.enum_value(
        "RUNAWAY_DAY",
        description="Mostly-zero days, then one huge day: a runaway script? Open that day's log.",
    )


@strawberry.type(
    name="Anomaly", description="Something in the spend worth a look, with its action."
)
class AnomalyType:
    kind: AnomalyKind = strawberry.field(description="What kind of anomaly.")
    key_id: strawberry.ID | None = strawberry.field(description="The key concerned, if any.")
    agent_id: strawberry.ID | None = strawberry.field(description="The agent concerned, if any.")
    date: date = strawberry.field(description="The UTC day it was (or would have been) detected.")
    severity: float = strawberry.field(description="How far out of the ordinary; higher is worse.")
    message: str = strawberry.field(description="What happened, in words.")
    suggested_action: str = strawberry.field(
        description="What to do: rotate the key, raise the cap, open the log."
    )
