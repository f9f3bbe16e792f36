"""A record's own fields, checked before anything is read or written: the reason, or None.

The bounds every input path shares live here, once: the bundle's parser (`bundle/_fields.py`,
`bundle/parse.py`) names the field and line with them, and the Ingestor applies them to whatever
reaches it (the proxy, the demo, the bundle, `POST /api/events`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final

from crabglamp.ingest.records import ComputeRecord, LlmRecord, VoiceRecord
from crabglamp.periods import as_utc, utcnow
from crabglamp.prices import token_problem

_STATUSES = frozenset({"ok", "error"})
_STATES = frozenset({"running", "paused"})

# An event's moment: no earlier than this, no later than `MAX_AHEAD` past the server's clock.
# A far-future row once made every background pass fail (dates overflow near year 9999), and
# nothing real is recorded before 2000 or a day ahead; a day is room for any clock skew.
EARLIEST_EVENT_TIME: Final = datetime(2000, 1, 1, tzinfo=UTC)
MAX_AHEAD: Final = timedelta(days=1)
# Names and ids (event ids, user ids, models, providers...): room for any real one, and short
# enough that one line cannot fill pages of the dashboard or the request log.
MAX_TEXT_LENGTH: Final = 200


def moment_problem(moment: datetime, now: datetime | None = None) -> str | None:
    """Why an event's timestamp (or an interval's start or end) cannot be recorded."""
    moment = as_utc(moment)
    if moment < EARLIEST_EVENT_TIME:
        return f"is before {EARLIEST_EVENT_TIME.isoformat()}: {moment.isoformat()}"
    latest = as_utc(now or utcnow()) + MAX_AHEAD
    if moment > latest:
        return (
            f"is more than a day ahead of the server's clock: {moment.isoformat()} "
            f"(at most {latest.isoformat(timespec='seconds')})"
        )
    return None


def text_problem(value: str) -> str | None:
    """Why a name or id cannot be stored: too long, or characters a database cannot keep."""
    if len(value) > MAX_TEXT_LENGTH:
        return f"is too long ({len(value):,} characters; at most {MAX_TEXT_LENGTH})"
    if "\x00" in value:
        return "must not contain NUL characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate ("\udc00") is valid JSON but not text: neither engine stores it.
        return "must be valid Unicode text (it holds a lone surrogate)"
    return None


def _texts_problem(named: dict[str, str | None]) -> str | None:
    for name, value in named.items():
        # Ingest checks a few names per event: the usual short ASCII text passes in C (ASCII
        # holds no surrogate), and only the rest is looked at closely.
        if value is None or (
            len(value) <= MAX_TEXT_LENGTH and value.isascii() and "\x00" not in value
        ):
            continue
        problem = text_problem(value)
        if problem:
            return f"{name} {problem}"
    return None


def _common_problem(event_id: str, status: str, cost_micros: int | None) -> str | None:
    if not event_id:
        return "the event id must not be empty"
    if status not in _STATUSES:
        return f"status must be ok or error, not {status!r}"
    if cost_micros is not None and cost_micros < 0:
        return f"costCents must not be negative, got {cost_micros} micro-cents"
    return None


def llm_problem(r: LlmRecord, now: datetime | None = None) -> str | None:
    if r.input_tokens < 0 or r.output_tokens < 0:
        return f"token counts must not be negative, got {r.input_tokens} and {r.output_tokens}"
    if not r.provider or not r.model:
        return "provider and model must not be empty"
    when = moment_problem(r.ts, now)
    if when:
        return f"ts {when}"
    texts = _texts_problem({"id": r.id, "provider": r.provider, "model": r.model})
    if texts:
        return texts
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


def voice_problem(r: VoiceRecord, now: datetime | None = None) -> str | None:
    if r.characters < 0:
        return f"characters must not be negative, got {r.characters}"
    if not r.voice_model:
        return "voiceModel must not be empty"
    when = moment_problem(r.ts, now)
    if when:
        return f"ts {when}"
    return _texts_problem({"id": r.id, "voiceModel": r.voice_model}) or (
        _common_problem(r.id, r.status, r.cost_micros)
    )


def interval_problem(
    r: ComputeRecord, start: datetime, end: datetime | None, now: datetime | None = None
) -> str | None:
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
    for name, moment in (("start", start), ("end", end)):
        when = None if moment is None else moment_problem(moment, now)
        if when:
            return f"{name} {when}"
    return _texts_problem({"id": r.id})
