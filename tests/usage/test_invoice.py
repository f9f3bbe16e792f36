"""The invoice: each line is the half-up rounding of the continuous total `usage` shows."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine

from crabglamp.access import Caller
from crabglamp.api.graphql.context import make_context
from crabglamp.api.graphql.schema import schema
from crabglamp.db import make_engine, write_transaction
from crabglamp.db.tables import table_of
from crabglamp.ingest.ingestor import Ingestor
from crabglamp.ingest.records import ComputeRecord, LlmRecord, VoiceRecord
from crabglamp.models import Account, VirtualKey
from crabglamp.periods import month_period
from crabglamp.settings import Settings
from crabglamp.usage.invoice import UsageAxis, invoice_from_usage
from crabglamp.usage.results import (
    ComputeAgentUsage,
    ComputeDay,
    ComputeUsage,
    LlmDay,
    LlmModelUsage,
    LlmUsage,
    Usage,
    VoiceDay,
    VoiceModelUsage,
    VoiceUsage,
)

CALLER = Caller(user_id="user_invoice")
DOCUMENT = """{
  usage(filter: {month: "2026-10"}) {
    compute { totalCents } llm { totalCents } voice { totalCents }
  }
  invoice(month: "2026-10") { month totalCents lines { axis continuousCents amountCents } }
}"""


def half_up(cents: Decimal) -> int:
    return int(cents.quantize(Decimal(1), rounding=ROUND_HALF_UP))


# Totals near every kind of boundary: x.5 exactly, one micro-cent either side, anything.
micros = st.one_of(
    st.integers(min_value=0, max_value=10**15),
    st.builds(
        lambda cents, delta: cents * 1_000_000 + 500_000 + delta,
        st.integers(min_value=0, max_value=10**8),
        st.sampled_from([-1, 0, 1]),
    ),
)


def _usage(compute: int, llm: int, voice: int) -> Usage:
    day = date(2026, 10, 1)
    return Usage(
        period=month_period(2026, 10),
        compute=ComputeUsage(
            daily=[ComputeDay(day, agents=[ComputeAgentUsage(None, None, running_micros=compute)])],
            agents=[],
            plain_vms=[],
        ),
        llm=LlmUsage(
            daily=[LlmDay(day, models=[LlmModelUsage("m", "p", total_micros=llm)])],
            agents=[],
            models=[],
            keys=[],
            has_keys=False,
        ),
        voice=VoiceUsage(
            daily=[VoiceDay(day, models=[VoiceModelUsage("v", total_micros=voice)])],
            agents=[],
            models=[],
        ),
    )


@given(compute=micros, llm=micros, voice=micros)
def test_each_line_rounds_its_axis_half_up(compute: int, llm: int, voice: int) -> None:
    invoice = invoice_from_usage("2026-10", _usage(compute, llm, voice))
    expected = {UsageAxis.COMPUTE: compute, UsageAxis.LLM: llm, UsageAxis.VOICE: voice}
    assert [line.axis for line in invoice.lines] == list(expected)
    for line in invoice.lines:
        assert line.continuous_micros == expected[line.axis]
        assert line.amount_cents == half_up(Decimal(expected[line.axis]) / 1_000_000)
    assert invoice.total_cents == sum(line.amount_cents for line in invoice.lines)


# Through the database and GraphQL


async def _record(
    engine: AsyncEngine, llm: list[int], voice: list[int], compute: list[int]
) -> None:
    account, key = uuid.uuid4(), uuid.uuid4()
    async with write_transaction(engine) as conn:
        await conn.execute(
            table_of(Account).insert(),
            [{"id": account, "name": "Inv", "owner_user_id": CALLER.user_id}],
        )
        await conn.execute(
            table_of(VirtualKey).insert(),
            [{"id": key, "account_id": account, "name": "k", "status": "active"}],
        )
    start = datetime(2026, 10, 2, tzinfo=UTC)
    records: list[Any] = [
        LlmRecord(f"l{i}", start + timedelta(hours=i), key, "openai", "m", 1, 1, cost)
        for i, cost in enumerate(llm)
    ]
    records += [
        VoiceRecord(f"v{i}", start + timedelta(days=i % 20), account, "tts-1", 1, cost)
        for i, cost in enumerate(voice)
    ]
    # One hour at `rate` micro-cents per hour costs exactly `rate`.
    records += [
        ComputeRecord(
            f"c{i}", account, start + timedelta(hours=i), start + timedelta(hours=i + 1), rate
        )
        for i, rate in enumerate(compute)
    ]
    await Ingestor(engine).record(records)


async def _invoice(engine: AsyncEngine, db_url: str) -> dict[str, Any]:
    context = make_context(None, engine, CALLER, Settings(database_url=db_url))
    try:
        result = await schema.execute(DOCUMENT, context_value=context)
    finally:
        await context.db.close()
    assert result.errors is None, result.errors
    assert result.data is not None
    return result.data


def _check(data: dict[str, Any], expected_micros: dict[str, int]) -> None:
    lines = {line["axis"]: line for line in data["invoice"]["lines"]}
    assert list(lines) == ["COMPUTE", "LLM", "VOICE"]
    for axis, micros_total in expected_micros.items():
        shown = data["usage"][axis.lower()]["totalCents"]
        assert lines[axis]["continuousCents"] == shown
        # The line rounds what usage shows, which is the events' exact sum.
        assert lines[axis]["amountCents"] == half_up(Decimal(repr(shown)))
        assert lines[axis]["amountCents"] == half_up(Decimal(micros_total) / 1_000_000)
    assert data["invoice"]["totalCents"] == sum(line["amountCents"] for line in lines.values())
    assert data["invoice"]["month"] == "2026-10"


async def test_half_a_cent_rounds_up_and_less_rounds_down(engine: AsyncEngine, db_url: str) -> None:
    # LLM 12.5 cents in two requests, voice 12.4999, compute 0.5 + 7.000001 cents.
    await _record(engine, [12_000_000, 500_000], [12_499_900], [500_000, 7_000_001])
    data = await _invoice(engine, db_url)
    amounts = {line["axis"]: line["amountCents"] for line in data["invoice"]["lines"]}
    assert amounts == {"LLM": 13, "VOICE": 12, "COMPUTE": 8}
    assert data["invoice"]["totalCents"] == 33
    _check(data, {"LLM": 12_500_000, "VOICE": 12_499_900, "COMPUTE": 7_500_001})


costs = st.lists(
    st.one_of(st.integers(0, 50_000_000), st.sampled_from([499_999, 500_000, 500_001])),
    max_size=6,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(llm=costs, voice=costs, compute=costs)
def test_invoice_through_graphql_rounds_what_usage_shows(
    sqlite_template: Path,
    tmp_path_factory: pytest.TempPathFactory,
    llm: list[int],
    voice: list[int],
    compute: list[int],
) -> None:
    path = tmp_path_factory.mktemp("invoice") / "test.db"
    shutil.copyfile(sqlite_template, path)
    db_url = f"sqlite+aiosqlite:///{path}"

    async def run() -> dict[str, Any]:
        engine = make_engine(db_url)
        try:
            await _record(engine, llm, voice, compute)
            return await _invoice(engine, db_url)
        finally:
            await engine.dispose()

    data = asyncio.run(run())
    _check(data, {"LLM": sum(llm), "VOICE": sum(voice), "COMPUTE": sum(compute)})


def test_the_core_of_the_usage_api_imports_no_web_framework() -> None:
    # invoice.py and usage_filter.py serve REST and GraphQL alike: neither may depend on them.
    probe = (
        "import sys, crabglamp.usage.invoice, crabglamp.usage.filter; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'strawberry', 'starlette'}))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
