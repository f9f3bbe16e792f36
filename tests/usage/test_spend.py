"""A key's accrued spend: its LLM requests and the speech made with it, this month, per key."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from crabglamp.db import read_transaction
from crabglamp.ingest.ingestor import Ingestor
from crabglamp.ingest.records import LlmRecord, VoiceRecord
from crabglamp.keys import CreatedKey
from crabglamp.periods import utcnow
from crabglamp.proxy.reservation import month_of
from crabglamp.usage.spend import spend_of_keys
from proxy_support import make_key


def _llm(key: CreatedKey, cost: int, days_ago: int = 0) -> LlmRecord:
    return LlmRecord(
        id=f"evt-{uuid.uuid4().hex}",
        ts=utcnow() - timedelta(days=days_ago),
        key_id=key.key.id,
        provider="openai",
        model="gpt-4o-mini",
        input_tokens=10,
        output_tokens=10,
        cost_micros=cost,
    )


async def test_spend_of_keys_sums_llm_and_voice_of_the_month_per_key(engine: AsyncEngine) -> None:
    one, two = await make_key(engine), await make_key(engine, name="other")
    voice = VoiceRecord(
        id="voice-1",
        ts=utcnow(),
        account_id=one.key.account_id,
        voice_model="tts-1",
        characters=10,
        cost_micros=2_000,
        key_id=one.key.id,
    )
    # 40 days ago is always another month: not counted.
    await Ingestor(engine).record([_llm(one, 5_000), _llm(one, 1_000, 40), _llm(two, 7_000), voice])
    nobody = uuid.uuid4()
    async with read_transaction(engine) as conn:
        spend = await spend_of_keys(conn, [one.key.id, two.key.id, nobody], month_of(utcnow()))
    assert spend == {one.key.id: 7_000, two.key.id: 7_000, nobody: 0}
