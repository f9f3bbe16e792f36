"""Reading virtual keys and their month's spend, many at a time (the loaders' batch functions)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from crabglamp.db.tables import table_of
from crabglamp.models import LlmDaily, VirtualKey, VoiceEvent
from crabglamp.periods import Period

_keys = table_of(VirtualKey)
_llm_daily = table_of(LlmDaily)
_voice_events = table_of(VoiceEvent)
# Everything but the hash: the secret's hash never leaves the database.
_PUBLIC = [column for column in _keys.c if column.name != "secret_hash"]


def _key(row: object) -> VirtualKey:
    return VirtualKey(**dict(row._mapping))  # type: ignore[attr-defined]


def _ordered(keys: list[VirtualKey]) -> list[VirtualKey]:
    return sorted(keys, key=lambda k: (k.name, str(k.id)))


async def keys_of_accounts(
    conn: AsyncConnection, account_ids: Sequence[uuid.UUID] | None
) -> dict[uuid.UUID, list[VirtualKey]]:
    """Keys per account; None is every account (platform admins)."""
    statement = select(*_PUBLIC)
    if account_ids is not None:
        statement = statement.where(_keys.c.account_id.in_(sorted(set(account_ids))))
    found: dict[uuid.UUID, list[VirtualKey]] = {}
    for row in await conn.execute(statement):
        key = _key(row)
        found.setdefault(key.account_id, []).append(key)
    return {account: _ordered(keys) for account, keys in found.items()}


async def keys_by_id(
    conn: AsyncConnection, key_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, VirtualKey]:
    rows = await conn.execute(select(*_PUBLIC).where(_keys.c.id.in_(sorted(set(key_ids)))))
    return {key.id: key for key in map(_key, rows)}


async def spend_of_keys(
    conn: AsyncConnection, key_ids: Sequence[uuid.UUID], period: Period
) -> dict[uuid.UUID, int]:
    """Spend in micro-cents per key over the period: its LLM requests (daily rollup) and the
    speech made with it — the same spend its cap counts (caps.recorded_spend)."""
    wanted = sorted(set(key_ids))
    llm = await conn.execute(
        select(_llm_daily.c.key_id, func.sum(_llm_daily.c.cost_micros))
        .where(
            _llm_daily.c.key_id.in_(wanted),
            _llm_daily.c.day >= period.start,
            _llm_daily.c.day <= period.end,
        )
        .group_by(_llm_daily.c.key_id)
    )
    spend = {row[0]: int(row[1]) for row in llm}
    voice = await conn.execute(
        select(_voice_events.c.key_id, func.sum(_voice_events.c.cost_micros))
        .where(
            _voice_events.c.key_id.in_(wanted),
            _voice_events.c.ts >= period.start_dt,
            _voice_events.c.ts < period.end_dt,
        )
        .group_by(_voice_events.c.key_id)
    )
    for key_id, cost in voice:
        spend[key_id] = spend.get(key_id, 0) + int(cost)
    return spend
