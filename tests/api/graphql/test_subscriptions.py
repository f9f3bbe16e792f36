"""`usageChanged` over WebSocket, on served processes: who may listen, to what, and that a write
through any process reaches a listener on any other (through the database: NOTIFY on
PostgreSQL, the change marks on SQLite).

Each test waits for what it expects (generously); none asserts how fast it came.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from api_support import ALICE, AZP, BOB, GINA, ISSUER, World, seed, signing_key, token
from crabglamp.dev.devtokens.signing import sign_session_token
from crabglamp.ingest.ingestor import Ingestor
from crabglamp.ingest.records import LlmRecord
from live_support import PATIENCE, live_socket, serving, subscribed

CREATE_KEY = """
mutation Create($input: CreateVirtualKeyInput!) {
  createVirtualKey(input: $input) { __typename }
}
"""


@pytest.fixture
async def world(engine: AsyncEngine) -> World:
    return await seed(engine)


def _llm(key_id: uuid.UUID, provider: str = "openai") -> LlmRecord:
    return LlmRecord(
        id=f"live-{uuid.uuid4()}",
        ts=datetime.now(UTC),
        key_id=key_id,
        provider=provider,
        model="gpt-4o-mini" if provider == "openai" else "claude-haiku-4-5",
        input_tokens=100,
        output_tokens=10,
        cost_micros=1_000,
    )


async def _create_key(base_url: str, account: uuid.UUID, name: str) -> None:
    # A new connection each time: under several workers any of them may take it.
    async with httpx.AsyncClient(base_url=base_url, timeout=PATIENCE) as client:
        response = await client.post(
            "/graphql",
            json={
                "query": CREATE_KEY,
                "variables": {"input": {"accountId": str(account), "name": name}},
            },
            headers={"Authorization": f"Bearer {token(**ALICE)}"},
        )
    body = response.json()
    assert body["data"]["createVirtualKey"]["__typename"] == "CreateVirtualKeySuccess", body


async def test_a_socket_without_a_valid_session_is_closed_unheard(
    db_url: str, world: World, tmp_path: Path
) -> None:
    expired = sign_session_token(
        signing_key(), issuer=ISSUER, azp=AZP, user_id="user_bob", ttl=1, now=1_000_000
    )
    with serving(db_url, tmp_path) as server:
        for init, reason in (
            ({}, "unauthenticated"),
            ({"token": "not-a-token"}, "invalid_token"),
            ({"token": expired}, "token_expired"),
        ):
            async with live_socket(server.url, init) as client:
                refused = await client.closed()
            assert (refused.code, refused.reason) == (4403, reason)
        # A subscription before (or without) an accepted connection_init is refused too.
        async with live_socket(server.url, {}) as client:
            await client.subscribe()
            assert (await client.closed()).code in {4401, 4403}


async def test_the_session_cookie_or_a_token_in_connection_init_opens_it(
    db_url: str, world: World, tmp_path: Path
) -> None:
    with serving(db_url, tmp_path) as server:
        cookie = {"Cookie": f"__session={token(**BOB)}"}
        async with live_socket(server.url, {}, headers=cookie) as client:
            assert (await client.message())["type"] == "connection_ack"
        async with subscribed(server.url, token(**BOB)) as client:
            assert client.received[-1]["payload"]["data"]["usageChanged"] == {
                "accountId": str(world.acme),
                "kinds": [],
            }


async def test_the_socket_closes_when_its_token_expires(
    db_url: str, world: World, tmp_path: Path
) -> None:
    with serving(db_url, tmp_path) as server:
        short = sign_session_token(
            signing_key(), issuer=ISSUER, azp=AZP, user_id="user_bob", org_id="org_acme", ttl=2
        )
        async with subscribed(server.url, short) as client:
            closed = await client.closed()
    assert (closed.code, closed.reason) == (4401, "token_expired")


async def test_a_member_hears_only_of_the_accounts_they_may_read(
    db_url: str, engine: AsyncEngine, world: World, tmp_path: Path
) -> None:
    ingestor = Ingestor(engine)
    with serving(db_url, tmp_path) as server:
        async with (
            subscribed(server.url, token(**BOB)) as bob,  # Acme's member
            subscribed(server.url, token(**GINA)) as gina,  # Globex's admin
        ):
            # Written by this test's process: only the database carries the news.
            await ingestor.record([_llm(world.globex_key)])
            assert await gina.change() == {"accountId": str(world.globex), "kinds": ["LLM"]}
            await ingestor.record([_llm(world.dev_key, "anthropic")])
            # Bob's first news is Acme's: Globex's write never reached him.
            assert await bob.change() == {"accountId": str(world.acme), "kinds": ["LLM"]}

        async with live_socket(server.url, {"token": token(**BOB)}) as client:
            assert (await client.message())["type"] == "connection_ack"
            await client.subscribe({"accountId": str(world.globex)})
            refused = await client.message()
        assert refused["type"] in {"error", "next"}, refused
        errors: list[dict[str, Any]] = (
            refused["payload"] if refused["type"] == "error" else refused["payload"]["errors"]
        )
        assert errors[0]["extensions"]["code"] == "FORBIDDEN"


async def test_subscriptions_are_limited_per_connection_and_per_account(
    db_url: str, world: World, tmp_path: Path
) -> None:
    limits = {"CRABGLAMP_LIVE_MAX_PER_CONNECTION": "1", "CRABGLAMP_LIVE_MAX_PER_ACCOUNT": "2"}
    with serving(db_url, tmp_path, **limits) as server:
        async with subscribed(server.url, token(**BOB)) as first:
            await first.subscribe(id="2")
            second = await first.message()
            assert second["type"] == "error" and second["id"] == "2", second
            assert "limit" in second["payload"][0]["message"].lower()
            async with (
                subscribed(server.url, token(**ALICE)),
                live_socket(server.url, {"token": token(**BOB)}) as third,
            ):
                assert (await third.message())["type"] == "connection_ack"
                await third.subscribe()
                refused = await third.message()
        errors = refused["payload"]["errors"] if refused["type"] == "next" else refused["payload"]
        assert errors[0]["extensions"]["code"] == "TOO_MANY_SUBSCRIPTIONS", refused


async def test_a_write_through_one_server_reaches_a_listener_on_another(
    db_url: str, world: World, tmp_path: Path
) -> None:
    with (
        serving(db_url, tmp_path, name="writer") as writer,
        serving(db_url, tmp_path, name="listener") as listener,
    ):
        async with subscribed(listener.url, token(**ALICE)) as alice:
            await _create_key(writer.url, world.acme, "made elsewhere")
            assert await alice.change() == {"accountId": str(world.acme), "kinds": ["KEYS"]}


async def test_two_workers_tell_each_others_listeners(
    db_url: str, world: World, tmp_path: Path
) -> None:
    # One subscription per account and process: a second one is accepted only by the other
    # worker, which tells the two workers' listeners apart without asking which is which.
    limits = {"CRABGLAMP_LIVE_MAX_PER_ACCOUNT": "1"}
    with serving(db_url, tmp_path, workers=2, **limits) as server:
        async with subscribed(server.url, token(**ALICE)) as first:
            second = None
            for _ in range(100):
                async with live_socket(server.url, {"token": token(**ALICE)}) as candidate:
                    assert (await candidate.message())["type"] == "connection_ack"
                    await candidate.subscribe()
                    answer = await candidate.change_or_error()
                    if answer is None:
                        continue
                    second = candidate
                    # Writes through whichever worker takes each connection: both hear all.
                    for n in range(3):
                        await _create_key(server.url, world.acme, f"worker test {n}")
                    for heard in (first, second):
                        kinds: set[str] = set()
                        while "KEYS" not in kinds:
                            kinds |= set((await heard.change())["kinds"])
                    break
            assert second is not None, "every second subscription landed on the same worker"
