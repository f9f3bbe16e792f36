"""Nested queries: lists narrowed at their level, accounts, the request log, tenancy."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from api_support import ALICE, CAROL, GINA, MONTH, ROOT, World, bearer, graphql
from crabglamp.ingest.records import LlmRecord


async def _data(
    client: httpx.AsyncClient,
    query: str,
    variables: dict[str, Any] | None = None,
    caller: Any = None,
) -> dict[str, Any]:
    answer = await graphql(client, query, variables, bearer(**(caller or ALICE)))
    assert "errors" not in answer, answer
    data: dict[str, Any] = answer["data"]
    return data


async def _error(
    client: httpx.AsyncClient,
    query: str,
    variables: dict[str, Any] | None = None,
    caller: Any = None,
) -> dict[str, Any]:
    answer = await graphql(client, query, variables, bearer(**(caller or ALICE)))
    assert len(answer["errors"]) == 1, answer
    error: dict[str, Any] = answer["errors"][0]
    return error


async def test_lists_take_arguments_at_their_level(client: httpx.AsyncClient) -> None:
    data = await _data(
        client,
        """query($f: UsageFilter) { usage(filter: $f) {
            from to
            llm { totalCents
              all: daily { date totalCents }
              week: daily(from: "2026-10-03", to: "2026-10-09") { date totalCents
                openai: models(provider: "openai") { provider totalCents }
                models { provider totalCents } }
              openaiModels: models(provider: "openai") { provider totalCents }
              models { provider totalCents }
              openaiKeys: keys(provider: "openai") { keyName }
            }
            compute { daily(from: "2026-10-30") { date } }
            voice { daily(to: "2026-10-02") { date } }
        } }""",
        {"f": {"month": MONTH}},
    )
    usage = data["usage"]
    assert (usage["from"], usage["to"]) == ("2026-10-01", "2026-10-31")
    llm = usage["llm"]
    assert [d["date"] for d in llm["week"]] == [f"2026-10-{day:02d}" for day in range(3, 10)]
    assert llm["week"] == [
        {**day, "openai": [m for m in day["models"] if m["provider"] == "openai"]}
        for day in llm["week"]
    ]
    by_date = {d["date"]: d["totalCents"] for d in llm["all"]}
    assert all(by_date[d["date"]] == d["totalCents"] for d in llm["week"])
    assert llm["openaiModels"] == [m for m in llm["models"] if m["provider"] == "openai"]
    # The axis total is not narrowed by its lists' arguments.
    assert llm["totalCents"] == pytest.approx(sum(d["totalCents"] for d in llm["all"]), abs=1e-6)
    assert sorted(k["keyName"] for k in llm["openaiKeys"]) == ["prod", "quiet"]
    assert [d["date"] for d in usage["compute"]["daily"]] == ["2026-10-30", "2026-10-31"]
    assert [d["date"] for d in usage["voice"]["daily"]] == ["2026-10-01", "2026-10-02"]


async def test_accounts_nest_keys_agents_usage_and_invoice(
    client: httpx.AsyncClient, world: World
) -> None:
    query = """query($f: UsageFilter) {
        accounts { id name
          virtualKeys(provider: "anthropic") { name account { name } }
          agents { name } plainVms { name centsPerHour }
          usage(month: "2026-10") { llm { totalCents } voice { totalCents } }
          invoice(month: "2026-10") { totalCents }
          anomalies(month: "2026-10") { kind }
        }
        usage(filter: $f) { llm { totalCents } voice { totalCents } }
        invoice(month: "2026-10") { totalCents }
    }"""
    data = await _data(client, query, {"f": {"month": MONTH}})
    [acme] = data["accounts"]
    assert (acme["id"], acme["name"]) == (str(world.acme), "Acme")
    assert acme["virtualKeys"] == [{"name": "dev", "account": {"name": "Acme"}}]
    assert [a["name"] for a in acme["agents"]] == ["batch", "support-bot"]
    assert acme["plainVms"] == [{"name": "build-box", "centsPerHour": 12.5}]
    assert acme["usage"] == data["usage"]
    assert acme["invoice"] == data["invoice"]
    assert acme["anomalies"] == []
    # A platform admin lists every account only when asking for it.
    everyone = await _data(client, "{ accounts(admin: true) { name } }", caller=ROOT)
    assert [a["name"] for a in everyone["accounts"]] == ["Acme", "Carol", "Globex"]
    assert (await _data(client, "{ accounts { name } }", caller=ROOT))["accounts"] == []
    one = await _data(client, f'{{ account(id: "{world.globex}") {{ name }} }}', caller=ROOT)
    assert one["account"] == {"name": "Globex"}


async def test_request_log_pages_through_a_day_exactly_once(
    client: httpx.AsyncClient, world: World
) -> None:
    query = """query($date: Date!, $keyIds: [ID!], $model: String, $after: String) {
        requests(date: $date, keyIds: $keyIds, model: $model, first: 3, after: $after) {
          requestCount totalCents
          edges { cursor node { id ts keyId keyName model costCents } }
          pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
        } }"""
    expected = sorted(
        (e.ts, e.id, e.cost_micros)
        for e in world.events
        if isinstance(e, LlmRecord)
        and e.ts.date().isoformat() == "2026-10-07"
        and e.key_id == world.prod_key
        and e.model == "gpt-4o-mini"
    )
    assert len(expected) > 3
    variables: dict[str, Any] = {
        "date": "2026-10-07",
        "keyIds": [str(world.prod_key)],
        "model": "gpt-4o-mini",
        "after": None,
    }
    seen = []
    while True:
        page = (await _data(client, query, variables))["requests"]
        assert page["requestCount"] == len(expected)
        assert round(page["totalCents"] * 1e6) == sum(cost for *_, cost in expected)
        seen += [edge["node"]["id"] for edge in page["edges"]]
        assert page["pageInfo"]["hasPreviousPage"] is (variables["after"] is not None)
        assert page["pageInfo"]["endCursor"] == page["edges"][-1]["cursor"]
        assert page["pageInfo"]["startCursor"] == page["edges"][0]["cursor"]
        assert {e["node"]["keyName"] for e in page["edges"]} == {"prod"}
        if not page["pageInfo"]["hasNextPage"]:
            break
        variables["after"] = page["pageInfo"]["endCursor"]
    assert seen == [event_id for _, event_id, _ in expected]

    for argument, value in (("first", 0), ("first", 501), ("after", "bm90IGEgY3Vyc29y")):
        error = await _error(
            client,
            f"query($v: {'Int!' if argument == 'first' else 'String'}) "
            f'{{ requests(date: "2026-10-07", {argument}: $v) {{ requestCount }} }}',
            {"v": value},
        )
        assert error["extensions"] == {"code": "BAD_USER_INPUT", "argument": argument}


async def test_another_tenant_is_refused_everywhere(
    client: httpx.AsyncClient, world: World
) -> None:
    refused = [
        ("query($f: UsageFilter) { usage(filter: $f) { llm { totalCents } } }",
         {"f": {"accountId": str(world.globex)}}),
        ("query($f: UsageFilter) { usage(filter: $f) { llm { totalCents } } }",
         {"f": {"agentId": str(world.globex_agent)}}),
        ("query($f: UsageFilter) { usage(filter: $f) { llm { totalCents } } }",
         {"f": {"keyId": str(world.globex_key)}}),
        ("query($f: UsageFilter) { usage(filter: $f) { llm { totalCents } } }",
         {"f": {"keyIds": [str(world.prod_key), str(world.globex_key)]}}),
        ("query($f: UsageFilter) { usage(filter: $f) { llm { totalCents } } }",
         {"f": {"admin": True}}),
        ("query($a: ID) { virtualKeys(accountId: $a) { id } }", {"a": str(world.globex)}),
        ("query($a: ID) { invoice(accountId: $a) { totalCents } }", {"a": str(world.globex)}),
        ("query($a: ID) { anomalies(accountId: $a) { kind } }", {"a": str(world.globex)}),
        ("query($a: ID!) { account(id: $a) { name } }", {"a": str(world.globex)}),
        ("{ accounts(admin: true) { name } }", {}),
        ("query($k: ID) { requests(date: \"2026-10-07\", keyId: $k) { requestCount } }",
         {"k": str(world.globex_key)}),
        ("query($a: ID) { requests(date: \"2026-10-07\", accountId: $a) { requestCount } }",
         {"a": str(world.globex)}),
    ]  # fmt: skip
    for query, variables in refused:
        error = await _error(client, query, variables)
        assert error["extensions"]["code"] == "FORBIDDEN", (query, variables)
    # Globex's own admin reads Globex; Carol reads only her personal account.
    mine = await _data(
        client, "{ virtualKeys { name } usage { llm { keys { keyName } } } }", caller=GINA
    )
    assert [k["name"] for k in mine["virtualKeys"]] == ["globex-prod"]
    carol = await _data(client, "{ accounts { name } virtualKeys { name } }", caller=CAROL)
    assert carol == {"accounts": [{"name": "Carol"}], "virtualKeys": [{"name": "carol"}]}
    # The platform admin's admin view adds up every account.
    query = "query($f: UsageFilter) { usage(filter: $f) { llm { totalCents } } }"
    total = (await _data(client, query, {"f": {"month": MONTH, "admin": True}}, ROOT))["usage"]
    parts = [
        (await _data(client, query, {"f": {"month": MONTH, "accountId": str(a)}}, ROOT))["usage"]
        for a in (world.acme, world.globex, world.carol)
    ]
    assert round(total["llm"]["totalCents"] * 1e6) == sum(
        round(p["llm"]["totalCents"] * 1e6) for p in parts
    )


async def test_malformed_arguments_name_themselves(client: httpx.AsyncClient) -> None:
    cases = [
        ({"month": "2026-13"}, "month"),
        ({"from": "2026-10-05"}, "to"),
        ({"from": "2026-10-05", "to": "2026-10-01"}, "from"),
        ({"month": "2026-10", "from": "2026-10-01", "to": "2026-10-02"}, "month"),
        ({"accountId": "acme"}, "accountId"),
        ({"keyIds": ["x"]}, "keyIds"),
    ]
    for wanted, argument in cases:
        error = await _error(
            client,
            "query($f: UsageFilter) { usage(filter: $f) { llm { totalCents } } }",
            {"f": wanted},
        )
        assert error["extensions"] == {"code": "BAD_USER_INPUT", "argument": argument}, wanted
