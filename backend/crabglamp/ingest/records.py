"""What can be recorded, and what recording answers: the records, the refusal, the result."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from crabglamp.prices import TokenCounts


@dataclass(frozen=True, slots=True)
class LlmRecord:
    id: str
    ts: datetime
    key_id: uuid.UUID
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    cost_micros: int | None = None
    agent_id: uuid.UUID | None = None
    status: str = "ok"
    # Parts of the totals (prices.TokenCounts says which of which), the tier the provider
    # reported, and whether the counts are the proxy's estimate rather than the provider's.
    cached_input_tokens: int = 0
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0
    reasoning_tokens: int = 0
    audio_input_tokens: int = 0
    audio_output_tokens: int = 0
    service_tier: str | None = None
    estimated: bool = False

    @property
    def tokens(self) -> TokenCounts:
        return TokenCounts(
            self.input_tokens,
            self.output_tokens,
            self.cached_input_tokens,
            self.cache_write_5m_tokens,
            self.cache_write_1h_tokens,
            self.reasoning_tokens,
            self.audio_input_tokens,
            self.audio_output_tokens,
        )


@dataclass(frozen=True, slots=True)
class VoiceRecord:
    id: str
    ts: datetime
    account_id: uuid.UUID
    voice_model: str
    characters: int
    cost_micros: int | None = None
    agent_id: uuid.UUID | None = None
    key_id: uuid.UUID | None = None
    status: str = "ok"


@dataclass(frozen=True, slots=True)
class ComputeRecord:
    id: str
    account_id: uuid.UUID
    start: datetime
    end: datetime | None
    cents_per_hour_micros: int
    state: str = "running"
    agent_id: uuid.UUID | None = None
    plain_vm_id: uuid.UUID | None = None


Record = LlmRecord | VoiceRecord | ComputeRecord


@dataclass(frozen=True, slots=True)
class RecordProblem:
    event_id: str
    reason: str


class IngestError(ValueError):
    """Nothing of the batch was written; `problems` says which events and why."""

    def __init__(self, problems: Sequence[RecordProblem]) -> None:
        self.problems = list(problems)
        shown = "; ".join(f"{p.event_id}: {p.reason}" for p in self.problems[:5])
        more = f" (+{len(self.problems) - 5} more)" if len(self.problems) > 5 else ""
        super().__init__(f"{len(self.problems)} event(s) refused: {shown}{more}")


@dataclass(slots=True)
class IngestResult:
    inserted: int = 0
    duplicates: int = 0
    closed_intervals: int = 0
    new_ids: list[str] = field(default_factory=list)
