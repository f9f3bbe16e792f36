"""A record's own fields, checked before anything is read or written: the reason, or None."""

from __future__ import annotations

from datetime import datetime

from crabglamp.ingest.records import ComputeRecord, LlmRecord, VoiceRecord
from crabglamp.prices import token_problem

_STATUSES = frozenset({"ok", "error"})
_STATES = frozenset({"running", "paused"})


def _common_problem(event_id: str, status: str, cost_micros: int | None) -> str | None:
    if not event_id:
        return "the event id must not be empty"
    if status not in _STATUSES:
        return f"status must be ok or error, not {status!r}"
    if cost_micros is not None and cost_micros < 0:
        return f"costCents must not be negative, got {cost_micros} micro-cents"
    return None


def llm_problem(r: LlmRecord) -> str | None:
    if r.input_tokens < 0 or r.output_tokens < 0:
        return f"token counts must not be negative, got {r.input_tokens} and {r.output_tokens}"
    if not r.provider or not r.model:
        return "provider and model must not be empty"
    # Most events carry no categories: no need to build and check them.
    if (
        r.cached_input_tokens
        or r.cache_write_5m_tokens
        or r.cache_write_1h_tokens
        or (r.reasoning_tokens or r.audio_input_tokens or r.audio_output_tokens)
    ):
        invalid = token_problem(r.tokens)
        if invalid:
            return invalid
    return _common_problem(r.id, r.status, r.cost_micros)


def voice_problem(r: VoiceRecord) -> str | None:
    if r.characters < 0:
        return f"characters must not be negative, got {r.characters}"
    if not r.voice_model:
        return "voiceModel must not be empty"
    return _common_problem(r.id, r.status, r.cost_micros)


def interval_problem(r: ComputeRecord, start: datetime, end: datetime | None) -> str | None:
    if not r.id:
        return "the event id must not be empty"
    if r.state not in _STATES:
        return f"state must be running or paused, not {r.state!r}"
    if r.cents_per_hour_micros < 0:
        return f"centsPerHour must not be negative, got {r.cents_per_hour_micros} micro-cents"
    if end is not None and end < start:
        return "end is before start"
    if r.agent_id is not None and r.plain_vm_id is not None:
        return "an interval belongs to an agent or to a plain VM, not both"
    return None
