"""Driver-level statements on PostgreSQL sent to asyncpg itself, inside SQLAlchemy's transaction.

`exec_driver_sql` on the asyncpg dialect costs ~100 µs a statement beyond asyncpg's own call
(285 µs against 180 µs for a one-row SELECT on the 2-core machine, measured): SQLAlchemy's
execution context, its cursor adapter, a greenlet hop, the status line parsed for a row count.
A proxied event's record sends six such statements (the idempotency probe, the event's INSERT,
the rollups' upsert, the NOTIFY, the settlement's two; a large batch COPY instead of the INSERT),
so here they go to the asyncpg connection under SQLAlchemy's adapter directly, exactly as the
adapter would send them:

- in the adapter's transaction, begun first if the adapter has not begun it yet (it begins
  lazily, at its first statement), and under the adapter's lock, so that nothing else runs on
  the connection between;
- with the adapter's error translation, raised as SQLAlchemy raises it (a duplicate key is an
  `IntegrityError`, a deadlock a `DBAPIError` that db/retry.py retries), which also marks the
  adapter's transaction failed as its own statements would.

This reaches into the adapter's private state (`_connection`, `_transaction`,
`_start_transaction`, `_execute_mutex`, `_handle_exception`), which SQLAlchemy may change; the
tests run every caller on PostgreSQL, and a connection of another shape goes through
`exec_driver_sql` as before.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, NoReturn

from sqlalchemy import Table
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

_ADAPTER_STATE = ("_connection", "_transaction", "_start_transaction", "_execute_mutex")


def adapter_of(conn: AsyncConnection) -> Any | None:
    """SQLAlchemy's adapter around the asyncpg connection `conn` holds (asked without a hop
    through the greenlet, as `sqlite_direct.inline_of`), or None if it has another shape."""
    sync = conn.sync_connection
    if sync is None or sync.closed or sync.invalidated:
        return None
    adapter = sync.connection.dbapi_connection
    if not all(hasattr(adapter, name) for name in _ADAPTER_STATE):
        return None
    return adapter


def on_asyncpg(conn: AsyncConnection) -> bool:
    """Whether `conn` is PostgreSQL through asyncpg: the one driver the text here is for."""
    return conn.dialect.name == "postgresql" and conn.dialect.driver == "asyncpg"


@asynccontextmanager
async def _in_transaction(adapter: Any) -> AsyncIterator[Any]:
    """The asyncpg connection under `adapter`, held under the adapter's lock (nothing else runs
    on it meanwhile), its transaction begun if nothing has run in it yet (the adapter begins
    lazily, at its first statement; in autocommit it begins none)."""
    async with adapter._execute_mutex:
        if adapter._transaction is None:
            await adapter._start_transaction()  # raises as the adapter raises
        yield adapter._connection


async def run_postgres(
    conn: AsyncConnection, sql: str, params: Sequence[Any] = (), many: bool = False
) -> list[Any]:
    """`sql` ($1, $2, … placeholders) run on `conn`'s asyncpg connection; the rows it returns.
    With `many`, `params` is a list of rows, run in their order in one round trip (no rows
    returned)."""
    adapter = adapter_of(conn)
    if adapter is None:
        result = await conn.exec_driver_sql(sql, list(params) if many else tuple(params))
        return list(result) if result.returns_rows else []
    async with _in_transaction(adapter) as driver:
        try:
            if many:
                await driver.executemany(sql, params)
                return []
            return list(await driver.fetch(sql, *params))
        except Exception as error:
            raise_translated(conn, adapter, error, sql, params)


async def copy_records(
    conn: AsyncConnection, table: Table, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    """PostgreSQL's COPY of `rows` into `table` (binary, encoded by asyncpg's column codecs), in
    the caller's transaction, so that it rolls back with it; a duplicate key is an
    `IntegrityError`, which the ingest path retries after looking again."""
    adapter = adapter_of(conn)
    if adapter is None:
        await conn.execute(table.insert(), [dict(zip(columns, row, strict=True)) for row in rows])
        return
    async with _in_transaction(adapter) as driver:
        try:
            await driver.copy_records_to_table(
                table.name, records=rows, columns=list(columns), schema_name=table.schema
            )
        except Exception as error:
            raise_translated(conn, adapter, error, f"COPY {table.name}", None)


def raise_translated(
    conn: AsyncConnection, adapter: Any, error: Exception, sql: str, params: Any
) -> NoReturn:
    """Raise asyncpg's `error` as SQLAlchemy would have raised it for `sql`."""
    dbapi = conn.dialect.loaded_dbapi
    try:
        adapter._handle_exception(error)  # raises it as the adapter's DBAPI error
    except dbapi.Error as translated:
        raise DBAPIError.instance(
            sql, params, translated, dbapi.Error, dialect=conn.dialect
        ) from error
    raise error
