"""The price catalog: list prices by model, date and service tier, overrides that win over them,
and the integer cost of an event's tokens or characters.

List prices of LLM and embedding models come from `genai-prices` (pydantic's maintained data:
cache read and write rates, audio rates, long-context tiers, service tiers, price history), its
bundled snapshot only: nothing is fetched at run time. Speech is priced per character from our
own short list (`DEFAULT_CATALOG`). The `price` table holds overrides (negotiated or custom
prices, each from its valid-from day); an override of a model wins over its list price.
crabglamp/docs/how-requests-are-priced.md explains how each category is priced, and the rounding.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Final, Protocol

from genai_prices import data_snapshot
from genai_prices import types as genai
from sqlalchemy import RowMapping, select
from sqlalchemy.ext.asyncio import AsyncConnection

from crabglamp.db.tables import table_of
from crabglamp.models import Price
from crabglamp.money import mul_div_half_up
from crabglamp.periods import as_utc

MILLION = 1_000_000
CATALOG_START = date(2024, 1, 1)
# The providers whose list prices are taken from genai-prices, in the order a bare model name is
# looked up (Google's entry also lists Anthropic's models, as Vertex sells them).
LIST_PROVIDERS: Final = ("openai", "anthropic", "google", "mistral")
# Service tiers as providers report them; "default" (and "auto", or none) is the standard price.
STANDARD_TIERS: Final = frozenset({"default", "auto", "standard"})
# A micro-cent per million tokens is 10^-8 dollars per million: every published price is a whole
# number of them, so rates are exact integers.
_MICROS_PER_USD: Final = Decimal(100 * MILLION)


@dataclass(frozen=True, slots=True)
class UnitPrice:
    """A price row: an override (the price table, a bundle's price line) or our speech list.
    A cache rate left None is the input rate."""

    provider: str
    model: str
    kind: str
    valid_from: date
    input_micros_per_mtok: int = 0
    output_micros_per_mtok: int = 0
    micros_per_mchar: int = 0
    cache_read_micros_per_mtok: int | None = None
    cache_write_5m_micros_per_mtok: int | None = None
    cache_write_1h_micros_per_mtok: int | None = None


def _usd_per_mtok(
    provider: str, model: str, usd_in: float, usd_out: float, kind: str = "llm"
) -> UnitPrice:
    # Providers publish US dollars per million tokens; one dollar is 100 cents of 10^6 micros.
    return UnitPrice(
        provider,
        model,
        kind,
        CATALOG_START,
        input_micros_per_mtok=round(usd_in * 100 * MILLION),
        output_micros_per_mtok=round(usd_out * 100 * MILLION),
    )


def _usd_per_mchar(provider: str, model: str, usd: float) -> UnitPrice:
    return UnitPrice(
        provider, model, "voice", CATALOG_START, micros_per_mchar=round(usd * 100 * MILLION)
    )


# What migration 0002 wrote into the price table, frozen: migration 0007 takes exactly these
# rows out again, so that the maintained list (genai-prices) prices what they priced and the
# table holds only overrides. Never edit: it describes databases that exist.
SEEDED_CATALOG: tuple[UnitPrice, ...] = (
    _usd_per_mtok("openai", "gpt-5", 1.25, 10.00),
    _usd_per_mtok("openai", "gpt-5-mini", 0.25, 2.00),
    _usd_per_mtok("openai", "gpt-5-nano", 0.05, 0.40),
    _usd_per_mtok("openai", "gpt-4.1", 2.00, 8.00),
    _usd_per_mtok("openai", "gpt-4.1-mini", 0.40, 1.60),
    _usd_per_mtok("openai", "gpt-4.1-nano", 0.10, 0.40),
    _usd_per_mtok("openai", "gpt-4o", 2.50, 10.00),
    _usd_per_mtok("openai", "gpt-4o-mini", 0.15, 0.60),
    _usd_per_mtok("openai", "o3", 2.00, 8.00),
    _usd_per_mtok("openai", "o4-mini", 1.10, 4.40),
    _usd_per_mtok("openai", "o3-mini", 1.10, 4.40),
    _usd_per_mtok("openai", "gpt-4-turbo", 10.00, 30.00),
    _usd_per_mtok("openai", "gpt-3.5-turbo", 0.50, 1.50),
    _usd_per_mtok("openai", "text-embedding-3-small", 0.02, 0.0, "embedding"),
    _usd_per_mtok("openai", "text-embedding-3-large", 0.13, 0.0, "embedding"),
    _usd_per_mtok("openai", "text-embedding-ada-002", 0.10, 0.0, "embedding"),
    _usd_per_mtok("anthropic", "claude-opus-4-1", 15.00, 75.00),
    _usd_per_mtok("anthropic", "claude-opus-4", 15.00, 75.00),
    _usd_per_mtok("anthropic", "claude-sonnet-4-5", 3.00, 15.00),
    _usd_per_mtok("anthropic", "claude-sonnet-4", 3.00, 15.00),
    _usd_per_mtok("anthropic", "claude-3-7-sonnet", 3.00, 15.00),
    _usd_per_mtok("anthropic", "claude-3-5-sonnet", 3.00, 15.00),
    _usd_per_mtok("anthropic", "claude-haiku-4-5", 1.00, 5.00),
    _usd_per_mtok("anthropic", "claude-3-5-haiku", 0.80, 4.00),
    _usd_per_mtok("anthropic", "claude-3-haiku", 0.25, 1.25),
    _usd_per_mtok("google", "gemini-2.5-pro", 1.25, 10.00),
    _usd_per_mtok("google", "gemini-2.5-flash", 0.30, 2.50),
    _usd_per_mtok("google", "gemini-2.5-flash-lite", 0.10, 0.40),
    _usd_per_mtok("google", "gemini-2.0-flash", 0.10, 0.40),
    _usd_per_mtok("google", "gemini-1.5-pro", 1.25, 5.00),
    _usd_per_mtok("google", "gemini-1.5-flash", 0.075, 0.30),
    _usd_per_mtok("google", "gemini-embedding-001", 0.15, 0.0, "embedding"),
    _usd_per_mtok("mistral", "mistral-large-latest", 2.00, 6.00),
    _usd_per_mtok("mistral", "mistral-medium-latest", 0.40, 2.00),
    _usd_per_mtok("mistral", "mistral-small-latest", 0.10, 0.30),
    _usd_per_mtok("mistral", "codestral-latest", 0.30, 0.90),
    _usd_per_mtok("mistral", "open-mistral-nemo", 0.15, 0.15),
    _usd_per_mtok("mistral", "mistral-embed", 0.10, 0.0, "embedding"),
    _usd_per_mchar("openai", "tts-1", 15.00),
    _usd_per_mchar("openai", "tts-1-hd", 30.00),
    _usd_per_mchar("openai", "gpt-4o-mini-tts", 12.00),
    _usd_per_mchar("elevenlabs", "eleven_multilingual_v2", 180.00),
    _usd_per_mchar("elevenlabs", "eleven_flash_v2_5", 90.00),
)


# Speech, per million characters (US dollars): genai-prices does not list ElevenLabs, and prices
# OpenAI's speech by tokens where the proxy sees characters.
DEFAULT_CATALOG: tuple[UnitPrice, ...] = tuple(p for p in SEEDED_CATALOG if p.kind == "voice")


@dataclass(frozen=True, slots=True)
class TokenCounts:
    """An LLM event's tokens. Totals first; each category is a part of its total: cached input
    (cache read), cache writes (5-minute and 1-hour) and audio are parts of the input, reasoning
    and audio parts of the output."""

    input_tokens: int
    output_tokens: int
    cached_input_tokens: int = 0
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0
    reasoning_tokens: int = 0
    audio_input_tokens: int = 0
    audio_output_tokens: int = 0


def token_problem(t: TokenCounts) -> str | None:
    """Why these counts cannot be one request's, or None."""
    if (
        min(
            t.input_tokens,
            t.output_tokens,
            t.cached_input_tokens,
            t.cache_write_5m_tokens,
            t.cache_write_1h_tokens,
            t.reasoning_tokens,
            t.audio_input_tokens,
            t.audio_output_tokens,
        )
        < 0
    ):
        return "token counts must not be negative"
    cache = t.cached_input_tokens + t.cache_write_5m_tokens + t.cache_write_1h_tokens
    if cache > t.input_tokens:
        return f"cached and cache-write tokens ({cache}) exceed the input tokens ({t.input_tokens})"
    if t.audio_input_tokens > t.input_tokens:
        return f"audio input tokens ({t.audio_input_tokens}) exceed the input tokens"
    if t.reasoning_tokens + t.audio_output_tokens > t.output_tokens:
        return (
            f"reasoning and audio output tokens ({t.reasoning_tokens + t.audio_output_tokens})"
            f" exceed the output tokens ({t.output_tokens})"
        )
    return None


@dataclass(frozen=True, slots=True)
class Rates:
    """One model's prices on one UTC day at one service tier, in micro-cents per million tokens
    (or characters). `above` holds the long-context tiers: a prompt longer than `start` tokens
    pays that tier's rates on all of its tokens, as the providers bill it."""

    provider: str
    model: str
    kind: str
    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write_5m: int = 0
    cache_write_1h: int = 0
    audio_input: int = 0
    audio_output: int = 0
    per_mchar: int = 0
    source: str = "list"  # "list" | "override"
    above: tuple[tuple[int, Rates], ...] = field(default=())

    def for_prompt(self, input_tokens: int) -> Rates:
        chosen = self
        for start, rates in self.above:
            if input_tokens > start:
                chosen = rates
        return chosen

    @property
    def dearest_input(self) -> int:
        """The most one input token can cost at any prompt length: what a reservation assumes."""
        cards = [self, *(r for _, r in self.above)]
        return max(
            max(c.input, c.cache_read, c.cache_write_5m, c.cache_write_1h, c.audio_input)
            for c in cards
        )

    @property
    def dearest_output(self) -> int:
        cards = [self, *(r for _, r in self.above)]
        return max(max(c.output, c.audio_output) for c in cards)


class _Tokens(Protocol):
    """TokenCounts, or a record with the same fields (priced without copying them)."""

    @property
    def input_tokens(self) -> int: ...
    @property
    def output_tokens(self) -> int: ...
    @property
    def cached_input_tokens(self) -> int: ...
    @property
    def cache_write_5m_tokens(self) -> int: ...
    @property
    def cache_write_1h_tokens(self) -> int: ...
    @property
    def reasoning_tokens(self) -> int: ...
    @property
    def audio_input_tokens(self) -> int: ...
    @property
    def audio_output_tokens(self) -> int: ...


def _numerators(rates: Rates, t: _Tokens) -> tuple[int, int]:
    """(micro-cents times 10^6 as priced, the same with every cached token at the input rate)."""
    card = rates.for_prompt(t.input_tokens) if rates.above else rates
    cache_read, write_5m, write_1h = (
        t.cached_input_tokens,
        t.cache_write_5m_tokens,
        t.cache_write_1h_tokens,
    )
    plain_input = max(0, t.input_tokens - cache_read - write_5m - write_1h - t.audio_input_tokens)
    text_output = max(0, t.output_tokens - t.audio_output_tokens)
    rest = (
        plain_input * card.input
        + t.audio_input_tokens * card.audio_input
        + text_output * card.output
        + t.audio_output_tokens * card.audio_output
    )
    cached = cache_read * card.cache_read + write_5m * card.cache_write_5m
    cached += write_1h * card.cache_write_1h
    return rest + cached, rest + (cache_read + write_5m + write_1h) * card.input


def token_cost(rates: Rates, t: _Tokens) -> int:
    """The exact sum over the categories, rounded half-up once to a whole micro-cent."""
    return mul_div_half_up(_numerators(rates, t)[0], 1, MILLION)


def cache_saving(rates: Rates, t: TokenCounts) -> int:
    """What caching saved: the same tokens with no cache at all, minus what they cost (negative
    when cache writes cost more than the reads saved)."""
    priced, uncached = _numerators(rates, t)
    return mul_div_half_up(uncached, 1, MILLION) - mul_div_half_up(priced, 1, MILLION)


class PriceNotFound(LookupError):
    pass


def _valid_from(price: UnitPrice) -> date:
    return price.valid_from


def _micros(usd: Decimal) -> int:
    return int((usd * _MICROS_PER_USD).quantize(Decimal(1), rounding=ROUND_HALF_UP))


_Price = Decimal | genai.TieredPrices | None


def _at(price: _Price, start: int | None) -> Decimal | None:
    """A genai-prices price above `start` prompt tokens (None: the base price)."""
    if price is None or isinstance(price, Decimal):
        return price
    chosen = price.base
    for tier in price.tiers:
        if start is not None and tier.start <= start:
            chosen = tier.price
    return chosen


def _list_rates(provider: str, model: str, prices: genai.ModelPrice) -> Rates:
    values: dict[str, _Price] = {k: getattr(prices, k) for k in _GENAI_KEYS}
    starts = sorted(
        {t.start for v in values.values() if isinstance(v, genai.TieredPrices) for t in v.tiers}
    )

    def card(start: int | None) -> Rates:
        v = {k: _at(p, start) for k, p in values.items()}
        # genai-prices' own hierarchy: a category without a price of its own is priced as the
        # category it is part of (a 1-hour write as a write, a write or a read as input).
        inp = v["input_mtok"] or Decimal(0)
        out = v["output_mtok"] or Decimal(0)
        write = v["cache_write_mtok"] or inp
        return Rates(
            provider,
            model,
            "llm" if v["output_mtok"] is not None else "embedding",
            input=_micros(inp),
            output=_micros(out),
            cache_read=_micros(v["cache_read_mtok"] or inp),
            cache_write_5m=_micros(v["cache_write_5m_mtok"] or write),
            cache_write_1h=_micros(v["cache_write_1h_mtok"] or write),
            audio_input=_micros(v["input_audio_mtok"] or inp),
            audio_output=_micros(v["output_audio_mtok"] or out),
        )

    base = card(None)
    return replace(base, above=tuple((s, card(s)) for s in starts))


_GENAI_KEYS: Final = (
    "input_mtok",
    "output_mtok",
    "cache_read_mtok",
    "cache_write_mtok",
    "cache_write_5m_mtok",
    "cache_write_1h_mtok",
    "input_audio_mtok",
    "output_audio_mtok",
)


def _tier_context(tier: str | None) -> dict[str, str] | None:
    if tier is None or tier in STANDARD_TIERS:
        return None
    if tier == "batch":
        return {"processing": "batch"}
    return {"service_tier": tier}


class ListPrices:
    """genai-prices' bundled snapshot, restricted to the providers we forward to."""

    def __init__(self) -> None:
        self._snapshot = data_snapshot.get_snapshot()
        self._models: dict[tuple[str | None, str], tuple[str, genai.ModelInfo] | None] = {}

    def find(self, provider: str | None, model: str) -> tuple[str, genai.ModelInfo] | None:
        key = (provider, model)
        if key in self._models:
            return self._models[key]
        found: tuple[str, genai.ModelInfo] | None = None
        for candidate in (provider,) if provider is not None else LIST_PROVIDERS:
            try:
                p, info = self._snapshot.find_provider_model(model, None, candidate, None)
            except LookupError:
                continue
            found = (p.id if provider is None else provider, info)
            break
        if len(self._models) < 10_000:
            self._models[key] = found
        return found

    def models(self) -> list[tuple[str, str]]:
        """(provider, model) of each model the list prices, of the providers we forward to."""
        return [
            (provider.id, model.id)
            for provider in self._snapshot.providers
            if provider.id in LIST_PROVIDERS
            for model in provider.models
            if not model.deprecated
        ]

    def rates(self, provider: str | None, model: str, day: date, tier: str | None) -> Rates:
        found = self.find(provider, model)
        if found is None:
            raise PriceNotFound(
                f"no price for model {model!r} on {day.isoformat()}; send costCents or add a price"
            )
        owner, info = found
        moment = datetime.combine(day, time(12), tzinfo=UTC)
        context = _tier_context(tier)
        if context is not None and not any(
            (v.constraint is None or v.constraint.active(moment))
            and all(context.get(k) == value for k, value in v.when.items())
            for v in info.price_variants or ()
        ):
            # Never the standard price instead: a tier the list does not price is not priced.
            raise PriceNotFound(
                f"no {tier} service-tier price for model {model!r} on {day.isoformat()}"
            )
        return _list_rates(owner, model, info.get_prices(moment, context))


_LIST: ListPrices | None = None


def list_prices() -> ListPrices:
    global _LIST
    if _LIST is None:
        _LIST = ListPrices()
    return _LIST


class PriceBook:
    """Overrides (and our speech list) in memory over the maintained list prices, looked up by
    (provider, model) or by model, on a UTC day, at a service tier. Each (provider, model, day,
    tier) is resolved once and remembered: ingest prices thousands of events a second."""

    def __init__(self, prices: Iterable[UnitPrice], *, with_list: bool = True) -> None:
        self._by_provider_model: dict[tuple[str, str], list[UnitPrice]] = {}
        self._by_model: dict[str, list[UnitPrice]] = {}
        for price in prices:
            self._by_provider_model.setdefault((price.provider, price.model), []).append(price)
            self._by_model.setdefault(price.model, []).append(price)
        for table in (self._by_provider_model, self._by_model):
            for versions in table.values():
                versions.sort(key=lambda p: p.valid_from)
        # Longest first, so "gpt-4o-mini-2024-07-18" finds gpt-4o-mini before gpt-4o.
        self._models_longest_first = sorted(self._by_model, key=len, reverse=True)
        self._canonical_of: dict[str, str] = {}
        self._list = list_prices() if with_list else None
        self._resolved: dict[tuple[str | None, str, date, str | None], Rates | str] = {}

    @property
    def prices(self) -> list[UnitPrice]:
        """The overrides (and speech prices) this book holds, not the list."""
        return [p for versions in self._by_model.values() for p in versions]

    def models(self) -> list[str]:
        return sorted(self._by_model)

    def listed(self) -> list[tuple[str, str]]:
        """(provider, model) of each model the maintained list prices (overrides aside)."""
        return self._list.models() if self._list is not None else []

    def provider_of(self, model: str) -> str | None:
        versions = self._versions(None, self._canonical(model))
        if versions:
            return versions[-1].provider
        found = self._list.find(None, model) if self._list is not None else None
        return found[0] if found else None

    def _canonical(self, model: str) -> str:
        found = self._canonical_of.get(model)
        if found is not None:
            return found
        found = model
        if model not in self._by_model:
            for known in self._models_longest_first:
                # Dated snapshots ("gpt-4o-2024-08-06") and namespaced names ("openai/gpt-4o").
                if model.startswith(known + "-") or model.endswith("/" + known):
                    found = known
                    break
        # Every priced event asks this; remember the answer for the names actually seen.
        if len(self._canonical_of) < 10_000:
            self._canonical_of[model] = found
        return found

    def _versions(self, provider: str | None, model: str) -> Sequence[UnitPrice]:
        if provider is not None and (provider, model) in self._by_provider_model:
            return self._by_provider_model[(provider, model)]
        return self._by_model.get(model, ())

    def _override(self, provider: str | None, model: str, day: date) -> UnitPrice | None:
        versions = self._versions(provider, self._canonical(model))
        index = bisect.bisect_right(versions, day, key=_valid_from) - 1
        return versions[index] if index >= 0 else None

    def at(self, provider: str | None, model: str, moment: datetime | date) -> UnitPrice:
        """The override or speech price in force (raises PriceNotFound where there is none)."""
        # A UTC day, like every day of this product, whatever zone the moment carries.
        day = as_utc(moment).date() if isinstance(moment, datetime) else moment
        found = self._override(provider, model, day)
        if found is None:
            raise PriceNotFound(
                f"no price for model {model!r} on {day.isoformat()}; send costCents or add a price"
            )
        return found

    def rates(
        self, provider: str | None, model: str, moment: datetime | date, tier: str | None = None
    ) -> Rates:
        """The prices of a model on a moment's UTC day at a service tier: an override in force
        wins (whatever the tier), else the list; raises PriceNotFound, never a guess."""
        day = as_utc(moment).date() if isinstance(moment, datetime) else moment
        key = (provider, model, day, tier)
        found = self._resolved.get(key)
        if found is None:
            try:
                found = self._resolve(provider, model, day, tier)
            except PriceNotFound as exc:
                found = str(exc)
            if len(self._resolved) < 100_000:
                self._resolved[key] = found
        if isinstance(found, str):
            raise PriceNotFound(found)
        return found

    def _resolve(self, provider: str | None, model: str, day: date, tier: str | None) -> Rates:
        override = self._override(provider, model, day)
        if override is not None:
            return _override_rates(override)
        if self._list is None:
            raise PriceNotFound(
                f"no price for model {model!r} on {day.isoformat()}; send costCents or add a price"
            )
        return self._list.rates(provider, model, day, tier)

    def llm_cost(
        self,
        provider: str | None,
        model: str,
        moment: datetime,
        input_tokens: int,
        output_tokens: int,
        tier: str | None = None,
        **categories: int,
    ) -> int:
        tokens = TokenCounts(input_tokens, output_tokens, **categories)
        return token_cost(self.rates(provider, model, moment, tier), tokens)

    def voice_cost(self, voice_model: str, moment: datetime, characters: int) -> int:
        price = self.at(None, voice_model, moment)
        return mul_div_half_up(characters, price.micros_per_mchar, MILLION)

    def speech_token_rates(self, voice_model: str, moment: datetime) -> Rates | None:
        """The list's token prices of a speech model the provider bills by token (OpenAI's
        gpt-4o-mini-tts), for an answer that reports its tokens; None where the characters are
        what is billed (tts-1), or where an override prices the model per character."""
        price = self.at(None, voice_model, moment)
        if self._list is None or price not in DEFAULT_CATALOG:
            return None
        day = as_utc(moment).date()
        try:
            rates = self._list.rates(price.provider, price.model, day, None)
        except PriceNotFound:
            return None
        return rates if rates.dearest_output else None


def _override_rates(p: UnitPrice) -> Rates:
    def rate(value: int | None) -> int:
        return p.input_micros_per_mtok if value is None else value

    return Rates(
        p.provider,
        p.model,
        p.kind,
        input=p.input_micros_per_mtok,
        output=p.output_micros_per_mtok,
        cache_read=rate(p.cache_read_micros_per_mtok),
        cache_write_5m=rate(p.cache_write_5m_micros_per_mtok),
        cache_write_1h=rate(p.cache_write_1h_micros_per_mtok),
        audio_input=p.input_micros_per_mtok,
        audio_output=p.output_micros_per_mtok,
        per_mchar=p.micros_per_mchar,
        source="override",
    )


def default_price_book() -> PriceBook:
    return PriceBook(DEFAULT_CATALOG)


async def load_price_book(conn: AsyncConnection) -> PriceBook:
    """The overrides in the database and our speech list, over the maintained list prices."""
    rows = (await conn.execute(select(table_of(Price)))).mappings().all()
    return PriceBook([*DEFAULT_CATALOG, *(unit_price(row) for row in rows)])


def unit_price(row: RowMapping | Mapping[str, Any]) -> UnitPrice:
    """A row of the price table as a catalog entry; `price_rows` is the way back."""
    return UnitPrice(
        provider=row["provider"],
        model=row["model"],
        kind=row["kind"],
        valid_from=row["valid_from"],
        input_micros_per_mtok=row["input_micros_per_mtok"],
        output_micros_per_mtok=row["output_micros_per_mtok"],
        micros_per_mchar=row["micros_per_mchar"],
        cache_read_micros_per_mtok=row.get("cache_read_micros_per_mtok"),
        cache_write_5m_micros_per_mtok=row.get("cache_write_5m_micros_per_mtok"),
        cache_write_1h_micros_per_mtok=row.get("cache_write_1h_micros_per_mtok"),
    )


def price_rows(prices: Iterable[UnitPrice], *, cache_rates: bool = True) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for p in prices:
        row: dict[str, object] = {
            "provider": p.provider,
            "model": p.model,
            "kind": p.kind,
            "valid_from": p.valid_from,
            "input_micros_per_mtok": p.input_micros_per_mtok,
            "output_micros_per_mtok": p.output_micros_per_mtok,
            "micros_per_mchar": p.micros_per_mchar,
        }
        if cache_rates:
            # Migration 0002 wrote rows before these columns existed.
            row["cache_read_micros_per_mtok"] = p.cache_read_micros_per_mtok
            row["cache_write_5m_micros_per_mtok"] = p.cache_write_5m_micros_per_mtok
            row["cache_write_1h_micros_per_mtok"] = p.cache_write_1h_micros_per_mtok
        rows.append(row)
    return rows
