"""Group commit: many concurrent callers, one transaction per batch, each caller told once durable."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from crabglamp.ingest import IngestError, Ingestor, Record


@dataclass(slots=True)
class WriterStats:
    batches: int = 0
    events: int = 0
    largest_batch: int = 0


class GroupCommitWriter:
    """`await writer.record(event)` returns once the event is committed.

    Callers that arrive while a batch is being committed wait for the next one, so the cost of a
    commit (an fsync on PostgreSQL, the write lock on SQLite) is shared by all of them.
    """

    def __init__(self, ingestor: Ingestor, max_batch: int = 2000) -> None:
        self.ingestor = ingestor
        self.max_batch = max_batch
        self.stats = WriterStats()
        self._queue: asyncio.Queue[tuple[Record, asyncio.Future[None]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="crabglamp-group-commit")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def record(self, record: Record) -> None:
        if self._task is None:
            await self.start()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self._queue.put((record, future))
        await future

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            await self._commit(batch)

    async def _commit(self, batch: list[tuple[Record, asyncio.Future[None]]]) -> None:
        try:
            await self.ingestor.record([record for record, _ in batch])
        except IngestError as exc:
            if len(batch) > 1:
                # One bad event must not fail its neighbours: record them one by one.
                for item in batch:
                    await self._commit([item])
                return
            _fail(batch, exc)
            return
        except Exception as exc:  # the database is unreachable: every waiter hears it
            _fail(batch, exc)
            return
        self.stats.batches += 1
        self.stats.events += len(batch)
        self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
        for _, future in batch:
            if not future.done():  # a caller that disconnected has cancelled its future
                future.set_result(None)


def _fail(batch: list[tuple[Record, asyncio.Future[None]]], exc: BaseException) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(exc)
