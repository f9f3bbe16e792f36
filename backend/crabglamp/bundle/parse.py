"""Parsing a bundle, which needs no database: every line is read and checked on its own, and each
defect becomes a line-numbered `Problem`."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from crabglamp.bundle._fields import (
    Bad,
    as_cents,
    as_count,
    as_day,
    as_flag,
    as_moment,
    as_text,
    as_uuid,
    json_kind,
    one_of,
)
from crabglamp.bundle.lines import (
    ENTITY_TYPES,
    AccountEntry,
    AgentEntry,
    BundleLine,
    Item,
    KeyEntry,
    MemberEntry,
    ParsedBundle,
    PlainVmEntry,
    Problem,
)
from crabglamp.ingest._validation import moment_problem
from crabglamp.ingest.records import ComputeRecord, LlmRecord, VoiceRecord
from crabglamp.periods import utcnow
from crabglamp.prices import UnitPrice

_Converter = Callable[[object], object]
_REQUIRED, _OPTIONAL = True, False

# Per type: field → (conversion, required). Optional fields may be absent or null.
_SCHEMAS: Final[dict[str, dict[str, tuple[_Converter, bool]]]] = {
    "account": {
        "id": (as_uuid, _REQUIRED),
        "name": (as_text, _REQUIRED),
        "clerkOrgId": (as_text, _OPTIONAL),
        "ownerUserId": (as_text, _OPTIONAL),
    },
    "member": {
        "accountId": (as_uuid, _REQUIRED),
        "userId": (as_text, _REQUIRED),
        "role": (one_of("admin", "member"), _REQUIRED),
    },
    "agent": {
        "id": (as_uuid, _REQUIRED),
        "accountId": (as_uuid, _REQUIRED),
        "name": (as_text, _REQUIRED),
    },
    "plainVm": {
        "id": (as_uuid, _REQUIRED),
        "accountId": (as_uuid, _REQUIRED),
        "name": (as_text, _REQUIRED),
        "centsPerHour": (as_cents, _REQUIRED),
    },
    "key": {
        "id": (as_uuid, _REQUIRED),
        "accountId": (as_uuid, _REQUIRED),
        "name": (as_text, _REQUIRED),
        "provider": (as_text, _OPTIONAL),
        "agentId": (as_uuid, _OPTIONAL),
        "spendCapCents": (as_cents, _OPTIONAL),  # null: uncapped
    },
    "llm": {
        "id": (as_text, _REQUIRED),
        "ts": (as_moment, _REQUIRED),
        "keyId": (as_uuid, _REQUIRED),
        "agentId": (as_uuid, _OPTIONAL),
        "provider": (as_text, _REQUIRED),
        "model": (as_text, _REQUIRED),
        "inputTokens": (as_count, _REQUIRED),
        "outputTokens": (as_count, _REQUIRED),
        "costCents": (as_cents, _OPTIONAL),
        "status": (one_of("ok", "error"), _OPTIONAL),
        # Parts of the totals (docs/how-requests-are-priced.md); absent means none.
        "cachedInputTokens": (as_count, _OPTIONAL),
        "cacheWrite5mTokens": (as_count, _OPTIONAL),
        "cacheWrite1hTokens": (as_count, _OPTIONAL),
        "reasoningTokens": (as_count, _OPTIONAL),
        "audioInputTokens": (as_count, _OPTIONAL),
        "audioOutputTokens": (as_count, _OPTIONAL),
        "serviceTier": (one_of("default", "flex", "priority", "batch", "scale"), _OPTIONAL),
        "estimated": (as_flag, _OPTIONAL),
    },
    "voice": {
        "id": (as_text, _REQUIRED),
        "ts": (as_moment, _REQUIRED),
        "accountId": (as_uuid, _REQUIRED),
        "agentId": (as_uuid, _OPTIONAL),
        "keyId": (as_uuid, _OPTIONAL),
        "voiceModel": (as_text, _REQUIRED),
        "characters": (as_count, _REQUIRED),
        "costCents": (as_cents, _OPTIONAL),
        "status": (one_of("ok", "error"), _OPTIONAL),
    },
    "compute": {
        "id": (as_text, _REQUIRED),
        "accountId": (as_uuid, _REQUIRED),
        "agentId": (as_uuid, _OPTIONAL),
        "plainVmId": (as_uuid, _OPTIONAL),
        "state": (one_of("running", "paused"), _REQUIRED),
        "start": (as_moment, _REQUIRED),
        "end": (as_moment, _OPTIONAL),  # null: still running, accrues until now
        "centsPerHour": (as_cents, _REQUIRED),
    },
    "price": {
        "provider": (as_text, _REQUIRED),
        "model": (as_text, _REQUIRED),
        "kind": (one_of("llm", "embedding", "voice"), _REQUIRED),
        "validFrom": (as_day, _REQUIRED),
        "inputCentsPerMTok": (as_cents, _OPTIONAL),
        "outputCentsPerMTok": (as_cents, _OPTIONAL),
        "centsPerMChar": (as_cents, _OPTIONAL),
        # An override's cache rates; absent: those tokens pay the input rate.
        "cacheReadCentsPerMTok": (as_cents, _OPTIONAL),
        "cacheWrite5mCentsPerMTok": (as_cents, _OPTIONAL),
        "cacheWrite1hCentsPerMTok": (as_cents, _OPTIONAL),
    },
}
_PRICE_FIELDS: Final = {
    "llm": ("inputCentsPerMTok", "outputCentsPerMTok"),
    "embedding": ("inputCentsPerMTok",),
    "voice": ("centsPerMChar",),
}


_MOMENTS: Final = {"llm": ("ts",), "voice": ("ts",), "compute": ("start", "end")}


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise _DuplicateKey(key)
        found[key] = value
    return found


def _no_constant(name: str) -> None:
    raise Bad(f"{name} is not a number JSON allows")


def _cross_checks(kind: str, v: Mapping[str, Any], now: datetime) -> list[tuple[str, str]]:
    problems = []
    # The Ingestor refuses these too; said here, the report names the field.
    for name in _MOMENTS.get(kind, ()):
        moment = v.get(name)
        problem = moment_problem(moment, now) if isinstance(moment, datetime) else None
        if problem:
            problems.append((name, problem))
    if kind == "compute":
        start, end = v.get("start"), v.get("end")
        if isinstance(start, datetime) and isinstance(end, datetime) and end < start:
            problems.append(("end", f"is before start ({end.isoformat()} < {start.isoformat()})"))
        if v.get("agentId") is not None and v.get("plainVmId") is not None:
            # Usage would count it under the VM only: the agent's hours would vanish.
            problems.append(("plainVmId", "an interval is an agent's or a plain VM's, not both"))
    if kind == "llm":
        problems += _token_checks(v)
    if kind == "price" and isinstance(v.get("kind"), str):
        needed = _PRICE_FIELDS[v["kind"]]
        for name in ("inputCentsPerMTok", "outputCentsPerMTok", "centsPerMChar"):
            if name in needed and v.get(name) is None:
                problems.append((name, f"missing (a {v['kind']} price needs it)"))
            elif name not in needed and v.get(name):
                problems.append((name, f"does not apply to a {v['kind']} price"))
    return problems


_INPUT_PARTS: Final = ("cachedInputTokens", "cacheWrite5mTokens", "cacheWrite1hTokens")
_OUTPUT_PARTS: Final = ("reasoningTokens", "audioOutputTokens")


def _token_checks(v: Mapping[str, Any]) -> list[tuple[str, str]]:
    """No category larger than its total (prices.token_problem, said per field)."""
    inputs, outputs = v.get("inputTokens"), v.get("outputTokens")
    problems = []
    if isinstance(inputs, int):
        cache = sum(v.get(name) or 0 for name in _INPUT_PARTS)
        if cache > inputs:
            name = next(n for n in _INPUT_PARTS if v.get(n))
            problems.append(
                (name, f"cached and cache-write tokens ({cache}) exceed inputTokens ({inputs})")
            )
        if (v.get("audioInputTokens") or 0) > inputs:
            problems.append(("audioInputTokens", f"exceeds inputTokens ({inputs})"))
    if isinstance(outputs, int):
        parts = sum(v.get(name) or 0 for name in _OUTPUT_PARTS)
        if parts > outputs:
            name = next(n for n in _OUTPUT_PARTS if v.get(n))
            problems.append(
                (
                    name,
                    f"reasoning and audio output tokens ({parts}) exceed outputTokens ({outputs})",
                )
            )
    return problems


def _build(kind: str, v: Mapping[str, Any]) -> Item:
    if kind == "account":
        return AccountEntry(v["id"], v["name"], v["clerkOrgId"], v["ownerUserId"])
    if kind == "member":
        return MemberEntry(v["accountId"], v["userId"], v["role"])
    if kind == "agent":
        return AgentEntry(v["id"], v["accountId"], v["name"])
    if kind == "plainVm":
        return PlainVmEntry(v["id"], v["accountId"], v["name"], v["centsPerHour"])
    if kind == "key":
        return KeyEntry(
            v["id"], v["accountId"], v["name"], v["provider"], v["agentId"], v["spendCapCents"]
        )
    if kind == "llm":
        return LlmRecord(
            id=v["id"],
            ts=v["ts"],
            key_id=v["keyId"],
            provider=v["provider"],
            model=v["model"],
            input_tokens=v["inputTokens"],
            output_tokens=v["outputTokens"],
            cost_micros=v["costCents"],
            agent_id=v["agentId"],
            status=v["status"] or "ok",
            cached_input_tokens=v["cachedInputTokens"] or 0,
            cache_write_5m_tokens=v["cacheWrite5mTokens"] or 0,
            cache_write_1h_tokens=v["cacheWrite1hTokens"] or 0,
            reasoning_tokens=v["reasoningTokens"] or 0,
            audio_input_tokens=v["audioInputTokens"] or 0,
            audio_output_tokens=v["audioOutputTokens"] or 0,
            service_tier=v["serviceTier"],
            estimated=bool(v["estimated"]),
        )
    if kind == "voice":
        return VoiceRecord(
            id=v["id"],
            ts=v["ts"],
            account_id=v["accountId"],
            voice_model=v["voiceModel"],
            characters=v["characters"],
            cost_micros=v["costCents"],
            agent_id=v["agentId"],
            key_id=v["keyId"],
            status=v["status"] or "ok",
        )
    if kind == "compute":
        return ComputeRecord(
            id=v["id"],
            account_id=v["accountId"],
            start=v["start"],
            end=v["end"],
            cents_per_hour_micros=v["centsPerHour"],
            state=v["state"],
            agent_id=v["agentId"],
            plain_vm_id=v["plainVmId"],
        )
    assert kind == "price", kind
    return UnitPrice(
        provider=v["provider"],
        model=v["model"],
        kind=v["kind"],
        valid_from=v["validFrom"],
        input_micros_per_mtok=v["inputCentsPerMTok"] or 0,
        output_micros_per_mtok=v["outputCentsPerMTok"] or 0,
        micros_per_mchar=v["centsPerMChar"] or 0,
        cache_read_micros_per_mtok=v["cacheReadCentsPerMTok"],
        cache_write_5m_micros_per_mtok=v["cacheWrite5mCentsPerMTok"],
        cache_write_1h_micros_per_mtok=v["cacheWrite1hCentsPerMTok"],
    )


def _parse_line(number: int, text: str, parsed: ParsedBundle, now: datetime) -> None:
    def refuse(field_name: str | None, reason: str) -> None:
        parsed.problems.append(Problem(number, field_name, reason))

    try:
        obj = json.loads(
            text, parse_float=Decimal, parse_constant=_no_constant, object_pairs_hook=_unique_keys
        )
    except _DuplicateKey as exc:
        return refuse(exc.key, "given twice")
    except json.JSONDecodeError as exc:
        return refuse(None, f"not valid JSON: {exc.msg} (column {exc.colno})")
    except Bad as exc:
        return refuse(None, f"not valid JSON: {exc}")
    except RecursionError:
        return refuse(None, "not valid JSON: nested too deeply")
    if not isinstance(obj, dict):
        return refuse(None, f"must be a JSON object, not {json_kind(obj)}")
    if "type" not in obj:
        return refuse("type", "missing")
    kind = obj["type"]
    if not isinstance(kind, str) or kind not in _SCHEMAS:
        return refuse("type", f"unknown type {kind!r} (one of {', '.join(_SCHEMAS)})")
    schema = _SCHEMAS[kind]
    problems = [(name, "unknown field") for name in obj if name != "type" and name not in schema]
    values: dict[str, Any] = {}
    for name, (convert, required) in schema.items():
        raw = obj.get(name)
        if raw is None:
            if required:
                problems.append((name, "missing" if name not in obj else "must not be null"))
            else:
                values[name] = None
            continue
        try:
            values[name] = convert(raw)
        except Bad as exc:
            problems.append((name, str(exc)))
    problems += _cross_checks(kind, values, now)
    if problems:
        for name, reason in problems:
            refuse(name, reason)
        if kind in ENTITY_TYPES and isinstance(values.get("id"), uuid.UUID):
            parsed.refused_definitions.setdefault((kind, values["id"]), number)
        return None
    parsed.lines.append(BundleLine(number, _build(kind, values)))
    return None


def parse_bundle(lines: Iterable[str | bytes], now: datetime | None = None) -> ParsedBundle:
    """Read and check every line of a bundle (the package docstring says what it returns);
    `now` is the clock timestamps may not run more than a day ahead of."""
    now = now or utcnow()
    parsed = ParsedBundle()
    for number, raw in enumerate(lines, start=1):
        if isinstance(raw, bytes):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                parsed.line_count += 1
                parsed.problems.append(
                    Problem(number, None, f"not UTF-8 text ({exc.reason} at byte {exc.start + 1})")
                )
                continue
        else:
            text = raw
        text = text.rstrip("\r\n")  # so that JSON errors point into the line, not past it
        if number == 1:
            text = text.removeprefix("\ufeff")
        if not text.strip():
            continue
        parsed.line_count += 1
        _parse_line(number, text, parsed, now)
    return parsed
