"""Recording events: idempotent by event id, rollups maintained in the same transaction."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, event, func, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from crabglamp.db import WRITE_OPTION, is_sqlite, write_transaction
from crabglamp.db.bulk import add_to_sums, existing_ids, insert_rows
from crabglamp.db.chunks import chunks
from crabglamp.db.retry import retryable
from crabglamp.db.tables import table_of
from crabglamp.intervals import compute_cost_pieces
from crabglamp.models import (
    NONE_ID,
    Account,
    Agent,
    ComputeDaily,
    ComputeInterval,
    LlmDaily,
    LlmDailyAgent,
    LlmDailyKey,
    LlmDailyModel,
    LlmEvent,
    LlmHourly,
    PlainVm,
    VirtualKey,
    VoiceDaily,
    VoiceEvent,
)
from crabglamp.periods import as_utc
from crabglamp.prices import PriceBook, PriceNotFound, default_price_book

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


def catalog_cost(prices: PriceBook, record: LlmRecord | VoiceRecord) -> int:
    """The catalog's price of a record's tokens or characters on its (UTC) day, whatever cost or
    status it states; raises PriceNotFound. The proxy, the bundle and the Ingestor all price
    with this, so that the same usage costs the same whichever way it arrives."""
    if isinstance(record, LlmRecord):
        return prices.llm_cost(
            record.provider, record.model, record.ts, record.input_tokens, record.output_tokens
        )
    return prices.voice_cost(record.voice_model, record.ts, record.characters)


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


@dataclass(slots=True)
class _Owners:
    """Which account owns each key, agent and plain VM, and which accounts exist.

    These facts never change once committed (nothing moves between accounts), so the ingestor
    keeps the ones it read from committed state; one batch sees that cache plus its own reads.
    """

    keys: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict)
    agents: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict)
    vms: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict)
    accounts: set[uuid.UUID] = field(default_factory=set)

    def remember(self, other: _Owners) -> None:
        self.keys.update(other.keys)
        self.agents.update(other.agents)
        self.vms.update(other.vms)
        self.accounts.update(other.accounts)

    def clear(self) -> None:
        self.keys.clear()
        self.agents.clear()
        self.vms.clear()
        self.accounts.clear()


_STATUSES = frozenset({"ok", "error"})
_STATES = frozenset({"running", "paused"})


class Ingestor:
    """Records batches of events. Safe to share between tasks.

    It caches who owns which key, agent and plain VM, and which accounts exist, but only rows
    that were committed before the transaction that read them: a caller's transaction (an
    import, say) may have created rows itself and may still roll back. Rows a transaction sees
    before it has written anything were committed by others, so those are the ones kept.
    """

    def __init__(self, engine: AsyncEngine, prices: PriceBook | None = None) -> None:
        self.engine = engine
        self.prices = prices or default_price_book()
        self._committed = _Owners()
        if is_sqlite(engine) and not event.contains(
            engine.sync_engine, "begin", _note_changes_at_begin
        ):
            event.listen(engine.sync_engine, "begin", _note_changes_at_begin)

    async def record(self, records: Sequence[Record]) -> IngestResult:
        """Record in a transaction of its own, retrying when a concurrent writer raced us."""
        for attempt in range(_RETRIES):
            try:
                async with write_transaction(self.engine) as conn:
                    return await self.record_in(conn, records)
            except DBAPIError as exc:
                if attempt == _RETRIES - 1 or not retryable(exc):
                    raise
                await asyncio.sleep(0.005 * (attempt + 1))
        raise AssertionError("unreachable")

    async def record_in(self, conn: AsyncConnection, records: Sequence[Record]) -> IngestResult:
        """Record within the caller's transaction; raises IngestError before writing anything."""
        llm: list[LlmRecord] = []
        voice: list[VoiceRecord] = []
        compute: list[ComputeRecord] = []
        for record in records:
            if isinstance(record, LlmRecord):
                llm.append(record)
            elif isinstance(record, VoiceRecord):
                voice.append(record)
            else:
                compute.append(record)
        problems: list[RecordProblem] = []
        result = IngestResult()
        owners = await self._owners(conn, llm, voice, compute)
        llm_rows = _dedupe_batch(self._llm_rows(llm, owners, problems), problems, result)
        voice_rows = _dedupe_batch(self._voice_rows(voice, owners, problems), problems, result)
        compute_rows = _dedupe_batch(
            self._compute_rows(compute, owners, problems), problems, result, may_close=True
        )
        if problems:
            raise IngestError(problems)

        new_llm = await self._new_only(conn, LlmEvent, llm_rows, problems, result)
        new_voice = await self._new_only(conn, VoiceEvent, voice_rows, problems, result)
        new_compute, closing = await self._new_compute(conn, compute_rows, problems, result)
        if problems:
            raise IngestError(problems)

        # Inserted in id order: two batches sharing ids then take their locks in one order.
        if new_llm:
            new_llm.sort(key=_by_id)
            await insert_rows(conn, table_of(LlmEvent), new_llm)
            await self._add_llm_rollups(conn, new_llm)
        if new_voice:
            new_voice.sort(key=_by_id)
            await insert_rows(conn, table_of(VoiceEvent), new_voice)
            await self._add_voice_rollups(conn, new_voice)
        if new_compute:
            new_compute.sort(key=_by_id)
            await insert_rows(conn, table_of(ComputeInterval), new_compute)
        closed = [row for row in new_compute if row["end"] is not None]
        closed += await self._close_intervals(conn, closing, result)
        if closed:
            await self._add_compute_rollups(conn, closed)
        result.inserted = len(new_llm) + len(new_voice) + len(new_compute)
        result.new_ids = [r["id"] for r in (*new_llm, *new_voice, *new_compute)]
        return result

    # Owners: every event must point at things that exist, in the same account

    async def _owners(
        self,
        conn: AsyncConnection,
        llm: Sequence[LlmRecord],
        voice: Sequence[VoiceRecord],
        compute: Sequence[ComputeRecord],
    ) -> _Owners:
        """The owners of this batch: from the cache, else read in `conn` (and then cached when
        `conn` has written nothing yet, so that what it read was committed by others)."""
        keys = {r.key_id for r in llm}
        agents = {r.agent_id for r in llm if r.agent_id is not None}
        accounts = set()
        for v in voice:
            accounts.add(v.account_id)
            if v.key_id is not None:
                keys.add(v.key_id)
            if v.agent_id is not None:
                agents.add(v.agent_id)
        vms = set()
        for c in compute:
            accounts.add(c.account_id)
            if c.agent_id is not None:
                agents.add(c.agent_id)
            if c.plain_vm_id is not None:
                vms.add(c.plain_vm_id)
        cache, owners, read = self._committed, _Owners(), _Owners()
        await _owned_by(conn, VirtualKey, keys, cache.keys, owners.keys, read.keys)
        await _owned_by(conn, Agent, agents, cache.agents, owners.agents, read.agents)
        await _owned_by(conn, PlainVm, vms, cache.vms, owners.vms, read.vms)
        owners.accounts = accounts & cache.accounts
        missing = accounts - owners.accounts
        if missing:
            table = table_of(Account)
            for chunk in chunks(sorted(missing)):
                found = await conn.execute(select(table.c.id).where(table.c.id.in_(chunk)))
                read.accounts.update(row[0] for row in found)
            owners.accounts |= read.accounts
        if (read.keys or read.agents or read.vms or read.accounts) and await _sees_only_committed(
            conn
        ):
            cache.remember(read)
        return owners

    def forget(self) -> None:
        """Drop cached owners (tests that reset the database call this)."""
        self._committed.clear()

    @staticmethod
    def _check_owner(
        event_id: str,
        account_id: uuid.UUID,
        agent_id: uuid.UUID | None,
        owners: _Owners,
        problems: list[RecordProblem],
        plain_vm_id: uuid.UUID | None = None,
    ) -> bool:
        if agent_id is not None and owners.agents.get(agent_id) != account_id:
            problems.append(
                RecordProblem(event_id, f"agentId {agent_id} is not an agent of this account")
            )
            return False
        if plain_vm_id is not None and owners.vms.get(plain_vm_id) != account_id:
            problems.append(
                RecordProblem(
                    event_id, f"plainVmId {plain_vm_id} is not a plain VM of this account"
                )
            )
            return False
        return True

    # Rows

    def _llm_rows(
        self, records: Iterable[LlmRecord], owners: _Owners, problems: list[RecordProblem]
    ) -> list[dict[str, Any]]:
        rows = []
        for r in records:
            account_id = owners.keys.get(r.key_id)
            if account_id is None:
                problems.append(RecordProblem(r.id, f"keyId {r.key_id} is not a known virtual key"))
                continue
            if not self._check_owner(r.id, account_id, r.agent_id, owners, problems):
                continue
            invalid = _llm_problem(r)
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
                        cost = catalog_cost(self.prices, r)
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
                }
            )
        return rows

    def _voice_rows(
        self, records: Iterable[VoiceRecord], owners: _Owners, problems: list[RecordProblem]
    ) -> list[dict[str, Any]]:
        rows = []
        for r in records:
            if r.account_id not in owners.accounts:
                problems.append(
                    RecordProblem(r.id, f"accountId {r.account_id} is not a known account")
                )
                continue
            if not self._check_owner(r.id, r.account_id, r.agent_id, owners, problems):
                continue
            if r.key_id is not None and owners.keys.get(r.key_id) != r.account_id:
                problems.append(
                    RecordProblem(r.id, f"keyId {r.key_id} is not a key of this account")
                )
                continue
            invalid = _voice_problem(r)
            if invalid:
                problems.append(RecordProblem(r.id, invalid))
                continue
            ts = as_utc(r.ts)
            cost = r.cost_micros
            if cost is None:
                try:
                    cost = 0 if r.status != "ok" else catalog_cost(self.prices, r)
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

    def _compute_rows(
        self, records: Iterable[ComputeRecord], owners: _Owners, problems: list[RecordProblem]
    ) -> list[dict[str, Any]]:
        rows = []
        for r in records:
            if r.account_id not in owners.accounts:
                problems.append(
                    RecordProblem(r.id, f"accountId {r.account_id} is not a known account")
                )
                continue
            if not self._check_owner(
                r.id, r.account_id, r.agent_id, owners, problems, r.plain_vm_id
            ):
                continue
            start = as_utc(r.start)
            end = as_utc(r.end) if r.end is not None else None
            invalid = _interval_problem(r, start, end)
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

    # Idempotency

    async def _existing(
        self, conn: AsyncConnection, model: Any, ids: list[str], lock: bool = False
    ) -> dict[str, dict[str, Any]]:
        table = table_of(model)
        found: dict[str, dict[str, Any]] = {}
        # One cheap probe for the whole batch; full rows only for the (rare) ids already stored.
        ids = sorted(await existing_ids(conn, table, ids))
        for chunk in chunks(ids):
            statement = select(table).where(table.c.id.in_(chunk))
            if lock:
                # PostgreSQL: a concurrent closer waits here and then sees the closed row, so
                # it compares against the end that won (SQLite writers are serial already).
                statement = statement.order_by(table.c.id).with_for_update()
            rows = await conn.execute(statement)
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
        existing = await self._existing(conn, ComputeInterval, [r["id"] for r in rows], lock=True)
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
                # An open copy has no end to differ in; name what does differ.
                ignore = ("end",) if row["end"] is None else ()
                problems.append(RecordProblem(row["id"], _difference(stored, row, ignore)))
        return fresh, closing

    async def _close_intervals(
        self, conn: AsyncConnection, closing: list[dict[str, Any]], result: IngestResult
    ) -> list[dict[str, Any]]:
        table = table_of(ComputeInterval)
        closed = []
        for row in sorted(closing, key=_by_id):
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
        # One lock order for every writer, so concurrent PostgreSQL upserts cannot deadlock.
        rows = [(*key, *values) for key, values in sorted(sums.items(), key=_lock_order)]
        await add_to_sums(conn, table_of(model), key_columns, sum_columns, rows)

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
        await self._add_coarse_llm_rollups(conn, sums)

    async def _add_coarse_llm_rollups(
        self, conn: AsyncConnection, sums: dict[tuple[Any, ...], list[int]]
    ) -> None:
        # The usage response's breakdowns, summed from llm_daily's batch sums (far fewer than
        # the events), so a month is read from a few thousand rows instead of llm_daily's.
        by_model: dict[tuple[Any, ...], list[int]] = {}
        by_agent: dict[tuple[Any, ...], list[int]] = {}
        by_key: dict[tuple[Any, ...], list[int]] = {}
        for (account_id, day, key_id, agent_id, provider, model), values in sums.items():
            cost, count, tokens_in, tokens_out = values
            acc = by_model.get((account_id, day, provider, model))
            if acc is None:
                by_model[(account_id, day, provider, model)] = [cost, count, tokens_in, tokens_out]
            else:
                acc[0] += cost
                acc[1] += count
                acc[2] += tokens_in
                acc[3] += tokens_out
            acc = by_agent.setdefault((account_id, day, agent_id), [0, 0])
            acc[0] += cost
            acc[1] += count
            acc = by_key.setdefault((account_id, day, key_id, provider), [0, 0])
            acc[0] += cost
            acc[1] += count
        await self._upsert(
            conn,
            LlmDailyModel,
            ("account_id", "day", "provider", "model"),
            by_model,
            ("cost_micros", "request_count", "input_tokens", "output_tokens"),
        )
        await self._upsert(
            conn,
            LlmDailyAgent,
            ("account_id", "day", "agent_id"),
            by_agent,
            ("cost_micros", "request_count"),
        )
        await self._upsert(
            conn,
            LlmDailyKey,
            ("account_id", "day", "key_id", "provider"),
            by_key,
            ("cost_micros", "request_count"),
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


def _difference(stored: dict[str, Any], row: dict[str, Any], ignore: tuple[str, ...] = ()) -> str:
    fields = [k for k, v in row.items() if k not in ignore and _normal(stored.get(k)) != _normal(v)]
    return f"event id already recorded with different {', '.join(fields)}"


def _lock_order(item: tuple[tuple[Any, ...], list[int]]) -> tuple[Any, ...]:
    return tuple(k.int if isinstance(k, uuid.UUID) else k for k in item[0])


def _by_id(row: dict[str, Any]) -> str:
    return str(row["id"])


def _common_problem(event_id: str, status: str, cost_micros: int | None) -> str | None:
    if not event_id:
        return "the event id must not be empty"
    if status not in _STATUSES:
        return f"status must be ok or error, not {status!r}"
    if cost_micros is not None and cost_micros < 0:
        return f"costCents must not be negative, got {cost_micros} micro-cents"
    return None


def _llm_problem(r: LlmRecord) -> str | None:
    if r.input_tokens < 0 or r.output_tokens < 0:
        return f"token counts must not be negative, got {r.input_tokens} and {r.output_tokens}"
    if not r.provider or not r.model:
        return "provider and model must not be empty"
    return _common_problem(r.id, r.status, r.cost_micros)


def _voice_problem(r: VoiceRecord) -> str | None:
    if r.characters < 0:
        return f"characters must not be negative, got {r.characters}"
    if not r.voice_model:
        return "voiceModel must not be empty"
    return _common_problem(r.id, r.status, r.cost_micros)


def _interval_problem(r: ComputeRecord, start: datetime, end: datetime | None) -> str | None:
    if not r.id:
        return "the event id must not be empty"
    if r.state not in _STATES:
        return f"state must be running or paused, not {r.state!r}"
    if r.cents_per_hour_micros < 0:
        return f"centsPerHour must not be negative, got {r.cents_per_hour_micros} micro-cents"
    if end is not None and end < start:
        return "end is before start"
    if r.agent_id is not None and r.plain_vm_id is not None:
        return "an interval belongs to an agent or to a plain VM, not both"
    return None


def _dedupe_batch(
    rows: list[dict[str, Any]],
    problems: list[RecordProblem],
    result: IngestResult,
    may_close: bool = False,
) -> list[dict[str, Any]]:
    """One row per event id. With `may_close`, an open and a closed copy of one compute
    interval may share a batch: the closed copy is kept."""
    kept: dict[str, dict[str, Any]] = {}
    for row in rows:
        first = kept.get(row["id"])
        if first is None:
            kept[row["id"]] = row
            continue
        result.duplicates += 1
        if _same(first, row):
            continue
        if (
            may_close
            and (first["end"] is None or row["end"] is None)
            and _same(first, row, ignore=("end",))
        ):
            if first["end"] is None:
                kept[row["id"]] = row
            continue
        problems.append(
            RecordProblem(row["id"], "the same event id appears twice with different content")
        )
    return list(kept.values())


async def _owned_by(
    conn: AsyncConnection,
    model: Any,
    ids: set[uuid.UUID],
    cached: dict[uuid.UUID, uuid.UUID],
    into: dict[uuid.UUID, uuid.UUID],
    read: dict[uuid.UUID, uuid.UUID],
) -> None:
    """Fill `into` with the owning account of each id, from `cached` or else the database
    (what came from the database also goes to `read`)."""
    missing = []
    for item in ids:
        account_id = cached.get(item)
        if account_id is None:
            missing.append(item)
        else:
            into[item] = account_id
    table = table_of(model)
    for chunk in chunks(sorted(missing)):
        rows = await conn.execute(
            select(table.c.id, table.c.account_id).where(table.c.id.in_(chunk))
        )
        read.update((row[0], row[1]) for row in rows)
    into.update(read)


_CHANGES_AT_BEGIN = "crabglamp_total_changes_at_begin"


def _note_changes_at_begin(connection: Any) -> None:
    # SQLite: how many rows this connection had changed when its write transaction began, so
    # that `_sees_only_committed` can tell whether the transaction has written since. Other
    # transactions get no mark, and their reads are not cached.
    if connection.get_execution_options().get(WRITE_OPTION, False):
        total = connection.exec_driver_sql("SELECT total_changes()").scalar()
        connection.info[_CHANGES_AT_BEGIN] = total
    else:
        connection.info.pop(_CHANGES_AT_BEGIN, None)


async def _sees_only_committed(conn: AsyncConnection) -> bool:
    """True while `conn`'s transaction has written nothing: every row it sees was then
    committed by another transaction, and stays committed whatever becomes of this one."""
    if conn.dialect.name == "postgresql":
        # A transaction gets an id with its first write (or row lock), in any savepoint too.
        return (await conn.execute(select(func.txid_current_if_assigned()))).scalar() is None
    if is_sqlite(conn):
        began = conn.info.get(_CHANGES_AT_BEGIN)
        changes = (await conn.execute(select(func.total_changes()))).scalar()
        return began is not None and began == changes
    return False
