"""The `UsageFilter` input (CONTRACTS.md §3.1): the parameters of GET /api/usage."""

from __future__ import annotations

from datetime import date

import strawberry

from crabglamp.api.graphql.permissions import optional_uuid, uuids
from crabglamp.usage.filter import UsageFilter


@strawberry.input(
    name="UsageFilter",
    description="What to count. Without month or from/to: the current UTC month. model, "
    "provider and keyId(s) narrow the LLM axis only, voiceModel the voice axis only, agentId "
    "all three.",
)
class UsageFilterInput:
    month: str | None = strawberry.field(default=None, description="A UTC month, YYYY-MM.")
    date_from: date | None = strawberry.field(
        default=None, name="from", description="First day of a range (inclusive), with to."
    )
    date_to: date | None = strawberry.field(
        default=None, name="to", description="Last day of a range (inclusive), with from."
    )
    account_id: strawberry.ID | None = strawberry.field(
        default=None,
        description="The account; default: the active organisation's, else the personal one.",
    )
    agent_id: strawberry.ID | None = strawberry.field(
        default=None, description="Only this agent (all three axes)."
    )
    key_id: strawberry.ID | None = strawberry.field(
        default=None, description="Only this virtual key (LLM axis)."
    )
    key_ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Only these virtual keys (LLM axis); keyId is added to them."
    )
    provider: str | None = strawberry.field(
        default=None, description="Only this provider (LLM axis)."
    )
    model: str | None = strawberry.field(default=None, description="Only this model (LLM axis).")
    voice_model: str | None = strawberry.field(
        default=None, description="Only this voice model (voice axis)."
    )
    admin: bool | None = strawberry.field(
        default=False,
        description="Platform-wide (platform admins only; others are refused).",
    )

    def to_filter(self) -> UsageFilter:
        key_ids = (
            uuids([str(k) for k in self.key_ids], "keyIds") if self.key_ids is not None else None
        )
        key_id = optional_uuid(self.key_id, "keyId")
        if key_id is not None:
            key_ids = (*(key_ids or ()), key_id)
        return UsageFilter(
            month=self.month,
            date_from=self.date_from,
            date_to=self.date_to,
            account_id=optional_uuid(self.account_id, "accountId"),
            agent_id=optional_uuid(self.agent_id, "agentId"),
            key_ids=key_ids,
            provider=self.provider,
            model=self.model,
            voice_model=self.voice_model,
            admin=bool(self.admin),
        )
