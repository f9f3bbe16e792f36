"""Spend caps: reserve a request's maximum cost before it runs, settle or release it after.

One row per key and UTC calendar month (`key_spend`) holds what was spent and what is reserved
for requests in flight. Admission is one conditional UPDATE of that row — it succeeds only if
`spent + reserved + estimate <= cap` — so concurrent requests, in one process or many, can never
together reserve past the cap: the database serialises them on the row. A new month is a new
row, which is the calendar-month reset.

A reservation is also a row of its own, so that settling (in the same transaction as the event,
see writer.py) or releasing it happens exactly once, and the sweeper can free the reservations
of requests that are certainly over: past their deadline, or held under the lease (lease.py) of
a process that is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import bindparam, delete, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from crabglamp.db import is_sqlite, make_engine, read_transaction, write_transaction
from crabglamp.db.retry import with_retries
from crabglamp.db.sqlite_threads import WriterThread
from crabglamp.db.tables import table_of
from crabglamp.models import KeySpend, ProxyLease, SpendReservation
from crabglamp.periods import utcnow
from crabglamp.proxy._reserve import ADMISSION, ADMIT_AND_RESERVE, admission_params, why_refused
from crabglamp.proxy.lease import Lease, end, gone_leases, new_lease, renew
from crabglamp.proxy.ledger import free, month_spend
from crabglamp.proxy.requestlog import emit
from crabglamp.proxy.reservation import CapExceeded, KeyRefused, MonthSpend, Reservation, month_of
from crabglamp.usage.spend import spend_of_keys

_T = TypeVar("_T")
# Connections of the PostgreSQL admission engine.
ADMISSION_POOL = 10
_spend = table_of(KeySpend)
_reservations = table_of(SpendReservation)
_leases = table_of(ProxyLease)
_RESERVE = _reservations.insert()  # built once: per admission only its rows change
_MONTH_ROWS = select(_spend.c.key_id, _spend.c.spent_micros).where(
    _spend.c.month == bindparam("month", type_=_spend.c.month.type)
)


def _settle_future(future: asyncio.Future[_T], source: asyncio.Future[_T]) -> None:
    """Complete `future` with whatever `source` ends with."""

    def copy(done: asyncio.Future[_T]) -> None:
        if future.done():
            return
        if done.cancelled():
            future.cancel()
        elif done.exception() is not None:
            future.set_exception(done.exception())  # type: ignore[arg-type]
        else:
            future.set_result(done.result())

    source.add_done_callback(copy)


@dataclass(slots=True)
class _Admission:
    key_id: uuid.UUID
    secret_hash: str
    estimate_micros: int
    now: datetime
    # Where a batched admission's outcome goes (None when decided on its own).
    future: asyncio.Future[Reservation | CapExceeded | KeyRefused] | None = None

    @property
    def month(self) -> date:
        return month_of(self.now)


class SpendCaps:
    """Admission, release and sweeping. Settling happens in the writer's transaction
    (`settle_in`), because it must commit together with the event it pays for.

    Concurrent admissions are group-committed like events: one transaction holds one
    conditional UPDATE per request (each as atomic as alone), so a burst of requests shares one
    commit. On PostgreSQL only the admissions that find every connection of the admission pool
    but one busy wait for that; the others are their own single statement. On SQLite, `lock`
    (the writer's) keeps this process's writers from contending for the database's write lock,
    which would make them sleep and retry.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        reservation_ttl: timedelta,
        lock: asyncio.Lock | None = None,
        max_batch: int = 500,
        thread: WriterThread | None = None,
        lease_ttl: timedelta = timedelta(seconds=10),
        heartbeat_seconds: float = 1.0,
    ) -> None:
        self.engine = engine
        self.reservation_ttl = reservation_ttl
        self.lease_ttl = lease_ttl
        self.heartbeat_seconds = heartbeat_seconds
        # This process's lease, written before its first reservation and renewed meanwhile.
        self.lease: Lease | None = None
        self._opening: asyncio.Future[Lease] | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self.lock = lock
        self.thread = thread
        self.max_batch = max_batch
        self._queue: asyncio.Queue[_Admission] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        # Admissions, releases and sweeps need to be visible to other processes at once, not to
        # survive a crash: a lost reservation belonged to a request that died with the server.
        # On PostgreSQL they therefore skip the wait for the WAL flush.
        if is_sqlite(engine):
            self.admit_engine = engine
            self._own_engine = False
        else:
            self.admit_engine = make_engine(
                engine.url.render_as_string(hide_password=False),
                # Kept open, none beyond: under load an overflow connection was opened for a
                # single admission and closed again (its TLS attempt, start-up and teardown
                # cost a fifth of the proxy's CPU at 64 connections); past nine admissions at
                # once, the rest are decided together on the tenth (`reserve`).
                pool_size=ADMISSION_POOL,
                max_overflow=0,
                connect_args={"server_settings": {"synchronous_commit": "off"}},
                # Each admission is one statement: autocommit, set once for the whole pool
                # rather than on every checkout.
                isolation_level="AUTOCOMMIT",
            )
            self._own_engine = True
        # PostgreSQL: an admission is its own statement while the pool has a connection for
        # it; beyond that, the admissions that would wait for one are decided together, in
        # one transaction on the connection left (as on SQLite, always): under load the
        # per-statement cost is paid once per burst, not once per request.
        self._alone_limit = 0 if is_sqlite(engine) else ADMISSION_POOL - 1
        self._alone = 0

    async def close(self) -> None:
        for task in (self._task, self._heartbeat):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._heartbeat = None
        if self.lease is not None:
            lease, self.lease, self._opening = self.lease, None, None
            with contextlib.suppress(Exception):  # the database is away: the lease lapses
                await self._in_write(partial(end, lease=lease))
        if self._own_engine:
            await self.admit_engine.dispose()

    def _serialised(self) -> contextlib.AbstractAsyncContextManager[Any]:
        return self.lock if self.lock is not None else contextlib.nullcontext()

    async def _in_write(self, fn: Callable[[AsyncConnection], Awaitable[_T]]) -> _T:
        """`fn` in a write transaction of its own: on SQLite, on the writer's thread when the
        proxy shares it (one hop for the whole transaction), else on the admission engine."""
        if self.thread is not None:
            return await self.thread.transaction(fn)
        if self._own_engine:
            # The admission engine autocommits each statement; freeing a reservation is two
            # (its row, then its month's `reserved`), which must commit together: a reader
            # between them saw the reservation gone and its amount still reserved.
            async with self.admit_engine.connect() as conn:
                conn = await conn.execution_options(isolation_level="READ COMMITTED")
                async with conn.begin():
                    return await fn(conn)
        async with self._serialised(), write_transaction(self.admit_engine) as conn:
            return await fn(conn)

    # The lease

    async def start(self) -> Lease:
        """Write this process's lease (once) and keep it renewed; reserving does it too."""
        if self._opening is None:
            self._opening = asyncio.ensure_future(self._open())
        try:
            return await asyncio.shield(self._opening)
        except Exception:
            self._opening = None  # the database was away: the next admission tries again
            raise

    async def _open(self) -> Lease:
        lease = new_lease()
        await self.heartbeat(lease)
        self.lease = lease
        self._heartbeat = asyncio.create_task(self._beat_forever(lease), name="crabglamp-lease")
        return lease

    async def _beat_forever(self, lease: Lease) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_seconds)
            try:
                if not await self.heartbeat(lease):
                    emit({"event": "lease_lapsed", "lease": str(lease.id)})
            except Exception as exc:  # the database may be briefly away; beat again soon
                emit({"event": "heartbeat_failed", "error": type(exc).__name__})

    async def heartbeat(self, lease: Lease, now: datetime | None = None) -> bool:
        return await self._in_write(
            partial(renew, lease=lease, now=now or utcnow(), ttl=self.lease_ttl)
        )

    # Admission

    async def reserve(
        self,
        key_id: uuid.UUID,
        secret_hash: str,
        estimate_micros: int,
        now: datetime | None = None,
    ) -> Reservation | CapExceeded | KeyRefused:
        """Reserve `estimate_micros` on the key's current month if the key is active, the secret
        still one of its own, and the cap allows it — all checked by the one UPDATE."""
        now = now or utcnow()
        lease = self.lease or await self.start()
        if self._alone_limit and self._alone < self._alone_limit:
            self._alone += 1
            try:
                return await self._admit_alone(key_id, secret_hash, estimate_micros, now, lease)
            finally:
                self._alone -= 1
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._admit_forever(), name="crabglamp-admission")
        future: asyncio.Future[Reservation | CapExceeded | KeyRefused] = (
            asyncio.get_running_loop().create_future()
        )
        self._queue.put_nowait(_Admission(key_id, secret_hash, estimate_micros, now, future))
        return await future

    async def _admit_alone(
        self,
        key_id: uuid.UUID,
        secret_hash: str,
        estimate_micros: int,
        now: datetime,
        lease: Lease,
    ) -> Reservation | CapExceeded | KeyRefused:
        """PostgreSQL: the conditional UPDATE and the reservation's INSERT in one statement, on
        its own (autocommit): a single round trip, concurrent with every other admission."""
        month = month_of(now)
        reservation = Reservation(uuid.uuid4(), key_id, month, estimate_micros)
        params = admission_params(key_id, month, secret_hash, estimate_micros, now)
        params.update(
            admit_id=reservation.id,
            admit_expires_at=now + self.reservation_ttl,
            admit_lease_id=lease.id,
        )
        async with self.admit_engine.connect() as conn:
            if (await conn.execute(ADMIT_AND_RESERVE, params)).first() is not None:
                return reservation
        return await self._decide(_Admission(key_id, secret_hash, estimate_micros, now))

    async def _admit_forever(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            await self._admit_batch(batch)

    async def _admit_batch(self, batch: list[_Admission]) -> None:
        # One lock order for every transaction that updates key_spend rows: no deadlocks.
        batch.sort(key=lambda a: (str(a.key_id), a.month))

        # The requests of one key, month and secret: admitted together when all of them fit.
        groups: dict[tuple[uuid.UUID, date, str], list[int]] = {}
        for index, a in enumerate(batch):
            groups.setdefault((a.key_id, a.month, a.secret_hash), []).append(index)

        async def admit_together(conn: AsyncConnection, indexes: list[int]) -> bool:
            """One UPDATE for the whole group: spent + reserved + their estimates' sum within
            the cap is exactly when admitting them one by one would admit every one (no
            estimate is negative). The latest `now` judges the secret's grace period for all."""
            first = batch[indexes[0]]
            params = admission_params(
                first.key_id,
                first.month,
                first.secret_hash,
                sum(batch[i].estimate_micros for i in indexes),
                max(batch[i].now for i in indexes),
            )
            return bool((await conn.execute(ADMISSION, params)).rowcount == 1)

        async def admit(conn: AsyncConnection) -> dict[int, Reservation]:
            admitted: dict[int, Reservation] = {}
            rows = []
            for indexes in groups.values():
                together = len(indexes) > 1 and await admit_together(conn, indexes)
                for index in indexes:
                    a = batch[index]
                    if not together:
                        # Alone, or the group did not fit: one by one, as many as fit.
                        params = admission_params(
                            a.key_id, a.month, a.secret_hash, a.estimate_micros, a.now
                        )
                        if (await conn.execute(ADMISSION, params)).rowcount != 1:
                            continue
                    admitted[index], row = self._reservation(a)
                    rows.append(row)
            if rows:
                await conn.execute(_RESERVE, rows)
            return admitted

        try:
            admitted = await with_retries(lambda: self._in_write(admit))
        except Exception as exc:  # the database is away: every waiter hears it
            for a in batch:
                if a.future is not None and not a.future.done():
                    a.future.set_exception(exc)
            return
        for index, a in enumerate(batch):
            assert a.future is not None
            reservation = admitted.get(index)
            if reservation is None:
                # Refused, or the month's row does not exist yet: find out on its own.
                _settle_future(a.future, asyncio.ensure_future(self._decide(a)))
            elif not a.future.done():
                a.future.set_result(reservation)

    def _reservation(self, a: _Admission) -> tuple[Reservation, dict[str, Any]]:
        """A new reservation of an admitted estimate, and its row (held under this lease)."""
        r = Reservation(uuid.uuid4(), a.key_id, a.month, a.estimate_micros)
        row = {
            "id": r.id,
            "key_id": r.key_id,
            "month": r.month,
            "amount_micros": r.amount_micros,
            "created_at": a.now,
            "expires_at": a.now + self.reservation_ttl,
            "lease_id": self.lease.id if self.lease else None,
        }
        return r, row

    async def _decide(self, a: _Admission) -> Reservation | CapExceeded | KeyRefused:
        """The slow path of an admission that the batch did not admit: why, or admit it now."""
        params = admission_params(a.key_id, a.month, a.secret_hash, a.estimate_micros, a.now)
        # Not a retry on database errors (that is `with_retries`): each pass either decides, or
        # found the month's row missing (and opened it) or room freed meanwhile; the last decides.
        attempts = 4

        async def decide(
            conn: AsyncConnection, last: bool
        ) -> Reservation | CapExceeded | KeyRefused | None:
            refusal = await why_refused(
                conn, a.key_id, a.month, a.secret_hash, a.estimate_micros, a.now, last
            )
            if refusal is not None:
                return refusal
            if (await conn.execute(ADMISSION, params)).rowcount == 1:
                reservation, row = self._reservation(a)
                await conn.execute(_RESERVE, [row])
                return reservation
            return None

        for attempt in range(attempts):
            decided = await self._in_write(partial(decide, last=attempt == attempts - 1))
            if decided is not None:
                return decided
            # The month's row did not exist yet (it is created now), or room was freed meanwhile.
        raise AssertionError("unreachable: the last attempt always decides")

    async def release(self, reservation: Reservation) -> None:
        """Give back a reservation whose request cost nothing (upstream error, timeout, client
        gone before anything was billed). Idempotent, like settling."""
        await self._in_write(partial(free, ids=[reservation.id]))

    async def sweep(self, now: datetime | None = None) -> int:
        """Free reservations past their expiry, and those of processes that are gone (their
        lease lapsed, or was given up); returns how many."""
        now = now or utcnow()
        own = self.lease.id if self.lease is not None else None

        async def sweep(conn: AsyncConnection) -> int:
            gone = await gone_leases(conn, own, now)
            if gone:
                await conn.execute(delete(_leases).where(_leases.c.id.in_(gone)))
            # A lease that is no longer there was given up or found gone (just now, or by
            # another process): its reservations are nobody's.
            orphaned = _reservations.c.lease_id.is_not(None) & ~exists().where(
                _leases.c.id == _reservations.c.lease_id
            )
            expired = await conn.execute(
                select(_reservations.c.id)
                .where(or_(_reservations.c.expires_at < now, orphaned))
                .order_by(_reservations.c.id)
                .limit(1000)
            )
            ids = [row[0] for row in expired]
            if ids:
                await free(conn, ids)
            return len(ids)

        return await self._in_write(sweep)

    async def reconcile(self, month: date) -> int:
        """Set each key's spent this month to the sum of its recorded events.

        Settling keeps `spent` exact for requests through the proxy; this catches spend that
        arrived another way (an import of the key's history). The rows and the sums are read
        apart, so a settle that commits in between can only make a key look drifted; each key
        that looks so is then fixed with its row locked before summing: a settle either
        committed before (and is summed) or adds its cost after."""
        async with read_transaction(self.engine) as conn:
            rows = await conn.execute(_MONTH_ROWS, {"month": month})
            spent: dict[uuid.UUID, int] = {key_id: amount for key_id, amount in rows}
            recorded = await spend_of_keys(conn, spent, month)
        drifted = [key_id for key_id, amount in spent.items() if amount != recorded[key_id]]
        changed = 0
        for key_id in sorted(drifted):
            async with self._serialised(), write_transaction(self.engine) as conn:
                row = (
                    await conn.execute(
                        select(_spend.c.spent_micros)
                        .where(_spend.c.key_id == key_id, _spend.c.month == month)
                        .with_for_update()
                    )
                ).first()
                if row is None:
                    continue
                now_recorded = (await spend_of_keys(conn, [key_id], month))[key_id]
                if now_recorded != row[0]:
                    await conn.execute(
                        update(_spend)
                        .where(_spend.c.key_id == key_id, _spend.c.month == month)
                        .values(spent_micros=now_recorded)
                    )
                    changed += 1
        return changed

    async def month_spend(self, key_id: uuid.UUID, month: date) -> MonthSpend:
        async with read_transaction(self.engine) as conn:
            return await month_spend(conn, key_id, month)
