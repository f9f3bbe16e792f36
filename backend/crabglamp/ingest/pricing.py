"""Pricing an event without a stated cost: one function for every way usage arrives."""

from __future__ import annotations

from crabglamp.ingest.records import LlmRecord, VoiceRecord
from crabglamp.periods import as_utc
from crabglamp.prices import PriceBook, PriceNotFound, cache_saving, token_cost


def catalog_cost(prices: PriceBook, record: LlmRecord | VoiceRecord) -> int:
    """The catalog's price of a record's tokens or characters on its UTC day (and, for tokens,
    at the service tier it reports), whatever cost or status it states; raises PriceNotFound.
    The proxy, the bundle and the Ingestor all price with this, so that the same usage costs
    the same whichever way it arrives."""
    ts = as_utc(record.ts)
    if isinstance(record, LlmRecord):
        rates = prices.rates(record.provider, record.model, ts, record.service_tier)
        return token_cost(rates, record)
    return prices.voice_cost(record.voice_model, ts, record.characters)


def catalog_saving(prices: PriceBook, record: LlmRecord) -> int:
    """What caching saved on a record at the catalog's prices: 0 without cached tokens, or for
    a model the catalog does not price (its cost was stated)."""
    if not (
        record.cached_input_tokens or record.cache_write_5m_tokens or record.cache_write_1h_tokens
    ):
        return 0
    try:
        rates = prices.rates(record.provider, record.model, as_utc(record.ts), record.service_tier)
    except PriceNotFound:
        return 0
    return cache_saving(rates, record.tokens)
