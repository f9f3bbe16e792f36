"""The usage bundle: validation line by line, all-or-nothing writes, idempotency, export."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel

from crabglamp.access import Caller
from crabglamp.bundle import (
    ImportReport,
    Problem,
    apply_bundle,
    dump_line,
    export_bundle,
    parse_bundle,
)
from crabglamp.bundle.commands import ProgressBar
from crabglamp.db import read_transaction
from crabglamp.ingest.ingestor import Ingestor
from crabglamp.ingest.records import LlmRecord
from crabglamp.periods import Period, parse_month
from crabglamp.prices import load_price_book
from crabglamp.usage.query import UsageQuery
from crabglamp.usage.service import usage

ACME = uuid.UUID("00000000-0000-4000-8000-00000000ac3e")
OTHER = uuid.UUID("00000000-0000-4000-8000-0000000007e4")
AGENT = uuid.UUID("00000000-0000-4000-8000-00000000a9e1")
OTHER_AGENT = uuid.UUID("00000000-0000-4000-8000-00000000a9e2")
VM = uuid.UUID("00000000-0000-4000-8000-0000000000f1")
KEY = uuid.UUID("00000000-0000-4000-8000-00000000c001")
OTHER_KEY = uuid.UUID("00000000-0000-4000-8000-00000000c002")
NOVEMBER = parse_month("2026-11")
NOW = datetime(2026, 12, 15, tzinfo=UTC)


def base() -> list[dict[str, Any]]:
    return [
        {"type": "account", "id": ACME, "name": "Acme", "clerkOrgId": "org_acme"},
        {"type": "account", "id": OTHER, "name": "Other", "ownerUserId": "user_o"},
        {"type": "member", "accountId": ACME, "userId": "user_1", "role": "admin"},
        {"type": "agent", "id": AGENT, "accountId": ACME, "name": "support-bot"},
        {"type": "agent", "id": OTHER_AGENT, "accountId": OTHER, "name": "theirs"},
        {"type": "plainVm", "id": VM, "accountId": ACME, "name": "build-box", "centsPerHour": 12.5},
        {
            "type": "key",
            "id": KEY,
            "accountId": ACME,
            "name": "prod",
            "provider": "openai",
            "agentId": AGENT,
            "spendCapCents": 50000,
        },
        {"type": "key", "id": OTHER_KEY, "accountId": OTHER, "name": "theirs", "provider": None},
        {
            "type": "llm",
            "id": "evt-1",
            "ts": "2026-11-03T12:00:00.123Z",
            "keyId": KEY,
            "agentId": AGENT,
            "provider": "openai",
            "model": "gpt-4o-mini",
            "inputTokens": 1200,
            "outputTokens": 300,
            "costCents": 0.0315,
        },
        {
            # No cost: the default catalog's gpt-4o-mini, 15 cents per million input tokens.
            "type": "llm",
            "id": "evt-2",
            "ts": "2026-11-04T01:00:00+02:00",
            "keyId": KEY,
            "agentId": None,
            "provider": "openai",
            "model": "gpt-4o-mini",
            "inputTokens": 1_000_000,
            "outputTokens": 0,
        },
        {
            "type": "voice",
            "id": "evt-3",
            "ts": "2026-11-05T10:00:00Z",
            "accountId": ACME,
            "agentId": AGENT,
            "voiceModel": "tts-1",
            "characters": 1800,
            "costCents": 2.7,
        },
        {
            "type": "compute",
            "id": "evt-4",
            "accountId": ACME,
            "agentId": AGENT,
            "plainVmId": None,
            "state": "running",
            "start": "2026-11-06T22:00:00Z",
            "end": "2026-11-07T02:00:00Z",
            "centsPerHour": 8.0,
        },
    ]


def lines_of(objs: Sequence[dict[str, Any] | str]) -> list[str]:
    return [o if isinstance(o, str) else json.dumps(o, default=str) for o in objs]


async def run_import(
    engine: AsyncEngine,
    objs: Sequence[dict[str, Any] | str],
    *,
    skip_invalid: bool = False,
    allowed: set[uuid.UUID] | None = None,
    ingestor: Ingestor | None = None,
    caller: Caller | None = None,
) -> ImportReport:
    if ingestor is None:
        async with read_transaction(engine) as conn:
            ingestor = Ingestor(engine, await load_price_book(conn))
    return await apply_bundle(
        engine,
        ingestor,
        parse_bundle(lines_of(objs)),
        skip_invalid=skip_invalid,
        allowed_account_ids=allowed,
        caller=caller,
    )


async def row_counts(engine: AsyncEngine) -> dict[str, int]:
    async with read_transaction(engine) as conn:
        return {
            name: (await conn.execute(select(func.count()).select_from(table))).scalar_one()
            for name, table in SQLModel.metadata.tables.items()
        }


async def snapshot(engine: AsyncEngine) -> dict[str, list[tuple[Any, ...]]]:
    async with read_transaction(engine) as conn:
        return {
            name: sorted(tuple(map(str, row)) for row in await conn.execute(select(table)))
            for name, table in SQLModel.metadata.tables.items()
        }


async def event_ids(engine: AsyncEngine) -> set[str]:
    found: set[str] = set()
    async with read_transaction(engine) as conn:
        for name in ("llm_event", "voice_event", "compute_interval"):
            table = SQLModel.metadata.tables[name]
            found.update(row[0] for row in await conn.execute(select(table.c.id)))
    return found


async def acme_usage(engine: AsyncEngine, period: Period = NOVEMBER) -> Any:
    async with read_transaction(engine) as conn:
        return await usage(conn, UsageQuery(period, (ACME,)), now=NOW)


async def wipe(engine: AsyncEngine) -> None:
    """Back to a freshly migrated database: every row gone but the price catalog."""
    async with engine.begin() as conn:
        for table in reversed(SQLModel.metadata.sorted_tables):  # children first
            if table.name != "price":
                await conn.execute(delete(table))


# A valid bundle


async def test_a_bundle_is_written_with_its_rollups_and_prices(engine: AsyncEngine) -> None:
    report = await run_import(engine, base())
    assert report.ok and report.committed
    assert dict(report.created) == {"account": 2, "member": 1, "agent": 2, "plainVm": 1, "key": 2}
    assert (report.inserted, report.duplicates) == (4, 0)

    found = await acme_usage(engine)
    # 0.0315 as sent, plus 1M input tokens of gpt-4o-mini at $0.15: 15 cents.
    assert found.llm.total_micros == 31_500 + 15_000_000
    by_day = {d.date: d.total_micros for d in found.llm.daily if d.total_micros}
    # evt-2 was sent at 01:00+02:00, which is the 3rd in UTC.
    assert by_day == {date(2026, 11, 3): 15_031_500}
    assert found.voice.total_micros == 2_700_000
    assert found.voice.total_characters == 1800
    compute = {d.date: d.total_micros for d in found.compute.daily if d.total_micros}
    assert compute == {date(2026, 11, 6): 16_000_000, date(2026, 11, 7): 16_000_000}
    [key] = [k for k in found.llm.keys if k.key_id == KEY]
    assert (key.key_name, key.provider, key.spend_cap_micros) == ("prod", "openai", 50_000_000_000)


def test_blank_lines_are_skipped_and_counted_in_line_numbers() -> None:
    parsed = parse_bundle(["", *lines_of(base()[:1]), "   \n", '{"type":"agent"}\n'])
    assert parsed.line_count == 2
    assert {p.line for p in parsed.problems} == {4}


def test_bytes_lines_bom_and_bad_utf8_are_handled() -> None:
    first = "\ufeff" + lines_of(base()[:1])[0]
    parsed = parse_bundle([first.encode() + b"\n", b'{"type":"agent","name":"\xff"}\n'])
    assert len(parsed.lines) == 1
    assert parsed.problems == [Problem(2, None, "not UTF-8 text (invalid start byte at byte 25)")]


# Malformed bundles: line-numbered, and nothing written

BAD_LINE = 10  # after a blank line 4, the bad line is the ninth object


def _llm(**changes: Any) -> dict[str, Any]:
    line = dict(base()[8], id="evt-bad")
    line.update(changes)
    return {k: v for k, v in line.items() if v is not ...}


MALFORMED = [
    pytest.param('{"type": "llm", "id": ', None, "not valid JSON", id="bad-json"),
    pytest.param('["llm"]', None, "must be a JSON object", id="not-an-object"),
    pytest.param({"type": "banana", "id": "x"}, "type", "unknown type 'banana'", id="unknown-type"),
    pytest.param(_llm(model=...), "model", "missing", id="missing-field"),
    pytest.param(_llm(colour="red"), "colour", "unknown field", id="unknown-key"),
    pytest.param(_llm(inputTokens=-5), "inputTokens", "must not be negative", id="negative-tokens"),
    pytest.param(_llm(inputTokens="12"), "inputTokens", "must be a whole number", id="wrong-type"),
    pytest.param(_llm(outputTokens=1.5), "outputTokens", "must be a whole number", id="fraction"),
    pytest.param(_llm(costCents=-0.01), "costCents", "must not be negative", id="negative-cost"),
    pytest.param(_llm(ts="2026-13-01T00:00:00Z"), "ts", "not an ISO 8601", id="bad-timestamp"),
    pytest.param(_llm(ts="2026-11-03T12:00:00"), "ts", "has no time zone", id="naive-timestamp"),
    pytest.param(_llm(keyId="not-a-uuid"), "keyId", "must be a UUID", id="bad-uuid"),
    pytest.param(_llm(id=""), "id", "must not be empty", id="empty-event-id"),
    pytest.param(
        '{"type":"llm","id":"x","costCents":NaN}', None, "not valid JSON", id="not-a-number"
    ),
    pytest.param('{"type":"agent","type":"key"}', "type", "given twice", id="repeated-field"),
    pytest.param(
        {**base()[11], "id": "evt-bad", "end": "2026-11-06T21:00:00Z"},
        "end",
        "is before start",
        id="end-before-start",
    ),
    pytest.param(
        {**base()[11], "id": "evt-bad", "plainVmId": VM}, "plainVmId", "not both", id="agent-and-vm"
    ),
    pytest.param(
        {"type": "member", "accountId": ACME, "userId": "u", "role": "owner"},
        "role",
        "must be one of 'admin', 'member'",
        id="bad-role",
    ),
    pytest.param(
        {
            "type": "price",
            "provider": "p",
            "model": "m",
            "kind": "llm",
            "validFrom": "2026-11-01",
            "outputCentsPerMTok": 1,
        },
        "inputCentsPerMTok",
        "a llm price needs it",
        id="price-without-prices",
    ),
    pytest.param(_llm(keyId=uuid.uuid4()), "keyId", "in the bundle or the database", id="no-key"),
    pytest.param(
        _llm(agentId=OTHER_AGENT), "agentId", "belongs to another account", id="others-agent"
    ),
    pytest.param(
        {**base()[10], "id": "evt-bad", "accountId": OTHER},
        "agentId",
        "belongs to another account",
        id="voice-others-agent",
    ),
    pytest.param(
        {"type": "agent", "id": OTHER_AGENT, "accountId": ACME, "name": "moved"},
        "accountId",
        "cannot move",
        id="agent-moves",
    ),
    pytest.param(
        {"type": "account", "id": uuid.uuid4(), "name": "Copy", "clerkOrgId": "org_acme"},
        "clerkOrgId",
        "has another account already",
        id="organisation-taken",
    ),
    pytest.param(
        _llm(model="no-such-model", costCents=None), "costCents", "no price", id="no-price"
    ),
    # Timestamps are bounded: a far-future row once stopped every account's alerts.
    pytest.param(_llm(ts="9999-12-31T23:59:59Z"), "ts", "more than a day ahead", id="far-future"),
    pytest.param(
        _llm(ts=(datetime.now(UTC) + timedelta(days=2)).isoformat()),
        "ts",
        "more than a day ahead",
        id="two-days-ahead",
    ),
    pytest.param(_llm(ts="1999-12-31T23:59:59Z"), "ts", "is before 2000-01-01", id="before-2000"),
    pytest.param(
        {**base()[10], "id": "evt-bad", "ts": "9999-01-01T00:00:00Z"},
        "ts",
        "more than a day ahead",
        id="voice-far-future",
    ),
    pytest.param(
        {**base()[11], "id": "evt-bad", "start": "1970-01-01T00:00:00Z"},
        "start",
        "is before 2000-01-01",
        id="interval-before-2000",
    ),
    pytest.param(
        {**base()[11], "id": "evt-bad", "end": "9999-12-31T00:00:00Z"},
        "end",
        "more than a day ahead",
        id="interval-ends-far-ahead",
    ),
    # Text a database cannot keep, or that no real name needs.
    pytest.param(
        {"type": "agent", "id": uuid.uuid4(), "accountId": ACME, "name": "x\udc00"},
        "name",
        "lone surrogate",
        id="lone-surrogate-name",
    ),
    pytest.param(
        {"type": "agent", "id": uuid.uuid4(), "accountId": ACME, "name": "a\x00b"},
        "name",
        "must not contain NUL",
        id="nul-in-name",
    ),
    pytest.param(_llm(id="evt\x00bad"), "id", "must not contain NUL", id="nul-in-event-id"),
    pytest.param(
        {"type": "agent", "id": uuid.uuid4(), "accountId": ACME, "name": "a" * 100_000},
        "name",
        "too long (100,000 characters; at most 200)",
        id="huge-agent-name",
    ),
    pytest.param(_llm(id="e" * 201), "id", "at most 200", id="long-event-id"),
    pytest.param(
        {"type": "member", "accountId": ACME, "userId": "u" * 201, "role": "member"},
        "userId",
        "at most 200",
        id="long-user-id",
    ),
]


@pytest.mark.parametrize(("bad", "field", "reason"), MALFORMED)
async def test_a_bad_line_is_reported_by_number_and_nothing_is_written(
    engine: AsyncEngine, bad: dict[str, Any] | str, field: str | None, reason: str
) -> None:
    before = await row_counts(engine)
    good = base()
    report = await run_import(engine, [*good[:3], "", *good[3:8], bad, *good[8:]])
    assert not report.committed
    assert [(p.line, p.field) for p in report.problems] == [(BAD_LINE, field)]
    assert reason in report.problems[0].reason
    assert await row_counts(engine) == before
    assert report.summary() == "nothing written: 1 of 13 lines refused"


async def test_every_bad_line_is_reported_at_once(engine: AsyncEngine) -> None:
    before = await row_counts(engine)
    good = base()
    bundle = [
        *good,
        _llm(inputTokens=-1),
        "{oops",
        _llm(id="evt-1", outputTokens=301),  # the same id as line 9, other content
        _llm(id="evt-late", keyId=uuid.UUID(int=7)),
        {"type": "key", "id": uuid.UUID(int=7), "accountId": ACME, "name": "late"},
    ]
    report = await run_import(engine, bundle)
    assert [(p.line, p.field) for p in report.problems] == [
        (13, "inputTokens"),
        (14, None),
        (15, "id"),
        (16, "keyId"),
    ]
    assert "on line 9 already, with other content" in report.problems[2].reason
    assert "defined only later, on line 17; define it first" in report.problems[3].reason
    assert await row_counts(engine) == before


# --skip-invalid


async def test_skip_invalid_writes_exactly_the_good_lines(engine: AsyncEngine) -> None:
    broken_agent = uuid.UUID(int=41)
    good = base()
    bundle = [
        *good[:8],
        {"type": "agent", "id": broken_agent, "accountId": ACME},  # line 9: no name
        {
            "type": "key",
            "id": uuid.UUID(int=42),
            "accountId": ACME,
            "name": "k",
            "agentId": broken_agent,
        },
        _llm(id="uses-broken-agent", agentId=broken_agent),  # line 11
        _llm(id="negative", outputTokens=-3),  # line 12
        *good[8:],
        _llm(id="evt-5", costCents=1.25),
    ]
    report = await run_import(engine, bundle, skip_invalid=True)
    assert report.committed and not report.ok
    assert [(p.line, p.field) for p in report.problems] == [
        (9, "name"),
        (10, "agentId"),
        (11, "agentId"),
        (12, "outputTokens"),
    ]
    assert "defined on line 9, which is refused" in report.problems[1].reason
    assert await event_ids(engine) == {"evt-1", "evt-2", "evt-3", "evt-4", "evt-5"}
    counts = await row_counts(engine)
    assert (counts["agent"], counts["virtual_key"]) == (2, 2)
    assert report.summary().endswith("; 4 lines refused")
    found = await acme_usage(engine)
    assert found.llm.total_micros == 31_500 + 15_000_000 + 1_250_000


# Idempotency


async def test_reimporting_the_same_bundle_changes_nothing(engine: AsyncEngine) -> None:
    bundle = [
        *base(),
        {
            "type": "price",
            "provider": "acme-ai",
            "model": "acme-1",
            "kind": "llm",
            "validFrom": "2026-11-01",
            "inputCentsPerMTok": 100,
            "outputCentsPerMTok": 300.5,
        },
    ]
    first = await run_import(engine, bundle)
    assert first.ok
    before = await snapshot(engine)
    again = await run_import(engine, bundle)
    assert again.ok and again.committed
    assert (again.inserted, again.duplicates) == (0, 4)
    assert sum(again.created.values()) + sum(again.updated.values()) == 0
    assert dict(again.unchanged) == {
        "account": 2,
        "member": 1,
        "agent": 2,
        "plainVm": 1,
        "key": 2,
        "price": 1,
    }
    assert await snapshot(engine) == before


async def test_a_repeated_line_in_one_bundle_is_stored_once(engine: AsyncEngine) -> None:
    good = base()
    report = await run_import(engine, [*good, good[8], good[11]])
    assert report.ok
    assert (report.inserted, report.duplicates) == (4, 2)
    assert (await acme_usage(engine)).llm.daily[2].request_count == 2


async def test_an_event_stored_with_other_content_is_refused(engine: AsyncEngine) -> None:
    assert (await run_import(engine, base())).ok
    before = await snapshot(engine)
    changed = _llm(id="evt-1", outputTokens=301, costCents=0.0316)
    report = await run_import(engine, [changed, _llm(id="evt-new")])
    assert [(p.line, p.field) for p in report.problems] == [(1, "id")]
    assert report.problems[0].reason == "is already stored with different outputTokens, costCents"
    assert await snapshot(engine) == before

    report = await run_import(engine, [changed, _llm(id="evt-new")], skip_invalid=True)
    assert (report.inserted, report.refused_lines) == (1, 1)
    assert await event_ids(engine) == {"evt-1", "evt-2", "evt-3", "evt-4", "evt-new"}


async def test_an_open_interval_is_closed_by_a_later_line_or_import(engine: AsyncEngine) -> None:
    good = base()
    opened = {**good[11], "id": "run-1", "end": None}
    closed = {**opened, "end": "2026-11-08T00:00:00Z"}
    report = await run_import(engine, [*good, opened, closed])
    assert report.ok and report.inserted == 5
    compute = (await acme_usage(engine)).compute
    assert compute.total_micros == 32_000_000 + 26 * 8_000_000

    opened_too = {**good[11], "id": "run-2", "end": None}
    assert (await run_import(engine, [opened_too])).inserted == 1
    report = await run_import(engine, [{**opened_too, "end": "2026-11-07T00:00:00Z"}])
    assert (report.inserted, report.closed_intervals) == (0, 1)
    assert (await acme_usage(engine)).compute.total_micros == 32_000_000 + 28 * 8_000_000


# Entities, prices and tenancy


async def test_an_entity_sent_again_is_updated(engine: AsyncEngine) -> None:
    assert (await run_import(engine, base())).ok
    renamed = {"type": "agent", "id": AGENT, "accountId": ACME, "name": "helpdesk"}
    key = {**base()[6], "spendCapCents": 75000.5, "agentId": None}
    report = await run_import(engine, [renamed, key])
    assert dict(report.updated) == {"agent": 1, "key": 1}
    found = await acme_usage(engine)
    assert [a.agent_name for a in found.llm.agents if a.agent_id == AGENT] == ["helpdesk"]
    [prod] = [k for k in found.llm.keys if k.key_id == KEY]
    assert prod.spend_cap_micros == 75_000_500_000


async def test_a_price_line_prices_events_from_its_date_on(engine: AsyncEngine) -> None:
    good = base()
    price = {
        "type": "price",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "kind": "llm",
        "validFrom": "2026-11-10",
        "inputCentsPerMTok": 30,
        "outputCentsPerMTok": 120,
    }
    custom = {
        "type": "price",
        "provider": "acme-ai",
        "model": "acme-voice",
        "kind": "voice",
        "validFrom": "2026-11-10",
        "centsPerMChar": 2000,
    }
    later = _llm(id="evt-late", ts="2026-11-12T00:00:00Z", costCents=None, inputTokens=1_000_000)
    later["outputTokens"] = 1_000_000
    spoken = {
        **good[10],
        "id": "evt-spoken",
        "voiceModel": "acme-voice",
        "ts": "2026-11-11T00:00:00Z",
    }
    del spoken["costCents"]
    too_early = {**spoken, "id": "evt-early", "ts": "2026-11-09T23:59:59Z"}
    async with read_transaction(engine) as conn:
        ingestor = Ingestor(engine, await load_price_book(conn))

    report = await run_import(
        engine, [*good, later, spoken, too_early, price, custom], ingestor=ingestor
    )
    assert [(p.line, p.field) for p in report.problems] == [(15, "costCents")]
    assert "no price for model 'acme-voice' on 2026-11-09" in report.problems[0].reason

    report = await run_import(engine, [*good, later, spoken, price, custom], ingestor=ingestor)
    assert report.ok and dict(report.created)["price"] == 2
    found = await acme_usage(engine)
    by_day = {d.date: d.total_micros for d in found.llm.daily}
    # Before the 10th the default list price (15 cents per million), after it the new one.
    assert by_day[date(2026, 11, 3)] == 31_500 + 15_000_000
    assert by_day[date(2026, 11, 12)] == 30_000_000 + 120_000_000
    assert found.voice.total_micros == 2_700_000 + 1800 * 2000
    # The running ingestor prices what comes next with the imported catalog, too.
    await ingestor.record(
        [
            LlmRecord(
                "evt-next",
                datetime(2026, 11, 20, tzinfo=UTC),
                KEY,
                "openai",
                "gpt-4o-mini",
                0,
                1000,
            )
        ]
    )
    assert (await acme_usage(engine)).llm.total_micros == 31_500 + 165_000_000 + 120_000


async def test_allowed_accounts_refuse_lines_of_other_accounts_and_prices(
    engine: AsyncEngine,
) -> None:
    assert (await run_import(engine, base()[:8])).ok
    bundle = [
        {"type": "agent", "id": uuid.UUID(int=9), "accountId": OTHER, "name": "x"},
        {**base()[8], "keyId": OTHER_KEY, "agentId": None},
        {**base()[10], "accountId": OTHER, "agentId": None},
        {
            "type": "price",
            "provider": "p",
            "model": "m",
            "kind": "voice",
            "validFrom": "2026-01-01",
            "centsPerMChar": 1,
        },
        {"type": "account", "id": uuid.UUID(int=10), "name": "new"},
        *base()[8:],
    ]
    report = await run_import(engine, bundle, allowed={ACME}, skip_invalid=True)
    assert [(p.line, p.field) for p in report.problems] == [
        (1, "accountId"),
        (2, "keyId"),
        (3, "accountId"),
        (4, "type"),
        (5, "id"),
    ]
    assert str(OTHER) not in report.problems[1].reason  # whose key it is stays unsaid
    assert await event_ids(engine) == {"evt-1", "evt-2", "evt-3", "evt-4"}


# Export


async def test_export_then_import_into_an_empty_database_gives_the_same_usage(
    engine: AsyncEngine,
) -> None:
    good = base()
    elsewhere = [
        _llm(id="october", ts="2026-10-31T23:59:59.999999Z"),
        _llm(id="december", ts="2026-12-01T00:00:00Z"),
        {**good[8], "id": "theirs", "keyId": OTHER_KEY, "agentId": None},
        # Crosses into November, and an open one that accrues until now: both exported.
        {
            **good[11],
            "id": "across",
            "start": "2026-10-31T23:00:00Z",
            "end": "2026-11-01T01:00:00Z",
        },
        {
            **good[11],
            "id": "open",
            "agentId": None,
            "plainVmId": VM,
            "end": None,
            "state": "paused",
        },
        {**good[10], "id": "keyed", "keyId": KEY, "status": "error", "costCents": 0.000001},
        _llm(id="failed", status="error", costCents=None),
    ]
    assert (await run_import(engine, [*good, *elsewhere])).ok
    before = await acme_usage(engine)
    async with read_transaction(engine) as conn:
        exported = [dump_line(obj) async for obj in export_bundle(conn, ACME, NOVEMBER)]

    kinds = [json.loads(line)["type"] for line in exported]
    assert (
        kinds
        == ["account", "member", "agent", "plainVm", "key"]
        + ["llm"] * 3
        + ["voice"] * 2
        + ["compute"] * 3
    )
    ids = [json.loads(line).get("id") for line in exported[5:]]
    assert ids == ["evt-1", "failed", "evt-2", "evt-3", "keyed", "across", "evt-4", "open"]
    # Money exactly as stored, as decimals: never through a float.
    assert '"costCents":0.0315}' in exported[5]
    assert '"costCents":0,"status":"error"}' in exported[6]
    assert '"costCents":15}' in exported[7]
    assert '"spendCapCents":50000}' in exported[4]
    assert '"centsPerHour":12.5}' in exported[3]
    assert '"ts":"2026-11-03T12:00:00.123000Z"' in exported[5]
    assert '"costCents":0.000001,"keyId":"' in exported[9] and '"status":"error"' in exported[9]

    await wipe(engine)
    # The price table holds overrides only, and this database had none.
    assert {n for n, c in (await row_counts(engine)).items() if c} == set()
    report = await run_import(engine, exported)
    assert report.ok, report.problems
    assert await acme_usage(engine) == before
    # Exporting again gives the same bundle.
    async with read_transaction(engine) as conn:
        assert [dump_line(obj) async for obj in export_bundle(conn, ACME, NOVEMBER)] == exported


async def test_export_of_an_unknown_account_says_so(engine: AsyncEngine) -> None:
    async with read_transaction(engine) as conn:
        with pytest.raises(LookupError, match="no account"):
            [obj async for obj in export_bundle(conn, ACME, NOVEMBER)]


def test_dump_line_writes_exact_decimals() -> None:
    from decimal import Decimal

    line = dump_line({"a": Decimal("0.000001"), "b": None, "c": "x\u2028y", "d": ACME})
    assert line == '{"a":0.000001,"b":null,"c":"x\\u2028y","d":"' + str(ACME) + '"}'


def test_the_report_has_a_json_form_for_the_rest_endpoint() -> None:
    report = ImportReport(problems=[Problem(3, "ts", "has no time zone")], line_count=4)
    assert report.to_json()["problems"] == [
        {"line": 3, "field": "ts", "reason": "has no time zone"}
    ]
    assert report.to_json()["refusedLines"] == 1
    assert str(report.problems[0]) == "3: ts: has no time zone"


def test_the_progress_bar_prints_tenths_when_not_on_a_terminal() -> None:
    out = io.StringIO()
    bar = ProgressBar("importing", out, interactive=False)
    for done in range(0, 1001, 7):
        bar(done, 1000)
    bar(1000, 1000)
    printed = out.getvalue().splitlines()
    assert len(printed) == 11
    assert printed[-1].startswith("importing [" + "#" * 30 + "] 100% 1,000/1,000")


# Binding an account to a Clerk organisation


async def _audit(engine: AsyncEngine) -> list[tuple[str, str, str | None, str | None]]:
    async with read_transaction(engine) as conn:
        rows = await conn.execute(
            select(
                AUDIT.c.account_id, AUDIT.c.actor, AUDIT.c.old_value, AUDIT.c.new_value
            ).order_by(AUDIT.c.at, AUDIT.c.new_value)
        )
        return [(str(a), actor, old, new) for a, actor, old, new in rows]


AUDIT = SQLModel.metadata.tables["account_audit"]


async def test_an_account_cannot_claim_an_organisation_its_owner_does_not_administer(
    engine: AsyncEngine,
) -> None:
    assert (await run_import(engine, base())).committed  # the operator's import
    assert await _audit(engine) == [(str(ACME), "operator", None, "org_acme")]
    before = await snapshot(engine)
    claim = {"type": "account", "id": OTHER, "name": "Other", "ownerUserId": "user_o"}
    owner = Caller(user_id="user_o")

    refused = await run_import(engine, [{**claim, "clerkOrgId": "org_unclaimed"}], caller=owner)
    assert not refused.committed
    assert [(p.line, p.field) for p in refused.problems] == [(1, "clerkOrgId")]
    assert "only a platform admin or an admin of organisation org_unclaimed" in (
        refused.problems[0].reason
    )
    # Nor in another organisation's token unless it is that organisation's admin.
    member = Caller(user_id="user_o", org_id="org_unclaimed", org_role="org:member")
    assert not (
        await run_import(engine, [{**claim, "clerkOrgId": "org_unclaimed"}], caller=member)
    ).committed
    # An admin member of Acme (not of its organisation) cannot unbind Acme either.
    unbind = {"type": "account", "id": ACME, "name": "Acme"}
    acme_admin = Caller(user_id="user_1")
    refused = await run_import(engine, [unbind], caller=acme_admin)
    assert [(p.line, p.field) for p in refused.problems] == [(1, "clerkOrgId")]
    assert "belongs to organisation org_acme" in refused.problems[0].reason
    assert await snapshot(engine) == before

    # Renaming without touching the binding is fine.
    renamed = await run_import(engine, [{**base()[0], "name": "Acme Robotics"}], caller=acme_admin)
    assert renamed.committed

    # The organisation's own admin may bind it; a platform admin may move it; each is audited.
    org_admin = Caller(user_id="user_o", org_id="org_unclaimed", org_role="org:admin")
    bound = await run_import(engine, [{**claim, "clerkOrgId": "org_unclaimed"}], caller=org_admin)
    assert bound.committed, bound.problems
    root = Caller(user_id="user_root", is_platform_admin=True)
    moved = await run_import(engine, [{**claim, "clerkOrgId": "org_other"}], caller=root)
    assert moved.committed
    audit = await _audit(engine)
    assert audit[1:] == [
        (str(OTHER), "user_o", None, "org_unclaimed"),
        (str(OTHER), "user_root", "org_unclaimed", "org_other"),
    ]
