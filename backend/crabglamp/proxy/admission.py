"""A request's way in: its body read, its key authenticated, its JSON checked, its provider
chosen, and its most possible cost reserved against the key's monthly cap (caps.py)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

import orjson

from crabglamp.key_secrets import MalformedSecret, check_format, hash_secret
from crabglamp.proxy._asgi import ClientGone, Receive, Scope
from crabglamp.proxy.estimate import estimate
from crabglamp.proxy.exchange import Exchange
from crabglamp.proxy.refusals import Refusal, bad, cap_refusal, suspended_refusal
from crabglamp.proxy.reservation import CapExceeded, KeyRefused

if TYPE_CHECKING:
    from crabglamp.proxy.runtime import Proxy


# Far deeper than any request (a structured-output schema nests a few dozen levels at most), and
# shallow enough that the streaming path's json.dumps of the payload stays far from Python's
# recursion limit.
MAX_NESTING = 128


def nests_deeper(value: object, limit: int) -> bool:
    """Whether arrays and objects nest more than `limit` levels (iterative: no recursion)."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Iterable[object] = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


async def read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise Refusal(413, "request_too_large", f"The request body exceeds {limit} bytes.")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def bearer(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            header: bytes = value
            scheme, _, token = header.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            return None
    return None


def _article(word: str) -> str:
    """ "an anthropic model", "a google model": by the sound of the provider's first letter."""
    return "an" if word[:1].lower() in "aeio" else "a"


async def admit(proxy: Proxy, exchange: Exchange, scope: Scope) -> None:
    """Authenticate, parse and price the request, then reserve its most against the key's cap."""
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
    exchange.secret_hash = hash_secret(secret)
    exchange.facts = await proxy.key_cache.facts(secret, exchange.secret_hash)
    del secret
    try:
        # orjson refuses nesting past 1,024 levels (json.loads: a RecursionError), lone
        # surrogates, NaN and Infinity, none of which a provider would take either.
        payload = orjson.loads(exchange.body)
    except orjson.JSONDecodeError:
        raise bad(
            "We could not parse the JSON body of your request.", code="invalid_json"
        ) from None
    if not isinstance(payload, dict):
        raise bad("The request body must be a JSON object.", code="invalid_json")
    if nests_deeper(payload, MAX_NESTING):
        raise bad(
            f"The JSON body of your request nests deeper than {MAX_NESTING} levels.",
            code="invalid_json",
        )
    exchange.payload = payload
    model = payload.get("model")
    if not isinstance(model, str) or not model:
        raise bad("You must provide a model parameter.", param="model")
    exchange.model = model
    provider = proxy.prices.provider_of(model)
    if provider is None:
        raise Refusal(
            404,
            "model_not_found",
            f"The model `{model}` is not in the price catalog, so its spend cannot be "
            "capped; ask an administrator to add its price.",
            param="model",
        )
    exchange.provider = provider
    allowed = exchange.facts.provider
    if allowed is not None and allowed != provider:
        raise Refusal(
            403,
            "model_not_allowed",
            f"This key is for {allowed} models; `{model}` is {_article(provider)} {provider} model.",
            param="model",
        )
    upstream = proxy.config.upstream(provider)
    if upstream is None:
        raise Refusal(
            503,
            "provider_not_configured",
            f"No upstream is configured for {provider}.",
            kind="server_error",
            retry=False,
        )
    exchange.upstream = upstream
    exchange.estimate_micros = estimate(
        exchange, proxy.prices, proxy.config.default_max_output_tokens
    )
    started = time.perf_counter()
    outcome = await proxy.caps.reserve(
        exchange.facts.key_id, exchange.secret_hash, exchange.estimate_micros, exchange.now
    )
    exchange.log["admit_ms"] = round((time.perf_counter() - started) * 1000, 3)
    if isinstance(outcome, KeyRefused):
        proxy.key_cache.forget(exchange.secret_hash)
        if outcome.code == "key_suspended":
            raise suspended_refusal(outcome.message, outcome.anomaly_id)
        raise Refusal(outcome.status, outcome.code, outcome.message)
    if isinstance(outcome, CapExceeded):
        raise cap_refusal(outcome)
    exchange.reservation = outcome
