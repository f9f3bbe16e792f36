"""`Usage` and its axes, mirroring GET /api/usage (CONTRACTS.md §2.2) in camelCase.

Every `*Cents` is the continuous value (micro-cents / 1e6, sub-cent precision); hours are
microseconds / 3.6e9. Lists take the arguments that make sense at their level and narrow what
was already computed for the axis, so they never cost another statement.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import TYPE_CHECKING, Annotated, Self

import strawberry

from crabglamp.api.graphql.arguments import DaysFromArg, DaysToArg, ProviderArg
from crabglamp.api.graphql.context import Info
from crabglamp.api.graphql.execution import PURE_LIST
from crabglamp.api.graphql.scalars import BigInt
from crabglamp.money import micros_to_cents
from crabglamp.periods import US_PER_HOUR
from crabglamp.usage import results as core
from crabglamp.usage.query import UsageQuery

if TYPE_CHECKING:
    from crabglamp.api.graphql.virtual_keys.types import VirtualKeyType


def _hours(microseconds: int) -> float:
    return microseconds / US_PER_HOUR


def _in_range(day: date, date_from: date | None, date_to: date | None) -> bool:
    return (date_from is None or day >= date_from) and (date_to is None or day <= date_to)


def _id(value: uuid.UUID | None) -> strawberry.ID | None:
    return None if value is None else strawberry.ID(str(value))


_PROVIDER = "Only this provider's models (e.g. openai)."

# Compute


@strawberry.type(
    name="ComputeAgentUsage", description="An agent's VM time: running and paused, in cents."
)
class ComputeAgentUsageType:
    agent_id: strawberry.ID | None = strawberry.field(
        description="The agent; null for compute without an agent."
    )
    agent_name: str | None = strawberry.field(description="The agent's name.")
    running_cents: float = strawberry.field(description="Cost while running.")
    paused_cents: float = strawberry.field(description="Cost while paused.")
    running_hours: float = strawberry.field(description="Hours running.")
    paused_hours: float = strawberry.field(description="Hours paused.")
    total_cents: float = strawberry.field(description="Running plus paused cost.")

    @classmethod
    def of(cls, row: core.ComputeAgentUsage) -> Self:
        return cls(
            agent_id=_id(row.agent_id),
            agent_name=row.agent_name,
            running_cents=micros_to_cents(row.running_micros),
            paused_cents=micros_to_cents(row.paused_micros),
            running_hours=_hours(row.running_us),
            paused_hours=_hours(row.paused_us),
            total_cents=micros_to_cents(row.total_micros),
        )


@strawberry.type(name="PlainVmUsage", description="A plain VM's time and cost.")
class PlainVmUsageType:
    plain_vm_id: strawberry.ID = strawberry.field(description="The plain VM.")
    plain_vm_name: str | None = strawberry.field(description="The plain VM's name.")
    cost_cents: float = strawberry.field(description="Its cost.")
    hours: float = strawberry.field(description="Hours it ran.")

    @classmethod
    def of(cls, row: core.PlainVmUsage) -> Self:
        return cls(
            plain_vm_id=strawberry.ID(str(row.plain_vm_id)),
            plain_vm_name=row.plain_vm_name,
            cost_cents=micros_to_cents(row.cost_micros),
            hours=_hours(row.duration_us),
        )


@strawberry.type(name="ComputeDay", description="One UTC day of compute.")
class ComputeDayType:
    # Numbers are plain fields, set once: a month holds many days, and a field with a resolver
    # costs several times more to resolve than one read off the object (see BENCHMARKS.md, P1).
    # The days' lists are pure (PURE_LIST), so a month's days are answered as plain rows too.
    day: strawberry.Private[core.ComputeDay]
    day_date: date = strawberry.field(name="date", description="The UTC day.")
    agent_cents: float = strawberry.field(description="Agents' cost that day.")
    plain_vm_cents: float = strawberry.field(description="Plain VMs' cost that day.")
    total_cents: float = strawberry.field(description="Agents plus plain VMs that day.")

    @classmethod
    def of(cls, day: core.ComputeDay) -> Self:
        agent_micros = day.agent_micros
        plain_vm_micros = day.plain_vm_micros
        return cls(
            day=day,
            day_date=day.date,
            agent_cents=micros_to_cents(agent_micros),
            plain_vm_cents=micros_to_cents(plain_vm_micros),
            total_cents=micros_to_cents(agent_micros + plain_vm_micros),
        )

    @strawberry.field(
        description="Each agent's compute that day, biggest first.", metadata=PURE_LIST
    )
    def agents(self) -> list[ComputeAgentUsageType]:
        return [ComputeAgentUsageType.of(a) for a in self.day.agents]

    @strawberry.field(
        description="Each plain VM's compute that day, biggest first.", metadata=PURE_LIST
    )
    def plain_vms(self) -> list[PlainVmUsageType]:
        return [PlainVmUsageType.of(v) for v in self.day.plain_vms]


@strawberry.type(name="ComputeUsage", description="Agent and plain-VM hours and their cost.")
class ComputeUsageType:
    axis: strawberry.Private[core.ComputeUsage]

    @strawberry.field(description="Total compute cost of the period.")
    def total_cents(self) -> float:
        return micros_to_cents(self.axis.total_micros)

    @strawberry.field(description="One entry per day of the period, zero days included.")
    def daily(
        self,
        date_from: DaysFromArg = None,
        date_to: DaysToArg = None,
    ) -> list[ComputeDayType]:
        return [
            ComputeDayType.of(d) for d in self.axis.daily if _in_range(d.date, date_from, date_to)
        ]

    @strawberry.field(description="Each agent over the period, biggest first.")
    def agents(self) -> list[ComputeAgentUsageType]:
        return [ComputeAgentUsageType.of(a) for a in self.axis.agents]

    @strawberry.field(description="Each plain VM over the period, biggest first.")
    def plain_vms(self) -> list[PlainVmUsageType]:
        return [PlainVmUsageType.of(v) for v in self.axis.plain_vms]


# LLM


@strawberry.type(name="LlmModelUsage", description="One model's LLM requests and cost.")
class LlmModelUsageType:
    model: str = strawberry.field(description="The model, e.g. gpt-4o-mini.")
    provider: str = strawberry.field(description="Its provider, e.g. openai.")
    total_cents: float = strawberry.field(description="Cost of its requests.")
    request_count: BigInt = strawberry.field(description="Number of requests.")
    input_tokens: BigInt = strawberry.field(description="Input tokens, all of them.")
    output_tokens: BigInt = strawberry.field(description="Output tokens, all of them.")
    cached_input_tokens: BigInt = strawberry.field(
        description="Of the input tokens: read from the provider's prompt cache."
    )
    cache_write_5m_tokens: BigInt = strawberry.field(
        description="Of the input tokens: written to a 5-minute prompt cache (Anthropic)."
    )
    cache_write_1h_tokens: BigInt = strawberry.field(
        description="Of the input tokens: written to a 1-hour prompt cache (Anthropic)."
    )
    reasoning_tokens: BigInt = strawberry.field(description="Of the output tokens: reasoning.")
    audio_input_tokens: BigInt = strawberry.field(description="Of the input tokens: audio.")
    audio_output_tokens: BigInt = strawberry.field(description="Of the output tokens: audio.")
    cache_saved_cents: float = strawberry.field(
        description="What prompt caching saved against the same tokens uncached, at the "
        "catalog's prices (negative where cache writes cost more than the reads saved)."
    )

    @classmethod
    def of(cls, row: core.LlmModelUsage) -> Self:
        return cls(
            model=row.model,
            provider=row.provider,
            total_cents=micros_to_cents(row.total_micros),
            request_count=BigInt(row.request_count),
            input_tokens=BigInt(row.input_tokens),
            output_tokens=BigInt(row.output_tokens),
            cached_input_tokens=BigInt(row.cached_input_tokens),
            cache_write_5m_tokens=BigInt(row.cache_write_5m_tokens),
            cache_write_1h_tokens=BigInt(row.cache_write_1h_tokens),
            reasoning_tokens=BigInt(row.reasoning_tokens),
            audio_input_tokens=BigInt(row.audio_input_tokens),
            audio_output_tokens=BigInt(row.audio_output_tokens),
            cache_saved_cents=micros_to_cents(row.cache_saved_micros),
        )


def _models(rows: list[core.LlmModelUsage], provider: str | None) -> list[LlmModelUsageType]:
    return [LlmModelUsageType.of(m) for m in rows if provider is None or m.provider == provider]


@strawberry.type(name="LlmDay", description="One UTC day of LLM requests.")
class LlmDayType:
    day: strawberry.Private[core.LlmDay]
    day_date: date = strawberry.field(name="date", description="The UTC day.")
    total_cents: float = strawberry.field(description="Cost of the day's requests.")
    request_count: BigInt = strawberry.field(description="Number of the day's requests.")

    @classmethod
    def of(cls, day: core.LlmDay) -> Self:
        return cls(
            day=day,
            day_date=day.date,
            total_cents=micros_to_cents(day.total_micros),
            request_count=BigInt(day.request_count),
        )

    @strawberry.field(
        description="The day's cost per model, biggest first (a stacked bar).", metadata=PURE_LIST
    )
    def models(
        self, provider: Annotated[str | None, strawberry.argument(description=_PROVIDER)] = None
    ) -> list[LlmModelUsageType]:
        return _models(self.day.models, provider)


@strawberry.type(name="LlmAgentUsage", description="One agent's LLM requests and cost.")
class LlmAgentUsageType:
    agent_id: strawberry.ID | None = strawberry.field(
        description="The agent; null for requests without an agent."
    )
    agent_name: str | None = strawberry.field(description="The agent's name.")
    total_cents: float = strawberry.field(description="Cost of its requests.")
    request_count: BigInt = strawberry.field(description="Number of requests.")

    @classmethod
    def of(cls, row: core.LlmAgentUsage) -> Self:
        return cls(
            agent_id=_id(row.agent_id),
            agent_name=row.agent_name,
            total_cents=micros_to_cents(row.total_micros),
            request_count=BigInt(row.request_count),
        )


@strawberry.type(name="LlmKeyUsage", description="One virtual key's LLM requests and cost.")
class LlmKeyUsageType:
    row: strawberry.Private[core.LlmKeyUsage]
    key_id: strawberry.ID = strawberry.field(description="The virtual key.")
    key_name: str = strawberry.field(description="The key's name.")
    provider: str | None = strawberry.field(
        description="The provider the key is for; null for any."
    )
    spend_cap_cents: float | None = strawberry.field(
        description="The key's monthly spend cap; null when uncapped."
    )
    total_cents: float = strawberry.field(
        description="Cost of its requests in the period and filter."
    )
    request_count: BigInt = strawberry.field(
        description="Number of its requests in the period and filter."
    )

    @classmethod
    def of(cls, row: core.LlmKeyUsage) -> Self:
        cap = row.spend_cap_micros
        return cls(
            row=row,
            key_id=strawberry.ID(str(row.key_id)),
            key_name=row.key_name,
            provider=row.provider,
            spend_cap_cents=None if cap is None else micros_to_cents(cap),
            total_cents=micros_to_cents(row.total_micros),
            request_count=BigInt(row.request_count),
        )

    @strawberry.field(description="The key itself: status, prefix, this month's accrued spend.")
    async def virtual_key(
        self, info: Info
    ) -> (
        Annotated[VirtualKeyType, strawberry.lazy("crabglamp.api.graphql.virtual_keys.types")]
        | None
    ):
        from crabglamp.api.graphql.virtual_keys.types import VirtualKeyType

        key = await info.context.loaders.key.load(self.row.key_id)
        return None if key is None else VirtualKeyType(key=key)


@strawberry.type(name="LlmUsage", description="LLM requests through virtual keys, by model.")
class LlmUsageType:
    axis: strawberry.Private[core.LlmUsage]

    @strawberry.field(description="Total LLM cost of the period and filter.")
    def total_cents(self) -> float:
        return micros_to_cents(self.axis.total_micros)

    @strawberry.field(description="Number of LLM requests of the period and filter.")
    def request_count(self) -> BigInt:
        return BigInt(sum(d.request_count for d in self.axis.daily))

    @strawberry.field(description="One entry per day of the period, zero days included.")
    def daily(
        self,
        date_from: DaysFromArg = None,
        date_to: DaysToArg = None,
    ) -> list[LlmDayType]:
        return [LlmDayType.of(d) for d in self.axis.daily if _in_range(d.date, date_from, date_to)]

    @strawberry.field(description="Each agent over the period, biggest first.")
    def agents(self) -> list[LlmAgentUsageType]:
        return [LlmAgentUsageType.of(a) for a in self.axis.agents]

    @strawberry.field(description="Each model over the period, biggest first.")
    def models(
        self, provider: Annotated[str | None, strawberry.argument(description=_PROVIDER)] = None
    ) -> list[LlmModelUsageType]:
        return _models(self.axis.models, provider)

    @strawberry.field(
        description="Each virtual key in scope (quiet keys at zero), biggest spender first."
    )
    def keys(
        self,
        provider: ProviderArg = None,
    ) -> list[LlmKeyUsageType]:
        return [
            LlmKeyUsageType.of(k)
            for k in self.axis.keys
            if provider is None or k.provider == provider
        ]

    @strawberry.field(description="Whether the account has any virtual key at all.")
    def has_keys(self) -> bool:
        return self.axis.has_keys


# Voice


@strawberry.type(name="VoiceModelUsage", description="One voice model's characters and cost.")
class VoiceModelUsageType:
    voice_model: str = strawberry.field(description="The voice (TTS) model, e.g. tts-1.")
    total_cents: float = strawberry.field(description="Cost of its requests.")
    characters: BigInt = strawberry.field(description="Characters spoken.")
    request_count: BigInt = strawberry.field(description="Number of requests.")

    @classmethod
    def of(cls, row: core.VoiceModelUsage) -> Self:
        return cls(
            voice_model=row.voice_model,
            total_cents=micros_to_cents(row.total_micros),
            characters=BigInt(row.characters),
            request_count=BigInt(row.request_count),
        )


@strawberry.type(name="VoiceDay", description="One UTC day of voice.")
class VoiceDayType:
    day: strawberry.Private[core.VoiceDay]
    day_date: date = strawberry.field(name="date", description="The UTC day.")
    total_cents: float = strawberry.field(description="Cost of the day's voice.")
    characters: BigInt = strawberry.field(description="Characters spoken that day.")

    @classmethod
    def of(cls, day: core.VoiceDay) -> Self:
        return cls(
            day=day,
            day_date=day.date,
            total_cents=micros_to_cents(day.total_micros),
            characters=BigInt(day.characters),
        )

    @strawberry.field(
        description="The day's cost per voice model, biggest first.", metadata=PURE_LIST
    )
    def models(self) -> list[VoiceModelUsageType]:
        return [VoiceModelUsageType.of(m) for m in self.day.models]


@strawberry.type(name="VoiceAgentUsage", description="One agent's voice characters and cost.")
class VoiceAgentUsageType:
    agent_id: strawberry.ID | None = strawberry.field(
        description="The agent; null for voice without an agent."
    )
    agent_name: str | None = strawberry.field(description="The agent's name.")
    total_cents: float = strawberry.field(description="Cost of its voice.")
    characters: BigInt = strawberry.field(description="Characters spoken.")

    @classmethod
    def of(cls, row: core.VoiceAgentUsage) -> Self:
        return cls(
            agent_id=_id(row.agent_id),
            agent_name=row.agent_name,
            total_cents=micros_to_cents(row.total_micros),
            characters=BigInt(row.characters),
        )


@strawberry.type(name="VoiceUsage", description="Voice (TTS) characters, by voice model.")
class VoiceUsageType:
    axis: strawberry.Private[core.VoiceUsage]

    @strawberry.field(description="Total voice cost of the period and filter.")
    def total_cents(self) -> float:
        return micros_to_cents(self.axis.total_micros)

    @strawberry.field(description="Characters spoken in the period and filter.")
    def total_characters(self) -> BigInt:
        return BigInt(self.axis.total_characters)

    @strawberry.field(description="One entry per day of the period, zero days included.")
    def daily(
        self,
        date_from: DaysFromArg = None,
        date_to: DaysToArg = None,
    ) -> list[VoiceDayType]:
        return [
            VoiceDayType.of(d) for d in self.axis.daily if _in_range(d.date, date_from, date_to)
        ]

    @strawberry.field(description="Each agent over the period, biggest first.")
    def agents(self) -> list[VoiceAgentUsageType]:
        return [VoiceAgentUsageType.of(a) for a in self.axis.agents]

    @strawberry.field(description="Each voice model over the period, biggest first.")
    def models(self) -> list[VoiceModelUsageType]:
        return [VoiceModelUsageType.of(m) for m in self.axis.models]

    @strawberry.field(description="Whether there is any voice usage in the period and filter.")
    def has_voice_usage(self) -> bool:
        return self.axis.has_voice_usage


# The whole


@strawberry.type(
    name="Usage",
    description="Spend of one period and filter on three independent axes: compute, LLM and "
    "voice (the same numbers as GET /api/usage).",
)
class UsageType:
    query: strawberry.Private[UsageQuery]

    @strawberry.field(name="from", description="The period's first day (UTC, inclusive).")
    def date_from(self) -> date:
        return self.query.period.start

    @strawberry.field(name="to", description="The period's last day (UTC, inclusive).")
    def date_to(self) -> date:
        return self.query.period.end

    @strawberry.field(description="Agent and plain-VM hours; narrowed by agentId only.")
    async def compute(self, info: Info) -> ComputeUsageType:
        return ComputeUsageType(axis=await info.context.loaders.compute.load(self.query))

    @strawberry.field(
        description="LLM requests; narrowed by agentId, keyId(s), provider and model."
    )
    async def llm(self, info: Info) -> LlmUsageType:
        return LlmUsageType(axis=await info.context.loaders.llm.load(self.query))

    @strawberry.field(description="Voice characters; narrowed by agentId and voiceModel.")
    async def voice(self, info: Info) -> VoiceUsageType:
        return VoiceUsageType(axis=await info.context.loaders.voice.load(self.query))
