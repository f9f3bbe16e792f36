"""A key's card shows the spend its cap counts: its LLM requests and the speech made with it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from api_support import ALICE, World, bearer, graphql
from clocks import earlier_this_month
from crabglamp.ingest.ingestor import Ingestor
from crabglamp.ingest.records import VoiceRecord
from crabglamp.money import micros_to_cents
from crabglamp.proxy.ledger import month_spend

CARDS = "query { virtualKeys { id accruedCents percentUsed spendCapCents } }"


async def _cards(client: httpx.AsyncClient) -> dict[str, dict[str, float]]:
    answer = await graphql(client, CARDS, {}, bearer(**ALICE))
    assert "errors" not in answer, answer
    return {card["id"]: card for card in answer["data"]["virtualKeys"]}


async def test_speech_made_with_a_key_counts_on_its_card_as_on_its_cap(
    fixed_clock: datetime, client: httpx.AsyncClient, engine: AsyncEngine, world: World
) -> None:
    before = await _cards(client)
    moment = earlier_this_month(datetime.now(UTC).replace(microsecond=0), timedelta(minutes=2))
    await Ingestor(engine).record(
        [
            VoiceRecord(
                "speech-with-prod-key",
                moment,
                world.acme,
                "tts-1",
                2000,
                cost_micros=3_000_000,
                key_id=world.prod_key,
            ),
            VoiceRecord(
                "speech-without-key", moment, world.acme, "tts-1", 500, cost_micros=750_000
            ),
        ]
    )
    after = await _cards(client)
    prod = str(world.prod_key)
    # 3 cents more on the key that spoke, nothing on the others.
    assert round((after[prod]["accruedCents"] - before[prod]["accruedCents"]) * 1e6) == 3_000_000
    for key_id, card in before.items():
        if key_id != prod:
            assert after[key_id]["accruedCents"] == card["accruedCents"]
    async with engine.connect() as conn:
        enforced = await month_spend(conn, world.prod_key, moment.date().replace(day=1))
    assert after[prod]["accruedCents"] == micros_to_cents(enforced.spent_micros)
    assert after[prod]["percentUsed"] == pytest.approx(
        after[prod]["accruedCents"] * 100 / after[prod]["spendCapCents"], rel=1e-12
    )
