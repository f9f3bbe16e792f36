"""GET /api/usage, GraphQL `usage` and the usage service agree, for every filter and a range.

An independent oracle recomputes each axis's total straight from the recorded events, so
"they agree" also means "they are right".
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from api_support import (
    ALICE,
    BOB,
    CAROL,
    MONTH,
    ROOT,
    World,
    bearer,
    graphql,
    seed,
    serve,
    settings_for,
)
from crabglamp.api.rest import usage_json
from crabglamp.db import read_transaction
from crabglamp.ingest.records import ComputeRecord, LlmRecord, VoiceRecord
from crabglamp.intervals import compute_cost_pieces
from crabglamp.periods import Period, current_month, parse_month
from crabglamp.usage.query import UsageQuery
from crabglamp.usage.service import usage

# Exactly the fields of CONTRACTS.md §2.2, so the GraphQL answer must equal the REST body.
USAGE_DOCUMENT = """
query Usage($filter: UsageFilter) {
  usage(filter: $filter) {
    compute {
      totalCents
      daily { date agentCents plainVmCents totalCents
        agents { ...ComputeAgent }
        plainVms { ...PlainVm } }
      agents { ...ComputeAgent }
      plainVms { ...PlainVm }
    }
    llm {
      totalCents
      daily { date totalCents requestCount models { ...LlmModel } }
      agents { agentId agentName totalCents requestCount }
      models { ...LlmModel }
      keys { keyId keyName provider spendCapCents totalCents requestCount }
      hasKeys
    }
    voice {
      totalCents totalCharacters
      daily { date totalCents characters models { ...VoiceModel } }
      agents { agentId agentName totalCents characters }
      models { ...VoiceModel }
      hasVoiceUsage
    }
  }
}
fragment ComputeAgent on ComputeAgentUsage {
  agentId agentName runningCents pausedCents runningHours pausedHours totalCents
}
fragment PlainVm on PlainVmUsage { plainVmId plainVmName costCents hours }
fragment LlmModel on LlmModelUsage {
  model provider totalCents requestCount inputTokens outputTokens
  cachedInputTokens cacheWrite5mTokens cacheWrite1hTokens reasoningTokens
  audioInputTokens audioOutputTokens cacheSavedCents
}
fragment VoiceModel on VoiceModelUsage { voiceModel totalCents characters }
"""


@pytest.fixture
async def world(engine: AsyncEngine) -> World:
    return await seed(engine)


@pytest.fixture
async def client(
    engine: AsyncEngine, db_url: str, world: World
) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(engine, settings_for(db_url)) as client:
        yield client


def _filters(w: World) -> list[tuple[dict[str, Any], dict[str, str]]]:
    """(caller, REST parameters): each filter alone, combinations, a range, admin."""
    month = {"month": MONTH}
    return [
        (ALICE, month),
        (ALICE, {**month, "accountId": str(w.acme)}),
        (BOB, month),
        (CAROL, month),
        (ALICE, {**month, "agentId": str(w.support_bot)}),
        (ALICE, {**month, "keyId": str(w.prod_key)}),
        (ALICE, {**month, "provider": "openai"}),
        (ALICE, {**month, "model": "gpt-4o"}),
        (ALICE, {**month, "voiceModel": "tts-1"}),
        (ALICE, {**month, "agentId": str(w.batch_agent), "model": "claude-3-5-sonnet"}),
        (
            ALICE,
            {**month, "keyId": str(w.dev_key), "provider": "anthropic", "voiceModel": "tts-1-hd"},
        ),
        (ALICE, {"from": "2026-10-03", "to": "2026-10-16"}),
        (ALICE, {"from": "2026-10-04", "to": "2026-10-04", "agentId": str(w.support_bot)}),
        (ALICE, {"from": "2026-09-25", "to": "2026-10-05", "provider": "openai"}),
        (ROOT, {**month, "admin": "1"}),
        (ROOT, {**month, "admin": "1", "accountId": str(w.globex)}),
        (ROOT, {**month, "accountId": str(w.globex), "model": "gpt-4o-mini"}),
    ]


def _variables(params: dict[str, str]) -> dict[str, Any]:
    wanted: dict[str, Any] = {name: value for name, value in params.items() if name != "admin"}
    if "admin" in params:
        wanted["admin"] = params["admin"] == "1"
    return {"filter": wanted}


def _accounts(w: World, caller: dict[str, Any], params: dict[str, str]) -> set[uuid.UUID] | None:
    if "accountId" in params:
        return {uuid.UUID(params["accountId"])}
    if params.get("admin") == "1":
        return None
    defaults = {"user_alice": w.acme, "user_bob": w.acme, "user_carol": w.carol}
    return {defaults[caller["user_id"]]}


def _period(params: dict[str, str]) -> Period:
    if "month" in params:
        return parse_month(params["month"])
    return Period(date.fromisoformat(params["from"]), date.fromisoformat(params["to"]))


def oracle(w: World, caller: dict[str, Any], params: dict[str, str]) -> tuple[int, int, int]:
    """(compute, llm, voice) micro-cents, summed from the events themselves."""
    accounts = _accounts(w, caller, params)
    period = _period(params)
    key_account = {
        w.prod_key: w.acme,
        w.dev_key: w.acme,
        w.quiet_key: w.acme,
        w.globex_key: w.globex,
        w.carol_key: w.carol,
    }
    agent = uuid.UUID(params["agentId"]) if "agentId" in params else None
    key = uuid.UUID(params["keyId"]) if "keyId" in params else None

    def in_scope(account: uuid.UUID, agent_id: uuid.UUID | None) -> bool:
        return (accounts is None or account in accounts) and (agent is None or agent_id == agent)

    compute = llm = voice = 0
    for e in w.events:
        if isinstance(e, LlmRecord):
            if (
                in_scope(key_account[e.key_id], e.agent_id)
                and period.start <= e.ts.date() <= period.end
                and (key is None or e.key_id == key)
                and params.get("provider", e.provider) == e.provider
                and params.get("model", e.model) == e.model
            ):
                llm += e.cost_micros or 0
        elif isinstance(e, VoiceRecord):
            if (
                in_scope(e.account_id, e.agent_id)
                and period.start <= e.ts.date() <= period.end
                and params.get("voiceModel", e.voice_model) == e.voice_model
            ):
                voice += e.cost_micros or 0
        elif isinstance(e, ComputeRecord) and in_scope(e.account_id, e.agent_id):
            assert e.end is not None
            for day, cost, _length in compute_cost_pieces(e.start, e.end, e.cents_per_hour_micros):
                if period.start <= day <= period.end:
                    compute += cost
    return compute, llm, voice


def _micros(cents: float) -> int:
    return round(cents * 1_000_000)


async def test_rest_graphql_and_service_agree_for_every_filter(
    client: httpx.AsyncClient, engine: AsyncEngine, world: World
) -> None:
    for caller, params in _filters(world):
        label = f"{caller['user_id']} {params}"
        rest = await client.get("/api/usage", params=params, headers=bearer(**caller))
        assert rest.status_code == 200, (label, rest.text)
        body = rest.json()
        answer = await graphql(client, USAGE_DOCUMENT, _variables(params), bearer(**caller))
        assert "errors" not in answer, (label, answer)
        assert answer["data"]["usage"] == body, label

        expected = oracle(world, caller, params)
        got = tuple(_micros(body[axis]["totalCents"]) for axis in ("compute", "llm", "voice"))
        assert got == expected, label

        accounts = _accounts(world, caller, params)
        query = UsageQuery(
            period=_period(params),
            account_ids=None if accounts is None else tuple(accounts),
            agent_id=uuid.UUID(params["agentId"]) if "agentId" in params else None,
            key_ids=(uuid.UUID(params["keyId"]),) if "keyId" in params else None,
            provider=params.get("provider"),
            model=params.get("model"),
            voice_model=params.get("voiceModel"),
        )
        async with read_transaction(engine) as conn:
            service = usage_json(await usage(conn, query))
        assert service == body, label
        # One entry per day of the period, zero days included, on every axis.
        days = len(_period(params).days)
        assert [len(body[axis]["daily"]) for axis in ("compute", "llm", "voice")] == [days] * 3


async def test_default_period_is_the_current_month_on_both_apis(
    client: httpx.AsyncClient, world: World
) -> None:
    rest = (await client.get("/api/usage", headers=bearer(**ALICE))).json()
    answer = await graphql(client, USAGE_DOCUMENT, {}, bearer(**ALICE))
    assert answer["data"]["usage"] == rest
    month = current_month()
    assert [d["date"] for d in rest["llm"]["daily"]] == [d.isoformat() for d in month.days]
    # The seed spent 13.345679 + 250.0 cents this month through Acme's keys.
    assert _micros(rest["llm"]["totalCents"]) == 12_345_678 + 1_000_001 + 250_000_000
