"""What changed, told to every server process through the database itself.

A writer calls `announce` inside its own transaction, so that the news exists exactly when the
data does: rolled back, nobody hears of it; committed, every process does.

- **PostgreSQL**: `pg_notify` on one channel. PostgreSQL delivers a notification when (and only
  if) its transaction commits, to every connection that LISTENs; each process keeps one.
- **SQLite** has no such thing: a one-row-per-account-and-kind table (`usage_change_mark`)
  holds the sequence number of the last change of each kind, bumped in the write transaction
  (writers hold SQLite's write lock, so the numbers grow in commit order). Each process polls
  the marks above the highest it has seen, a few times a second, only while someone listens.

`ChangeFeed` is the per-process side: it listens (or polls) and fans the news out to the
in-process `Listener`s (the dashboards' subscriptions, api/graphql/live), each of which holds at
most one pending set of kinds per account, so a burst of writes becomes one wake-up.
Core: no web framework here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Collection, Iterable, Mapping
from enum import StrEnum
from typing import Any, Final

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from crabglamp.db import is_sqlite, read_transaction
from crabglamp.db.postgres_direct import run_postgres
from crabglamp.db.sqlite_direct import run_sqlite
from crabglamp.db.tables import table_of
from crabglamp.models import UsageChangeMark

log = logging.getLogger("crabglamp.db.changes")

CHANNEL: Final = "crabglamp_usage_changes"
# PostgreSQL refuses a NOTIFY payload of 8000 bytes or more; an account takes about 60.
_PAYLOAD_BYTES: Final = 7000
_NOTIFY = "SELECT pg_notify($1, $2)"
_marks = table_of(UsageChangeMark)


# SQLite's two statements of `announce`, as driver-level SQL: they run straight on a writer
# thread's sqlite3 connection (db/sqlite_direct.py), where SQLAlchemy's execution of the two
# cost more than SQLite's work for them. The account id goes in as SQLAlchemy stores a UUID
# there: 32 hex digits.
_NEXT_SEQ = "SELECT coalesce(max(seq), 0) + 1 FROM usage_change_mark"
_MARK = (
    "INSERT INTO usage_change_mark (account_id, kind, seq) VALUES (?, ?, ?)"
    " ON CONFLICT (account_id, kind) DO UPDATE SET seq = excluded.seq"
)


class ChangeKind(StrEnum):
    """Which of an account's data changed; the page re-reads what shows it."""

    LLM = "llm"
    VOICE = "voice"
    COMPUTE = "compute"
    KEYS = "keys"
    ANOMALIES = "anomalies"


ALL_KINDS: Final = frozenset(ChangeKind)

# account -> kinds; the key None means "every account" (the feed lost its connection, so
# anything may have changed meanwhile).
Changes = Mapping[uuid.UUID | None, Collection[ChangeKind]]


class ChangeSet(dict[uuid.UUID, set[ChangeKind]]):
    """What a transaction changed, collected as it writes."""

    def add(self, account_id: uuid.UUID, *kinds: ChangeKind) -> None:
        self.setdefault(account_id, set()).update(kinds)

    def add_rows(self, rows: Iterable[Mapping[str, Any]], kind: ChangeKind) -> None:
        """Rows with an `account_id`, e.g. the events an ingest batch inserts."""
        for row in rows:
            self.add(row["account_id"], kind)


async def announce(
    conn: AsyncConnection, changes: Mapping[uuid.UUID, Collection[ChangeKind]]
) -> None:
    """Tell every listening process, when `conn`'s transaction commits, what it changed."""
    changed = {account: frozenset(kinds) for account, kinds in changes.items() if kinds}
    if not changed:
        return
    if is_sqlite(conn):
        # The write lock is held (BEGIN IMMEDIATE): no other writer can take the same number.
        ((seq,),) = await run_sqlite(conn, _NEXT_SEQ)
        rows = [
            (account.hex, kind.value, seq)
            for account in sorted(changed)
            for kind in sorted(changed[account])
        ]
        await run_sqlite(conn, _MARK, rows, many=True)
        return
    for payload in _payloads(changed):
        await run_postgres(conn, _NOTIFY, (CHANNEL, payload))


def _payloads(changed: Mapping[uuid.UUID, Collection[ChangeKind]]) -> Iterable[str]:
    """{"<account>": ["llm", ...], ...}, in as few payloads under PostgreSQL's limit as fit."""
    batch: dict[str, list[str]] = {}
    size = 2
    for account in sorted(changed):
        entry = sorted(kind.value for kind in changed[account])
        entry_size = 36 + 6 + sum(len(kind) + 3 for kind in entry)
        if batch and size + entry_size > _PAYLOAD_BYTES:
            yield json.dumps(batch, separators=(",", ":"))
            batch, size = {}, 2
        batch[str(account)] = entry
        size += entry_size
    if batch:
        yield json.dumps(batch, separators=(",", ":"))


def parse_payload(payload: str) -> dict[uuid.UUID | None, set[ChangeKind]]:
    """A NOTIFY payload back into changes; what does not parse is news of everything."""
    try:
        raw = json.loads(payload)
        return {
            uuid.UUID(account): {ChangeKind(kind) for kind in kinds}
            for account, kinds in raw.items()
        }
    except (ValueError, AttributeError, TypeError):
        log.warning("unreadable change notification; telling every listener to re-read")
        return {None: set(ALL_KINDS)}


class TooManyListeners(Exception):
    """An account already has as many listeners in this process as allowed."""


class Listener:
    """One subscriber's pending news: at most one set of kinds per account, however many
    writes arrive before it asks for them."""

    def __init__(self, accounts: frozenset[uuid.UUID] | None) -> None:
        # None: every account (a platform admin's platform-wide view).
        self.accounts = accounts
        self._pending: dict[uuid.UUID | None, set[ChangeKind]] = {}
        self._ready = asyncio.Event()

    def _add(self, account: uuid.UUID | None, kinds: Collection[ChangeKind]) -> None:
        if account is None and self.accounts is not None:
            # News of everything: the listener's own accounts, each with every kind.
            for own in self.accounts:
                self._pending.setdefault(own, set()).update(kinds)
        else:
            self._pending.setdefault(account, set()).update(kinds)
        self._ready.set()

    async def next(self) -> dict[uuid.UUID | None, frozenset[ChangeKind]]:
        """Wait for news, then take all of it."""
        await self._ready.wait()
        self._ready.clear()
        taken, self._pending = self._pending, {}
        return {account: frozenset(kinds) for account, kinds in taken.items()}


class ChangeFeed:
    """This process's ear on the database: LISTEN (PostgreSQL) or polling the marks (SQLite)."""

    def __init__(
        self, engine: AsyncEngine, poll_seconds: float = 0.2, max_per_account: int = 50
    ) -> None:
        self.engine = engine
        self.poll_seconds = poll_seconds
        self.max_per_account = max_per_account
        self._by_account: dict[uuid.UUID, set[Listener]] = {}
        self._everywhere: set[Listener] = set()
        self._counts: Counter[uuid.UUID | None] = Counter()
        self._task: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()
        self._wanted = asyncio.Event()

    @property
    def listeners(self) -> int:
        return sum(self._counts.values())

    async def start(self) -> None:
        if self._task is not None:
            return
        run = self._poll_marks if is_sqlite(self.engine) else self._listen_postgres
        self._task = asyncio.create_task(run(), name="crabglamp-change-feed")
        # The first subscriber must not miss what is written right after the app started.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._listening.wait(), 10)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    @contextlib.asynccontextmanager
    async def listen(self, accounts: Collection[uuid.UUID] | None) -> AsyncIterator[Listener]:
        """A listener for these accounts (None: every account) while the block runs."""
        keys: list[uuid.UUID | None] = list(accounts) if accounts is not None else [None]
        full = [key for key in keys if self._counts[key] >= self.max_per_account]
        if full:
            raise TooManyListeners(
                f"this account already has {self.max_per_account} live subscriptions"
            )
        listener = Listener(frozenset(accounts) if accounts is not None else None)
        for key in keys:
            self._counts[key] += 1
        if listener.accounts is None:
            self._everywhere.add(listener)
        else:
            for account in listener.accounts:
                self._by_account.setdefault(account, set()).add(listener)
        self._wanted.set()
        try:
            yield listener
        finally:
            for key in keys:
                self._counts[key] -= 1
                if self._counts[key] <= 0:
                    del self._counts[key]
            self._everywhere.discard(listener)
            for account in listener.accounts or ():
                group = self._by_account.get(account)
                if group is not None:
                    group.discard(listener)
                    if not group:
                        del self._by_account[account]
            if not self._counts:
                self._wanted.clear()

    def publish(self, changes: Changes) -> None:
        """Hand news from the database to the listeners it concerns."""
        for account, kinds in changes.items():
            if account is None:
                for listener in {*self._everywhere, *self._all_listeners()}:
                    listener._add(None, kinds)
                continue
            for listener in self._by_account.get(account, ()):
                listener._add(account, kinds)
            for listener in self._everywhere:
                listener._add(account, kinds)

    def _all_listeners(self) -> set[Listener]:
        return {listener for group in self._by_account.values() for listener in group}

    # PostgreSQL

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        self.publish(parse_payload(payload))

    async def _listen_postgres(self) -> None:
        backoff = 0.5
        first = True
        while True:
            try:
                async with self.engine.connect() as conn:
                    raw = await conn.get_raw_connection()
                    driver: Any = raw.driver_connection
                    lost = asyncio.Event()

                    def on_lost(_conn: object, lost: asyncio.Event = lost) -> None:
                        lost.set()

                    driver.add_termination_listener(on_lost)
                    await driver.add_listener(CHANNEL, self._on_notify)
                    try:
                        self._listening.set()
                        if not first:
                            # Whatever was committed while we were not listening is unknown.
                            self.publish({None: ALL_KINDS})
                        first, backoff = False, 0.5
                        await self._watch(driver, lost)
                    finally:
                        self._listening.clear()
                        driver.remove_termination_listener(on_lost)
                        if driver.is_closed():
                            await conn.invalidate()
                        else:
                            # The connection goes back to the pool: it must not keep listening.
                            with contextlib.suppress(Exception):
                                await driver.remove_listener(CHANNEL, self._on_notify)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database went away: listen again once it is back
                log.warning("change feed: lost the LISTEN connection (%s); reconnecting", exc)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)

    async def _watch(self, driver: Any, lost: asyncio.Event) -> None:
        """Until the connection is lost; a silent network failure shows on the next probe."""
        while not lost.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), 30)
            if not lost.is_set():
                await driver.execute("SELECT 1")

    # SQLite

    async def _poll_marks(self) -> None:
        async with read_transaction(self.engine) as conn:
            last: int = (
                await conn.execute(select(func.coalesce(func.max(_marks.c.seq), 0)))
            ).scalar_one()
        self._listening.set()
        failing = False
        while True:
            # Idle without listeners; news written meanwhile is found by the first poll after.
            await self._wanted.wait()
            await asyncio.sleep(self.poll_seconds)
            try:
                async with read_transaction(self.engine) as conn:
                    rows = (
                        await conn.execute(
                            select(_marks.c.account_id, _marks.c.kind, _marks.c.seq).where(
                                _marks.c.seq > last
                            )
                        )
                    ).all()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a locked or vanished file: try again on the next tick
                if not failing:
                    log.warning("change feed: cannot read the change marks (%s)", exc)
                failing = True
                continue
            failing = False
            if not rows:
                continue
            last = max(row.seq for row in rows)
            changes: dict[uuid.UUID | None, set[ChangeKind]] = {}
            for row in rows:
                changes.setdefault(row.account_id, set()).add(ChangeKind(row.kind))
            self.publish(changes)
