"""Recording events: idempotent by event id, rollups maintained in the same transaction.

The steps live beside this module: `_owners` (what an event points at), `_rows` (records to
checked, priced rows), `_duplicates` (idempotency) and `_rollups` (the sums usage/ reads).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from crabglamp.db import write_transaction
from crabglamp.db.bulk import insert_rows
from crabglamp.db.changes import ChangeKind, ChangeSet, announce
from crabglamp.db.retry import with_retries
from crabglamp.db.tables import table_of
from crabglamp.ingest._duplicates import (
    by_id,
    close_intervals,
    dedupe_batch,
    new_compute,
    new_only,
)
from crabglamp.ingest._owners import Owners, owners_of_batch, track_writes
from crabglamp.ingest._rollups import (
    LLM_CATEGORY_SUMS,
    add_compute_rollups,
    add_llm_rollups,
    add_voice_rollups,
)
from crabglamp.ingest._rows import compute_rows, llm_rows, voice_rows
from crabglamp.ingest.records import (
    ComputeRecord,
    IngestError,
    IngestResult,
    LlmRecord,
    Record,
    RecordProblem,
    VoiceRecord,
)
from crabglamp.models import ComputeInterval, LlmEvent, VoiceEvent
from crabglamp.periods import utcnow
from crabglamp.prices import PriceBook, default_price_book

# What llm_event's columns hold unless an event says otherwise, as the table's own defaults
# (migration 0007): a batch in which no event says otherwise is written without them.
_LLM_EVENT_DEFAULTS: Final[dict[str, Any]] = {
    **{column: 0 for column in LLM_CATEGORY_SUMS},
    "service_tier": None,
    "estimated": False,
}

# Batches from this size on pause the garbage collector (below).
PAUSE_COLLECTOR_FROM: Final = 1_000
_paused = 0


@contextmanager
def _collector_paused(size: int) -> Iterator[None]:
    """Keep the cyclic garbage collector out of a large batch.

    A batch allocates tens of thousands of rows, tuples and sums that all live until it ends;
    the collector would walk them again and again to free nothing (none of them forms a cycle):
    15-20 % of a 20,000-event batch's time, measured. Batches are bounded, and what they leave
    is collected after them as usual. Small batches (the proxy's, one event or a few) gain
    nothing and do not pause: a stream of overlapping small writes must never keep the
    collector off. Nested and concurrent large batches share one pause; the last to leave ends it.
    """
    global _paused
    if size < PAUSE_COLLECTOR_FROM or (_paused == 0 and not gc.isenabled()):
        yield  # small, or someone else turned it off: theirs to turn back on
        return
    _paused += 1
    gc.disable()
    try:
        yield
    finally:
        _paused -= 1
        if _paused == 0:
            gc.enable()


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
        self._committed = Owners()
        track_writes(engine)

    async def record(self, records: Sequence[Record], now: datetime | None = None) -> IngestResult:
        """Record in a transaction of its own, retrying when a concurrent writer raced us.

        `now` is the clock timestamps may not run a day ahead of: the server's, unless a caller
        simulates its own (the demo seeds up to a `now` of its choosing)."""

        async def once() -> IngestResult:
            async with write_transaction(self.engine) as conn:
                return await self.record_in(conn, records, now)

        return await with_retries(once)

    async def record_in(
        self, conn: AsyncConnection, records: Sequence[Record], now: datetime | None = None
    ) -> IngestResult:
        """Record within the caller's transaction; raises IngestError before writing anything."""
        with _collector_paused(len(records)):
            return await self._record_in(conn, records, now)

    async def _record_in(
        self, conn: AsyncConnection, records: Sequence[Record], now: datetime | None
    ) -> IngestResult:
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
        owners = await owners_of_batch(conn, self._committed, llm, voice, compute)
        now = now or utcnow()  # the timestamps' bound (ingest/_validation.py), once per batch
        llm_batch = dedupe_batch(
            llm_rows(llm, owners, self.prices, problems, now), problems, result
        )
        voice_batch = dedupe_batch(
            voice_rows(voice, owners, self.prices, problems, now), problems, result
        )
        compute_batch = dedupe_batch(
            compute_rows(compute, owners, problems, now), problems, result, may_close=True
        )
        if problems:
            raise IngestError(problems)

        new_llm = await new_only(conn, LlmEvent, llm_batch, problems, result)
        new_voice = await new_only(conn, VoiceEvent, voice_batch, problems, result)
        new_intervals, closing = await new_compute(conn, compute_batch, problems, result)
        if problems:
            raise IngestError(problems)

        # Inserted in id order: two batches sharing ids then take their locks in one order.
        if new_llm:
            new_llm.sort(key=by_id)
            await insert_rows(conn, table_of(LlmEvent), new_llm, _LLM_EVENT_DEFAULTS)
            await add_llm_rollups(conn, new_llm)
        if new_voice:
            new_voice.sort(key=by_id)
            await insert_rows(conn, table_of(VoiceEvent), new_voice)
            await add_voice_rollups(conn, new_voice)
        if new_intervals:
            new_intervals.sort(key=by_id)
            await insert_rows(conn, table_of(ComputeInterval), new_intervals)
        closed = [row for row in new_intervals if row["end"] is not None]
        closed += await close_intervals(conn, closing, result)
        if closed:
            await add_compute_rollups(conn, closed)
        # In this transaction: the dashboards listening hear of it exactly when it commits.
        changed = ChangeSet()
        changed.add_rows(new_llm, ChangeKind.LLM)
        changed.add_rows(new_voice, ChangeKind.VOICE)
        changed.add_rows([*new_intervals, *closed], ChangeKind.COMPUTE)
        await announce(conn, changed)
        result.inserted = len(new_llm) + len(new_voice) + len(new_intervals)
        result.new_ids = [r["id"] for r in (*new_llm, *new_voice, *new_intervals)]
        return result

    def forget(self) -> None:
        """Drop cached owners (tests that reset the database call this)."""
        self._committed.clear()
