"""Token categories in a bundle: imported, priced at the list's cache rates, summed, exported
back identically; a category larger than its total or an unpriced model refused by line."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from test_bundle import ACME, KEY, NOVEMBER, base, run_import, wipe

from crabglamp.bundle.export import dump_line, export_bundle
from crabglamp.db import read_transaction
from crabglamp.usage.query import UsageQuery
from crabglamp.usage.service import usage


def _llm(event_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "type": "llm",
        "id": event_id,
        "ts": "2026-11-20T09:00:00Z",
        "keyId": KEY,
        "provider": "openai",
        "model": "gpt-4o",
        "inputTokens": 2000,
        "outputTokens": 300,
    } | fields


CATEGORIES = [
    # The worked example of docs/how-requests-are-priced.md: 0.608 cents from the list.
    _llm("cached", cachedInputTokens=1536),
    _llm(
        "reasoned",
        model="gpt-5",
        cachedInputTokens=1024,
        reasoningTokens=200,
        serviceTier="flex",
    ),
    _llm(
        "anthropic",
        provider="anthropic",
        model="claude-sonnet-4-5",
        inputTokens=10_000,
        outputTokens=400,
        cachedInputTokens=6000,
        cacheWrite5mTokens=2000,
        cacheWrite1hTokens=1000,
    ),
    _llm("audio", audioInputTokens=100, audioOutputTokens=50, costCents=1.5, estimated=True),
]


async def test_categories_import_sum_and_export_back_identically(engine: AsyncEngine) -> None:
    report = await run_import(engine, [*base(), *CATEGORIES])
    assert report.ok, report.problems
    async with read_transaction(engine) as conn:
        spent = await usage(conn, UsageQuery(NOVEMBER, (ACME,)))
        exported = [dump_line(obj) async for obj in export_bundle(conn, ACME, NOVEMBER)]
    models = {m.model: m for m in spent.llm.models}
    gpt_4o = models["gpt-4o"]
    # An independent sum of the lines: gpt-4o's two events and their categories.
    assert (gpt_4o.input_tokens, gpt_4o.cached_input_tokens) == (4000, 1536)
    assert (gpt_4o.audio_input_tokens, gpt_4o.audio_output_tokens) == (100, 50)
    # 464 x $2.50/M + 1536 x $1.25/M + 300 x $10/M = 0.608 cents, and the stated 1.5 cents.
    assert gpt_4o.total_micros == 608_000 + 1_500_000
    assert gpt_4o.cache_saved_micros == 1536 * 125  # 1536 tokens at $1.25/M less
    gpt_5 = models["gpt-5"]
    # Flex: $0.625 input, $0.0625 cached, $5 output per million.
    assert (
        gpt_5.total_micros
        == (976 * 62_500_000 + 1024 * 6_250_000 + 300 * 500_000_000 + 500_000) // 10**6
    )
    assert gpt_5.reasoning_tokens == 200
    claude = models["claude-sonnet-4-5"]
    # $3 input, $0.30 read, $3.75 5-minute write, $6 1-hour write, $15 output per million.
    assert (
        claude.total_micros
        == (1000 * 300 + 6000 * 30 + 2000 * 375 + 1000 * 600 + 400 * 1500) * 10**6 // 10**6
    )
    assert (claude.cache_write_5m_tokens, claude.cache_write_1h_tokens) == (2000, 1000)
    assert spent.llm.total_micros == sum(m.total_micros for m in models.values())
    lines = {json.loads(line)["id"]: line for line in exported if '"type":"llm"' in line}
    assert '"cachedInputTokens":1536' in lines["cached"] and "serviceTier" not in lines["cached"]
    assert (
        '"serviceTier":"flex"' in lines["reasoned"] and '"reasoningTokens":200' in lines["reasoned"]
    )
    assert '"cacheWrite1hTokens":1000' in lines["anthropic"]
    assert '"estimated":true' in lines["audio"]
    # A line without categories stays as it was.
    assert "Tokens" not in lines["evt-1"].replace("inputTokens", "").replace("outputTokens", "")
    await wipe(engine)
    assert (await run_import(engine, exported)).ok
    async with read_transaction(engine) as conn:
        again = [dump_line(obj) async for obj in export_bundle(conn, ACME, NOVEMBER)]
        assert (await usage(conn, UsageQuery(NOVEMBER, (ACME,)))).llm.total_micros == (
            spent.llm.total_micros
        )
    assert again == exported


async def test_a_category_larger_than_its_total_is_refused_with_its_line(
    engine: AsyncEngine,
) -> None:
    first = len(base()) + 1
    report = await run_import(
        engine,
        [
            *base(),
            _llm("too-cached", cachedInputTokens=1500, cacheWrite5mTokens=501),
            _llm("too-reasoned", reasoningTokens=301),
            _llm("unpriced", model="gpt-nonexistent-9"),
            _llm("flex-4o", serviceTier="flex"),
        ],
    )
    assert not report.ok
    found = {(p.line, p.field) for p in report.problems}
    assert (first, "cachedInputTokens") in found
    assert (first + 1, "reasoningTokens") in found
    # Never priced as something else, nor as free: refused with its line number.
    assert (first + 2, "costCents") in found
    assert (first + 3, "costCents") in found  # gpt-4o has no flex price in the list
    reasons = {p.line: p.reason for p in report.problems}
    assert "exceed inputTokens (2000)" in reasons[first]
    assert "no price for model 'gpt-nonexistent-9'" in reasons[first + 2]
