"""The price catalog: list prices by model and date, and pricing of events that carry no cost."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import RowMapping, select
from sqlalchemy.ext.asyncio import AsyncConnection

from crabglamp.db.tables import table_of
from crabglamp.models import Price
from crabglamp.money import mul_div_half_up
from crabglamp.periods import as_utc

MILLION = 1_000_000
CATALOG_START = date(2024, 1, 1)


@dataclass(frozen=True, slots=True)
class UnitPrice:
    provider: str
    model: str
    kind: str
    valid_from: date
    input_micros_per_mtok: int = 0
    output_micros_per_mtok: int = 0
    micros_per_mchar: int = 0


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


# Public list prices (standard tier, US dollars per million tokens or characters).
DEFAULT_CATALOG: tuple[UnitPrice, ...] = (
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


class PriceNotFound(LookupError):
    pass


def _valid_from(price: UnitPrice) -> date:
    return price.valid_from


class PriceBook:
    """All prices in memory, looked up by (provider, model) or by model, at a moment."""

    def __init__(self, prices: Iterable[UnitPrice]) -> None:
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

    @property
    def prices(self) -> list[UnitPrice]:
        return [p for versions in self._by_model.values() for p in versions]

    def models(self) -> list[str]:
        return sorted(self._by_model)

    def provider_of(self, model: str) -> str | None:
        versions = self._versions(None, self._canonical(model))
        return versions[-1].provider if versions else None

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

    def at(self, provider: str | None, model: str, moment: datetime | date) -> UnitPrice:
        # A UTC day, like every day of this product, whatever zone the moment carries.
        day = as_utc(moment).date() if isinstance(moment, datetime) else moment
        versions = self._versions(provider, self._canonical(model))
        index = bisect.bisect_right(versions, day, key=_valid_from) - 1
        if index < 0:
            raise PriceNotFound(
                f"no price for model {model!r} on {day.isoformat()}; send costCents or add a price"
            )
        return versions[index]

    def llm_cost(
        self,
        provider: str | None,
        model: str,
        moment: datetime,
        input_tokens: int,
        output_tokens: int,
    ) -> int:
        price = self.at(provider, model, moment)
        return mul_div_half_up(
            input_tokens, price.input_micros_per_mtok, MILLION
        ) + mul_div_half_up(output_tokens, price.output_micros_per_mtok, MILLION)

    def voice_cost(self, voice_model: str, moment: datetime, characters: int) -> int:
        price = self.at(None, voice_model, moment)
        return mul_div_half_up(characters, price.micros_per_mchar, MILLION)


def default_price_book() -> PriceBook:
    return PriceBook(DEFAULT_CATALOG)


async def load_price_book(conn: AsyncConnection) -> PriceBook:
    """The catalog in the database, or the default one where the database has none."""
    rows = (await conn.execute(select(table_of(Price)))).mappings().all()
    if not rows:
        return default_price_book()
    return PriceBook(unit_price(row) for row in rows)


def unit_price(row: RowMapping) -> UnitPrice:
    """A row of the price table as a catalog entry; `price_rows` is the way back."""
    return UnitPrice(
        provider=row["provider"],
        model=row["model"],
        kind=row["kind"],
        valid_from=row["valid_from"],
        input_micros_per_mtok=row["input_micros_per_mtok"],
        output_micros_per_mtok=row["output_micros_per_mtok"],
        micros_per_mchar=row["micros_per_mchar"],
    )


def price_rows(prices: Iterable[UnitPrice]) -> list[dict[str, object]]:
    return [
        {
            "provider": p.provider,
            "model": p.model,
            "kind": p.kind,
            "valid_from": p.valid_from,
            "input_micros_per_mtok": p.input_micros_per_mtok,
            "output_micros_per_mtok": p.output_micros_per_mtok,
            "micros_per_mchar": p.micros_per_mchar,
        }
        for p in prices
    ]
