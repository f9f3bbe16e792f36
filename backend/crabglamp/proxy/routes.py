"""The proxy's routes: the one module of the proxy that knows the web framework.

Besides the metered routes: `GET /v1/models` lists the models a key may use, in OpenAI's list
shape, and any other `/v1/...` URL is refused in OpenAI's error shape, as OpenAI does.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, time

from starlette.routing import BaseRoute, Route

from crabglamp.key_secrets import MalformedSecret, check_format, hash_secret
from crabglamp.proxy._asgi import Receive, Scope, Send, send_whole
from crabglamp.proxy.admission import bearer
from crabglamp.proxy.exchange import ROUTES
from crabglamp.proxy.metrics import Metrics, MetricsEndpoint
from crabglamp.proxy.refusals import Refusal, send_refusal
from crabglamp.proxy.runtime import Proxy


class ProxyEndpoint:
    def __init__(self, route: str, slot: ProxySlot) -> None:
        self.route = route
        self.slot = slot

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        proxy = self.slot.proxy
        if proxy is None:
            await send_refusal(send, _unavailable(), "")
            return
        await proxy.handle(self.route, scope, receive, send)


class ProxySlot:
    """The running proxy: the routes exist before the app's lifespan starts it, so they hold this
    slot, which the lifespan fills in and empties. `metered` are the endpoints of the metered
    routes by path, POST only: the app may call them without routing (app.py)."""

    def __init__(self) -> None:
        self.proxy: Proxy | None = None
        self.metered = {path: ProxyEndpoint(route, self) for route, path in ROUTES.items()}


def _request_id() -> str:
    return f"req_{uuid.uuid4().hex}"


def _unavailable() -> Refusal:
    return Refusal(503, "proxy_unavailable", "The proxy is not running.", kind="server_error")


async def _key_provider(proxy: Proxy, scope: Scope) -> str | None:
    """The provider the request's key is bound to (None: any), or a Refusal raised as the
    metered routes raise it: the same words for a missing, malformed, unknown or revoked key."""
    secret = bearer(scope)
    if secret is None:
        raise Refusal(
            401,
            "invalid_api_key",
            "You didn't provide an API key. Send your CrabGlamp virtual key as "
            "'Authorization: Bearer cg_live_…'.",
        )
    try:
        check_format(secret)
    except MalformedSecret as exc:
        raise Refusal(401, "invalid_api_key", f"Incorrect API key provided: {exc}.") from None
    facts = await proxy.key_cache.facts(secret, hash_secret(secret))
    return facts.provider


def models_for(proxy: Proxy, provider: str | None) -> list[dict[str, object]]:
    """The models a key may send: priced (an override, or the maintained list: so its spend can
    be capped), of its provider, and with an upstream configured for that provider. OpenAI's
    model objects, by id."""
    first_priced: dict[str, tuple[str, datetime]] = {}
    for price in proxy.prices.prices:
        if provider is not None and price.provider != provider:
            continue
        if proxy.config.upstream(price.provider) is None:
            continue
        since = datetime.combine(price.valid_from, time(), UTC)
        known = first_priced.get(price.model)
        if known is None or since < known[1]:
            first_priced[price.model] = (price.provider, since)
    # The maintained list's models (never deprecated ones), where no override names them: dated
    # 0, as the list carries no date a model was first priced.
    listed = datetime.fromtimestamp(0, UTC)
    for owner, model in proxy.prices.listed():
        if provider is not None and owner != provider:
            continue
        if model not in first_priced and proxy.config.upstream(owner) is not None:
            first_priced[model] = (owner, listed)
    return [
        {"id": model, "object": "model", "created": int(since.timestamp()), "owned_by": owner}
        for model, (owner, since) in sorted(first_priced.items())
    ]


class ModelsEndpoint:
    """`GET /v1/models`: what OpenAI's SDK calls `client.models.list()`."""

    def __init__(self, slot: ProxySlot) -> None:
        self.slot = slot

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = _request_id()
        proxy = self.slot.proxy
        try:
            if proxy is None:
                raise _unavailable()
            provider = await _key_provider(proxy, scope)
        except Refusal as refusal:
            await send_refusal(send, refusal, request_id)
            return
        body = json.dumps({"object": "list", "data": models_for(proxy, provider)}).encode()
        await send_whole(send, 200, body, "application/json", request_id)


class UnknownUrl:
    """Any other `/v1/...`: OpenAI's own answer to a URL it does not serve, in its shape. (A
    class: Starlette would call a plain function with a Request.)"""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _unknown_url(scope, send)


async def _unknown_url(scope: Scope, send: Send) -> None:
    method = scope["method"]
    path = scope["path"]
    if path in ROUTES.values() or path == "/v1/models":
        refusal = Refusal(
            405,
            "method_not_allowed",
            f"{method} is not supported on {path}; use "
            f"{'GET' if path == '/v1/models' else 'POST'}.",
        )
    else:
        refusal = Refusal(
            404,
            "unknown_url",
            f"Unknown request URL: {method} {path}. This proxy serves POST "
            f"{', '.join(ROUTES.values())} and GET /v1/models.",
        )
    await send_refusal(send, refusal, _request_id())


def proxy_routes(
    slot: ProxySlot, metrics_token: str | None = None, production: bool = False
) -> list[BaseRoute]:
    """`metrics_token`: what a scrape of /metrics must send as its bearer token; in
    `production` without one, /metrics is closed."""

    def find_metrics(_scope: Scope) -> Metrics | None:
        return slot.proxy.metrics if slot.proxy is not None else None

    return [
        *(Route(path, endpoint, methods=["POST"]) for path, endpoint in slot.metered.items()),
        Route("/v1/models", ModelsEndpoint(slot), methods=["GET"]),
        Route(
            "/metrics",
            MetricsEndpoint(find_metrics, metrics_token, closed=production),
            methods=["GET"],
        ),
        # Last of the /v1 routes: whatever they did not match, in any method.
        Route("/v1/{rest:path}", UnknownUrl()),
    ]
