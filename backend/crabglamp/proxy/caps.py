"""Spend caps: reserve a request's maximum cost before it runs, settle or release it after.

One row per key and UTC calendar month (`key_spend`) holds what was spent and what is reserved
for requests in flight. Admission is one conditional UPDATE of that row — it succeeds only if
`spent + reserved + estimate <= cap` — so concurrent requests, in one process or many, can never
together reserve past the cap: the database serialises them on the row. A new month is a new
row, which is the calendar-month reset.

A reservation is also a row of its own, so that settling (in the same transaction as the event,
see writer.py) or releasing it happens exactly once, and the sweeper can free the reservations
of requests that are certainly over (their process died, say).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import and_, bindparam, delete, exists, func, or_, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from crabglamp.db import is_sqlite, make_engine, read_transaction, write_transaction
from crabglamp.db.dialect import insert_for
from crabglamp.db.retry import retryable
from crabglamp.db.tables import table_of
from crabglamp.models import (
    KeySpend,
    LlmDaily,
    SpendReservation,
    VirtualKey,
    VirtualKeySecret,
    VoiceEvent,
)
from crabglamp.periods import as_utc, day_start, month_period, utcnow

_T = TypeVar("_T")
_spend = table_of(KeySpend)
_reservations = table_of(SpendReservation)
_keys = table_of(VirtualKey)
_retired = table_of(VirtualKeySecret)
_llm_daily = table_of(LlmDaily)
_voice = table_of(VoiceEvent)

UNCAPPED = 2**62
_RETRIES = 8


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


def month_of(moment: datetime) -> date:
    return date(moment.year, moment.month, 1)


# Estimates: the most a request can cost


def max_input_tokens(body_bytes: int, images: int = 0) -> int:
    """An upper bound of a request's input tokens. A token of a byte-level BPE tokenizer covers at
    least one byte of text, and the JSON request holds all of its text (plus some syntax), so the
    body's size bounds the text; an image costs at most 1,536 tokens at any detail level."""
    return body_bytes + 1_536 * images


# Results


@dataclass(frozen=True, slots=True)
class Reservation:
    id: uuid.UUID
    key_id: uuid.UUID
    month: date
    amount_micros: int


@dataclass(frozen=True, slots=True)
class Settlement:
    """Settle `reservation` to the actual cost of its request (0 for a failed one)."""

    reservation: Reservation
    cost_micros: int


@dataclass(frozen=True, slots=True)
class CapExceeded:
    cap_micros: int
    spent_micros: int
    reserved_micros: int
    estimate_micros: int


@dataclass(frozen=True, slots=True)
class KeyRefused:
    code: str  # "key_revoked" | "invalid_api_key"
    message: str


@dataclass(frozen=True, slots=True)
class MonthSpend:
    spent_micros: int
    reserved_micros: int


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
    commit. On SQLite, `lock` (the writer's) keeps this process's writers from contending for
    the database's write lock, which would make them sleep and retry.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        reservation_ttl: timedelta,
        lock: asyncio.Lock | None = None,
        max_batch: int = 500,
    ) -> None:
        self.engine = engine
        self.reservation_ttl = reservation_ttl
        self.lock = lock
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
                pool_size=5,
                max_overflow=5,
                connect_args={"server_settings": {"synchronous_commit": "off"}},
                # Each admission is one statement: autocommit, set once for the whole pool
                # rather than on every checkout.
                isolation_level="AUTOCOMMIT",
            )
            self._own_engine = True

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._own_engine:
            await self.admit_engine.dispose()

    def _serialised(self) -> contextlib.AbstractAsyncContextManager[Any]:
        return self.lock if self.lock is not None else contextlib.nullcontext()

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
        if not is_sqlite(self.admit_engine):
            return await self._admit_alone(key_id, secret_hash, estimate_micros, now)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._admit_forever(), name="crabglamp-admission")
        future: asyncio.Future[Reservation | CapExceeded | KeyRefused] = (
            asyncio.get_running_loop().create_future()
        )
        self._queue.put_nowait(_Admission(key_id, secret_hash, estimate_micros, now, future))
        return await future

    async def _admit_alone(
        self, key_id: uuid.UUID, secret_hash: str, estimate_micros: int, now: datetime
    ) -> Reservation | CapExceeded | KeyRefused:
        """PostgreSQL: the conditional UPDATE and the reservation's INSERT in one statement, on
        its own (autocommit): a single round trip, concurrent with every other admission."""
        month = month_of(now)
        reservation = Reservation(uuid.uuid4(), key_id, month, estimate_micros)
        params = _admission_params(key_id, month, secret_hash, estimate_micros, now)
        params.update(admit_id=reservation.id, admit_expires_at=now + self.reservation_ttl)
        async with self.admit_engine.connect() as conn:
            if (await conn.execute(_ADMIT_AND_RESERVE, params)).first() is not None:
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
        admitted: dict[int, Reservation] = {}
        try:
            for attempt in range(_RETRIES):
                admitted = {}
                try:
                    async with self._serialised(), write_transaction(self.admit_engine) as conn:
                        rows = []
                        for index, a in enumerate(batch):
                            params = _admission_params(
                                a.key_id, a.month, a.secret_hash, a.estimate_micros, a.now
                            )
                            if (await conn.execute(_ADMISSION, params)).rowcount == 1:
                                r = Reservation(uuid.uuid4(), a.key_id, a.month, a.estimate_micros)
                                admitted[index] = r
                                rows.append(
                                    {
                                        "id": r.id,
                                        "key_id": r.key_id,
                                        "month": r.month,
                                        "amount_micros": r.amount_micros,
                                        "created_at": a.now,
                                        "expires_at": a.now + self.reservation_ttl,
                                    }
                                )
                        if rows:
                            await conn.execute(_reservations.insert(), rows)
                    break
                except DBAPIError as exc:
                    if attempt == _RETRIES - 1 or not retryable(exc):
                        raise
                    await asyncio.sleep(0.005 * (attempt + 1))
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

    async def _decide(self, a: _Admission) -> Reservation | CapExceeded | KeyRefused:
        """The slow path of an admission that the batch did not admit: why, or admit it now."""
        params = _admission_params(a.key_id, a.month, a.secret_hash, a.estimate_micros, a.now)
        attempts = 4
        for attempt in range(attempts):
            async with self._serialised(), write_transaction(self.admit_engine) as conn:
                refusal = await _why_refused(
                    conn,
                    a.key_id,
                    a.month,
                    a.secret_hash,
                    a.estimate_micros,
                    a.now,
                    attempt == attempts - 1,
                )
                if refusal is not None:
                    return refusal
                if (await conn.execute(_ADMISSION, params)).rowcount == 1:
                    reservation = Reservation(uuid.uuid4(), a.key_id, a.month, a.estimate_micros)
                    await conn.execute(
                        _reservations.insert().values(
                            id=reservation.id,
                            key_id=a.key_id,
                            month=a.month,
                            amount_micros=a.estimate_micros,
                            created_at=a.now,
                            expires_at=a.now + self.reservation_ttl,
                        )
                    )
                    return reservation
            # The month's row did not exist yet (it is created now), or room was freed meanwhile.
        raise AssertionError("unreachable: the last attempt always decides")

    async def release(self, reservation: Reservation) -> None:
        """Give back a reservation whose request cost nothing (upstream error, timeout, client
        gone before anything was billed). Idempotent, like settling."""
        async with self._serialised(), write_transaction(self.admit_engine) as conn:
            await _free(conn, [reservation.id])

    async def sweep(self, now: datetime | None = None) -> int:
        """Free reservations past their expiry; returns how many."""
        now = now or utcnow()
        async with self._serialised(), write_transaction(self.admit_engine) as conn:
            expired = await conn.execute(
                select(_reservations.c.id)
                .where(_reservations.c.expires_at < now)
                .order_by(_reservations.c.id)
                .limit(1000)
            )
            ids = [row[0] for row in expired]
            if ids:
                await _free(conn, ids)
        return len(ids)

    async def reconcile(self, month: date) -> int:
        """Set each key's spent this month to the sum of its recorded events.

        Settling keeps `spent` exact for requests through the proxy; this catches spend that
        arrived another way (an import of the key's history). A settle commits the event and
        its cost together, so one snapshot finds the keys that drifted; each is then fixed with
        its row locked before summing: a settle either committed before (and is summed) or adds
        its cost after."""
        async with read_transaction(self.engine) as conn:
            drifted = [
                key_id
                for key_id, spent, recorded in await conn.execute(_drift(month))
                if spent != recorded
            ]
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
                recorded = await recorded_spend(conn, key_id, month)
                if recorded != row[0]:
                    await conn.execute(
                        update(_spend)
                        .where(_spend.c.key_id == key_id, _spend.c.month == month)
                        .values(spent_micros=recorded)
                    )
                    changed += 1
        return changed

    async def month_spend(self, key_id: uuid.UUID, month: date) -> MonthSpend:
        async with read_transaction(self.engine) as conn:
            return await month_spend(conn, key_id, month)


def _drift(month: date) -> Any:
    """(key, spent, recorded) of every key with a row for the month, in one statement."""
    period = month_period(month.year, month.month)
    llm = (
        select(func.coalesce(func.sum(_llm_daily.c.cost_micros), 0))
        .where(
            _llm_daily.c.account_id == _keys.c.account_id,
            _llm_daily.c.key_id == _spend.c.key_id,
            _llm_daily.c.day >= period.start,
            _llm_daily.c.day <= period.end,
        )
        .scalar_subquery()
    )
    voice = (
        select(func.coalesce(func.sum(_voice.c.cost_micros), 0))
        .where(
            _voice.c.account_id == _keys.c.account_id,
            _voice.c.key_id == _spend.c.key_id,
            _voice.c.ts >= day_start(period.start),
            _voice.c.ts < period.end_dt,
        )
        .scalar_subquery()
    )
    return (
        select(_spend.c.key_id, _spend.c.spent_micros, llm + voice)
        .join(_keys, _keys.c.id == _spend.c.key_id)
        .where(_spend.c.month == month)
    )


def _admission() -> Any:
    """The conditional UPDATE that admits a request, built once: per request only its
    parameters (`_admission_params`) change, so neither building the
    expression nor computing its cache key is paid on the hot path."""
    key_id = bindparam("admit_key_id", type_=_keys.c.id.type)
    month = bindparam("admit_month", type_=_spend.c.month.type)
    secret_hash = bindparam("admit_secret_hash", type_=_keys.c.secret_hash.type)
    estimate = bindparam("admit_estimate", type_=_spend.c.reserved_micros.type)
    now = bindparam("admit_now", type_=_retired.c.expires_at.type)
    # Uncorrelated subqueries: PostgreSQL evaluates them once, while spent and reserved are read
    # from the row itself, so a request that waited for the row lock re-checks the sum against
    # the row as the previous admission left it. The key's status and the presented secret are
    # checked here too, so a key revoked (or a secret retired) in another process is refused by
    # this very statement, whatever a process's cache of key look-ups still holds.
    cap = select(_keys.c.spend_cap_micros).where(_keys.c.id == key_id).scalar_subquery()
    presented = or_(
        _keys.c.secret_hash == secret_hash,
        exists().where(
            _retired.c.secret_hash == secret_hash,
            _retired.c.key_id == key_id,
            _retired.c.expires_at > now,
        ),
    )
    usable = exists().where(_keys.c.id == key_id, _keys.c.status == "active", presented)
    return (
        update(_spend)
        .where(
            _spend.c.key_id == key_id,
            _spend.c.month == month,
            usable,
            _spend.c.spent_micros + _spend.c.reserved_micros + estimate
            <= func.coalesce(cap, UNCAPPED),
        )
        .values(reserved_micros=_spend.c.reserved_micros + estimate)
    )


def _admit_and_reserve() -> Any:
    """PostgreSQL: the admission feeding the reservation's INSERT, one statement (built once;
    adds the parameters `admit_id` and `admit_expires_at`)."""
    admitted = _admission().returning(_spend.c.key_id).cte("admitted")
    values = select(
        bindparam("admit_id", type_=_reservations.c.id.type),
        admitted.c.key_id,
        bindparam("admit_month", type_=_reservations.c.month.type),
        bindparam("admit_estimate", type_=_reservations.c.amount_micros.type),
        bindparam("admit_now", type_=_reservations.c.created_at.type),
        bindparam("admit_expires_at", type_=_reservations.c.expires_at.type),
    ).select_from(admitted)
    return (
        _reservations.insert()
        .from_select(["id", "key_id", "month", "amount_micros", "created_at", "expires_at"], values)
        .returning(_reservations.c.id)
    )


_ADMISSION = _admission()
_ADMIT_AND_RESERVE = _admit_and_reserve()


# Named apart from the columns: SQLAlchemy would take a parameter named like a column of the
# UPDATE's table for a value to SET.
def _admission_params(
    key_id: uuid.UUID, month: date, secret_hash: str, estimate: int, now: datetime
) -> dict[str, Any]:
    return {
        "admit_key_id": key_id,
        "admit_month": month,
        "admit_secret_hash": secret_hash,
        "admit_estimate": estimate,
        "admit_now": now,
    }


async def _why_refused(
    conn: AsyncConnection,
    key_id: uuid.UUID,
    month: date,
    secret_hash: str,
    estimate: int,
    now: datetime,
    last: bool = False,
) -> CapExceeded | KeyRefused | None:
    """Why the admission failed, or None when it should simply be tried again (on the `last`
    attempt a request that keeps losing the race for the room left is refused too)."""
    key = (
        await conn.execute(
            select(_keys.c.status, _keys.c.secret_hash, _keys.c.spend_cap_micros).where(
                _keys.c.id == key_id
            )
        )
    ).first()
    if key is None:
        return KeyRefused("invalid_api_key", "Incorrect API key provided.")
    if key.status != "active":
        return KeyRefused("key_revoked", "This virtual key has been revoked.")
    if key.secret_hash != secret_hash:
        expires = (
            await conn.execute(
                select(_retired.c.expires_at).where(_retired.c.secret_hash == secret_hash)
            )
        ).scalar()
        if expires is None or as_utc(expires) <= now:
            return KeyRefused(
                "invalid_api_key",
                "This virtual key was rotated and its previous secret's grace period has ended; "
                "use the new secret.",
            )
    spend = (
        await conn.execute(
            select(_spend.c.spent_micros, _spend.c.reserved_micros).where(
                _spend.c.key_id == key_id, _spend.c.month == month
            )
        )
    ).first()
    if spend is None:
        await _open_month(conn, key_id, month)
        return None if not last else CapExceeded(key.spend_cap_micros or 0, 0, 0, estimate)
    cap = key.spend_cap_micros
    fits = cap is None or spend.spent_micros + spend.reserved_micros + estimate <= cap
    if fits and not last:
        return None
    return CapExceeded(
        UNCAPPED if cap is None else cap, spend.spent_micros, spend.reserved_micros, estimate
    )


async def _open_month(conn: AsyncConnection, key_id: uuid.UUID, month: date) -> None:
    """Create the key's row for the month, starting from what is already recorded (history that
    was imported, or events from before the key was first used through this proxy)."""
    spent = await recorded_spend(conn, key_id, month)
    await conn.execute(
        insert_for(conn, _spend)
        .values(key_id=key_id, month=month, spent_micros=spent, reserved_micros=0)
        .on_conflict_do_nothing(index_elements=[_spend.c.key_id, _spend.c.month])
    )


async def recorded_spend(conn: AsyncConnection, key_id: uuid.UUID, month: date) -> int:
    """What the key's recorded events of the month cost: LLM from the daily rollup, voice from
    the voice events made with the key."""
    period = month_period(month.year, month.month)
    account = select(_keys.c.account_id).where(_keys.c.id == key_id).scalar_subquery()
    llm = (
        await conn.execute(
            select(func.coalesce(func.sum(_llm_daily.c.cost_micros), 0)).where(
                _llm_daily.c.account_id == account,
                _llm_daily.c.key_id == key_id,
                _llm_daily.c.day >= period.start,
                _llm_daily.c.day <= period.end,
            )
        )
    ).scalar()
    voice = (
        await conn.execute(
            select(func.coalesce(func.sum(_voice.c.cost_micros), 0)).where(
                _voice.c.account_id == account,
                _voice.c.key_id == key_id,
                _voice.c.ts >= day_start(period.start),
                _voice.c.ts < period.end_dt,
            )
        )
    ).scalar()
    return int(llm or 0) + int(voice or 0)


async def _free(conn: AsyncConnection, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
    """Delete reservations; give their amounts back to their months. Returns what was freed
    (a reservation already settled, released or swept is not freed twice)."""
    deleted = await conn.execute(
        delete(_reservations)
        .where(_reservations.c.id.in_(sorted(ids)))
        .returning(
            _reservations.c.id,
            _reservations.c.key_id,
            _reservations.c.month,
            _reservations.c.amount_micros,
        )
    )
    freed: dict[uuid.UUID, int] = {}
    per_month: dict[tuple[uuid.UUID, date], int] = {}
    for reservation_id, key_id, month, amount in deleted:
        freed[reservation_id] = amount
        per_month[(key_id, month)] = per_month.get((key_id, month), 0) + amount
    await _adjust(conn, {k: (0, amount) for k, amount in per_month.items()})
    return freed


async def _adjust(
    conn: AsyncConnection, changes: dict[tuple[uuid.UUID, date], tuple[int, int]]
) -> None:
    """Add spent and subtract reserved per (key, month), in one lock order for every writer."""
    ordered = sorted(changes.items(), key=lambda item: (str(item[0][0]), item[0][1]))
    rows = [
        {
            "adjust_key_id": key_id,
            "adjust_month": month,
            "adjust_spent": spent,
            "adjust_freed": freed,
        }
        for (key_id, month), (spent, freed) in ordered
        if spent != 0 or freed != 0
    ]
    if rows:
        # One prebuilt statement, executed for all the batch's (key, month) rows in one call.
        await conn.execute(_ADJUST, rows)


def _adjustment() -> Any:
    return (
        update(_spend)
        .where(
            _spend.c.key_id == bindparam("adjust_key_id", type_=_spend.c.key_id.type),
            _spend.c.month == bindparam("adjust_month", type_=_spend.c.month.type),
        )
        .values(
            spent_micros=_spend.c.spent_micros
            + bindparam("adjust_spent", type_=_spend.c.spent_micros.type),
            reserved_micros=_spend.c.reserved_micros
            - bindparam("adjust_freed", type_=_spend.c.reserved_micros.type),
        )
    )


_ADJUST = _adjustment()


async def settle_in(
    conn: AsyncConnection, settlements: Sequence[Settlement], counted: Sequence[bool]
) -> None:
    """Within the transaction that records the events: free each reservation and add the
    actual cost to the month's spend — only for events that were new (`counted`), so recording
    the same event twice never counts its cost twice."""
    if not settlements:
        return
    freed = await _free_quietly(conn, [s.reservation.id for s in settlements])
    changes: dict[tuple[uuid.UUID, date], tuple[int, int]] = {}
    for settlement, new in zip(settlements, counted, strict=True):
        r = settlement.reservation
        spent, released = changes.get((r.key_id, r.month), (0, 0))
        changes[(r.key_id, r.month)] = (
            spent + (settlement.cost_micros if new else 0),
            released + freed.get(r.id, 0),
        )
    await _adjust(conn, changes)


async def _free_quietly(conn: AsyncConnection, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
    deleted = await conn.execute(
        delete(_reservations)
        .where(_reservations.c.id.in_(sorted(ids)))
        .returning(_reservations.c.id, _reservations.c.amount_micros)
    )
    return {reservation_id: amount for reservation_id, amount in deleted}


async def month_spend(conn: AsyncConnection, key_id: uuid.UUID, month: date) -> MonthSpend:
    row = (
        await conn.execute(
            select(_spend.c.spent_micros, _spend.c.reserved_micros).where(
                and_(_spend.c.key_id == key_id, _spend.c.month == month)
            )
        )
    ).first()
    if row is None:
        return MonthSpend(await recorded_spend(conn, key_id, month), 0)
    return MonthSpend(row.spent_micros, row.reserved_micros)
