"""The typed client generated from schema.graphql (clients/python, `just codegen`) works against a
live server, and every document it sends is valid for the current schema."""

from __future__ import annotations

import ast
import asyncio
import sys
from datetime import date
from pathlib import Path

import httpx
from graphql import build_schema, parse, validate

from api_support import ALICE, GINA, MONTH, bearer, live_server
from crabglamp.api.graphql.schema import sdl

CLIENT = Path(__file__).parents[1] / "clients" / "python"
sys.path.insert(0, str(CLIENT))

from crabglamp_client import (  # noqa: E402  (generated, outside the package path)
    CrabGlampClient,
    GraphQLClientGraphQLMultiError,
    UsageAxis,
    UsageFilter,
)


def _documents() -> list[str]:
    """The GraphQL documents the generated client sends (the gql("...") literals)."""
    tree = ast.parse((CLIENT / "crabglamp_client" / "client.py").read_text())
    return [
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and getattr(node.func, "id", None) == "gql"
        and isinstance(node.args[0], ast.Constant)
    ]


def test_every_client_document_is_valid_for_the_schema() -> None:
    schema = build_schema(sdl())
    documents = _documents()
    assert len(documents) >= 5
    for document in documents:
        assert validate(schema, parse(document)) == [], document


def test_generated_client_against_a_live_server(tmp_path: Path) -> None:
    with live_server(tmp_path) as (base, world):
        assert world is not None

        async def run() -> None:
            async with CrabGlampClient(url=f"{base}/graphql", headers=bearer(**ALICE)) as client:
                spent = (await client.usage(filter_=UsageFilter(month=MONTH))).usage
                assert (spent.from_, spent.to) == (date(2026, 10, 1), date(2026, 10, 31))
                assert isinstance(spent.llm.daily[0].date, date)
                async with httpx.AsyncClient() as plain:
                    answer = await plain.get(
                        f"{base}/api/usage", params={"month": MONTH}, headers=bearer(**ALICE)
                    )
                rest = answer.json()
                assert spent.llm.total_cents == rest["llm"]["totalCents"]
                assert spent.compute.total_cents == rest["compute"]["totalCents"]
                assert spent.voice.total_characters == rest["voice"]["totalCharacters"]

                keys = (await client.virtual_keys()).virtual_keys
                assert [k.name for k in keys] == ["dev", "prod", "quiet"]
                assert keys[0].percent_used == 25.0

                page = (
                    await client.requests(
                        date=date(2026, 10, 7), first=2, key_id=str(world.prod_key)
                    )
                ).requests
                assert page.page_info.has_next_page and len(page.edges) == 2
                following = (
                    await client.requests(
                        date=date(2026, 10, 7),
                        first=500,
                        key_id=str(world.prod_key),
                        after=page.page_info.end_cursor,
                    )
                ).requests
                ids = [e.node.id for e in page.edges + following.edges]
                assert len(ids) == len(set(ids)) == page.request_count

                invoice = (await client.invoice(month=MONTH)).invoice
                assert [line.axis for line in invoice.lines] == list(UsageAxis)
                assert invoice.total_cents == sum(line.amount_cents for line in invoice.lines)
                assert (await client.anomalies(month=MONTH)).anomalies is not None

            # Another tenant's numbers are refused through the client too.
            async with CrabGlampClient(url=f"{base}/graphql", headers=bearer(**GINA)) as client:
                try:
                    await client.virtual_keys(account_id=str(world.acme))
                except GraphQLClientGraphQLMultiError as refused:
                    assert [e.extensions for e in refused.errors] == [{"code": "FORBIDDEN"}]
                else:
                    raise AssertionError("Globex read Acme's keys")

        asyncio.run(run())
