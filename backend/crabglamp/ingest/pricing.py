"""Pricing an event without a stated cost: one function for every way usage arrives."""

from __future__ import annotations

from crabglamp.ingest.records import LlmRecord, VoiceRecord
from crabglamp.periods import as_utc
from crabglamp.prices import PriceBook


def catalog_cost(prices: PriceBook, record: LlmRecord | VoiceRecord) -> int:
    """The catalog's price of a record's tokens or characters on its UTC day, whatever cost or
    status it states; raises PriceNotFound. The proxy, the bundle and the Ingestor all price
    with this, so that the same usage costs the same whichever way it arrives."""
    ts = as_utc(record.ts)
    if isinstance(record, LlmRecord):
        return prices.llm_cost(
            record.provider, record.model, ts, record.input_tokens, record.output_tokens
        )
    return prices.voice_cost(record.voice_model, ts, record.characters)
