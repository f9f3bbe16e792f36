"""Rollups, maintained in the recording transaction: the sums that the read side (usage/) reads.

Each `add_*_rollups` sums one batch's new rows in Python first and then adds the sums to their
tables (`db.bulk.add_to_sums`): a batch of thousands of events touches far fewer rollup rows.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from crabglamp.db.bulk import add_to_sums
from crabglamp.db.tables import table_of
from crabglamp.intervals import compute_cost_pieces
from crabglamp.models import (
    NONE_ID,
    ComputeDaily,
    LlmDaily,
    LlmDailyAgent,
    LlmDailyKey,
    LlmDailyModel,
    LlmHourly,
    VoiceDaily,
)

# The sums llm_daily and llm_daily_model keep, in this order.
LLM_SUMS: tuple[str, ...] = (
    "cost_micros",
    "request_count",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "reasoning_tokens",
    "audio_input_tokens",
    "audio_output_tokens",
    "cache_saved_micros",
)


async def _upsert(
    conn: AsyncConnection,
    model: Any,
    key_columns: tuple[str, ...],
    sums: dict[tuple[Any, ...], list[int]],
    sum_columns: tuple[str, ...],
) -> None:
    # One lock order for every writer, so concurrent PostgreSQL upserts cannot deadlock.
    rows = [(*key, *values) for key, values in sorted(sums.items(), key=_lock_order)]
    await add_to_sums(conn, table_of(model), key_columns, sum_columns, rows)


async def add_llm_rollups(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    sums: dict[tuple[Any, ...], list[int]] = {}
    for r in rows:
        key = (
            r["account_id"],
            r["ts"].date(),
            r["key_id"],
            r["agent_id"] or NONE_ID,
            r["provider"],
            r["model"],
        )
        values = [r["cost_micros"], 1, *(r[c] for c in LLM_SUMS[2:])]
        acc = sums.get(key)
        if acc is None:
            sums[key] = values
        else:
            for i, value in enumerate(values):
                acc[i] += value
    hourly: dict[tuple[Any, ...], list[int]] = {}
    for r in rows:
        hour = r["ts"].replace(minute=0, second=0, microsecond=0)
        acc = hourly.setdefault((r["account_id"], r["key_id"], hour), [0, 0])
        acc[0] += r["cost_micros"]
        acc[1] += 1
    await _upsert(
        conn,
        LlmHourly,
        ("account_id", "key_id", "hour"),
        hourly,
        ("cost_micros", "request_count"),
    )
    await _upsert(
        conn,
        LlmDaily,
        ("account_id", "day", "key_id", "agent_id", "provider", "model"),
        sums,
        LLM_SUMS,
    )
    await _add_coarse_llm_rollups(conn, sums)


async def _add_coarse_llm_rollups(
    conn: AsyncConnection, sums: dict[tuple[Any, ...], list[int]]
) -> None:
    # The usage response's breakdowns, summed from llm_daily's batch sums (far fewer than
    # the events), so a month is read from a few thousand rows instead of llm_daily's.
    by_model: dict[tuple[Any, ...], list[int]] = {}
    by_agent: dict[tuple[Any, ...], list[int]] = {}
    by_key: dict[tuple[Any, ...], list[int]] = {}
    for (account_id, day, key_id, agent_id, provider, model), values in sums.items():
        cost, count = values[0], values[1]
        acc = by_model.get((account_id, day, provider, model))
        if acc is None:
            by_model[(account_id, day, provider, model)] = list(values)
        else:
            for i, value in enumerate(values):
                acc[i] += value
        acc = by_agent.setdefault((account_id, day, agent_id), [0, 0])
        acc[0] += cost
        acc[1] += count
        acc = by_key.setdefault((account_id, day, key_id, provider), [0, 0])
        acc[0] += cost
        acc[1] += count
    await _upsert(
        conn,
        LlmDailyModel,
        ("account_id", "day", "provider", "model"),
        by_model,
        LLM_SUMS,
    )
    await _upsert(
        conn,
        LlmDailyAgent,
        ("account_id", "day", "agent_id"),
        by_agent,
        ("cost_micros", "request_count"),
    )
    await _upsert(
        conn,
        LlmDailyKey,
        ("account_id", "day", "key_id", "provider"),
        by_key,
        ("cost_micros", "request_count"),
    )


async def add_voice_rollups(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    sums: dict[tuple[Any, ...], list[int]] = {}
    for r in rows:
        key = (r["account_id"], r["ts"].date(), r["agent_id"] or NONE_ID, r["voice_model"])
        acc = sums.setdefault(key, [0, 0, 0])
        acc[0] += r["cost_micros"]
        acc[1] += r["characters"]
        acc[2] += 1
    await _upsert(
        conn,
        VoiceDaily,
        ("account_id", "day", "agent_id", "voice_model"),
        sums,
        ("cost_micros", "characters", "request_count"),
    )


async def add_compute_rollups(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    sums: dict[tuple[Any, ...], list[int]] = {}
    for r in rows:
        for day, cost, length in compute_cost_pieces(
            r["start"], r["end"], r["cents_per_hour_micros"]
        ):
            key = (
                r["account_id"],
                day,
                r["agent_id"] or NONE_ID,
                r["plain_vm_id"] or NONE_ID,
                r["state"],
            )
            acc = sums.setdefault(key, [0, 0])
            acc[0] += cost
            acc[1] += length
    await _upsert(
        conn,
        ComputeDaily,
        ("account_id", "day", "agent_id", "plain_vm_id", "state"),
        sums,
        ("cost_micros", "duration_us"),
    )


def _lock_order(item: tuple[tuple[Any, ...], list[int]]) -> tuple[Any, ...]:
    return tuple(k.int if isinstance(k, uuid.UUID) else k for k in item[0])
