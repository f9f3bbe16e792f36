"""The price catalog: list prices, dated snapshots, and the price valid at an event's moment."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from crabglamp.db import read_transaction, write_transaction
from crabglamp.models import Price
from crabglamp.prices import (
    DEFAULT_CATALOG,
    PriceBook,
    PriceNotFound,
    UnitPrice,
    default_price_book,
    load_price_book,
)

MOMENT = datetime(2026, 11, 3, 12, tzinfo=UTC)
CENT = 1_000_000


@pytest.mark.parametrize(
    ("asked", "priced_as"),
    [
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),  # not gpt-4o
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("openai/gpt-4o-mini", "gpt-4o-mini"),
        ("o3-mini-2025-01-31", "o3-mini"),  # not o3
        ("gpt-4.1-mini-2025-04-14", "gpt-4.1-mini"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),  # not claude-sonnet-4
        ("claude-sonnet-4-20250514", "claude-sonnet-4"),
        ("claude-3-5-haiku-20241022", "claude-3-5-haiku"),
        ("gpt-4o-mini-tts", "gpt-4o-mini-tts"),
        ("gpt-4o-mini-tts-2025-03-20", "gpt-4o-mini-tts"),
    ],
)
def test_dated_snapshots_find_their_model_by_longest_prefix(asked: str, priced_as: str) -> None:
    book = default_price_book()
    assert book.at(None, asked, MOMENT).model == priced_as
    assert book.at(None, asked, MOMENT).model == priced_as  # and again, from memory


def test_an_unknown_model_has_no_price() -> None:
    book = default_price_book()
    for model in ("no-such-model", "gpt", "mini", "4o-mini"):
        with pytest.raises(PriceNotFound, match=f"no price for model '{model}'"):
            book.llm_cost("openai", model, MOMENT, 1, 1)


@pytest.mark.parametrize(
    ("provider", "model", "input_tokens", "output_tokens", "micros"),
    [
        # $0.15 and $0.60 per million: 1200 x 15 + 300 x 60 micro-cents = 0.036 cents.
        ("openai", "gpt-4o-mini", 1200, 300, 36_000),
        ("openai", "gpt-4o", 1_000_000, 1_000_000, 1250 * CENT),  # $2.50 + $10.00
        ("anthropic", "claude-3-5-haiku", 1000, 1000, 480_000),  # $0.80 + $4.00
        ("anthropic", "claude-opus-4-1", 1_000_000, 0, 1500 * CENT),  # $15
        ("google", "gemini-2.5-flash", 0, 1_000_000, 250 * CENT),  # $2.50
        ("mistral", "mistral-small-latest", 1_000_000, 1_000_000, 40 * CENT),  # $0.10 + $0.30
        ("openai", "text-embedding-3-small", 1000, 0, 2000),  # $0.02
        # $0.075 per million is 7.5 micro-cents a token: each side rounds half-up on its own.
        ("google", "gemini-1.5-flash", 1, 0, 8),
        ("google", "gemini-1.5-flash", 3, 0, 23),
        ("google", "gemini-1.5-flash", 0, 0, 0),
    ],
)
def test_known_list_prices(
    provider: str, model: str, input_tokens: int, output_tokens: int, micros: int
) -> None:
    book = default_price_book()
    assert book.llm_cost(provider, model, MOMENT, input_tokens, output_tokens) == micros


def test_voice_is_priced_per_character() -> None:
    book = default_price_book()
    assert book.voice_cost("tts-1", MOMENT, 1800) == 2_700_000  # $15 per million: 2.7 cents
    assert book.voice_cost("tts-1-hd", MOMENT, 1000) == 3 * CENT
    assert book.voice_cost("eleven_multilingual_v2", MOMENT, 1000) == 18 * CENT


def test_the_price_valid_at_the_moment_applies() -> None:
    book = PriceBook(
        [
            UnitPrice("acme", "m", "llm", date(2026, 11, 15), input_micros_per_mtok=2 * CENT),
            UnitPrice("acme", "m", "llm", date(2026, 1, 1), input_micros_per_mtok=1 * CENT),
        ]
    )
    change = datetime(2026, 11, 15, tzinfo=UTC)
    assert book.llm_cost("acme", "m", change - timedelta(microseconds=1), 10**6, 0) == CENT
    assert book.llm_cost("acme", "m", change, 10**6, 0) == 2 * CENT
    assert book.at("acme", "m", date(2027, 6, 1)).valid_from == date(2026, 11, 15)
    # The day is the UTC day: 01:00 in UTC+2 on the 15th is still the 14th.
    east = datetime(2026, 11, 15, 1, tzinfo=timezone(timedelta(hours=2)))
    assert book.at("acme", "m", east).valid_from == date(2026, 1, 1)
    with pytest.raises(PriceNotFound, match="on 2025-12-31"):
        book.at("acme", "m", date(2025, 12, 31))


def test_a_provider_specific_price_wins_over_another_providers() -> None:
    book = PriceBook(
        [
            UnitPrice("openai", "shared", "llm", date(2026, 1, 1), input_micros_per_mtok=1),
            UnitPrice("azure", "shared", "llm", date(2026, 1, 1), input_micros_per_mtok=2),
        ]
    )
    assert book.at("azure", "shared", MOMENT).provider == "azure"
    assert book.at("openai", "shared", MOMENT).provider == "openai"
    assert book.at("someone-else", "shared", MOMENT).model == "shared"


def test_the_default_catalog_covers_the_common_providers() -> None:
    assert {p.provider for p in DEFAULT_CATALOG} >= {
        "openai",
        "anthropic",
        "google",
        "mistral",
        "elevenlabs",
    }
    assert {p.kind for p in DEFAULT_CATALOG} == {"llm", "embedding", "voice"}
    keys = [(p.provider, p.model, p.valid_from) for p in DEFAULT_CATALOG]
    assert len(keys) == len(set(keys))
    for p in DEFAULT_CATALOG:
        if p.kind == "voice":
            assert p.micros_per_mchar > 0 and p.input_micros_per_mtok == 0
        else:
            assert p.input_micros_per_mtok > 0 and p.micros_per_mchar == 0


async def test_the_database_catalog_is_the_default_plus_what_was_added(
    engine: AsyncEngine,
) -> None:
    async with read_transaction(engine) as conn:
        migrated = await load_price_book(conn)
    assert sorted(migrated.prices, key=repr) == sorted(DEFAULT_CATALOG, key=repr)
    async with write_transaction(engine) as conn:
        await conn.execute(
            insert(Price).values(
                provider="openai",
                model="gpt-4o-mini",
                kind="llm",
                input_micros_per_mtok=10 * CENT,
                output_micros_per_mtok=40 * CENT,
                valid_from=date(2026, 12, 1),
            )
        )
    async with read_transaction(engine) as conn:
        book = await load_price_book(conn)
    assert book.llm_cost("openai", "gpt-4o-mini", MOMENT, 1200, 300) == 36_000
    december = datetime(2026, 12, 1, tzinfo=UTC)
    assert book.llm_cost("openai", "gpt-4o-mini-2024-07-18", december, 1200, 300) == 24_000
