"""Exporting an account's bundle: its entities, then its events of a period, as bundle lines
that `crabglamp import` reads back to the same rows."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import RowMapping, Table, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncMappingResult

from crabglamp.db.tables import table_of
from crabglamp.models import (
    Account,
    Agent,
    ComputeInterval,
    LlmEvent,
    Member,
    PlainVm,
    VirtualKey,
    VoiceEvent,
)
from crabglamp.money import MICROS_PER_CENT
from crabglamp.periods import Period, as_utc

_LLM_PARTS = (
    ("cachedInputTokens", "cached_input_tokens"),
    ("cacheWrite5mTokens", "cache_write_5m_tokens"),
    ("cacheWrite1hTokens", "cache_write_1h_tokens"),
    ("reasoningTokens", "reasoning_tokens"),
    ("audioInputTokens", "audio_input_tokens"),
    ("audioOutputTokens", "audio_output_tokens"),
)


def _cents_of(micros: int) -> Decimal:
    """Micro-cents as an exact decimal number of cents, written without exponent."""
    whole, rest = divmod(abs(micros), MICROS_PER_CENT)
    text = f"{whole}.{rest:06d}".rstrip("0").rstrip(".")
    return Decimal(("-" if micros < 0 else "") + text)


def _iso(moment: datetime) -> str:
    return as_utc(moment).isoformat().replace("+00:00", "Z")


def _json_value(value: object) -> str:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, uuid.UUID):
        return f'"{value}"'
    if isinstance(value, datetime):
        return f'"{_iso(value)}"'
    if isinstance(value, date):
        return f'"{value.isoformat()}"'
    return json.dumps(value)


def dump_line(obj: Mapping[str, object]) -> str:
    """One bundle line: money as exact decimals (json.dumps would go through float)."""
    return "{" + ",".join(f"{json.dumps(k)}:{_json_value(v)}" for k, v in obj.items()) + "}"


async def export_bundle(
    conn: AsyncConnection, account_id: uuid.UUID, period: Period
) -> AsyncIterator[dict[str, object]]:
    """The account, its members, agents, plain VMs and keys, then its llm, voice and compute
    events of the period (intervals that overlap it, whole). Raises LookupError for an unknown
    account."""
    accounts = table_of(Account)
    account = (
        (await conn.execute(select(accounts).where(accounts.c.id == account_id))).mappings().first()
    )
    if account is None:
        raise LookupError(f"no account {account_id}")
    yield {
        "type": "account",
        "id": account["id"],
        "name": account["name"],
        "clerkOrgId": account["clerk_org_id"],
        "ownerUserId": account["owner_user_id"],
    }
    members = table_of(Member)
    for row in await _rows(conn, members, members.c.account_id == account_id, members.c.user_id):
        yield {
            "type": "member",
            "accountId": account_id,
            "userId": row["user_id"],
            "role": row["role"],
        }
    agents = table_of(Agent)
    for row in await _rows(conn, agents, agents.c.account_id == account_id, agents.c.id):
        yield {"type": "agent", "id": row["id"], "accountId": account_id, "name": row["name"]}
    vms = table_of(PlainVm)
    for row in await _rows(conn, vms, vms.c.account_id == account_id, vms.c.id):
        yield {
            "type": "plainVm",
            "id": row["id"],
            "accountId": account_id,
            "name": row["name"],
            "centsPerHour": _cents_of(row["cents_per_hour_micros"]),
        }
    keys = table_of(VirtualKey)
    for row in await _rows(conn, keys, keys.c.account_id == account_id, keys.c.id):
        cap = row["spend_cap_micros"]
        yield {
            "type": "key",
            "id": row["id"],
            "accountId": account_id,
            "name": row["name"],
            "provider": row["provider"],
            "agentId": row["agent_id"],
            "spendCapCents": None if cap is None else _cents_of(cap),
        }

    llm = table_of(LlmEvent)
    in_period = and_(
        llm.c.account_id == account_id, llm.c.ts >= period.start_dt, llm.c.ts < period.end_dt
    )
    async for row in await _stream(conn, llm, in_period, llm.c.ts, llm.c.id):
        line: dict[str, object] = {
            "type": "llm",
            "id": row["id"],
            "ts": row["ts"],
            "keyId": row["key_id"],
            "agentId": row["agent_id"],
            "provider": row["provider"],
            "model": row["model"],
            "inputTokens": row["input_tokens"],
            "outputTokens": row["output_tokens"],
            "costCents": _cents_of(row["cost_micros"]),
        }
        if row["status"] != "ok":
            line["status"] = row["status"]
        # Written only when they say something, like status: older bundles stay as they were.
        for name, column in _LLM_PARTS:
            if row[column]:
                line[name] = row[column]
        if row["service_tier"] is not None:
            line["serviceTier"] = row["service_tier"]
        if row["estimated"]:
            line["estimated"] = True
        yield line
    voice = table_of(VoiceEvent)
    in_period = and_(
        voice.c.account_id == account_id, voice.c.ts >= period.start_dt, voice.c.ts < period.end_dt
    )
    async for row in await _stream(conn, voice, in_period, voice.c.ts, voice.c.id):
        line = {
            "type": "voice",
            "id": row["id"],
            "ts": row["ts"],
            "accountId": account_id,
            "agentId": row["agent_id"],
            "voiceModel": row["voice_model"],
            "characters": row["characters"],
            "costCents": _cents_of(row["cost_micros"]),
        }
        if row["key_id"] is not None:
            line["keyId"] = row["key_id"]
        if row["status"] != "ok":
            line["status"] = row["status"]
        yield line
    compute = table_of(ComputeInterval)
    overlapping = and_(
        compute.c.account_id == account_id,
        compute.c.start < period.end_dt,
        # An interval that ends exactly at the month's first midnight has nothing in it, unless
        # it has no length at all and starts inside.
        or_(
            compute.c.end.is_(None),
            compute.c.end > period.start_dt,
            compute.c.start >= period.start_dt,
        ),
    )
    async for row in await _stream(conn, compute, overlapping, compute.c.start, compute.c.id):
        yield {
            "type": "compute",
            "id": row["id"],
            "accountId": account_id,
            "agentId": row["agent_id"],
            "plainVmId": row["plain_vm_id"],
            "state": row["state"],
            "start": row["start"],
            "end": row["end"],
            "centsPerHour": _cents_of(row["cents_per_hour_micros"]),
        }


async def _rows(conn: AsyncConnection, table: Table, where: Any, order: Any) -> list[RowMapping]:
    return list((await conn.execute(select(table).where(where).order_by(order))).mappings())


async def _stream(
    conn: AsyncConnection, table: Table, where: Any, *order: Any
) -> AsyncMappingResult:
    # Streamed: a month of a large account does not fit in memory as one result.
    result = await conn.stream(select(table).where(where).order_by(*order))
    return result.mappings()
