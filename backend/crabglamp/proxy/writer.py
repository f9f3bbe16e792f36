"""Group commit: many concurrent callers, one transaction per batch, each caller told once durable.

The proxy records each request's event together with the settlement of its spend reservation,
in the same transaction: the cost is counted against the cap exactly when the event exists.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from crabglamp.db import is_sqlite, write_transaction
from crabglamp.db.retry import with_retries
from crabglamp.db.sqlite_threads import WriterThread
from crabglamp.ingest._owners import track_writes
from crabglamp.ingest.ingestor import Ingestor
from crabglamp.ingest.records import IngestError, Record
from crabglamp.proxy.ledger import settle_in
from crabglamp.proxy.reservation import Settlement


@dataclass(slots=True)
class WriterStats:
    batches: int = 0
    events: int = 0
    largest_batch: int = 0
    failed_batches: int = 0


@dataclass(slots=True)
class _Item:
    record: Record
    settlement: Settlement | None
    future: asyncio.Future[None]


class GroupCommitWriter:
    """`await writer.record(event)` returns once the event is committed.

    Callers that arrive while a batch is being committed wait for the next one, so the cost of a
    commit (an fsync on PostgreSQL, the write lock on SQLite) is shared by all of them.
    """

    def __init__(self, ingestor: Ingestor, max_batch: int = 2000) -> None:
        self.ingestor = ingestor
        self.max_batch = max_batch
        self.stats = WriterStats()
        # Told the size of each batch once committed (the proxy's metrics).
        self.on_commit: list[Callable[[int], None]] = []
        # SQLite has one writer at a time; tasks of this process that write through their own
        # connections (the spend caps' admissions) take turns here instead of sleeping on the
        # database's busy handler.
        self.lock: asyncio.Lock | None = asyncio.Lock() if is_sqlite(ingestor.engine) else None
        # SQLite: each transaction runs whole on a thread of its own (one hop, not one per
        # statement); the spend caps' admissions run there too, between the batches.
        self.thread: WriterThread | None = None
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.thread is None and is_sqlite(self.ingestor.engine):
            self.thread = WriterThread(self.ingestor.engine)
            track_writes(self.thread.engine)
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="crabglamp-group-commit")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.thread is not None:
            thread, self.thread = self.thread, None
            await thread.close()

    async def record(self, record: Record, settlement: Settlement | None = None) -> None:
        """Commit `record` (and settle its reservation, if any) before returning.

        Once queued the event is committed whatever happens to the caller: a caller that is
        cancelled while waiting does not take its event back."""
        if self._task is None:
            await self.start()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Item(record, settlement, future))
        await future

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            await self._commit(batch)

    async def _commit(self, batch: list[_Item]) -> None:
        try:
            await self._write(batch)
        except IngestError as exc:
            if len(batch) > 1:
                # One bad event must not fail its neighbours: record them one by one.
                for item in batch:
                    await self._commit([item])
                return
            _fail(batch, exc)
            return
        except Exception as exc:  # the database is unreachable: every waiter hears it
            self.stats.failed_batches += 1
            _fail(batch, exc)
            return
        self.stats.batches += 1
        self.stats.events += len(batch)
        self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
        for told in self.on_commit:
            told(len(batch))
        for item in batch:
            if not item.future.done():  # a caller that disconnected has cancelled its future
                item.future.set_result(None)

    async def _write(self, batch: list[_Item]) -> None:
        """One transaction: the events with their rollups, then the settlements."""
        records = [item.record for item in batch]
        settled = [item for item in batch if item.settlement is not None]

        async def body(conn: AsyncConnection) -> None:
            result = await self.ingestor.record_in(conn, records)
            if settled:
                new = set(result.new_ids)
                await settle_in(
                    conn,
                    [item.settlement for item in settled if item.settlement is not None],
                    [item.record.id in new for item in settled],
                )

        async def once() -> None:
            if self.thread is not None:
                await self.thread.transaction(body)
                return
            async with write_transaction(self.ingestor.engine) as conn:
                await body(conn)

        await with_retries(once)


def _fail(batch: list[_Item], exc: BaseException) -> None:
    for item in batch:
        if not item.future.done():
            item.future.set_exception(exc)
