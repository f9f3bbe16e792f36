"""The per-request log: one day's raw LLM events, keyset-paginated, and its count and total."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from crabglamp.db.tables import table_of
from crabglamp.models import LlmDaily, LlmEvent
from crabglamp.periods import as_utc, day_start


@dataclass(frozen=True, slots=True)
class LoggedRequest:
    id: str
    ts: datetime
    key_id: uuid.UUID
    agent_id: uuid.UUID | None
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    cost_micros: int
    status: str
    cached_input_tokens: int = 0
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0
    reasoning_tokens: int = 0
    audio_input_tokens: int = 0
    audio_output_tokens: int = 0
    cache_saved_micros: int = 0
    service_tier: str | None = None
    estimated: bool = False


_CATEGORIES = (
    "cached_input_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "reasoning_tokens",
    "audio_input_tokens",
    "audio_output_tokens",
    "cache_saved_micros",
    "service_tier",
    "estimated",
)


@dataclass(frozen=True, slots=True)
class RequestPage:
    requests: list[LoggedRequest]
    end_cursor: str | None
    has_next_page: bool


@dataclass(frozen=True, slots=True)
class RequestLogQuery:
    day: date
    account_ids: tuple[uuid.UUID, ...] | None
    model: str | None = None
    key_ids: tuple[uuid.UUID, ...] | None = None
    provider: str | None = None
    agent_id: uuid.UUID | None = None


def encode_cursor(ts: datetime, event_id: str) -> str:
    return base64.urlsafe_b64encode(f"{as_utc(ts).isoformat()}|{event_id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor.encode()).decode()
        moment, event_id = raw.split("|", 1)
        return as_utc(datetime.fromisoformat(moment)), event_id
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"not a cursor of this log: {cursor!r}") from exc


async def request_log(
    conn: AsyncConnection, query: RequestLogQuery, first: int = 50, after: str | None = None
) -> RequestPage:
    if not 1 <= first <= 500:
        raise ValueError("first must be between 1 and 500")
    table = table_of(LlmEvent)
    start = day_start(query.day)
    end = day_start(date.fromordinal(query.day.toordinal() + 1))
    conditions = [table.c.ts >= start, table.c.ts < end, *_filters(table, query)]
    if after is not None:
        cursor_ts, cursor_id = decode_cursor(after)
        conditions.append(tuple_(table.c.ts, table.c.id) > tuple_(cursor_ts, cursor_id))
        # Redundant with the row comparison, but SQLite only starts its index range scan at a
        # plain bound: without it a deep page walks the day from midnight to the cursor.
        conditions.append(table.c.ts >= cursor_ts)
    rows = (
        await conn.execute(
            select(
                table.c.id,
                table.c.ts,
                table.c.key_id,
                table.c.agent_id,
                table.c.provider,
                table.c.model,
                table.c.input_tokens,
                table.c.output_tokens,
                table.c.cost_micros,
                table.c.status,
                *(table.c[name] for name in _CATEGORIES),
            )
            .where(and_(*conditions))
            .order_by(table.c.ts, table.c.id)
            .limit(first + 1)
        )
    ).all()
    items = [
        LoggedRequest(
            id=r.id,
            ts=as_utc(r.ts),
            key_id=r.key_id,
            agent_id=r.agent_id,
            provider=r.provider,
            model=r.model,
            input_tokens=r.input_tokens,
            output_tokens=r.output_tokens,
            cost_micros=r.cost_micros,
            status=r.status,
            cached_input_tokens=r.cached_input_tokens,
            cache_write_5m_tokens=r.cache_write_5m_tokens,
            cache_write_1h_tokens=r.cache_write_1h_tokens,
            reasoning_tokens=r.reasoning_tokens,
            audio_input_tokens=r.audio_input_tokens,
            audio_output_tokens=r.audio_output_tokens,
            cache_saved_micros=r.cache_saved_micros,
            service_tier=r.service_tier,
            estimated=bool(r.estimated),
        )
        for r in rows[:first]
    ]
    has_next = len(rows) > first
    cursor = encode_cursor(items[-1].ts, items[-1].id) if items else None
    return RequestPage(items, cursor, has_next)


@dataclass(frozen=True, slots=True)
class RequestLogSummary:
    request_count: int
    total_micros: int
    cached_input_tokens: int = 0
    cache_saved_micros: int = 0


async def request_log_summary(conn: AsyncConnection, query: RequestLogQuery) -> RequestLogSummary:
    """The log's count and total, from the rollups (the same numbers as the chart)."""
    table = table_of(LlmDaily)
    conditions = [table.c.day == query.day, *_filters(table, query)]
    row = (
        await conn.execute(
            select(
                func.coalesce(func.sum(table.c.request_count), 0),
                func.coalesce(func.sum(table.c.cost_micros), 0),
                func.coalesce(func.sum(table.c.cached_input_tokens), 0),
                func.coalesce(func.sum(table.c.cache_saved_micros), 0),
            ).where(and_(*conditions))
        )
    ).one()
    return RequestLogSummary(int(row[0]), int(row[1]), int(row[2]), int(row[3]))


def _filters(table: Any, query: RequestLogQuery) -> list[Any]:
    # The log's filters, for llm_event (the page) and llm_daily (its count and total) alike.
    conditions = []
    if query.account_ids is not None:
        conditions.append(table.c.account_id.in_(query.account_ids))
    if query.key_ids is not None:
        conditions.append(table.c.key_id.in_(query.key_ids))
    if query.model is not None:
        conditions.append(table.c.model == query.model)
    if query.provider is not None:
        conditions.append(table.c.provider == query.provider)
    if query.agent_id is not None:
        conditions.append(table.c.agent_id == query.agent_id)
    return conditions
