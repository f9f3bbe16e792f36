"""From records to rows: owners matched, fields checked, and the cost priced when not given.

A refused record adds a `RecordProblem` and no row; the caller refuses the batch if any did.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from crabglamp.ingest._owners import Owners, check_owner
from crabglamp.ingest._validation import interval_problem, llm_problem, voice_problem
from crabglamp.ingest.pricing import catalog_cost, catalog_saving
from crabglamp.ingest.records import ComputeRecord, LlmRecord, RecordProblem, VoiceRecord
from crabglamp.periods import as_utc
from crabglamp.prices import PriceBook, PriceNotFound


def llm_rows(
    records: Iterable[LlmRecord],
    owners: Owners,
    prices: PriceBook,
    problems: list[RecordProblem],
    now: datetime,
) -> list[dict[str, Any]]:
    rows = []
    for r in records:
        account_id = owners.keys.get(r.key_id)
        if account_id is None:
            problems.append(RecordProblem(r.id, f"keyId {r.key_id} is not a known virtual key"))
            continue
        if not check_owner(r.id, account_id, r.agent_id, owners, problems):
            continue
        invalid = llm_problem(r, now)
        if invalid:
            problems.append(RecordProblem(r.id, invalid))
            continue
        ts = as_utc(r.ts)
        cost = r.cost_micros
        if cost is None:
            if r.status != "ok":
                cost = 0  # a failed request is not billed
            else:
                try:
                    cost = catalog_cost(prices, r)
                except PriceNotFound as exc:
                    problems.append(RecordProblem(r.id, str(exc)))
                    continue
        rows.append(
            {
                "id": r.id,
                "ts": ts,
                "account_id": account_id,
                "key_id": r.key_id,
                "agent_id": r.agent_id,
                "provider": r.provider,
                "model": r.model,
                "input_tokens": r.input_tokens,
                "output_tokens": r.output_tokens,
                "cost_micros": cost,
                "status": r.status,
                "cached_input_tokens": r.cached_input_tokens,
                "cache_write_5m_tokens": r.cache_write_5m_tokens,
                "cache_write_1h_tokens": r.cache_write_1h_tokens,
                "reasoning_tokens": r.reasoning_tokens,
                "audio_input_tokens": r.audio_input_tokens,
                "audio_output_tokens": r.audio_output_tokens,
                "cache_saved_micros": catalog_saving(prices, r) if r.status == "ok" else 0,
                "service_tier": r.service_tier,
                "estimated": r.estimated,
            }
        )
    return rows


def voice_rows(
    records: Iterable[VoiceRecord],
    owners: Owners,
    prices: PriceBook,
    problems: list[RecordProblem],
    now: datetime,
) -> list[dict[str, Any]]:
    rows = []
    for r in records:
        if r.account_id not in owners.accounts:
            problems.append(RecordProblem(r.id, f"accountId {r.account_id} is not a known account"))
            continue
        if not check_owner(r.id, r.account_id, r.agent_id, owners, problems):
            continue
        if r.key_id is not None and owners.keys.get(r.key_id) != r.account_id:
            problems.append(RecordProblem(r.id, f"keyId {r.key_id} is not a key of this account"))
            continue
        invalid = voice_problem(r, now)
        if invalid:
            problems.append(RecordProblem(r.id, invalid))
            continue
        ts = as_utc(r.ts)
        cost = r.cost_micros
        if cost is None:
            try:
                cost = 0 if r.status != "ok" else catalog_cost(prices, r)
            except PriceNotFound as exc:
                problems.append(RecordProblem(r.id, str(exc)))
                continue
        rows.append(
            {
                "id": r.id,
                "ts": ts,
                "account_id": r.account_id,
                "key_id": r.key_id,
                "agent_id": r.agent_id,
                "voice_model": r.voice_model,
                "characters": r.characters,
                "cost_micros": cost,
                "status": r.status,
            }
        )
    return rows


def compute_rows(
    records: Iterable[ComputeRecord], owners: Owners, problems: list[RecordProblem], now: datetime
) -> list[dict[str, Any]]:
    rows = []
    for r in records:
        if r.account_id not in owners.accounts:
            problems.append(RecordProblem(r.id, f"accountId {r.account_id} is not a known account"))
            continue
        if not check_owner(r.id, r.account_id, r.agent_id, owners, problems, r.plain_vm_id):
            continue
        start = as_utc(r.start)
        end = as_utc(r.end) if r.end is not None else None
        invalid = interval_problem(r, start, end, now)
        if invalid:
            problems.append(RecordProblem(r.id, invalid))
            continue
        rows.append(
            {
                "id": r.id,
                "account_id": r.account_id,
                "agent_id": r.agent_id,
                "plain_vm_id": r.plain_vm_id,
                "state": r.state,
                "start": start,
                "end": end,
                "cents_per_hour_micros": r.cents_per_hour_micros,
            }
        )
    return rows
