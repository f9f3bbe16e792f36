"""Recording events: idempotent by event id, rollups maintained in the same transaction."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import Table, and_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from crabglamp.db import write_transaction
from crabglamp.models import (
    NONE_ID,
    Account,
    Agent,
    ComputeDaily,
    ComputeInterval,
    LlmDaily,
    LlmEvent,
    LlmHourly,
    PlainVm,
    VirtualKey,
    VoiceDaily,
    VoiceEvent,
)
from crabglamp.money import mul_div_half_up
from crabglamp.periods import US_PER_HOUR, as_utc, split_by_day
from crabglamp.prices import PriceBook, PriceNotFound, default_price_book

# SQLite allows 32766 bound parameters; PostgreSQL 32767. An IN list this long is far from both.
_IN_CHUNK = 900
_RETRIES = 8


# What can be recorded


@dataclass(frozen=True, slots=True)
class LlmRecord:
    id: str
    ts: datetime
    key_id: uuid.UUID
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    cost_micros: int | None = None
    agent_id: uuid.UUID | None = None
    status: str = "ok"


@dataclass(frozen=True, slots=True)
class VoiceRecord:
    id: str
    ts: datetime
    account_id: uuid.UUID
    voice_model: str
    characters: int
    cost_micros: int | None = None
    agent_id: uuid.UUID | None = None
    key_id: uuid.UUID | None = None
    status: str = "ok"


@dataclass(frozen=True, slots=True)
class ComputeRecord:
    id: str
    account_id: uuid.UUID
    start: datetime
    end: datetime | None
    cents_per_hour_micros: int
    state: str = "running"
    agent_id: uuid.UUID | None = None
    plain_vm_id: uuid.UUID | None = None


Record = LlmRecord | VoiceRecord | ComputeRecord


@dataclass(frozen=True, slots=True)
class RecordProblem:
    event_id: str
    reason: str


class IngestError(ValueError):
    """Nothing of the batch was written; `problems` says which events and why."""

    def __init__(self, problems: Sequence[RecordProblem]) -> None:
        self.problems = list(problems)
        shown = "; ".join(f"{p.event_id}: {p.reason}" for p in self.problems[:5])
        more = f" (+{len(self.problems) - 5} more)" if len(self.problems) > 5 else ""
        super().__init__(f"{len(self.problems)} event(s) refused: {shown}{more}")


@dataclass(slots=True)
class IngestResult:
    inserted: int = 0
    duplicates: int = 0
    closed_intervals: int = 0
    new_ids: list[str] = field(default_factory=list)


# Pure helpers


def compute_cost_pieces(
    start: datetime, end: datetime, cents_per_hour_micros: int
) -> list[tuple[date, int, int]]:
    """(day, cost_micros, duration_us) per UTC day; the costs sum exactly to the whole interval."""
    pieces = []
    for day, offset, length in split_by_day(start, end):
        cost = mul_div_half_up(
            cents_per_hour_micros, offset + length, US_PER_HOUR
        ) - mul_div_half_up(cents_per_hour_micros, offset, US_PER_HOUR)
        pieces.append((day, cost, length))
    return pieces


def _dialect_insert(conn: AsyncConnection, table: Table) -> Any:
    return (sqlite.insert if conn.dialect.name == "sqlite" else postgresql.insert)(table)


def _retryable(exc: DBAPIError) -> bool:
    if isinstance(exc, IntegrityError):
        return True  # a concurrent writer inserted the same event id first: look again
    text = str(exc.orig).lower()
    return isinstance(exc, OperationalError) or "deadlock" in text or "serializ" in text


class Ingestor:
    """Records batches of events. Safe to share; caches only immutable facts (key → account)."""

    def __init__(self, engine: AsyncEngine, prices: PriceBook | None = None) -> None:
        self.engine = engine
        self.prices = prices or default_price_book()
        self._key_account: dict[uuid.UUID, uuid.UUID] = {}
        self._agent_account: dict[uuid.UUID, uuid.UUID] = {}
        self._vm_account: dict[uuid.UUID, uuid.UUID] = {}
        self._accounts: set[uuid.UUID] = set()

    async def record(self, records: Sequence[Record]) -> IngestResult:
        """Record in a transaction of its own, retrying when a concurrent writer raced us."""
        for attempt in range(_RETRIES):
            try:
                async with write_transaction(self.engine) as conn:
                    return await self.record_in(conn, records)
            except DBAPIError as exc:
                if attempt == _RETRIES - 1 or not _retryable(exc):
                    raise
                await asyncio.sleep(0.005 * (attempt + 1))
        raise AssertionError("unreachable")

    async def record_in(self, conn: AsyncConnection, records: Sequence[Record]) -> IngestResult:
        """Record within the caller's transaction; raises IngestError before writing anything."""
        llm = [r for r in records if isinstance(r, LlmRecord)]
        voice = [r for r in records if isinstance(r, VoiceRecord)]
        compute = [r for r in records if isinstance(r, ComputeRecord)]
        problems: list[RecordProblem] = []
        await self._load_references(conn, llm, voice, compute)
        llm_rows = self._llm_rows(llm, problems)
        voice_rows = self._voice_rows(voice, problems)
        compute_rows = self._compute_rows(compute, problems)
        llm_rows = _dedupe_batch(llm_rows, problems)
        voice_rows = _dedupe_batch(voice_rows, problems)
        compute_rows = _dedupe_batch(compute_rows, problems)
        if problems:
            raise IngestError(problems)

        result = IngestResult()
        new_llm = await self._new_only(conn, LlmEvent, llm_rows, problems, result)
        new_voice = await self._new_only(conn, VoiceEvent, voice_rows, problems, result)
        new_compute, closing = await self._new_compute(conn, compute_rows, problems, result)
        if problems:
            raise IngestError(problems)

        if new_llm:
            await conn.execute(LlmEvent.__table__.insert(), new_llm)  # type: ignore[attr-defined]
            await self._add_llm_rollups(conn, new_llm)
        if new_voice:
            await conn.execute(VoiceEvent.__table__.insert(), new_voice)  # type: ignore[attr-defined]
            await self._add_voice_rollups(conn, new_voice)
        if new_compute:
            await conn.execute(ComputeInterval.__table__.insert(), new_compute)  # type: ignore[attr-defined]
        closed = [row for row in new_compute if row["end"] is not None]
        closed += await self._close_intervals(conn, closing, result)
        if closed:
            await self._add_compute_rollups(conn, closed)
        result.inserted = len(new_llm) + len(new_voice) + len(new_compute)
        result.new_ids = [r["id"] for r in (*new_llm, *new_voice, *new_compute)]
        return result

    # References: every event must point at things that exist, in the same account

    async def _load_references(
        self,
        conn: AsyncConnection,
        llm: Sequence[LlmRecord],
        voice: Sequence[VoiceRecord],
        compute: Sequence[ComputeRecord],
    ) -> None:
        keys = {r.key_id for r in llm} | {r.key_id for r in voice if r.key_id}
        agents = {r.agent_id for r in (*llm, *voice, *compute) if r.agent_id}
        vms = {r.plain_vm_id for r in compute if r.plain_vm_id}
        accounts = {r.account_id for r in (*voice, *compute)}
        await self._fill(conn, VirtualKey, keys - self._key_account.keys(), self._key_account)
        await self._fill(conn, Agent, agents - self._agent_account.keys(), self._agent_account)
        await self._fill(conn, PlainVm, vms - self._vm_account.keys(), self._vm_account)
        missing = accounts - self._accounts
        if missing:
            table = Account.__table__  # type: ignore[attr-defined]
            for chunk in _chunks(sorted(missing), _IN_CHUNK):
                found = await conn.execute(select(table.c.id).where(table.c.id.in_(chunk)))
                self._accounts.update(row[0] for row in found)

    async def _fill(
        self,
        conn: AsyncConnection,
        model: Any,
        ids: set[uuid.UUID],
        into: dict[uuid.UUID, uuid.UUID],
    ) -> None:
        table = model.__table__
        for chunk in _chunks(sorted(ids), _IN_CHUNK):
            rows = await conn.execute(
                select(table.c.id, table.c.account_id).where(table.c.id.in_(chunk))
            )
            into.update((row[0], row[1]) for row in rows)

    def forget(self) -> None:
        """Drop cached references (tests that reset the database call this)."""
        self._key_account.clear()
        self._agent_account.clear()
        self._vm_account.clear()
        self._accounts.clear()

    def _check_owner(
        self,
        event_id: str,
        account_id: uuid.UUID,
        agent_id: uuid.UUID | None,
        problems: list[RecordProblem],
        plain_vm_id: uuid.UUID | None = None,
    ) -> bool:
        if agent_id is not None and self._agent_account.get(agent_id) != account_id:
            problems.append(
                RecordProblem(event_id, f"agentId {agent_id} is not an agent of this account")
            )
            return False
        if plain_vm_id is not None and self._vm_account.get(plain_vm_id) != account_id:
            problems.append(
                RecordProblem(
                    event_id, f"plainVmId {plain_vm_id} is not a plain VM of this account"
                )
            )
            return False
        return True

    # Rows

    def _llm_rows(
        self, records: Iterable[LlmRecord], problems: list[RecordProblem]
    ) -> list[dict[str, Any]]:
        rows = []
        for r in records:
            account_id = self._key_account.get(r.key_id)
            if account_id is None:
                problems.append(RecordProblem(r.id, f"keyId {r.key_id} is not a known virtual key"))
                continue
            if not self._check_owner(r.id, account_id, r.agent_id, problems):
                continue
            cost = r.cost_micros
            if cost is None:
                if r.status != "ok":
                    cost = 0
                else:
                    try:
                        cost = self.prices.llm_cost(
                            r.provider, r.model, r.ts, r.input_tokens, r.output_tokens
                        )
                    except PriceNotFound as exc:
                        problems.append(RecordProblem(r.id, str(exc)))
                        continue
            rows.append(
                {
                    "id": r.id,
                    "ts": as_utc(r.ts),
                    "account_id": account_id,
                    "key_id": r.key_id,
                    "agent_id": r.agent_id,
                    "provider": r.provider,
                    "model": r.model,
                    "input_tokens": r.input_tokens,
                    "output_tokens": r.output_tokens,
                    "cost_micros": cost,
                    "status": r.status,
                }
            )
        return rows

    def _voice_rows(
        self, records: Iterable[VoiceRecord], problems: list[RecordProblem]
    ) -> list[dict[str, Any]]:
        rows = []
        for r in records:
            if r.account_id not in self._accounts:
                problems.append(
                    RecordProblem(r.id, f"accountId {r.account_id} is not a known account")
                )
                continue
            if not self._check_owner(r.id, r.account_id, r.agent_id, problems):
                continue
            if r.key_id is not None and self._key_account.get(r.key_id) != r.account_id:
                problems.append(
                    RecordProblem(r.id, f"keyId {r.key_id} is not a key of this account")
                )
                continue
            cost = r.cost_micros
            if cost is None:
                try:
                    cost = (
                        0
                        if r.status != "ok"
                        else self.prices.voice_cost(r.voice_model, r.ts, r.characters)
                    )
                except PriceNotFound as exc:
                    problems.append(RecordProblem(r.id, str(exc)))
                    continue
            rows.append(
                {
                    "id": r.id,
                    "ts": as_utc(r.ts),
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

    def _compute_rows(
        self, records: Iterable[ComputeRecord], problems: list[RecordProblem]
    ) -> list[dict[str, Any]]:
        rows = []
        for r in records:
            if r.account_id not in self._accounts:
                problems.append(
                    RecordProblem(r.id, f"accountId {r.account_id} is not a known account")
                )
                continue
            if not self._check_owner(r.id, r.account_id, r.agent_id, problems, r.plain_vm_id):
                continue
            if r.end is not None and as_utc(r.end) < as_utc(r.start):
                problems.append(RecordProblem(r.id, "end is before start"))
                continue
            rows.append(
                {
                    "id": r.id,
                    "account_id": r.account_id,
                    "agent_id": r.agent_id,
                    "plain_vm_id": r.plain_vm_id,
                    "state": r.state,
                    "start": as_utc(r.start),
                    "end": as_utc(r.end) if r.end is not None else None,
                    "cents_per_hour_micros": r.cents_per_hour_micros,
                }
            )
        return rows

    # Idempotency

    async def _existing(
        self, conn: AsyncConnection, model: Any, ids: list[str]
    ) -> dict[str, dict[str, Any]]:
        table = model.__table__
        found: dict[str, dict[str, Any]] = {}
        for chunk in _chunks(ids, _IN_CHUNK):
            rows = await conn.execute(select(table).where(table.c.id.in_(chunk)))
            for row in rows.mappings():
                found[row["id"]] = dict(row)
        return found

    async def _new_only(
        self,
        conn: AsyncConnection,
        model: Any,
        rows: list[dict[str, Any]],
        problems: list[RecordProblem],
        result: IngestResult,
    ) -> list[dict[str, Any]]:
        if not rows:
            return []
        existing = await self._existing(conn, model, [r["id"] for r in rows])
        fresh = []
        for row in rows:
            stored = existing.get(row["id"])
            if stored is None:
                fresh.append(row)
            elif _same(stored, row):
                result.duplicates += 1
            else:
                problems.append(RecordProblem(row["id"], _difference(stored, row)))
        return fresh

    async def _new_compute(
        self,
        conn: AsyncConnection,
        rows: list[dict[str, Any]],
        problems: list[RecordProblem],
        result: IngestResult,
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        if not rows:
            return [], []
        existing = await self._existing(conn, ComputeInterval, [r["id"] for r in rows])
        fresh, closing = [], []
        for row in rows:
            stored = existing.get(row["id"])
            if stored is None:
                fresh.append(row)
                continue
            same_but_end = _same(stored, row, ignore=("end",))
            if same_but_end and stored["end"] is None and row["end"] is not None:
                closing.append(row)  # the one allowed change: an open interval gets its end
            elif same_but_end and (row["end"] is None or _same(stored, row)):
                result.duplicates += 1  # a resend, or an older open copy of a closed interval
            else:
                problems.append(RecordProblem(row["id"], _difference(stored, row)))
        return fresh, closing

    async def _close_intervals(
        self, conn: AsyncConnection, closing: list[dict[str, Any]], result: IngestResult
    ) -> list[dict[str, Any]]:
        table = ComputeInterval.__table__  # type: ignore[attr-defined]
        closed = []
        for row in closing:
            # Only the writer that flips end from NULL rolls it up, however many race.
            done = await conn.execute(
                update(table)
                .where(and_(table.c.id == row["id"], table.c.end.is_(None)))
                .values(end=row["end"])
            )
            if done.rowcount == 1:
                closed.append(row)
                result.closed_intervals += 1
            else:
                result.duplicates += 1
        return closed

    # Rollups

    async def _upsert(
        self,
        conn: AsyncConnection,
        model: Any,
        key_columns: tuple[str, ...],
        sums: dict[tuple[Any, ...], list[int]],
        sum_columns: tuple[str, ...],
    ) -> None:
        table = model.__table__
        # One lock order for every writer, so concurrent PostgreSQL upserts cannot deadlock.
        rows = [
            dict(zip(key_columns, key, strict=True)) | dict(zip(sum_columns, values, strict=True))
            for key, values in sorted(sums.items(), key=lambda item: tuple(str(k) for k in item[0]))
        ]
        statement = _dialect_insert(conn, table)
        statement = statement.on_conflict_do_update(
            index_elements=[table.c[c] for c in key_columns],
            set_={c: table.c[c] + statement.excluded[c] for c in sum_columns},
        )
        for chunk in _chunks(rows, 2000):
            await conn.execute(statement, chunk)

    async def _add_llm_rollups(self, conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
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
            acc = sums.get(key)
            if acc is None:
                sums[key] = [r["cost_micros"], 1, r["input_tokens"], r["output_tokens"]]
            else:
                acc[0] += r["cost_micros"]
                acc[1] += 1
                acc[2] += r["input_tokens"]
                acc[3] += r["output_tokens"]
        hourly: dict[tuple[Any, ...], list[int]] = {}
        for r in rows:
            hour = r["ts"].replace(minute=0, second=0, microsecond=0)
            acc = hourly.setdefault((r["account_id"], r["key_id"], hour), [0, 0])
            acc[0] += r["cost_micros"]
            acc[1] += 1
        await self._upsert(
            conn,
            LlmHourly,
            ("account_id", "key_id", "hour"),
            hourly,
            ("cost_micros", "request_count"),
        )
        await self._upsert(
            conn,
            LlmDaily,
            ("account_id", "day", "key_id", "agent_id", "provider", "model"),
            sums,
            ("cost_micros", "request_count", "input_tokens", "output_tokens"),
        )

    async def _add_voice_rollups(self, conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
        sums: dict[tuple[Any, ...], list[int]] = {}
        for r in rows:
            key = (r["account_id"], r["ts"].date(), r["agent_id"] or NONE_ID, r["voice_model"])
            acc = sums.setdefault(key, [0, 0, 0])
            acc[0] += r["cost_micros"]
            acc[1] += r["characters"]
            acc[2] += 1
        await self._upsert(
            conn,
            VoiceDaily,
            ("account_id", "day", "agent_id", "voice_model"),
            sums,
            ("cost_micros", "characters", "request_count"),
        )

    async def _add_compute_rollups(self, conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
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
        await self._upsert(
            conn,
            ComputeDaily,
            ("account_id", "day", "agent_id", "plain_vm_id", "state"),
            sums,
            ("cost_micros", "duration_us"),
        )


def _normal(value: Any) -> Any:
    if isinstance(value, datetime):
        return as_utc(value)
    return value


def _same(stored: dict[str, Any], row: dict[str, Any], ignore: tuple[str, ...] = ()) -> bool:
    return all(_normal(stored.get(k)) == _normal(v) for k, v in row.items() if k not in ignore)


def _difference(stored: dict[str, Any], row: dict[str, Any]) -> str:
    fields = [k for k, v in row.items() if _normal(stored.get(k)) != _normal(v)]
    return f"event id already recorded with different {', '.join(fields)}"


def _dedupe_batch(
    rows: list[dict[str, Any]], problems: list[RecordProblem]
) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    out = []
    for row in rows:
        first = seen.get(row["id"])
        if first is None:
            seen[row["id"]] = row
            out.append(row)
        elif not _same(first, row):
            problems.append(
                RecordProblem(row["id"], "the same event id appears twice with different content")
            )
    return out


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
