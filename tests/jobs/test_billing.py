"""Reporting running totals to a billing sink: every report once, in sequence, across sink
failures, lost acknowledgements and restarts; a closed month's totals are its invoice."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from crabglamp.db import read_transaction, write_transaction
from crabglamp.db.tables import table_of
from crabglamp.ingest.ingestor import Ingestor
from crabglamp.ingest.records import ComputeRecord, LlmRecord, Record, VoiceRecord
from crabglamp.jobs.billing import BillingReporter, line_states
from crabglamp.jobs.signing import SIGNATURE_HEADER, verify_signature
from crabglamp.models import Account, Agent, VirtualKey
from crabglamp.money import round_half_up_cents
from crabglamp.periods import month_period
from crabglamp.settings import BillingSettings
from crabglamp.usage.invoice import invoice
from crabglamp.usage.query import UsageQuery
from webhook_support import Receiver, receiver

MARCH = month_period(2026, 3)
CENT = 1_000_000
APPLIED_BUT_LOST = 502  # the sink took the reports, but its answer never arrived


def _at(day: int, hour: int, minute: int = 0, month: int = 3) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


@dataclass(slots=True)
class Sink:
    """What a billing system keeps: each report id applied once, in order per line."""

    applied: dict[str, dict[str, Any]] = field(default_factory=dict)
    duplicates: int = 0
    _seen: int = 0  # requests of the receiver already taken

    def take(self, hook: Receiver) -> None:
        for request in hook.requests[self._seen :]:
            self._seen += 1
            if request.status >= 300 and request.status != APPLIED_BUT_LOST:
                continue  # the sink was down: nothing applied
            for report in request.json()["reports"]:
                known = self.applied.get(report["id"])
                if known is not None:
                    assert known == report  # a resend is the same report, byte for byte
                    self.duplicates += 1
                    continue
                self.applied[report["id"]] = report

    def lines(self, period: str) -> dict[tuple[str, str], list[dict[str, Any]]]:
        out: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for report in self.applied.values():
            if report["period"] == period:
                out.setdefault((report["accountId"], report["line"]), []).append(report)
        return {k: sorted(v, key=lambda r: r["sequence"]) for k, v in out.items()}

    def totals(self, period: str) -> dict[tuple[str, str], int]:
        """The sum of the deltas per line; it must equal the last running total."""
        return {k: sum(r["deltaMicros"] for r in v) for k, v in self.lines(period).items()}


def _check_sequences(sink: Sink, period: str) -> None:
    """No report skipped, none repeated: sequences 1..n, each window starting where the last ended."""
    for line, reports in sink.lines(period).items():
        assert [r["sequence"] for r in reports] == list(range(1, len(reports) + 1)), line
        assert reports[0]["windowStart"] is None
        for before, after in pairwise(reports):
            assert after["windowStart"] == before["windowEnd"], line
            assert after["totalMicros"] == before["totalMicros"] + after["deltaMicros"]
        assert sum(r["deltaMicros"] for r in reports) == reports[-1]["totalMicros"]


@dataclass(slots=True)
class Shop:
    accounts: list[uuid.UUID]
    keys: list[uuid.UUID]
    agents: list[uuid.UUID]


async def _shop(engine: AsyncEngine) -> Shop:
    shop = Shop([uuid.uuid4(), uuid.uuid4()], [uuid.uuid4(), uuid.uuid4()], [uuid.uuid4()])
    async with write_transaction(engine) as conn:
        await conn.execute(
            table_of(Account).insert(),
            [{"id": a, "name": f"account-{i}"} for i, a in enumerate(shop.accounts)],
        )
        await conn.execute(
            table_of(Agent).insert(),
            [{"id": shop.agents[0], "account_id": shop.accounts[0], "name": "support-bot"}],
        )
        await conn.execute(
            table_of(VirtualKey).insert(),
            [
                {"id": k, "account_id": a, "name": f"key-{i}", "status": "active"}
                for i, (k, a) in enumerate(zip(shop.keys, shop.accounts, strict=True))
            ],
        )
    return shop


_n = 0


def _llm(shop: Shop, account: int, at: datetime, micros: int) -> LlmRecord:
    global _n
    _n += 1
    return LlmRecord(
        f"llm-{_n}",
        at,
        shop.keys[account],
        "openai",
        "gpt-4o-mini",
        1000,
        100,
        micros,
        shop.agents[0] if account == 0 else None,
    )


def _voice(shop: Shop, account: int, at: datetime, micros: int) -> VoiceRecord:
    global _n
    _n += 1
    return VoiceRecord(f"voice-{_n}", at, shop.accounts[account], "tts-1", 1234, micros)


def _compute(
    shop: Shop, account: int, start: datetime, end: datetime | None, cents_per_hour: float
) -> ComputeRecord:
    global _n
    _n += 1
    return ComputeRecord(
        f"compute-{_n}", shop.accounts[account], start, end, round(cents_per_hour * CENT)
    )


def _reporter(engine: AsyncEngine, hook: Receiver) -> BillingReporter:
    return BillingReporter(engine, BillingSettings(sink_url=hook.url, close_after_seconds=3600))


async def test_a_restarted_reporter_neither_skips_nor_repeats_a_report(engine: AsyncEngine) -> None:
    shop = await _shop(engine)
    ingestor = Ingestor(engine)
    sink = Sink()
    with receiver() as hook:
        await ingestor.record(
            [_llm(shop, 0, _at(2, 9), 1_234_567), _voice(shop, 1, _at(3, 9), 2_500_001)]
        )
        first = _reporter(engine, hook)
        run = await first.run_once(_at(10, 12))
        assert (run.composed, run.sent, run.failed) == (2, 2, 0)

        # More usage; the sink is down: the next reports are persisted, not lost.
        await ingestor.record(
            [_llm(shop, 0, _at(10, 13), 3_000_000), _llm(shop, 1, _at(10, 14), 7)]
        )
        hook.plan = [500]
        run = await first.run_once(_at(10, 15))
        assert (run.composed, run.sent, run.failed) == (2, 0, 2)
        async with read_transaction(engine) as conn:
            pending = {(s.line, s.pending_seq) for s in await line_states(conn, "2026-03")}
        assert pending == {("LLM", 2), ("LLM", 1), ("VOICE", None)}

        # The process dies. A new one sends exactly what was pending first, then the next reports.
        await ingestor.record([_voice(shop, 1, _at(10, 16), 1)])
        restarted = _reporter(engine, hook)
        run = await restarted.run_once(_at(10, 17))
        assert (run.composed, run.sent) == (1, 3)

        # The sink takes a batch but its answer is lost: the same reports again, same ids.
        await ingestor.record([_llm(shop, 0, _at(11, 9), 5_000_000)])
        hook.plan = [APPLIED_BUT_LOST]
        assert (await restarted.run_once(_at(11, 10))).failed == 1
        again = _reporter(engine, hook)
        assert (await again.run_once(_at(11, 11))).sent == 1
        # Nothing new: nothing sent.
        assert (await again.run_once(_at(11, 12))).sent == 0
    sink.take(hook)

    assert sink.duplicates == 1
    _check_sequences(sink, "2026-03")
    lines = sink.lines("2026-03")
    assert [r["sequence"] for r in lines[(str(shop.accounts[0]), "LLM")]] == [1, 2, 3]
    assert [r["sequence"] for r in lines[(str(shop.accounts[1]), "LLM")]] == [1]
    assert [r["sequence"] for r in lines[(str(shop.accounts[1]), "VOICE")]] == [1, 2]
    assert sink.totals("2026-03") == {
        (str(shop.accounts[0]), "LLM"): 9_234_567,
        (str(shop.accounts[1]), "LLM"): 7,
        (str(shop.accounts[1]), "VOICE"): 2_500_002,
    }


async def test_the_sinks_totals_of_a_closed_month_are_its_invoice_line_by_line(
    engine: AsyncEngine,
) -> None:
    shop = await _shop(engine)
    ingestor = Ingestor(engine)
    sink = Sink()
    events: list[Record] = [
        _llm(shop, 0, _at(1, 0, 5), 1_500_000),  # 1.5 cents
        _llm(shop, 0, _at(14, 10), 333_333),
        _llm(shop, 1, _at(20, 23), 499_999),  # just under half a cent: rounds down
        _voice(shop, 0, _at(5, 5), 2_700_000),
        _voice(shop, 1, _at(6, 6), 500_000),  # exactly half a cent: rounds up
        _compute(shop, 0, _at(3, 8), _at(3, 10, 30), 8.0),
        # Across the month's end: only March's part is March's.
        _compute(shop, 1, _at(31, 22), _at(1, 2, month=4), 12.5),
    ]
    open_interval = _compute(shop, 0, _at(31, 20), None, 3.333333)
    with receiver() as hook:
        await ingestor.record([*events, open_interval])
        reporter = _reporter(engine, hook)
        await reporter.run_once(_at(15, 0))
        await ingestor.record([_llm(shop, 1, _at(31, 12), 10_000_000)])
        hook.plan = [500, APPLIED_BUT_LOST]
        await reporter.run_once(_at(31, 23, 59))  # down
        await reporter.run_once(datetime(2026, 4, 1, 0, 5, tzinfo=UTC))  # applied, answer lost
        # A late event of March's last hour, then a restart before the month closes.
        await ingestor.record([_llm(shop, 0, _at(31, 23, 30), 4_444_444)])
        restarted = _reporter(engine, hook)
        await restarted.run_once(datetime(2026, 4, 1, 0, 30, tzinfo=UTC))
        # The open interval stopped at 01:00 on April 1; March keeps its four hours.
        await ingestor.record([_compute_close(open_interval, datetime(2026, 4, 1, 1, tzinfo=UTC))])
        closing = datetime(2026, 4, 1, 1, 30, tzinfo=UTC)
        final = await restarted.run_once(closing)
        assert final.composed >= 1 and final.failed == 0
        # Closed: later runs send nothing more for March.
        await _reporter(engine, hook).run_once(datetime(2026, 4, 2, tzinfo=UTC))
    sink.take(hook)

    assert sink.duplicates >= 1
    _check_sequences(sink, "2026-03")
    march = sink.lines("2026-03")
    async with read_transaction(engine) as conn:
        for account in shop.accounts:
            bill = await invoice(
                conn, UsageQuery(MARCH, (account,)), datetime(2026, 5, 1, tzinfo=UTC)
            )
            for line in bill.lines:
                reports = march.get((str(account), line.axis.value), [])
                total = reports[-1]["totalMicros"] if reports else 0
                assert total == line.continuous_micros, (account, line)
                assert round_half_up_cents(total) == line.amount_cents
                if reports:
                    assert reports[-1]["final"] is True
                    assert reports[-1]["amountCents"] == line.amount_cents
                    assert all(not r["final"] for r in reports[:-1])
        states = await line_states(conn, "2026-03")
    assert states and all(s.closed and s.pending_seq is None for s in states)
    # Every line of the invoice that charges something was reported.
    assert {(a, line) for a, line in march} == {
        (str(shop.accounts[0]), "LLM"),
        (str(shop.accounts[0]), "VOICE"),
        (str(shop.accounts[0]), "COMPUTE"),
        (str(shop.accounts[1]), "LLM"),
        (str(shop.accounts[1]), "VOICE"),
        (str(shop.accounts[1]), "COMPUTE"),
    }


def _compute_close(record: ComputeRecord, end: datetime) -> ComputeRecord:
    return ComputeRecord(
        record.id, record.account_id, record.start, end, record.cents_per_hour_micros
    )


async def test_a_served_app_reports_to_the_configured_sink(
    fixed_clock: datetime, engine: AsyncEngine, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from crabglamp.app import create_app
    from crabglamp.periods import utcnow
    from crabglamp.settings import Settings

    shop = await _shop(engine)
    at = utcnow()
    await Ingestor(engine).record([_llm(shop, 0, at, 1_234_567)])
    with receiver() as hook:
        monkeypatch.setenv("CRABGLAMP_BILLING_SINK_URL", hook.url)
        monkeypatch.setenv("CRABGLAMP_BILLING_INTERVAL_SECONDS", "0.1")
        # The variables reach the reporter through Settings.from_env, as in a served app.
        settings = replace(Settings.from_env(), database_url=db_url)
        app = create_app(settings, engine, background=True)
        async with app.router.lifespan_context(app):
            for _ in range(100):
                if hook.ok():
                    break
                await asyncio.sleep(0.05)
        (request,) = hook.ok()
    (report,) = request.json()["reports"]
    assert report["id"] == f"{shop.accounts[0]}:LLM:{at:%Y-%m}:1"
    assert (report["totalMicros"], report["final"]) == (1_234_567, False)


async def test_a_sink_with_a_secret_gets_reports_it_can_verify(engine: AsyncEngine) -> None:
    shop = await _shop(engine)
    await Ingestor(engine).record([_llm(shop, 0, _at(2, 9), 1_234_567)])
    moment = _at(10, 12)
    with receiver() as hook:
        settings = BillingSettings(
            sink_url=hook.url, sink_secret="s3cret", close_after_seconds=3600
        )
        reporter = BillingReporter(engine, settings)
        assert (await reporter.run_once(moment)).sent == 1
        await reporter.close()
    delivery = hook.ok()[0]
    header = delivery.headers[SIGNATURE_HEADER.lower()]
    # The alert webhooks' verifier serves the billing sink too.
    assert verify_signature("s3cret", header, delivery.body, now=moment)
    assert not verify_signature("another", header, delivery.body, now=moment)
    assert not verify_signature("s3cret", header, delivery.body + b" ", now=moment)
