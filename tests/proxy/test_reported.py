"""What a provider reports it billed, read from each provider's documented usage shape: the
counts by category the proxy records, whatever shape the upstream answers in."""

from __future__ import annotations

from typing import Any

import pytest

from crabglamp.prices import TokenCounts
from crabglamp.proxy.reported import Reported, reported_usage, speech_usage


def test_google_usage_metadata_bills_thoughts_as_output_and_cached_content_as_cache_reads() -> None:
    answer = {
        "candidates": [{"content": {"parts": [{"text": "crab"}]}}],
        "usageMetadata": {
            "promptTokenCount": 12_000,
            "cachedContentTokenCount": 8_192,
            "candidatesTokenCount": 151,
            "thoughtsTokenCount": 382,
            "totalTokenCount": 12_533,
        },
    }
    assert reported_usage(answer) == Reported(
        TokenCounts(
            input_tokens=12_000,
            output_tokens=533,
            cached_input_tokens=8_192,
            reasoning_tokens=382,
        )
    )


@pytest.mark.parametrize(
    ("usage", "output"),
    [
        # OpenAI: reasoning is part of completion_tokens, and the total agrees.
        ({"prompt_tokens": 20, "completion_tokens": 533, "total_tokens": 553}, 533),
        # An OpenAI-compatible endpoint leaving thoughts out of completion_tokens but not out of
        # total_tokens: the provider bills the 382 thought tokens as output all the same.
        ({"prompt_tokens": 20, "completion_tokens": 151, "total_tokens": 553}, 533),
        # The same without a total: reasoning larger than the completion cannot be part of it.
        ({"prompt_tokens": 20, "completion_tokens": 0}, 382),
    ],
    ids=["openai", "compatible-total", "compatible-no-total"],
)
def test_reasoning_tokens_are_billed_once_as_output_whichever_way_they_are_counted(
    usage: dict[str, Any], output: int
) -> None:
    usage["completion_tokens_details"] = {"reasoning_tokens": 382}
    reported = reported_usage({"usage": usage})
    assert reported is not None
    assert (reported.tokens.output_tokens, reported.tokens.reasoning_tokens) == (output, 382)


def test_speech_usage_is_read_from_the_done_event_only() -> None:
    done = {
        "type": "speech.audio.done",
        "usage": {"input_tokens": 14, "output_tokens": 101, "total_tokens": 115},
    }
    assert speech_usage(done) == TokenCounts(14, 101, audio_output_tokens=101)
    assert speech_usage({"type": "speech.audio.delta", "audio": "AAAA"}) is None
    assert speech_usage({"type": "speech.audio.done", "usage": {"input_tokens": -1}}) is None
    assert speech_usage("not an event") is None
