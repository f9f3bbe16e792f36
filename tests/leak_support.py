"""A quiet key's history and a leak's flood, relative to a test's own clock: what the leak-policy
tests (jobs, GraphQL, proxy, browser) plant so that the watcher detects a spike on a quiet key."""

from __future__ import annotations

import itertools
import uuid
from datetime import datetime, timedelta

from crabglamp.ingest.records import LlmRecord

CENT = 1_000_000
_n = itertools.count()


def spend(
    key_id: uuid.UUID, at: datetime, cents: float, count: int = 1, model: str = "gpt-4o-mini"
) -> list[LlmRecord]:
    """`count` requests from `at` on, one a second, costing `cents` in all."""
    run = next(_n)
    return [
        LlmRecord(
            id=f"leak-{uuid.uuid4().hex[:8]}-{run}-{i}",
            ts=at + timedelta(seconds=i),
            key_id=key_id,
            provider="openai",
            model=model,
            input_tokens=100,
            output_tokens=10,
            cost_micros=round(cents * CENT / count),
        )
        for i in range(count)
    ]


def quiet_history(key_id: uuid.UUID, now: datetime, days: int = 35) -> list[LlmRecord]:
    """A few cents a day for five weeks before `now`: a quiet key with a baseline of its own."""
    return [r for d in range(days, 0, -1) for r in spend(key_id, now - timedelta(days=d), 4, 3)]


def flood(key_id: uuid.UUID, now: datetime, cents: float = 1000) -> list[LlmRecord]:
    """The leak: ten dollars of gpt-4o in the minutes before `now`."""
    return spend(key_id, now - timedelta(minutes=8), cents, 200, "gpt-4o")
