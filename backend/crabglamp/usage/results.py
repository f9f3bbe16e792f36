"""What the read side answers, per axis: money in micro-cents, durations in microseconds."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Final

from crabglamp.periods import Period


@dataclass(slots=True)
class ComputeAgentUsage:
    agent_id: uuid.UUID | None
    agent_name: str | None
    running_micros: int = 0
    paused_micros: int = 0
    running_us: int = 0
    paused_us: int = 0

    @property
    def total_micros(self) -> int:
        return self.running_micros + self.paused_micros


@dataclass(slots=True)
class PlainVmUsage:
    plain_vm_id: uuid.UUID
    plain_vm_name: str | None
    cost_micros: int = 0
    duration_us: int = 0


@dataclass(slots=True)
class ComputeDay:
    date: date
    agents: list[ComputeAgentUsage] = field(default_factory=list)
    plain_vms: list[PlainVmUsage] = field(default_factory=list)

    @property
    def agent_micros(self) -> int:
        return sum(a.total_micros for a in self.agents)

    @property
    def plain_vm_micros(self) -> int:
        return sum(v.cost_micros for v in self.plain_vms)

    @property
    def total_micros(self) -> int:
        return self.agent_micros + self.plain_vm_micros


@dataclass(slots=True)
class ComputeUsage:
    daily: list[ComputeDay]
    agents: list[ComputeAgentUsage]
    plain_vms: list[PlainVmUsage]

    @property
    def total_micros(self) -> int:
        return sum(d.total_micros for d in self.daily)


@dataclass(slots=True)
class LlmModelUsage:
    model: str
    provider: str
    total_micros: int = 0
    request_count: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    # Parts of the totals above, and what caching saved (docs/how-requests-are-priced.md).
    cached_input_tokens: int = 0
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0
    reasoning_tokens: int = 0
    audio_input_tokens: int = 0
    audio_output_tokens: int = 0
    cache_saved_micros: int = 0

    def add(self, sums: Sequence[int]) -> None:
        """Add a rollup row's sums, in the order of `LLM_MODEL_SUMS`."""
        self.total_micros += sums[0]
        self.request_count += sums[1]
        self.input_tokens += sums[2]
        self.output_tokens += sums[3]
        self.cached_input_tokens += sums[4]
        self.cache_write_5m_tokens += sums[5]
        self.cache_write_1h_tokens += sums[6]
        self.reasoning_tokens += sums[7]
        self.audio_input_tokens += sums[8]
        self.audio_output_tokens += sums[9]
        self.cache_saved_micros += sums[10]


# The columns of llm_daily and llm_daily_model a model's usage sums, in the order of
# `LlmModelUsage`'s fields after model and provider: `add` and the axis's constructor calls take
# a row's sums in this order (tests/bundle/test_bundle_tokens.py sees each category per model).
LLM_MODEL_SUMS: Final = (
    "cost_micros",
    "request_count",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "reasoning_tokens",
    "audio_input_tokens",
    "audio_output_tokens",
    "cache_saved_micros",
)


@dataclass(slots=True)
class LlmDay:
    date: date
    models: list[LlmModelUsage] = field(default_factory=list)

    @property
    def total_micros(self) -> int:
        return sum(m.total_micros for m in self.models)

    @property
    def request_count(self) -> int:
        return sum(m.request_count for m in self.models)


@dataclass(slots=True)
class LlmAgentUsage:
    agent_id: uuid.UUID | None
    agent_name: str | None
    total_micros: int = 0
    request_count: int = 0


@dataclass(slots=True)
class LlmKeyUsage:
    key_id: uuid.UUID
    key_name: str
    provider: str | None
    spend_cap_micros: int | None
    account_id: uuid.UUID
    status: str = "active"
    total_micros: int = 0
    request_count: int = 0


@dataclass(slots=True)
class LlmUsage:
    daily: list[LlmDay]
    agents: list[LlmAgentUsage]
    models: list[LlmModelUsage]
    keys: list[LlmKeyUsage]
    has_keys: bool

    @property
    def total_micros(self) -> int:
        return sum(d.total_micros for d in self.daily)


@dataclass(slots=True)
class VoiceModelUsage:
    voice_model: str
    total_micros: int = 0
    characters: int = 0
    request_count: int = 0


@dataclass(slots=True)
class VoiceDay:
    date: date
    models: list[VoiceModelUsage] = field(default_factory=list)

    @property
    def total_micros(self) -> int:
        return sum(m.total_micros for m in self.models)

    @property
    def characters(self) -> int:
        return sum(m.characters for m in self.models)


@dataclass(slots=True)
class VoiceAgentUsage:
    agent_id: uuid.UUID | None
    agent_name: str | None
    total_micros: int = 0
    characters: int = 0


@dataclass(slots=True)
class VoiceUsage:
    daily: list[VoiceDay]
    agents: list[VoiceAgentUsage]
    models: list[VoiceModelUsage]

    @property
    def total_micros(self) -> int:
        return sum(d.total_micros for d in self.daily)

    @property
    def total_characters(self) -> int:
        return sum(d.characters for d in self.daily)

    @property
    def has_voice_usage(self) -> bool:
        return any(m.characters or m.total_micros or m.request_count for m in self.models)


@dataclass(slots=True)
class Usage:
    period: Period
    compute: ComputeUsage
    llm: LlmUsage
    voice: VoiceUsage
