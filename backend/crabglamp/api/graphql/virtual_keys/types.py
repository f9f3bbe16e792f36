"""`VirtualKey`: a key's cap and this calendar month's accrued spend (a summary card)."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry

from crabglamp.api.graphql.context import Info
from crabglamp.models import VirtualKey
from crabglamp.money import micros_to_cents
from crabglamp.periods import as_utc

if TYPE_CHECKING:
    from crabglamp.api.graphql.accounts.types import AccountType


@strawberry.enum(
    name="LeakPolicy",
    description="What a spike on a quiet key (a leaked secret?) does beyond the alert.",
)
class LeakPolicy(enum.Enum):
    NOTIFY = strawberry.enum_value("notify", description="Alert only (the default).")
    SUSPEND = strawberry.enum_value(
        "suspend",
        description="Suspend the key within seconds of detection; resumeVirtualKey undoes it.",
    )
    LOWER_CAP = strawberry.enum_value(
        "lower_cap",
        description="Lower its cap to what it has spent this month; restoreSpendCap undoes it.",
    )


@strawberry.type(
    name="VirtualKey",
    description="A virtual key for the LLM proxy, with its monthly spend cap. The secret is "
    "shown once at creation or rotation; only its prefix is kept for display.",
)
class VirtualKeyType:
    key: strawberry.Private[VirtualKey]

    @strawberry.field(description="The key's id.")
    def id(self) -> strawberry.ID:
        return strawberry.ID(str(self.key.id))

    @strawberry.field(description="The account the key belongs to.")
    def account_id(self) -> strawberry.ID:
        return strawberry.ID(str(self.key.account_id))

    @strawberry.field(description="The account the key belongs to, with its usage.")
    async def account(
        self, info: Info
    ) -> Annotated[AccountType, strawberry.lazy("crabglamp.api.graphql.accounts.types")]:
        from crabglamp.api.graphql.accounts.types import AccountType

        account = await info.context.loaders.account.load(self.key.account_id)
        if account is None:  # a key's account is a foreign key: it exists
            raise LookupError(f"account {self.key.account_id} of key {self.key.id} is missing")
        return AccountType(account=account)

    @strawberry.field(description="The key's name, e.g. prod.")
    def name(self) -> str:
        return self.key.name

    @strawberry.field(description="The provider the key is for; null for any provider.")
    def provider(self) -> str | None:
        return self.key.provider

    @strawberry.field(description="The agent the key is bound to, if any.")
    def agent_id(self) -> strawberry.ID | None:
        return None if self.key.agent_id is None else strawberry.ID(str(self.key.agent_id))

    @strawberry.field(
        description="active, suspended (refused with 403 key_suspended until resumed) or revoked."
    )
    def status(self) -> str:
        return self.key.status

    @strawberry.field(description="What a spike on this key does beyond the alert.")
    def leak_policy(self) -> LeakPolicy:
        return LeakPolicy(self.key.leak_policy)

    @strawberry.field(description="Since when the key is suspended; null unless suspended.")
    def suspended_at(self) -> datetime | None:
        moment = self.key.suspended_at
        return None if moment is None else as_utc(moment)

    @strawberry.field(description="Why the key is suspended, as the proxy's refusal says it.")
    def suspended_reason(self) -> str | None:
        return self.key.suspended_reason

    @strawberry.field(description="The first characters of the secret, to recognise it.")
    def secret_prefix(self) -> str | None:
        return self.key.secret_prefix

    @strawberry.field(description="When the key was created.")
    def created_at(self) -> datetime | None:
        return self.key.created_at

    @strawberry.field(description="The monthly spend cap; null when uncapped.")
    def spend_cap_cents(self) -> float | None:
        cap = self.key.spend_cap_micros
        return None if cap is None else micros_to_cents(cap)

    @strawberry.field(
        description="LLM + voice spend through this key in the current UTC month: its LLM "
        "requests and the speech made with it, what its spend cap counts."
    )
    async def accrued_cents(self, info: Info) -> float:
        return micros_to_cents(await info.context.loaders.accrued_micros.load(self.key.id))

    @strawberry.field(
        description="Accrued spend as a percentage of the cap (may exceed 100); null when "
        "uncapped or the cap is zero."
    )
    async def percent_used(self, info: Info) -> float | None:
        cap = self.key.spend_cap_micros
        if not cap:
            return None
        accrued = await info.context.loaders.accrued_micros.load(self.key.id)
        return accrued * 100 / cap
