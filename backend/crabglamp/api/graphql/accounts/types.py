"""`Account`: the root of the nested usage graph (keys, agents, usage, invoice, anomalies)."""

from __future__ import annotations

from typing import Annotated

import strawberry

from crabglamp.api.graphql.anomalies.queries import resolve_anomalies
from crabglamp.api.graphql.anomalies.types import AnomalyType
from crabglamp.api.graphql.arguments import AgentArg, FromArg, MonthArg, ProviderArg, ToArg
from crabglamp.api.graphql.context import Info
from crabglamp.api.graphql.invoice.queries import invoice_of
from crabglamp.api.graphql.invoice.types import InvoiceType
from crabglamp.api.graphql.permissions import optional_uuid, usage_query, uuids
from crabglamp.api.graphql.usage.types import UsageType
from crabglamp.api.graphql.virtual_keys.queries import with_provider
from crabglamp.api.graphql.virtual_keys.types import VirtualKeyType
from crabglamp.models import Account, Agent, PlainVm
from crabglamp.money import micros_to_cents
from crabglamp.usage.filter import UsageFilter


@strawberry.type(name="Agent", description="An AI agent running in a VM.")
class AgentType:
    agent: strawberry.Private[Agent]

    @strawberry.field(description="The agent's id.")
    def id(self) -> strawberry.ID:
        return strawberry.ID(str(self.agent.id))

    @strawberry.field(description="The agent's name.")
    def name(self) -> str:
        return self.agent.name


@strawberry.type(name="PlainVm", description="A VM without an agent.")
class PlainVmType:
    vm: strawberry.Private[PlainVm]

    @strawberry.field(description="The plain VM's id.")
    def id(self) -> strawberry.ID:
        return strawberry.ID(str(self.vm.id))

    @strawberry.field(description="The plain VM's name.")
    def name(self) -> str:
        return self.vm.name

    @strawberry.field(description="Its price per hour.")
    def cents_per_hour(self) -> float:
        return micros_to_cents(self.vm.cents_per_hour_micros)


@strawberry.type(name="Account", description="An organisation's or a person's account.")
class AccountType:
    account: strawberry.Private[Account]

    @strawberry.field(description="The account's id.")
    def id(self) -> strawberry.ID:
        return strawberry.ID(str(self.account.id))

    @strawberry.field(description="The account's name.")
    def name(self) -> str:
        return self.account.name

    @strawberry.field(description="The account's virtual keys, by name.")
    async def virtual_keys(
        self,
        info: Info,
        provider: ProviderArg = None,
    ) -> list[VirtualKeyType]:
        keys = await info.context.loaders.keys_of_account.load(self.account.id)
        return with_provider(keys, provider)

    @strawberry.field(description="The account's agents, by name.")
    async def agents(self, info: Info) -> list[AgentType]:
        agents = await info.context.loaders.agents_of_account.load(self.account.id)
        return [AgentType(agent=a) for a in agents]

    @strawberry.field(description="The account's plain VMs, by name.")
    async def plain_vms(self, info: Info) -> list[PlainVmType]:
        vms = await info.context.loaders.plain_vms_of_account.load(self.account.id)
        return [PlainVmType(vm=v) for v in vms]

    @strawberry.field(
        description="The account's spend for a period and filter (see UsageFilter); default: "
        "this UTC month."
    )
    async def usage(
        self,
        info: Info,
        month: MonthArg = None,
        date_from: FromArg = None,
        date_to: ToArg = None,
        agent_id: AgentArg = None,
        key_ids: Annotated[
            list[strawberry.ID] | None,
            strawberry.argument(description="Only these virtual keys (LLM axis)."),
        ] = None,
        provider: Annotated[
            str | None, strawberry.argument(description="Only this provider (LLM axis).")
        ] = None,
        model: Annotated[
            str | None, strawberry.argument(description="Only this model (LLM axis).")
        ] = None,
        voice_model: Annotated[
            str | None, strawberry.argument(description="Only this voice model (voice axis).")
        ] = None,
    ) -> UsageType:
        wanted = UsageFilter(
            month=month,
            date_from=date_from,
            date_to=date_to,
            account_id=self.account.id,
            agent_id=optional_uuid(agent_id, "agentId"),
            key_ids=uuids([str(k) for k in key_ids], "keyIds") if key_ids is not None else None,
            provider=provider,
            model=model,
            voice_model=voice_model,
        )
        return UsageType(query=await usage_query(info, wanted))

    @strawberry.field(description="The account's invoice of a month (default: this one).")
    async def invoice(
        self,
        info: Info,
        month: MonthArg = None,
    ) -> InvoiceType:
        return await invoice_of(info, self.account.id, month)

    @strawberry.field(description="The account's anomalies in a period (default: this month).")
    async def anomalies(
        self,
        info: Info,
        month: MonthArg = None,
        date_from: FromArg = None,
        date_to: ToArg = None,
    ) -> list[AnomalyType]:
        return await resolve_anomalies(info, self.account.id, month, date_from, date_to)
