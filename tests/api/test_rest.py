"""GET /api/usage (CONTRACTS.md §2.2), POST /api/events, GET /api/openapi.json, /readyz."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from api_support import (
    ALICE,
    BOB,
    CAROL,
    GINA,
    MONTH,
    ROOT,
    World,
    bearer,
    seed,
    serve,
    settings_for,
)
from crabglamp.api.openapi import openapi_document
from crabglamp.db import read_transaction
from crabglamp.db.tables import table_of
from crabglamp.models import Account
from crabglamp.periods import current_month


@pytest.fixture
async def world(engine: AsyncEngine) -> World:
    return await seed(engine)


@pytest.fixture
async def client(
    engine: AsyncEngine, db_url: str, world: World
) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(engine, settings_for(db_url)) as client:
        yield client


async def _usage(client: httpx.AsyncClient, caller: dict[str, Any], **params: str) -> Any:
    response = await client.get("/api/usage", params=params, headers=bearer(**caller))
    assert response.status_code == 200, response.text
    return response.json()


# The shape of CONTRACTS.md §2.2

SHAPE = {
    "compute": {
        "totalCents": float,
        "daily": {
            "date": str,
            "agentCents": float,
            "plainVmCents": float,
            "totalCents": float,
            "agents": "computeAgent",
            "plainVms": "plainVm",
        },
        "agents": "computeAgent",
        "plainVms": "plainVm",
    },
    "llm": {
        "totalCents": float,
        "daily": {"date": str, "totalCents": float, "requestCount": int, "models": "llmModel"},
        "agents": {"agentId": str, "agentName": str, "totalCents": float, "requestCount": int},
        "models": "llmModel",
        "keys": {
            "keyId": str,
            "keyName": str,
            "provider": str,
            "spendCapCents": float,
            "totalCents": float,
            "requestCount": int,
        },
        "hasKeys": bool,
    },
    "voice": {
        "totalCents": float,
        "totalCharacters": int,
        "daily": {"date": str, "totalCents": float, "characters": int, "models": "voiceModel"},
        "agents": {"agentId": str, "agentName": str, "totalCents": float, "characters": int},
        "models": "voiceModel",
        "hasVoiceUsage": bool,
    },
}
NAMED = {
    "computeAgent": {
        "agentId": str,
        "agentName": str,
        "runningCents": float,
        "pausedCents": float,
        "runningHours": float,
        "pausedHours": float,
        "totalCents": float,
    },
    "plainVm": {"plainVmId": str, "plainVmName": str, "costCents": float, "hours": float},
    "llmModel": {
        "model": str,
        "provider": str,
        "totalCents": float,
        "requestCount": int,
        "inputTokens": int,
        "outputTokens": int,
        # Added (parts of the totals, and what caching saved): the contract's keys stay.
        "cachedInputTokens": int,
        "cacheWrite5mTokens": int,
        "cacheWrite1hTokens": int,
        "reasoningTokens": int,
        "audioInputTokens": int,
        "audioOutputTokens": int,
        "cacheSavedCents": float,
    },
    "voiceModel": {"voiceModel": str, "totalCents": float, "characters": int},
}
# Null where 4.1 allows it: no agent, a key for any provider, an uncapped key.
NULLABLE = {"agentId", "agentName", "provider", "spendCapCents"}


def _check_shape(value: Any, shape: Any, path: str, seen: set[str]) -> None:
    if isinstance(shape, str):
        shape = NAMED[shape]
    if isinstance(shape, dict):
        items = value if isinstance(value, list) else [value]
        assert isinstance(value, list | dict), path
        for item in items:
            assert set(item) == set(shape), f"{path}: keys {sorted(item)} != {sorted(shape)}"
            for name, inner in shape.items():
                _check_shape(item[name], inner, f"{path}.{name}", seen)
        if items:
            seen.add(path)
        return
    name = path.rsplit(".", 1)[-1]
    if value is None:
        assert name in NULLABLE, f"{path} is null"
        return
    assert type(value) is shape, f"{path}: {value!r} is not {shape.__name__}"


async def test_usage_has_every_key_of_the_design(client: httpx.AsyncClient, world: World) -> None:
    body = await _usage(client, ALICE, month=MONTH)
    seen: set[str] = set()
    _check_shape(body, SHAPE, "", seen)
    # Every list of the shape held entries, so every level was checked.
    assert {".compute.daily.agents", ".compute.plainVms", ".llm.keys", ".voice.agents"} <= seen
    agents = {a["agentName"]: a for a in body["llm"]["agents"]}
    assert agents[None]["agentId"] is None  # requests without an agent
    assert agents["support-bot"]["agentId"] == str(world.support_bot)
    # 20:00 on the 3rd to 06:30 on the 4th at 8 c/h: split at midnight to the second.
    day3 = body["compute"]["daily"][2]["agents"][0]
    assert day3 == {
        "agentId": str(world.support_bot),
        "agentName": "support-bot",
        "runningCents": 32.0,
        "pausedCents": 0.0,
        "runningHours": 4.0,
        "pausedHours": 0.0,
        "totalCents": 32.0,
    }
    quiet = next(k for k in body["llm"]["keys"] if k["keyName"] == "quiet")
    assert quiet["spendCapCents"] is None and quiet["totalCents"] == 0.0


async def test_defaults_are_the_current_month_and_the_callers_account(
    client: httpx.AsyncClient, world: World
) -> None:
    body = await _usage(client, ALICE)
    assert [d["date"] for d in body["voice"]["daily"]] == [
        d.isoformat() for d in current_month().days
    ]
    assert body == await _usage(client, ALICE, accountId=str(world.acme))
    # A member of the organisation reads the same account; a person their own.
    assert await _usage(client, BOB, month=MONTH) == await _usage(
        client, ALICE, month=MONTH, accountId=str(world.acme)
    )
    carol = await _usage(client, CAROL, month=MONTH)
    assert [k["keyName"] for k in carol["llm"]["keys"]] == ["carol"]
    # Unknown parameters are ignored.
    assert await _usage(client, ALICE, month=MONTH, colour="blue") == await _usage(
        client, ALICE, month=MONTH
    )


MALFORMED = [
    ({"month": "2026-13"}, "month"),
    ({"month": "October"}, "month"),
    ({"month": "9999-12"}, "month"),
    ({"from": "2026-10-32", "to": "2026-10-31"}, "from"),
    ({"from": "2026-10-01", "to": "31/10/2026"}, "to"),
    ({"from": "2026-10-05"}, "to"),
    ({"to": "2026-10-05"}, "from"),
    ({"from": "2026-10-06", "to": "2026-10-05"}, "from"),
    ({"from": "2024-01-01", "to": "2026-01-01"}, "to"),
    ({"month": "2026-10", "from": "2026-10-01", "to": "2026-10-02"}, "month"),
    ({"accountId": "acme"}, "accountId"),
    ({"agentId": "12345"}, "agentId"),
    ({"keyId": "not-a-uuid"}, "keyId"),
    ({"admin": "yes"}, "admin"),
]


async def test_malformed_parameters_are_a_400_naming_them(client: httpx.AsyncClient) -> None:
    for params, parameter in MALFORMED:
        response = await client.get("/api/usage", params=params, headers=bearer(**ALICE))
        assert response.status_code == 400, params
        error = response.json()["error"]
        assert error["code"] == "invalid_parameter"
        assert error["message"].startswith(f"{parameter}: "), (params, error)


async def test_unauthenticated_is_a_401(client: httpx.AsyncClient) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer not.a.jwt"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Cookie": "__session=expired.or.forged"},
    ):
        for response in (
            await client.get("/api/usage", headers=headers),
            await client.post("/api/events", content=b"{}", headers=headers),
        ):
            assert response.status_code == 401, headers
            assert set(response.json()["error"]) == {"code", "message"}


async def test_another_tenants_account_agent_or_key_is_refused(
    client: httpx.AsyncClient, world: World
) -> None:
    for params in (
        {"accountId": str(world.globex)},
        {"agentId": str(world.globex_agent)},
        {"keyId": str(world.globex_key)},
        {"accountId": str(world.acme), "keyId": str(world.globex_key)},
        {"admin": "1"},
        {"admin": "true", "accountId": str(world.acme)},
    ):
        response = await client.get("/api/usage", params=params, headers=bearer(**ALICE))
        assert response.status_code == 403, params
        assert response.json()["error"]["code"] == "forbidden"
    # Globex's admin reads Globex, not Acme's agents.
    response = await client.get(
        "/api/usage", params={"agentId": str(world.support_bot)}, headers=bearer(**GINA)
    )
    assert response.status_code == 403


async def test_platform_admin_sees_every_account(client: httpx.AsyncClient, world: World) -> None:
    everything = await _usage(client, ROOT, month=MONTH, admin="1")
    parts = [
        await _usage(client, ROOT, month=MONTH, accountId=str(account))
        for account in (world.acme, world.globex, world.carol)
    ]
    for axis in ("compute", "llm", "voice"):
        assert round(everything[axis]["totalCents"] * 1e6) == sum(
            round(part[axis]["totalCents"] * 1e6) for part in parts
        )
    assert everything["llm"]["totalCents"] > parts[0]["llm"]["totalCents"]


# POST /api/events


def _lines(*objects: dict[str, Any]) -> bytes:
    return b"".join(json.dumps(o).encode() + b"\n" for o in objects)


def _llm_line(event_id: str, key: uuid.UUID, cents: float = 1.25) -> dict[str, Any]:
    return {
        "type": "llm",
        "id": event_id,
        "ts": "2026-10-09T08:00:00Z",
        "keyId": str(key),
        "agentId": None,
        "provider": "openai",
        "model": "gpt-4o-mini",
        "inputTokens": 10,
        "outputTokens": 5,
        "costCents": cents,
    }


async def _post(client: httpx.AsyncClient, caller: dict[str, Any], body: bytes) -> httpx.Response:
    headers = {**bearer(**caller), "Content-Type": "application/x-ndjson"}
    return await client.post("/api/events", content=body, headers=headers)


async def test_posted_events_are_recorded_once(client: httpx.AsyncClient, world: World) -> None:
    before = (await _usage(client, ALICE, month=MONTH))["llm"]["totalCents"]
    agent = str(uuid.uuid4())
    body = _lines(
        {"type": "agent", "id": agent, "accountId": str(world.acme), "name": "posted"},
        _llm_line("post-1", world.prod_key, 1.25),
        {**_llm_line("post-2", world.dev_key, 0.000001), "agentId": agent},
    )
    first = await _post(client, ALICE, body)
    assert first.status_code == 200, first.text
    assert first.json()["inserted"] == 2 and first.json()["committed"] is True
    again = await _post(client, ALICE, body)
    assert again.status_code == 200
    assert (again.json()["inserted"], again.json()["duplicates"]) == (0, 2)
    after = (await _usage(client, ALICE, month=MONTH))["llm"]["totalCents"]
    assert round((after - before) * 1e6) == 1_250_001


async def test_an_invalid_bundle_writes_nothing_and_lists_each_bad_line(
    client: httpx.AsyncClient, world: World
) -> None:
    before = await _usage(client, ALICE, month=MONTH)
    body = (
        _lines(_llm_line("ok-1", world.prod_key))
        + b"{not json\n"
        + _lines({**_llm_line("bad-2", world.prod_key), "inputTokens": -3})
    )
    response = await _post(client, ALICE, body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_bundle"
    assert sorted({p["line"] for p in error["problems"]}) == [2, 3]
    assert await _usage(client, ALICE, month=MONTH) == before
    empty = await _post(client, ALICE, b"\n\n")
    assert empty.status_code == 400 and empty.json()["error"]["code"] == "empty_bundle"


async def test_events_only_for_accounts_the_caller_administers(
    client: httpx.AsyncClient, world: World
) -> None:
    mine = _lines(_llm_line("member-1", world.prod_key))
    # Bob is a member of Acme, not an admin; Alice administers Acme, not Globex.
    assert (await _post(client, BOB, mine)).status_code == 403
    theirs = _lines(_llm_line("theirs-1", world.globex_key))
    assert (await _post(client, ALICE, theirs)).status_code == 403
    voice = _lines(
        {
            "type": "voice",
            "id": "theirs-2",
            "ts": "2026-10-09T08:00:00Z",
            "accountId": str(world.globex),
            "voiceModel": "tts-1",
            "characters": 10,
            "costCents": 0.1,
        }
    )
    assert (await _post(client, ALICE, voice)).status_code == 403
    price = _lines(
        {
            "type": "price",
            "provider": "openai",
            "model": "gpt-cheap",
            "kind": "llm",
            "validFrom": "2026-01-01",
            "inputCentsPerMTok": 1,
            "outputCentsPerMTok": 2,
        }
    )
    assert (await _post(client, ALICE, price)).status_code == 403
    # Carol owns her personal account; Dave is its admin member.
    carol = _lines(_llm_line("carol-1", world.carol_key))
    assert (await _post(client, CAROL, carol)).status_code == 200
    dave = _lines(_llm_line("dave-1", world.carol_key))
    assert (await _post(client, {"user_id": "user_dave"}, dave)).status_code == 200
    untyped = await client.post(
        "/api/events", content=mine, headers={**bearer(**ALICE), "Content-Type": "image/png"}
    )
    assert untyped.status_code == 415


# The OpenAPI document


async def test_an_owner_cannot_bind_an_account_to_an_organisation_nor_post_the_future(
    client: httpx.AsyncClient, world: World, engine: AsyncEngine
) -> None:
    claim = {
        "type": "account",
        "id": str(world.carol),
        "name": "Carol",
        "ownerUserId": "user_carol",
        "clerkOrgId": "org_unclaimed",
    }
    far = {**_llm_line("far-future", world.prod_key), "ts": "9999-12-31T23:59:59Z"}
    for caller, line, field in ((CAROL, claim, "clerkOrgId"), (ALICE, far, "ts")):
        response = await _post(client, caller, _lines(line))
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["code"] == "invalid_bundle"
        assert [(p["line"], p["field"]) for p in error["problems"]] == [(1, field)]
    async with read_transaction(engine) as conn:
        accounts = table_of(Account)
        org = (
            await conn.execute(select(accounts.c.clerk_org_id).where(accounts.c.id == world.carol))
        ).scalar()
        audited = (await conn.execute(text("SELECT count(*) FROM account_audit"))).scalar()
    assert (org, audited) == (None, 0)


async def test_openapi_document_is_valid_and_describes_the_api(
    client: httpx.AsyncClient, world: World
) -> None:
    response = await client.get("/api/openapi.json")
    assert response.status_code == 200
    document = response.json()
    validate(document)
    assert document == openapi_document()
    parameters = {p["name"] for p in document["paths"]["/api/usage"]["get"]["parameters"]}
    assert parameters == {
        "month", "from", "to", "accountId", "agentId", "keyId", "provider", "model",
        "voiceModel", "admin",
    }  # fmt: skip
    # Real answers conform to the documented schemas.
    components = {"components": document["components"]}
    usage_schema = {**document["components"]["schemas"]["Usage"], **components}
    OAS30Validator(usage_schema).validate(await _usage(client, ALICE, month=MONTH))
    error_schema = {**document["components"]["schemas"]["Error"], **components}
    refused = await client.get("/api/usage", params={"month": "x"}, headers=bearer(**ALICE))
    OAS30Validator(error_schema).validate(refused.json())


# Health


def _replace_by_directory(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.mkdir()  # a directory where the file was: SQLite cannot open it


@pytest.mark.parametrize("production", [False, True], ids=["development", "production"])
async def test_readyz_is_503_when_the_database_is_unreachable(
    db_url: str, engine: AsyncEngine, production: bool
) -> None:
    async with serve(engine, settings_for(db_url, production=production)) as client:
        assert (await client.get("/readyz")).json() == {"status": "ok"}
        # The database goes away under the running app.
        if db_url.startswith("sqlite"):
            await engine.dispose()
            _replace_by_directory(Path(db_url.split("///", 1)[1]))
        else:
            server, _, name = db_url.rpartition("/")
            admin = create_async_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
            async with admin.connect() as conn:
                await conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
            await admin.dispose()
        response = await client.get("/readyz")
        assert response.status_code == 503
        error = response.json()["error"]
        assert error["code"] == "database_unreachable"
        # In production the driver's words (paths, hosts, users) stay in the server.
        assert (error["message"] == "the database is unreachable") is production
        assert (await client.get("/healthz")).status_code == 200


async def test_unknown_api_routes_answer_in_the_rest_error_shape(client: httpx.AsyncClient) -> None:
    nothing = await client.get("/api/nothing")
    assert nothing.status_code == 404
    assert nothing.headers["content-type"] == "application/json"
    assert nothing.json()["error"]["code"] == "not_found"
    assert "/api/nothing" in nothing.json()["error"]["message"]
    deep = await client.delete("/api/usage/and/more")
    assert deep.status_code == 404 and deep.json()["error"]["code"] == "not_found"
    # A known path in another method: 405 with the method it takes, still in the same shape.
    wrong = await client.post("/api/usage")
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "GET"
    assert wrong.json()["error"]["code"] == "method_not_allowed"
