"""The documents the dashboard sends run in a bounded number of SQL statements (no N+1).

Each document runs on the seeded world, then again after many more keys, agents and requests
were added: the number of statements must not move, and must stay under a small bound.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from graphql import NonNullTypeNode, OperationDefinitionNode, OperationType, parse
from sqlalchemy.ext.asyncio import AsyncEngine

from api_support import ALICE, MONTH, ROOT, World, bearer, count_statements, graphql
from crabglamp.db import write_transaction
from crabglamp.db.tables import table_of
from crabglamp.ingest.ingestor import Ingestor
from crabglamp.ingest.records import LlmRecord
from crabglamp.models import Agent, VirtualKey

FRONTEND_DOCUMENTS = Path(__file__).parents[3] / "frontend" / "src" / "graphql"
MAX_STATEMENTS = 14

KEY_CARDS = """
query KeyCards($filter: UsageFilter) {
  virtualKeys { id name provider spendCapCents accruedCents percentUsed }
  usage(filter: $filter) {
    llm { totalCents keys { keyId keyName spendCapCents totalCents requestCount
      virtualKey { accruedCents percentUsed } } }
  }
}
"""
DAILY_BY_MODEL = """
query DailyByModel($filter: UsageFilter) {
  usage(filter: $filter) {
    llm { totalCents daily { date totalCents models { model provider totalCents requestCount } } }
  }
}
"""
DRILL_DOWN = """
query DrillDown($date: Date!, $keyId: ID, $model: String, $first: Int!, $after: String) {
  requests(date: $date, keyId: $keyId, model: $model, first: $first, after: $after) {
    requestCount totalCents
    edges { cursor node { id ts keyName agentId model inputTokens outputTokens costCents status } }
    pageInfo { endCursor hasNextPage }
  }
}
"""
OWN_DOCUMENTS = {"KeyCards": KEY_CARDS, "DailyByModel": DAILY_BY_MODEL, "DrillDown": DRILL_DOWN}


def _documents() -> dict[str, str]:
    found = dict(OWN_DOCUMENTS)
    # The frontend's own queries, exactly as it sends them, when the frontend is here.
    for path in sorted(FRONTEND_DOCUMENTS.glob("*.graphql")):
        text = path.read_text()
        operations = [d for d in parse(text).definitions if isinstance(d, OperationDefinitionNode)]
        if all(o.operation == OperationType.QUERY for o in operations):
            found[f"frontend/{path.stem}"] = text
    return found


def _variables(document: str, w: World) -> dict[str, Any]:
    """A value for each variable the document declares, chosen to select real data."""
    values: dict[str, Any] = {
        "filter": {"accountId": str(w.acme), "month": MONTH},
        "accountId": str(w.acme),
        "month": MONTH,
        "date": "2026-10-07",
        "keyId": str(w.prod_key),
        "keyIds": [str(w.prod_key), str(w.dev_key)],
        "model": "gpt-4o-mini",
        "provider": "openai",
        "first": 50,
    }
    operation = next(
        d for d in parse(document).definitions if isinstance(d, OperationDefinitionNode)
    )
    chosen: dict[str, Any] = {}
    for definition in operation.variable_definitions or ():
        name = definition.variable.name.value
        if name in values:
            chosen[name] = values[name]
        elif isinstance(definition.type, NonNullTypeNode):
            raise AssertionError(f"no test value for the required variable ${name}")
    return chosen


async def _grow(engine: AsyncEngine, w: World) -> None:
    """Many more keys and agents in Acme, each with requests on many days."""
    agents = [
        {"id": uuid.uuid4(), "account_id": w.acme, "name": f"agent-{i:02d}"} for i in range(12)
    ]
    keys = [
        {
            "id": uuid.uuid4(),
            "account_id": w.acme,
            "name": f"key-{i:02d}",
            "provider": "openai",
            "agent_id": agents[i % len(agents)]["id"],
            "spend_cap_micros": (i + 1) * 100_000_000,
            "status": "active",
            "secret_hash": uuid.uuid4().hex,
            "secret_prefix": f"cg-k{i:02d}",
            "created_at": datetime(2026, 9, 1, tzinfo=UTC),
        }
        for i in range(30)
    ]
    async with write_transaction(engine) as conn:
        await conn.execute(table_of(Agent).insert(), agents)
        await conn.execute(table_of(VirtualKey).insert(), keys)
    now = datetime.now(UTC).replace(microsecond=0)
    records = []
    for i, key in enumerate(keys):
        for day in range(1, 29, 3):
            records.append(
                LlmRecord(
                    id=f"grow-{i}-{day}",
                    ts=datetime(2026, 10, day, 9, 30, tzinfo=UTC) if day != 7 else now,
                    key_id=key["id"],
                    provider="openai",
                    model=f"model-{i % 7}" if day != 7 else "gpt-4o-mini",
                    input_tokens=100,
                    output_tokens=10,
                    cost_micros=1_000 * (i + day),
                    agent_id=key["agent_id"],
                )
            )
        records.append(
            LlmRecord(
                id=f"grow-{i}-day7",
                ts=datetime(2026, 10, 7, 10, i, tzinfo=UTC),
                key_id=w.prod_key,
                provider="openai",
                model="gpt-4o-mini",
                input_tokens=5,
                output_tokens=5,
                cost_micros=777,
                agent_id=agents[i % len(agents)]["id"],
            )
        )
    await Ingestor(engine).record(records)


async def _run(
    client: httpx.AsyncClient, engine: AsyncEngine, document: str, variables: dict[str, Any]
) -> tuple[dict[str, Any], int]:
    # The platform-wide documents (the admin's account switcher) are sent by platform admins.
    caller = ROOT if "admin: true" in document else ALICE
    with count_statements(engine) as statements:
        answer = await graphql(client, document, variables, bearer(**caller))
    assert "errors" not in answer, answer
    return answer["data"], len(statements)


async def test_dashboard_documents_statements_do_not_grow_with_data(
    client: httpx.AsyncClient, engine: AsyncEngine, world: World
) -> None:
    documents = _documents()
    before = {}
    for name, document in documents.items():
        before[name] = await _run(client, engine, document, _variables(document, world))
    await _grow(engine, world)
    for name, document in documents.items():
        _data, large = await _run(client, engine, document, _variables(document, world))
        small = before[name][1]
        assert large == small, f"{name}: {small} statements before, {large} with more data"
        assert large <= MAX_STATEMENTS, f"{name}: {large} statements"
    cards, _ = await _run(client, engine, KEY_CARDS, _variables(KEY_CARDS, world))
    assert len(cards["virtualKeys"]) == len(before["KeyCards"][0]["virtualKeys"]) + 30
    drill, _ = await _run(client, engine, DRILL_DOWN, _variables(DRILL_DOWN, world))
    assert drill["requests"]["requestCount"] == (
        before["DrillDown"][0]["requests"]["requestCount"] + 30
    )


async def test_key_card_numbers(client: httpx.AsyncClient, world: World) -> None:
    answer = await graphql(client, KEY_CARDS, {"filter": {"month": MONTH}}, bearer(**ALICE))
    cards = {card["name"]: card for card in answer["data"]["virtualKeys"]}
    assert list(cards) == ["dev", "prod", "quiet"]  # by name
    # This month's spend, seeded a few minutes ago: 12.345678 + 1.000001 cents on prod.
    assert cards["prod"]["accruedCents"] == pytest.approx(13.345679, abs=1e-9)
    assert cards["prod"]["spendCapCents"] == 50_000.0
    assert cards["prod"]["percentUsed"] == pytest.approx(13.345679 / 50_000 * 100)
    assert cards["dev"]["percentUsed"] == pytest.approx(25.0)
    assert cards["quiet"] == {
        "id": str(world.quiet_key),
        "name": "quiet",
        "provider": "openai",
        "spendCapCents": None,
        "accruedCents": 0.0,
        "percentUsed": None,
    }
    # The month of the usage filter is 2026-10: the keys' totals are that month's, and the
    # nested virtualKey still reports this month's accrued spend.
    keys = {k["keyName"]: k for k in answer["data"]["usage"]["llm"]["keys"]}
    assert keys["quiet"]["totalCents"] == 0.0
    assert keys["prod"]["virtualKey"]["accruedCents"] == cards["prod"]["accruedCents"]
    assert sum(k["totalCents"] for k in keys.values()) == pytest.approx(
        answer["data"]["usage"]["llm"]["totalCents"], abs=1e-6
    )
