"""The REST API: GET /api/usage (CONTRACTS.md §2.2), POST /api/events (§2.3), GET /api/openapi.json.

Every error is `{"error": {"code", "message"}}`: 400 names the malformed parameter, 401 is
unauthenticated, 403 not allowed. The numbers come from the usage service, through the same
filter resolution as GraphQL (`crabglamp.usage.filter`).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable
from typing import Any, Final

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from crabglamp import bundle
from crabglamp.access import AccessDenied, Caller, administers, administers_any
from crabglamp.api.auth import AuthError, auth_error_response, error_response
from crabglamp.api.csrf import cookie_write_refusal, media_type
from crabglamp.api.openapi import openapi_document
from crabglamp.api.services import services
from crabglamp.db import read_transaction
from crabglamp.db.tables import table_of
from crabglamp.ingest.records import ComputeRecord, LlmRecord, VoiceRecord
from crabglamp.models import VirtualKey
from crabglamp.money import micros_to_cents
from crabglamp.periods import US_PER_HOUR
from crabglamp.prices import UnitPrice
from crabglamp.usage.filter import (
    CallerScope,
    FilterError,
    UsageFilter,
    parse_day,
    parse_uuid,
    resolve,
)
from crabglamp.usage.results import (
    ComputeAgentUsage,
    LlmModelUsage,
    PlainVmUsage,
    Usage,
    VoiceModelUsage,
)
from crabglamp.usage.service import usage

# A bundle posted at once; larger imports go through `crabglamp import`.
MAX_EVENTS_BODY: Final = 32 * 1024 * 1024
# Bearer clients (scripts, curl) may send JSON Lines as text/plain or without a content type.
BUNDLE_MEDIA_TYPES: Final = frozenset(
    {"application/x-ndjson", "application/jsonl", "application/json", "text/plain", ""}
)
# A browser signed in by the cookie: only what no HTML form and no no-cors fetch can send.
COOKIE_BUNDLE_MEDIA_TYPES: Final = frozenset(
    {"application/x-ndjson", "application/jsonl", "application/json"}
)
# Bundles above this are parsed on a thread: 64 KiB (some 300 lines) parse in under 10 ms,
# which the event loop can spare; anything larger would hold it up noticeably.
PARSE_ON_LOOP_BYTES: Final = 64 * 1024
_OWNED: Final = (
    bundle.MemberEntry,
    bundle.AgentEntry,
    bundle.PlainVmEntry,
    bundle.KeyEntry,
    VoiceRecord,
    ComputeRecord,
)
_TRUE: Final = frozenset({"1", "true"})
_FALSE: Final = frozenset({"0", "false"})


def _bad(parameter: str, message: str) -> JSONResponse:
    return error_response(400, "invalid_parameter", f"{parameter}: {message}")


def _param(request: Request, name: str) -> str | None:
    # An empty value (`model=`) is what a form sends for "any": treat it as absent.
    value = request.query_params.get(name)
    return value if value else None


def usage_filter_of(request: Request) -> UsageFilter:
    """The query parameters of GET /api/usage; unknown parameters are ignored."""
    admin_raw = (_param(request, "admin") or "0").lower()
    if admin_raw not in _TRUE | _FALSE:
        raise FilterError("admin", f"admin must be 1 or 0, got {admin_raw!r}")
    account = _param(request, "accountId")
    agent = _param(request, "agentId")
    key = _param(request, "keyId")
    date_from = _param(request, "from")
    date_to = _param(request, "to")
    return UsageFilter(
        month=_param(request, "month"),
        date_from=parse_day(date_from, "from") if date_from else None,
        date_to=parse_day(date_to, "to") if date_to else None,
        account_id=parse_uuid(account, "accountId") if account else None,
        agent_id=parse_uuid(agent, "agentId") if agent else None,
        key_ids=(parse_uuid(key, "keyId"),) if key else None,
        provider=_param(request, "provider"),
        model=_param(request, "model"),
        voice_model=_param(request, "voiceModel"),
        admin=admin_raw in _TRUE,
    )


def _authenticate(request: Request) -> Caller:
    return services(request).authenticator.authenticate(request)


async def get_usage(request: Request) -> Response:
    try:
        caller = _authenticate(request)
        wanted = usage_filter_of(request)

        async def read(conn: AsyncConnection) -> Usage:
            return await usage(conn, await resolve(conn, CallerScope(caller), wanted))

        spent = await services(request).reads.run(read)
    except AuthError as exc:
        return auth_error_response(exc)
    except FilterError as exc:
        return _bad(exc.parameter, exc.message)
    except AccessDenied as exc:
        return error_response(403, "forbidden", str(exc))
    return UsageResponse(usage_json(spent))


class UsageResponse(JSONResponse):
    """Starlette's JSONResponse, encoded by orjson: the usage of a month is the largest answer.

    The same bytes (compact, UTF-8) but for floats under 1e-4 cents, which orjson writes
    `0.00001` and `1e-6` where Python writes `1e-05` and `1e-06`: the same numbers. The cents
    are never NaN (json.dumps would refuse it, orjson writes null).
    """

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


# The JSON of CONTRACTS.md §2.2: money as continuous cents, durations in hours


# Called for every number of a month's answer (thousands): the function itself, not a wrapper.
_cents = micros_to_cents


def _hours(microseconds: int) -> float:
    return microseconds / US_PER_HOUR


def _id(value: uuid.UUID | None) -> str | None:
    return None if value is None else str(value)


def _compute_agent(a: ComputeAgentUsage) -> dict[str, Any]:
    return {
        "agentId": _id(a.agent_id),
        "agentName": a.agent_name,
        "runningCents": _cents(a.running_micros),
        "pausedCents": _cents(a.paused_micros),
        "runningHours": _hours(a.running_us),
        "pausedHours": _hours(a.paused_us),
        "totalCents": _cents(a.total_micros),
    }


def _plain_vm(v: PlainVmUsage) -> dict[str, Any]:
    return {
        "plainVmId": str(v.plain_vm_id),
        "plainVmName": v.plain_vm_name,
        "costCents": _cents(v.cost_micros),
        "hours": _hours(v.duration_us),
    }


def _llm_model(m: LlmModelUsage) -> dict[str, Any]:
    return {
        "model": m.model,
        "provider": m.provider,
        "totalCents": _cents(m.total_micros),
        "requestCount": m.request_count,
        "inputTokens": m.input_tokens,
        "outputTokens": m.output_tokens,
        # Parts of the totals above (added; the totals keep their meaning).
        "cachedInputTokens": m.cached_input_tokens,
        "cacheWrite5mTokens": m.cache_write_5m_tokens,
        "cacheWrite1hTokens": m.cache_write_1h_tokens,
        "reasoningTokens": m.reasoning_tokens,
        "audioInputTokens": m.audio_input_tokens,
        "audioOutputTokens": m.audio_output_tokens,
        "cacheSavedCents": _cents(m.cache_saved_micros),
    }


def _voice_model(m: VoiceModelUsage) -> dict[str, Any]:
    return {
        "voiceModel": m.voice_model,
        "totalCents": _cents(m.total_micros),
        "characters": m.characters,
    }


def usage_json(spent: Usage) -> dict[str, Any]:
    compute, llm, voice = spent.compute, spent.llm, spent.voice
    return {
        "compute": {
            "totalCents": _cents(compute.total_micros),
            "daily": [
                {
                    "date": d.date.isoformat(),
                    "agentCents": _cents(d.agent_micros),
                    "plainVmCents": _cents(d.plain_vm_micros),
                    "totalCents": _cents(d.total_micros),
                    "agents": [_compute_agent(a) for a in d.agents],
                    "plainVms": [_plain_vm(v) for v in d.plain_vms],
                }
                for d in compute.daily
            ],
            "agents": [_compute_agent(a) for a in compute.agents],
            "plainVms": [_plain_vm(v) for v in compute.plain_vms],
        },
        "llm": {
            "totalCents": _cents(llm.total_micros),
            "daily": [
                {
                    "date": d.date.isoformat(),
                    "totalCents": _cents(d.total_micros),
                    "requestCount": d.request_count,
                    "models": [_llm_model(m) for m in d.models],
                }
                for d in llm.daily
            ],
            "agents": [
                {
                    "agentId": _id(a.agent_id),
                    "agentName": a.agent_name,
                    "totalCents": _cents(a.total_micros),
                    "requestCount": a.request_count,
                }
                for a in llm.agents
            ],
            "models": [_llm_model(m) for m in llm.models],
            "keys": [
                {
                    "keyId": str(k.key_id),
                    "keyName": k.key_name,
                    "provider": k.provider,
                    "spendCapCents": None
                    if k.spend_cap_micros is None
                    else _cents(k.spend_cap_micros),
                    "totalCents": _cents(k.total_micros),
                    "requestCount": k.request_count,
                }
                for k in llm.keys
            ],
            "hasKeys": llm.has_keys,
        },
        "voice": {
            "totalCents": _cents(voice.total_micros),
            "totalCharacters": voice.total_characters,
            "daily": [
                {
                    "date": d.date.isoformat(),
                    "totalCents": _cents(d.total_micros),
                    "characters": d.characters,
                    "models": [_voice_model(m) for m in d.models],
                }
                for d in voice.daily
            ],
            "agents": [
                {
                    "agentId": _id(a.agent_id),
                    "agentName": a.agent_name,
                    "totalCents": _cents(a.total_micros),
                    "characters": a.characters,
                }
                for a in voice.agents
            ],
            "models": [_voice_model(m) for m in voice.models],
            "hasVoiceUsage": voice.has_voice_usage,
        },
    }


# POST /api/events


def _accounts_named(lines: Iterable[bundle.BundleLine]) -> tuple[set[uuid.UUID], set[uuid.UUID]]:
    """Accounts a bundle writes to directly, and the keys of its llm lines (their account is
    the key's)."""
    accounts: set[uuid.UUID] = set()
    llm_keys: set[uuid.UUID] = set()
    for line in lines:
        item = line.item
        if isinstance(item, bundle.AccountEntry):
            accounts.add(item.id)
        elif isinstance(item, LlmRecord):
            llm_keys.add(item.key_id)
        elif isinstance(item, _OWNED):
            accounts.add(item.account_id)
    return accounts, llm_keys


async def _forbidden_accounts(
    conn: AsyncConnection, caller: Caller, parsed: bundle.ParsedBundle
) -> tuple[set[uuid.UUID], list[str]]:
    """The accounts the bundle touches that the caller administers, and why it may not."""
    accounts, llm_keys = _accounts_named(parsed.lines)
    defined_keys = {
        line.item.id: line.item.account_id
        for line in parsed.lines
        if isinstance(line.item, bundle.KeyEntry)
    }
    unknown = sorted(llm_keys - defined_keys.keys())
    if unknown:
        table = table_of(VirtualKey)
        rows = await conn.execute(
            select(table.c.id, table.c.account_id).where(table.c.id.in_(unknown))
        )
        defined_keys.update({row[0]: row[1] for row in rows})
    accounts |= {defined_keys[k] for k in llm_keys if k in defined_keys}
    reasons: list[str] = []
    if any(isinstance(line.item, UnitPrice) for line in parsed.lines):
        reasons.append("the price catalog is platform-wide: only a platform admin may send prices")
    allowed = set()
    for account_id in sorted(accounts):
        if await administers(conn, caller, account_id):
            allowed.add(account_id)
        else:
            reasons.append(f"you do not administer account {account_id}")
    return allowed, reasons


async def post_events(request: Request) -> Response:
    # Cheapest first: headers, then who the caller is, then the body, and the expensive parse
    # only for a caller who may write somewhere.
    svc = services(request)
    try:
        caller = _authenticate(request)
    except AuthError as exc:
        return auth_error_response(exc)
    refused = cookie_write_refusal(
        request, svc.authenticator.public_origins, COOKIE_BUNDLE_MEDIA_TYPES
    )
    if refused is not None:
        return error_response(refused.status, refused.code, refused.message)
    if media_type(request) not in BUNDLE_MEDIA_TYPES:
        return error_response(
            415, "unsupported_media_type", "send the bundle as application/x-ndjson (JSON Lines)"
        )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_EVENTS_BODY:
        return _too_large()
    if not caller.is_platform_admin:
        async with read_transaction(svc.engine) as conn:
            may_write = await administers_any(conn, caller)
        if not may_write:
            return error_response(
                403, "forbidden", "you administer no account: there is nothing you may write"
            )
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_EVENTS_BODY:
            return _too_large()
    # A large bundle takes the parser hundreds of milliseconds: on a thread, the event loop
    # goes on serving everything else (health checks, the proxy) meanwhile.
    if len(body) > PARSE_ON_LOOP_BYTES:
        parsed = await asyncio.to_thread(_parse, bytes(body))
    else:
        parsed = _parse(bytes(body))
    del body
    if parsed.line_count == 0:
        return error_response(400, "empty_bundle", "body: the bundle holds no lines")
    allowed: set[uuid.UUID] | None = None
    if not caller.is_platform_admin:
        async with read_transaction(svc.engine) as conn:
            allowed, reasons = await _forbidden_accounts(conn, caller, parsed)
        if reasons:
            return error_response(403, "forbidden", "; ".join(reasons[:10]))
    report = await bundle.apply_bundle(
        svc.engine,
        svc.ingestor,
        parsed,
        skip_invalid=False,
        allowed_account_ids=allowed,
        caller=caller,  # binding an account to an organisation is checked and audited
    )
    if not report.committed:
        problems = report.to_json()["problems"]
        return JSONResponse(
            {
                "error": {
                    "code": "invalid_bundle",
                    "message": f"nothing written: {report.summary()}",
                    "problems": problems,
                },
                "report": report.to_json(),
            },
            status_code=400,
        )
    return JSONResponse(report.to_json())


def _parse(body: bytes) -> bundle.ParsedBundle:
    return bundle.parse_bundle(body.split(b"\n"))


def _too_large() -> JSONResponse:
    return error_response(
        413,
        "payload_too_large",
        f"body: a bundle posted at once is at most {MAX_EVENTS_BODY // (1024 * 1024)} MiB; "
        "use `crabglamp import` for more",
    )


async def get_openapi(_request: Request) -> Response:
    return JSONResponse(openapi_document())


_ANY_METHOD: Final = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_ROUTES: Final = {"/api/usage": "GET", "/api/events": "POST", "/api/openapi.json": "GET"}


async def unknown_route(request: Request) -> Response:
    """Whatever `/api/...` the routes above did not match, in the REST error shape."""
    path = request.url.path
    allowed = _ROUTES.get(path)
    if allowed is not None:
        response = error_response(
            405, "method_not_allowed", f"{request.method} is not supported on {path}; use {allowed}"
        )
        response.headers["Allow"] = allowed
        return response
    return error_response(
        404,
        "not_found",
        f"no such route: {request.method} {path} (see GET /api/openapi.json for the API)",
    )


def rest_routes() -> list[BaseRoute]:
    return [
        Route("/api/usage", get_usage, methods=["GET"]),
        Route("/api/events", post_events, methods=["POST"]),
        Route("/api/openapi.json", get_openapi, methods=["GET"]),
        # Last: any other /api path, in any method (a function route is GET-only unless told).
        Route("/api/{rest:path}", unknown_route, methods=list(_ANY_METHOD)),
    ]
