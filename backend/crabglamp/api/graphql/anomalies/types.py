"""`Anomaly` and `AnomalyKind` (CONTRACTS.md §3.1), with the state and leak policy of §3.6."""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated

import strawberry

from crabglamp.api.graphql.context import Info
from crabglamp.jobs.anomalies.anomaly import Anomaly
from crabglamp.jobs.anomalies.state import policy_summary
from crabglamp.money import micros_to_cents

if TYPE_CHECKING:
    from crabglamp.api.graphql.virtual_keys.types import VirtualKeyType


@strawberry.enum(name="AnomalyKind", description="What looks wrong.")
class AnomalyKind(enum.Enum):
    SPIKE_ON_QUIET_KEY = strawberry.enum_value(
        "SPIKE_ON_QUIET_KEY",
        description="A sudden spike on a previously quiet key: a leaked token? Rotate or "
        "suspend it.",
    )
    CAP_TRAJECTORY = strawberry.enum_value(
        "CAP_TRAJECTORY",
        description="Spend climbing toward the cap mid-month: raise the cap or find the agent.",
    )
    RUNAWAY_DAY = strawberry.enum_value(
        "RUNAWAY_DAY",
        description="Mostly-zero days, then one huge day: a runaway script? Open that day's "
        "log, or lower the cap.",
    )


@strawberry.enum(name="AnomalyState", description="Where an anomaly is in its life.")
class AnomalyStateEnum(enum.Enum):
    OPEN = strawberry.enum_value("open", description="Nobody has acted on it yet.")
    ACKNOWLEDGED = strawberry.enum_value(
        "acknowledged", description="Someone has seen it (acknowledgedBy, acknowledgedAt)."
    )
    RESOLVED = strawberry.enum_value(
        "resolved", description="Answered by an action or dismissed (resolution)."
    )


@strawberry.enum(name="AnomalyResolution", description="How an anomaly was resolved.")
class AnomalyResolution(enum.Enum):
    ROTATED = strawberry.enum_value("rotated", description="The key's secret was rotated.")
    CAP_CHANGED = strawberry.enum_value("cap_changed", description="The key's cap was changed.")
    SUSPENDED = strawberry.enum_value("suspended", description="The key was suspended.")
    DISMISSED = strawberry.enum_value(
        "dismissed", description="Dismissed without an action, with a reason."
    )


@strawberry.enum(name="LeakPolicyAction", description="What a key's leak policy did.")
class LeakPolicyActionKind(enum.Enum):
    SUSPENDED = strawberry.enum_value("suspended", description="The key was suspended.")
    CAP_LOWERED = strawberry.enum_value(
        "cap_lowered", description="The key's cap was lowered to what it had spent."
    )


@strawberry.type(description="A key's month-to-date spend and its cap at one moment.")
class KeyStanding:
    at: datetime = strawberry.field(description="The moment.")
    accrued_cents: float = strawberry.field(
        description="Month-to-date LLM spend through the key at that moment."
    )
    spend_cap_cents: float | None = strawberry.field(description="The cap then; null: none.")
    percent_used: float | None = strawberry.field(
        description="accruedCents as a percentage of the cap; null when uncapped or zero."
    )


@strawberry.type(description="What the key's leak policy did when the anomaly was detected.")
class LeakPolicyApplied:
    action: LeakPolicyActionKind = strawberry.field(description="Suspended, or cap lowered.")
    applied_at: datetime = strawberry.field(description="When (within seconds of detection).")
    previous_spend_cap_cents: float | None = strawberry.field(
        description="The cap before (restoreSpendCap gives it back); null: uncapped."
    )
    reverted_at: datetime | None = strawberry.field(
        description="When an administrator undid it (resumed the key or restored the cap)."
    )
    reverted_by: str | None = strawberry.field(description="Who undid it.")
    summary: str = strawberry.field(description="All of it in words.")


@strawberry.type(
    name="Anomaly", description="Something in the spend worth a look, with its action and state."
)
class AnomalyType:
    anomaly: strawberry.Private[Anomaly]

    @strawberry.field(description="What kind of anomaly.")
    def kind(self) -> AnomalyKind:
        return AnomalyKind(self.anomaly.kind.value)

    @strawberry.field(description="The key concerned, if any.")
    def key_id(self) -> strawberry.ID | None:
        key_id = self.anomaly.key_id
        return None if key_id is None else strawberry.ID(str(key_id))

    @strawberry.field(description="The agent concerned, if any.")
    def agent_id(self) -> strawberry.ID | None:
        agent_id = self.anomaly.agent_id
        return None if agent_id is None else strawberry.ID(str(agent_id))

    @strawberry.field(description="The UTC day it was (or would have been) detected.")
    def date(self) -> date:
        return self.anomaly.day

    @strawberry.field(description="How far out of the ordinary; higher is worse.")
    def severity(self) -> float:
        return self.anomaly.severity

    @strawberry.field(description="What happened, in words.")
    def message(self) -> str:
        return self.anomaly.message

    @strawberry.field(description="What to do: rotate the key, raise the cap, open the log.")
    def suggested_action(self) -> str:
        return self.anomaly.suggested_action

    @strawberry.field(
        description="Stable id (one per key, kind and month): what acknowledgeAnomaly, "
        "dismissAnomaly and restoreSpendCap take, and the webhook's anomalyId."
    )
    def id(self) -> strawberry.ID:
        return strawberry.ID(self.anomaly.id)

    @strawberry.field(description="When it was (or would have been) detected.")
    def detected_at(self) -> datetime:
        return self.anomaly.detected_at

    @strawberry.field(description="The key's spend and cap at detection (null if not recorded).")
    def at_detection(self) -> KeyStanding | None:
        details = self.anomaly.details
        spent = details.get("monthSpentMicros", details.get("spentMicros"))
        if not isinstance(spent, int):
            return None
        cap = details.get("capMicros")
        cap = cap if isinstance(cap, int) else None
        return KeyStanding(
            at=self.anomaly.detected_at,
            accrued_cents=micros_to_cents(spent),
            spend_cap_cents=None if cap is None else micros_to_cents(cap),
            percent_used=spent * 100 / cap if cap else None,
        )

    @strawberry.field(
        description="The key as it stands now: its status, cap, this month's accrued spend "
        "and leak policy."
    )
    async def key(
        self, info: Info
    ) -> (
        Annotated[VirtualKeyType, strawberry.lazy("crabglamp.api.graphql.virtual_keys.types")]
        | None
    ):
        from crabglamp.api.graphql.virtual_keys.types import VirtualKeyType

        if self.anomaly.key_id is None:
            return None
        key = await info.context.loaders.key.load(self.anomaly.key_id)
        return None if key is None else VirtualKeyType(key=key)

    @strawberry.field(description="Open, acknowledged or resolved.")
    def state(self) -> AnomalyStateEnum:
        return AnomalyStateEnum(self.anomaly.state.state)

    @strawberry.field(description="Who acknowledged it (a user id).")
    def acknowledged_by(self) -> str | None:
        return self.anomaly.state.acknowledged_by

    @strawberry.field(description="When it was acknowledged.")
    def acknowledged_at(self) -> datetime | None:
        return self.anomaly.state.acknowledged_at

    @strawberry.field(description="The action that resolved it; null while not resolved.")
    def resolution(self) -> AnomalyResolution | None:
        value = self.anomaly.state.resolution
        return None if value is None else AnomalyResolution(value)

    @strawberry.field(description="Why it was dismissed.")
    def resolution_reason(self) -> str | None:
        return self.anomaly.state.resolution_reason

    @strawberry.field(description="Who resolved it (a user id).")
    def resolved_by(self) -> str | None:
        return self.anomaly.state.resolved_by

    @strawberry.field(description="When it was resolved.")
    def resolved_at(self) -> datetime | None:
        return self.anomaly.state.resolved_at

    @strawberry.field(description="What the key's leak policy did on detection; null: notified.")
    def policy_action(self) -> LeakPolicyApplied | None:
        s = self.anomaly.state
        summary = policy_summary(self.anomaly)
        if s.policy_action is None or s.policy_applied_at is None or summary is None:
            return None
        previous = s.policy_previous_cap_micros
        return LeakPolicyApplied(
            action=LeakPolicyActionKind(s.policy_action),
            applied_at=s.policy_applied_at,
            previous_spend_cap_cents=None if previous is None else micros_to_cents(previous),
            reverted_at=s.policy_reverted_at,
            reverted_by=s.policy_reverted_by,
            summary=summary,
        )

    @strawberry.field(
        description="Whether the caller may act on it (administers its account): members see "
        "it, administrators act."
    )
    async def viewer_may_act(self, info: Info) -> bool:
        return await info.context.loaders.administers.load(self.anomaly.account_id)
