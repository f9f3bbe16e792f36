"""The OpenAPI 3 document of the REST API (GET /api/openapi.json), written by hand.

It describes exactly what `crabglamp.api.rest` serves; tests validate it and fuzz the API from it.
By hand rather than generated (apispec, a pydantic model per answer): the handlers return plain
JSON built by `usage_json`, and a generator would need a second typed copy of that shape.
"""

from __future__ import annotations

import copy
from typing import Any, Final

_NUMBER: Final = {"type": "number"}
_COUNT: Final = {"type": "integer", "minimum": 0}
_DATE: Final = {"type": "string", "format": "date"}
_UUID: Final = {"type": "string", "format": "uuid"}
_NULLABLE_UUID: Final = {"type": "string", "format": "uuid", "nullable": True}
_NULLABLE_STRING: Final = {"type": "string", "nullable": True}


def _object(properties: dict[str, Any], description: str | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "required": list(properties),
        "properties": properties,
    }
    if description:
        schema["description"] = description
    return schema


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _list(name: str) -> dict[str, Any]:
    return {"type": "array", "items": _ref(name)}


_SCHEMAS: Final[dict[str, Any]] = {
    "Error": _object(
        {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string", "description": "Machine-readable reason."},
                    "message": {"type": "string", "description": "What went wrong, in words."},
                },
            }
        },
        "The one error shape of every endpoint.",
    ),
    "ComputeAgent": _object(
        {
            "agentId": _NULLABLE_UUID,
            "agentName": _NULLABLE_STRING,
            "runningCents": _NUMBER,
            "pausedCents": _NUMBER,
            "runningHours": _NUMBER,
            "pausedHours": _NUMBER,
            "totalCents": _NUMBER,
        },
        "An agent's VM time; agentId null for compute without an agent.",
    ),
    "PlainVm": _object(
        {
            "plainVmId": _UUID,
            "plainVmName": _NULLABLE_STRING,
            "costCents": _NUMBER,
            "hours": _NUMBER,
        }
    ),
    "ComputeDay": _object(
        {
            "date": _DATE,
            "agentCents": _NUMBER,
            "plainVmCents": _NUMBER,
            "totalCents": _NUMBER,
            "agents": _list("ComputeAgent"),
            "plainVms": _list("PlainVm"),
        }
    ),
    "LlmModel": _object(
        {
            "model": {"type": "string"},
            "provider": {"type": "string"},
            "totalCents": _NUMBER,
            "requestCount": _COUNT,
            "inputTokens": _COUNT,
            "outputTokens": _COUNT,
            "cachedInputTokens": _COUNT,
            "cacheWrite5mTokens": _COUNT,
            "cacheWrite1hTokens": _COUNT,
            "reasoningTokens": _COUNT,
            "audioInputTokens": _COUNT,
            "audioOutputTokens": _COUNT,
            "cacheSavedCents": _NUMBER,
        }
    ),
    "LlmDay": _object(
        {
            "date": _DATE,
            "totalCents": _NUMBER,
            "requestCount": _COUNT,
            "models": _list("LlmModel"),
        }
    ),
    "LlmAgent": _object(
        {
            "agentId": _NULLABLE_UUID,
            "agentName": _NULLABLE_STRING,
            "totalCents": _NUMBER,
            "requestCount": _COUNT,
        }
    ),
    "LlmKey": _object(
        {
            "keyId": _UUID,
            "keyName": {"type": "string"},
            "provider": _NULLABLE_STRING,
            "spendCapCents": {"type": "number", "nullable": True},
            "totalCents": _NUMBER,
            "requestCount": _COUNT,
        }
    ),
    "VoiceModel": _object(
        {"voiceModel": {"type": "string"}, "totalCents": _NUMBER, "characters": _COUNT}
    ),
    "VoiceDay": _object(
        {
            "date": _DATE,
            "totalCents": _NUMBER,
            "characters": _COUNT,
            "models": _list("VoiceModel"),
        }
    ),
    "VoiceAgent": _object(
        {
            "agentId": _NULLABLE_UUID,
            "agentName": _NULLABLE_STRING,
            "totalCents": _NUMBER,
            "characters": _COUNT,
        }
    ),
    "Usage": _object(
        {
            "compute": _object(
                {
                    "totalCents": _NUMBER,
                    "daily": _list("ComputeDay"),
                    "agents": _list("ComputeAgent"),
                    "plainVms": _list("PlainVm"),
                }
            ),
            "llm": _object(
                {
                    "totalCents": _NUMBER,
                    "daily": _list("LlmDay"),
                    "agents": _list("LlmAgent"),
                    "models": _list("LlmModel"),
                    "keys": _list("LlmKey"),
                    "hasKeys": {"type": "boolean"},
                }
            ),
            "voice": _object(
                {
                    "totalCents": _NUMBER,
                    "totalCharacters": _COUNT,
                    "daily": _list("VoiceDay"),
                    "agents": _list("VoiceAgent"),
                    "models": _list("VoiceModel"),
                    "hasVoiceUsage": {"type": "boolean"},
                }
            ),
        },
        "Spend on three independent axes. Every *Cents is continuous (sub-cent precision); "
        "daily arrays hold one entry per day of the period.",
    ),
    "ImportReport": _object(
        {
            "committed": {"type": "boolean"},
            "lines": _COUNT,
            "refusedLines": _COUNT,
            "created": {"type": "object", "additionalProperties": _COUNT},
            "updated": {"type": "object", "additionalProperties": _COUNT},
            "unchanged": {"type": "object", "additionalProperties": _COUNT},
            "inserted": _COUNT,
            "duplicates": _COUNT,
            "closedIntervals": _COUNT,
            "problems": {"type": "array", "items": _ref("Problem")},
        },
        "What an import wrote: entities per type, events new and already stored.",
    ),
    "Problem": _object(
        {
            "line": {"type": "integer", "minimum": 1},
            "field": _NULLABLE_STRING,
            "reason": {"type": "string"},
        },
        "Why a line of a bundle is refused (1-based line number, the bundle's field name).",
    ),
    "BundleRefused": {
        "type": "object",
        "required": ["error", "report"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message", "problems"],
                "properties": {
                    "code": {"type": "string", "enum": ["invalid_bundle"]},
                    "message": {"type": "string"},
                    "problems": {"type": "array", "items": _ref("Problem")},
                },
            },
            "report": _ref("ImportReport"),
        },
        "description": "Nothing was written; every bad line is listed.",
    },
}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": _ref("Error")}},
    }


_USAGE_PARAMETERS: Final = [
    _query(
        "month",
        {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"},
        "A UTC month, YYYY-MM (default: the current one). Not with from/to.",
    ),
    _query("from", _DATE, "First day of a range (inclusive), with to; at most 366 days."),
    _query("to", _DATE, "Last day of a range (inclusive), with from."),
    _query(
        "accountId",
        _UUID,
        "The account (default: the active organisation's account, else the personal one).",
    ),
    _query("agentId", _UUID, "Only this agent (all three axes)."),
    _query("keyId", _UUID, "Only this virtual key (LLM axis)."),
    _query("provider", {"type": "string"}, "Only this provider (LLM axis)."),
    _query("model", {"type": "string"}, "Only this model (LLM axis)."),
    _query("voiceModel", {"type": "string"}, "Only this voice model (voice axis)."),
    _query(
        "admin",
        {"type": "string", "enum": ["0", "1", "true", "false"]},
        "1: platform-wide (platform admins only; anyone else gets 403).",
    ),
]

_DOCUMENT: Final[dict[str, Any]] = {
    "openapi": "3.0.3",
    "info": {
        "title": "CrabGlamp Usage",
        "version": "1.0.0",
        "description": "Exact AI spend: compute, LLM and voice usage of the accounts a Clerk "
        "session may read. GraphQL at /graphql serves the same numbers.",
    },
    "servers": [{"url": "/"}],
    "security": [{"bearer": []}, {"session": []}],
    "paths": {
        "/api/usage": {
            "get": {
                "operationId": "getUsage",
                "summary": "Usage of a period on the three axes",
                "description": "model, provider and keyId narrow the LLM axis only, voiceModel "
                "the voice axis only, agentId all three. Unknown parameters are ignored.",
                "parameters": _USAGE_PARAMETERS,
                "responses": {
                    "200": {
                        "description": "The usage.",
                        "content": {"application/json": {"schema": _ref("Usage")}},
                    },
                    "400": _error("A malformed parameter, named in the message."),
                    "401": _error("No valid session token."),
                    "403": _error(
                        "An account, agent or key the caller may not read, or admin=1 "
                        "without the platform admin role."
                    ),
                },
            }
        },
        "/api/events": {
            "post": {
                "operationId": "postEvents",
                "summary": "Record a usage bundle (JSON Lines)",
                "description": "The lines of the usage bundle, for accounts the caller administers. "
                "Validated whole first: one bad line and nothing is written. Idempotent: an "
                "event id already stored is counted as a duplicate.",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/x-ndjson": {
                            "schema": {"type": "string"},
                            "example": '{"type":"llm","id":"evt-1","ts":"2026-11-03T12:00:00Z",'
                            '"keyId":"…","provider":"openai","model":"gpt-4o-mini",'
                            '"inputTokens":1200,"outputTokens":300}\n',
                        }
                    },
                },
                "responses": {
                    "200": {
                        "description": "Written.",
                        "content": {"application/json": {"schema": _ref("ImportReport")}},
                    },
                    "400": {
                        "description": "Invalid lines (nothing written), or an empty body.",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "anyOf": [_ref("BundleRefused"), _ref("Error")],
                                }
                            }
                        },
                    },
                    "401": _error("No valid session token."),
                    "403": _error(
                        "A line for an account the caller does not administer, prices from "
                        "someone other than a platform admin, a caller who administers no "
                        "account (`forbidden`), or a request signed in by the __session cookie "
                        "from another origin (`cross_site_request`)."
                    ),
                    "413": _error("The body is larger than a bundle posted at once (32 MiB)."),
                    "415": _error(
                        "Not a JSON Lines body; signed in by the cookie, only "
                        "application/x-ndjson, application/jsonl or application/json."
                    ),
                },
            }
        },
        "/api/openapi.json": {
            "get": {
                "operationId": "getOpenApi",
                "summary": "This document",
                "security": [],
                "responses": {
                    "200": {
                        "description": "The OpenAPI document.",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
    },
    "components": {
        "securitySchemes": {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
                "description": "A Clerk session token (v2).",
            },
            "session": {
                "type": "apiKey",
                "in": "cookie",
                "name": "__session",
                "description": "Clerk's session cookie.",
            },
        },
        "schemas": _SCHEMAS,
    },
}


def openapi_document() -> dict[str, Any]:
    return copy.deepcopy(_DOCUMENT)
