"""What a provider reports it billed: the usage object of an answer (or of a stream's last
chunk) in each provider's documented shape, as token counts by category and a service tier.

- OpenAI (and the OpenAI-compatible endpoints): `usage.prompt_tokens` and `completion_tokens`
  are totals; `prompt_tokens_details.cached_tokens` / `audio_tokens` and
  `completion_tokens_details.reasoning_tokens` / `audio_tokens` are parts of them;
  `service_tier` sits beside `usage` (default, flex, priority). Speech streamed as events
  (`stream_format: "sse"`) reports `input_tokens` / `output_tokens` in `speech.audio.done`.
- Anthropic: `usage.input_tokens` counts only the uncached input; `cache_read_input_tokens` and
  `cache_creation_input_tokens` come on top (the total input is their sum), the latter split by
  time-to-live in `cache_creation.ephemeral_5m_input_tokens` / `ephemeral_1h_input_tokens`
  (without that split every write is a 5-minute one, Anthropic's default).
- Google: `usageMetadata.promptTokenCount` (with `cachedContentTokenCount` part of it),
  `candidatesTokenCount` plus `thoughtsTokenCount` (thinking is billed as output).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from crabglamp.prices import TokenCounts


@dataclass(frozen=True, slots=True)
class Reported:
    tokens: TokenCounts
    service_tier: str | None = None


def _count(mapping: Any, key: str) -> int:
    if not isinstance(mapping, dict):
        return 0
    value = mapping.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return 0
    return value


def reported_usage(answer: Any) -> Reported | None:
    """The usage an answer (a JSON object) reports, or None where it reports none."""
    if not isinstance(answer, dict):
        return None
    tier = answer.get("service_tier")
    service_tier = tier if isinstance(tier, str) and tier else None
    usage = answer.get("usage")
    if isinstance(usage, dict):
        tokens = _anthropic(usage) if "input_tokens" in usage else _openai(usage)
    elif isinstance(answer.get("usageMetadata"), dict):
        tokens = _google(answer["usageMetadata"])
    else:
        return None
    if tokens is None:
        return None
    if service_tier is None and isinstance(usage, dict):
        # Anthropic reports its tier inside usage ("standard", "priority", "batch").
        inner = usage.get("service_tier")
        service_tier = inner if isinstance(inner, str) and inner else None
    return Reported(_clamped(tokens), service_tier)


def _openai(usage: dict[str, Any]) -> TokenCounts | None:
    prompt = usage.get("prompt_tokens")
    if isinstance(prompt, bool) or not isinstance(prompt, int) or prompt < 0:
        return None
    prompt_details = usage.get("prompt_tokens_details")
    completion_details = usage.get("completion_tokens_details")
    completion = _count(usage, "completion_tokens")
    reasoning = _count(completion_details, "reasoning_tokens")
    # OpenAI counts reasoning inside `completion_tokens`; some OpenAI-compatible endpoints
    # (Gemini's, for thinking models) leave the thoughts out of it while billing them as output
    # and counting them in `total_tokens`. The larger reading is the one the provider bills.
    total = _count(usage, "total_tokens")
    if total > prompt + completion:
        completion = total - prompt
    elif reasoning > completion:
        completion += reasoning
    return TokenCounts(
        input_tokens=prompt,
        output_tokens=completion,
        cached_input_tokens=_count(prompt_details, "cached_tokens"),
        audio_input_tokens=_count(prompt_details, "audio_tokens"),
        reasoning_tokens=reasoning,
        audio_output_tokens=_count(completion_details, "audio_tokens"),
    )


def _anthropic(usage: dict[str, Any]) -> TokenCounts | None:
    uncached = usage.get("input_tokens")
    if isinstance(uncached, bool) or not isinstance(uncached, int) or uncached < 0:
        return None
    read = _count(usage, "cache_read_input_tokens")
    written = _count(usage, "cache_creation_input_tokens")
    split = usage.get("cache_creation")
    if isinstance(split, dict):
        write_5m = _count(split, "ephemeral_5m_input_tokens")
        write_1h = _count(split, "ephemeral_1h_input_tokens")
        written = max(written, write_5m + write_1h)
    else:
        write_5m, write_1h = written, 0
    return TokenCounts(
        input_tokens=uncached + read + written,
        output_tokens=_count(usage, "output_tokens"),
        cached_input_tokens=read,
        cache_write_5m_tokens=write_5m,
        cache_write_1h_tokens=write_1h,
    )


def _google(metadata: dict[str, Any]) -> TokenCounts | None:
    prompt = metadata.get("promptTokenCount")
    if isinstance(prompt, bool) or not isinstance(prompt, int) or prompt < 0:
        return None
    thoughts = _count(metadata, "thoughtsTokenCount")
    return TokenCounts(
        input_tokens=prompt,
        output_tokens=_count(metadata, "candidatesTokenCount") + thoughts,
        cached_input_tokens=_count(metadata, "cachedContentTokenCount"),
        reasoning_tokens=thoughts,
    )


def speech_usage(event: Any) -> TokenCounts | None:
    """The usage of OpenAI's `speech.audio.done` event (speech asked for with `stream_format:
    "sse"`): text input tokens, and output tokens that are all audio. None for any other event."""
    if not isinstance(event, dict) or event.get("type") != "speech.audio.done":
        return None
    usage = event.get("usage")
    prompt = usage.get("input_tokens") if isinstance(usage, dict) else None
    if isinstance(prompt, bool) or not isinstance(prompt, int) or prompt < 0:
        return None
    audio = _count(usage, "output_tokens")
    return TokenCounts(input_tokens=prompt, output_tokens=audio, audio_output_tokens=audio)


def _clamped(t: TokenCounts) -> TokenCounts:
    """A part never above its total: a provider's inconsistent report is not billed twice."""
    cached = min(t.cached_input_tokens, t.input_tokens)
    write_5m = min(t.cache_write_5m_tokens, t.input_tokens - cached)
    write_1h = min(t.cache_write_1h_tokens, t.input_tokens - cached - write_5m)
    audio_out = min(t.audio_output_tokens, t.output_tokens)
    return TokenCounts(
        input_tokens=t.input_tokens,
        output_tokens=t.output_tokens,
        cached_input_tokens=cached,
        cache_write_5m_tokens=write_5m,
        cache_write_1h_tokens=write_1h,
        reasoning_tokens=min(t.reasoning_tokens, t.output_tokens - audio_out),
        audio_input_tokens=min(t.audio_input_tokens, t.input_tokens),
        audio_output_tokens=audio_out,
    )
