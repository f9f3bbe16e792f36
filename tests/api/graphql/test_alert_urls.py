"""A webhook URL is the receiver's credential (its path and query often hold a token): account
admins see it whole, members only its origin."""

from __future__ import annotations

import httpx

from api_support import ALICE, BOB, ROOT, World, bearer, graphql

CREATE = """mutation ($input: CreateAlertEndpointInput!) {
  createAlertEndpoint(input: $input) {
    __typename ... on AlertEndpointSecretSuccess { endpoint { url } }
  }
}"""
LIST = "query ($a: ID) { alertEndpoints(accountId: $a) { url } }"
# Loopback: nothing is sent to it here, and development accepts it as a target.
URL = "http://127.0.0.1:9/services/T0001/B0001/XXXXSECRETXXXX?token=abc"


async def test_webhook_urls_are_whole_for_admins_only(
    client: httpx.AsyncClient, world: World
) -> None:
    created = await graphql(
        client,
        CREATE,
        {"input": {"accountId": str(world.acme), "url": URL, "description": "pager"}},
        bearer(**ALICE),
    )
    answer = created["data"]["createAlertEndpoint"]
    assert answer == {"__typename": "AlertEndpointSecretSuccess", "endpoint": {"url": URL}}

    for caller, expected in (
        (ALICE, URL),  # the organisation's admin
        (ROOT, URL),  # a platform admin
        (BOB, "http://127.0.0.1:9/…"),  # a member: which receiver, not how to post to it
    ):
        body = await graphql(client, LIST, {"a": str(world.acme)}, bearer(**caller))
        assert body["data"]["alertEndpoints"] == [{"url": expected}], caller
        if expected != URL:
            assert "SECRET" not in str(body) and "token" not in str(body)
