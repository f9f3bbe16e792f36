"""Rollups, maintained in the recording transaction: the sums that the read side (usage/) reads.

Each `add_*_rollups` sums one batch's new rows in Python first and then adds the sums to their
tables in one call (`db.bulk.add_to_all_sums`, on PostgreSQL one statement): a batch of
thousands of events touches far fewer rollup rows.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import itemgetter
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from crabglamp.db.bulk import Sums, add_to_all_sums, carried_columns
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
    LlmMonthlyAgent,
    LlmMonthlyKey,
    VoiceDaily,
    VoiceDailyModel,
    VoiceMonthlyAgent,
)

# The sums llm_daily and llm_daily_model keep.
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


# The token categories (and what caching saved): zero for most events, and columns that
# default to 0, so a batch in which no event carries one neither sums nor upserts it.
LLM_CATEGORY_SUMS: tuple[str, ...] = LLM_SUMS[4:]
_CATEGORY_DEFAULTS: dict[str, int] = dict.fromkeys(LLM_CATEGORY_SUMS, 0)


def _batch(
    model: Any,
    key_columns: tuple[str, ...],
    sums: dict[tuple[Any, ...], list[int]],
    sum_columns: tuple[str, ...],
) -> Sums:
    # add_to_all_sums orders the rows itself (one lock order for every writer).
    return Sums(
        table_of(model), key_columns, sum_columns, [(*key, *values) for key, values in sums.items()]
    )


def _llm_sum_columns(rows: list[dict[str, Any]]) -> tuple[str, ...]:
    """The sums this batch adds to: cost, tokens, the categories some row carries, and count
    (last: it is 1 per row, not read from the row)."""
    carried = carried_columns(LLM_CATEGORY_SUMS, rows, _CATEGORY_DEFAULTS)
    return ("cost_micros", "input_tokens", "output_tokens", *carried, "request_count")


async def add_llm_rollups(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    columns, sums, hourly = _llm_sums(rows)
    await add_to_all_sums(
        conn,
        [
            _batch(
                LlmHourly,
                ("account_id", "key_id", "hour"),
                hourly,
                ("cost_micros", "request_count"),
            ),
            _batch(
                LlmDaily,
                ("account_id", "day", "key_id", "agent_id", "provider", "model"),
                sums,
                columns,
            ),
            *_coarse_llm_sums(sums, columns),
        ],
    )


_Sums = dict[tuple[Any, ...], list[int]]


def _llm_sums(rows: list[dict[str, Any]]) -> tuple[tuple[str, ...], _Sums, _Sums]:
    """The sums of llm_daily (per day, key, agent, model) and llm_hourly (per key and hour)."""
    columns = _llm_sum_columns(rows)
    read = itemgetter(*columns[:-1])
    sums: _Sums = {}
    hourly: _Sums = {}
    for r in rows:
        ts, account_id, key_id, cost = r["ts"], r["account_id"], r["key_id"], r["cost_micros"]
        key = (account_id, ts.date(), key_id, r["agent_id"] or NONE_ID, r["provider"], r["model"])
        acc = sums.get(key)
        if acc is None:
            sums[key] = [*read(r), 1]
        else:
            for i, value in enumerate(read(r)):
                acc[i] += value
            acc[-1] += 1
        hour = (account_id, key_id, ts.replace(minute=0, second=0, microsecond=0))
        acc = hourly.get(hour)
        if acc is None:
            hourly[hour] = [cost, 1]
        else:
            acc[0] += cost
            acc[1] += 1
    return columns, sums, hourly


def _coarse_llm_sums(sums: _Sums, columns: tuple[str, ...]) -> list[Sums]:
    # The usage response's breakdowns, summed from llm_daily's batch sums (far fewer than
    # the events), so a month is read from a few thousand rows instead of llm_daily's.
    by_model: dict[tuple[Any, ...], list[int]] = {}
    by_agent: dict[tuple[Any, ...], list[int]] = {}
    by_key: dict[tuple[Any, ...], list[int]] = {}
    for (account_id, day, key_id, agent_id, provider, model), values in sums.items():
        cost, count = values[0], values[-1]
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
    by_agent_month = _regrouped(by_agent, _month_of)
    by_key_month = _regrouped(by_key, _month_of)
    cost_and_count = ("cost_micros", "request_count")
    return [
        _batch(LlmDailyModel, ("account_id", "day", "provider", "model"), by_model, columns),
        _batch(LlmDailyAgent, ("account_id", "day", "agent_id"), by_agent, cost_and_count),
        _batch(LlmDailyKey, ("account_id", "day", "key_id", "provider"), by_key, cost_and_count),
        _batch(
            LlmMonthlyAgent, ("account_id", "month", "agent_id"), by_agent_month, cost_and_count
        ),
        _batch(
            LlmMonthlyKey,
            ("account_id", "month", "key_id", "provider"),
            by_key_month,
            cost_and_count,
        ),
    ]


def _regrouped(sums: _Sums, coarser: Callable[[tuple[Any, ...]], tuple[Any, ...]]) -> _Sums:
    """The same sums under coarser keys: `coarser` maps each key to the one it is added to."""
    out: _Sums = {}
    for key, values in sums.items():
        coarse = coarser(key)
        acc = out.get(coarse)
        if acc is None:
            out[coarse] = list(values)
        else:
            for i, value in enumerate(values):
                acc[i] += value
    return out


def _month_of(key: tuple[Any, ...]) -> tuple[Any, ...]:
    # (account, day, *rest) -> (account, the first of the day's month, *rest)
    return (key[0], key[1].replace(day=1), *key[2:])


async def add_voice_rollups(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    sums: dict[tuple[Any, ...], list[int]] = {}
    for r in rows:
        key = (r["account_id"], r["ts"].date(), r["agent_id"] or NONE_ID, r["voice_model"])
        acc = sums.setdefault(key, [0, 0, 0])
        acc[0] += r["cost_micros"]
        acc[1] += r["characters"]
        acc[2] += 1
    columns = ("cost_micros", "characters", "request_count")
    # (account, day, agent, model) summed over agents, and over models by month.
    by_model = _regrouped(sums, lambda k: (k[0], k[1], k[3]))
    by_agent_month = _regrouped(sums, lambda k: _month_of(k[:3]))
    await add_to_all_sums(
        conn,
        [
            _batch(VoiceDaily, ("account_id", "day", "agent_id", "voice_model"), sums, columns),
            _batch(VoiceDailyModel, ("account_id", "day", "voice_model"), by_model, columns),
            _batch(VoiceMonthlyAgent, ("account_id", "month", "agent_id"), by_agent_month, columns),
        ],
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
    await add_to_all_sums(
        conn,
        [
            _batch(
                ComputeDaily,
                ("account_id", "day", "agent_id", "plain_vm_id", "state"),
                sums,
                ("cost_micros", "duration_us"),
            )
        ],
    )
