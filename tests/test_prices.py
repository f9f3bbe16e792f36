"""The price catalog: list prices, dated snapshots, and the price valid at an event's moment."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal

import genai_prices
import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from crabglamp.db import read_transaction, write_transaction
from crabglamp.models import Price
from crabglamp.prices import (
    DEFAULT_CATALOG,
    PriceBook,
    PriceNotFound,
    TokenCounts,
    UnitPrice,
    cache_saving,
    default_price_book,
    load_price_book,
    token_cost,
    token_problem,
)

MOMENT = datetime(2026, 11, 3, 12, tzinfo=UTC)
CENT = 1_000_000


@pytest.mark.parametrize(
    ("asked", "priced_as"),
    [
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),  # not gpt-4o
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("o3-mini-2025-01-31", "o3-mini"),  # not o3
        ("gpt-4.1-mini-2025-04-14", "gpt-4.1-mini"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),  # not claude-sonnet-4
        ("claude-3-5-haiku-20241022", "claude-3-5-haiku"),
    ],
)
def test_dated_snapshots_are_priced_as_their_model(asked: str, priced_as: str) -> None:
    book = default_price_book()
    provider = book.provider_of(priced_as)
    assert book.provider_of(asked) == provider
    for tokens in ((1000, 100), (300_000, 1000)):  # below and above a long-context tier
        assert book.llm_cost(provider, asked, MOMENT, *tokens, cached_input_tokens=500) == (
            book.llm_cost(provider, priced_as, MOMENT, *tokens, cached_input_tokens=500)
        )


@pytest.mark.parametrize(
    ("asked", "priced_as"),
    [("gpt-4o-mini-tts-2025-03-20", "gpt-4o-mini-tts"), ("openai/tts-1", "tts-1")],
)
def test_speech_snapshots_find_their_model_by_longest_prefix(asked: str, priced_as: str) -> None:
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
        ("mistral", "mistral-small-latest", 1_000_000, 1_000_000, 75 * CENT),  # $0.15 + $0.60
        ("openai", "text-embedding-3-small", 1000, 0, 2000),  # $0.02
        # $0.075 per million is 7.5 micro-cents a token: the sum rounds half-up, once.
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


def test_the_default_catalog_is_speech_and_the_list_prices_the_rest() -> None:
    assert {p.provider for p in DEFAULT_CATALOG} == {"openai", "elevenlabs"}
    assert {p.kind for p in DEFAULT_CATALOG} == {"voice"}
    assert all(p.micros_per_mchar > 0 for p in DEFAULT_CATALOG)
    book = default_price_book()
    for model in ("gpt-4o", "claude-sonnet-4-5", "gemini-2.5-pro", "mistral-large-latest"):
        assert book.rates(book.provider_of(model), model, MOMENT).input > 0


async def test_the_database_holds_overrides_which_win_over_the_list(
    engine: AsyncEngine,
) -> None:
    async with read_transaction(engine) as conn:
        migrated = await load_price_book(conn)
    # Migrated, the table holds no list prices: only the speech list is in the book itself.
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
    # An override without cache rates prices cached tokens as input: its price, not the list's.
    assert book.llm_cost(
        "openai", "gpt-4o-mini", december, 1200, 300, cached_input_tokens=1000
    ) == (24_000)


def test_the_worked_example_of_pricing_md() -> None:
    # gpt-4o: 2000 prompt tokens of which 1536 cached, 300 completion tokens:
    # 464 x $2.50/M + 1536 x $1.25/M + 300 x $10/M = $0.00608 = 0.608 cents.
    book = default_price_book()
    cost = book.llm_cost("openai", "gpt-4o", MOMENT, 2000, 300, cached_input_tokens=1536)
    assert cost == 608_000
    assert book.llm_cost("openai", "gpt-4o", MOMENT, 2000, 300) == 800_000  # all uncached


GENAI_CASES = [
    ("openai", "gpt-4o", TokenCounts(2000, 300, cached_input_tokens=1536), None),
    ("openai", "gpt-4.1-mini", TokenCounts(5000, 800, cached_input_tokens=4096), None),
    ("openai", "gpt-5", TokenCounts(3000, 2000, 2048, reasoning_tokens=1500), None),
    ("openai", "gpt-5", TokenCounts(3000, 2000, 2048, reasoning_tokens=1500), "flex"),
    ("openai", "gpt-5", TokenCounts(3000, 2000, 2048, reasoning_tokens=1500), "priority"),
    ("openai", "gpt-4o", TokenCounts(3000, 500, 1024), "batch"),
    (
        "anthropic",
        "claude-sonnet-4-5",
        TokenCounts(10_000, 400, 6000, cache_write_5m_tokens=2000, cache_write_1h_tokens=1000),
        None,
    ),
    # Above Anthropic's 200k long-context tier every token pays the higher rates.
    ("anthropic", "claude-sonnet-4-5", TokenCounts(250_000, 400, 100_000, 50_000, 20_000), None),
    ("google", "gemini-2.5-pro", TokenCounts(300_000, 1000, 200_000, reasoning_tokens=600), None),
]


@pytest.mark.parametrize(("provider", "model", "tokens", "tier"), GENAI_CASES)
def test_costs_agree_with_genai_prices_own_calculation(
    provider: str, model: str, tokens: TokenCounts, tier: str | None
) -> None:
    """An independent computation: genai-prices' calc_price in exact decimals, rounded once."""
    usage = genai_prices.Usage(
        input_tokens=tokens.input_tokens,
        output_tokens=tokens.output_tokens,
        cache_read_tokens=tokens.cached_input_tokens,
        cache_write_tokens=tokens.cache_write_5m_tokens + tokens.cache_write_1h_tokens,
        cache_write_5m_tokens=tokens.cache_write_5m_tokens,
        cache_write_1h_tokens=tokens.cache_write_1h_tokens,
    )
    context = (
        None
        if tier is None
        else ({"processing": "batch"} if tier == "batch" else {"service_tier": tier})
    )
    usd = genai_prices.calc_price(
        usage, model, provider_id=provider, genai_request_timestamp=MOMENT, price_context=context
    ).total_price
    expected = int((usd * 100 * CENT).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    rates = default_price_book().rates(provider, model, MOMENT, tier)
    assert token_cost(rates, tokens) == expected
    assert expected > 0


def test_a_tier_the_list_does_not_price_is_not_priced_as_the_standard_one() -> None:
    book = default_price_book()
    assert book.llm_cost("openai", "gpt-5", MOMENT, 10**6, 0, tier="flex") == 62.5 * CENT
    assert book.llm_cost("openai", "gpt-5", MOMENT, 10**6, 0, tier="default") == 125 * CENT
    with pytest.raises(PriceNotFound, match="no flex service-tier price for model 'gpt-4o'"):
        book.llm_cost("openai", "gpt-4o", MOMENT, 10**6, 0, tier="flex")
    # Flex started on 2026-10-12 in the list: before that day it had no price.
    with pytest.raises(PriceNotFound, match="on 2026-10-11"):
        book.rates("openai", "gpt-5", datetime(2026, 10, 11, 23, tzinfo=UTC), "flex")


def test_a_list_price_change_prices_events_before_and_after_it_differently() -> None:
    # o3's list price fell from $10/$40 to $2/$8 per million on 2025-06-10, mid-month.
    book = default_price_book()
    change = datetime(2025, 6, 10, tzinfo=UTC)
    before = book.llm_cost("openai", "o3", change - timedelta(microseconds=1), 10**6, 10**6)
    after = book.llm_cost("openai", "o3", change, 10**6, 10**6)
    assert (before, after) == (5000 * CENT, 1000 * CENT)


def test_caching_saved_is_the_uncached_cost_minus_the_cost() -> None:
    book = default_price_book()
    tokens = TokenCounts(2000, 300, cached_input_tokens=1536)
    rates = book.rates("openai", "gpt-4o", MOMENT)
    assert cache_saving(rates, tokens) == 800_000 - 608_000
    # Anthropic's writes cost more than input: a write-only request "saved" a negative amount.
    anthropic = book.rates("anthropic", "claude-opus-4-1", MOMENT)
    assert cache_saving(anthropic, TokenCounts(1000, 0, cache_write_1h_tokens=1000)) == -1500_000


@pytest.mark.parametrize(
    ("tokens", "micros"),
    [
        # gpt-4.1-mini: $0.40 input (40 micro-cents a token), $0.10 cached (10), $1.60 output.
        (TokenCounts(1, 0), 40),
        # gpt-5: $0.125 cached is 12.5 micro-cents a token; halves round up, on the sum only.
        (TokenCounts(1, 0, 1), 13),
        (TokenCounts(2, 0, 2), 25),
        (TokenCounts(3, 0, 3), 38),  # 37.5, not 3 x 13 = 39
    ],
)
def test_the_rounding_rule_rounds_the_exact_sum_half_up_once(
    tokens: TokenCounts, micros: int
) -> None:
    book = default_price_book()
    model = "gpt-4.1-mini" if tokens.cached_input_tokens == 0 else "gpt-5"
    assert token_cost(book.rates("openai", model, MOMENT), tokens) == micros


def test_a_category_larger_than_its_total_is_refused() -> None:
    assert token_problem(TokenCounts(10, 10, cached_input_tokens=8, cache_write_5m_tokens=3))
    assert token_problem(TokenCounts(10, 10, reasoning_tokens=11))
    assert token_problem(TokenCounts(10, 10, audio_input_tokens=11))
    assert token_problem(TokenCounts(10, 10, 5, 3, 2, 6, 10, 4)) is None
