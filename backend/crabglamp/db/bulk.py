"""Bulk statements for the ingest hot path, on SQLite and PostgreSQL.

At tens of thousands of rows per second, SQLAlchemy's per-row parameter handling costs more
than the database's own work. These helpers convert each value once, with the very bind
processors SQLAlchemy would apply (so SQLite stores exactly what an ORM insert stores: UUIDs as
32-character hex, datetimes as 'YYYY-MM-DD HH:MM:SS.ffffff'), and send driver-level SQL straight
to the driver (db/sqlite_direct.py, db/postgres_direct.py), inside the caller's transaction and
with SQLAlchemy's error translation.

SQLite gets one prepared statement run by `executemany` in C. PostgreSQL gets COPY for plain
inserts, and for upserts one statement per batch whose columns arrive as arrays
(`INSERT … SELECT FROM unnest(…) ON CONFLICT …`). Any other dialect falls back to plain
SQLAlchemy Core.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from operator import itemgetter
from typing import Any

from sqlalchemy import Table
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection

from crabglamp.db.dialect import insert_for
from crabglamp.db.postgres_direct import copy_records, run_postgres
from crabglamp.db.sqlite_direct import run_sqlite

_Processor = Callable[[Any], Any]

# Below this many rows a PostgreSQL insert is one INSERT … SELECT FROM unnest(…) rather than
# COPY, whose set-up (beginning the transaction, learning the columns' types) costs two more
# round trips: a proxied request's event is one row.
_COPY_FROM = 64


def _native(dialect: Dialect) -> str | None:
    if dialect.name == "sqlite" and dialect.paramstyle == "qmark":
        return "sqlite"
    if dialect.name == "postgresql" and dialect.paramstyle == "numeric_dollar":
        return "postgresql"
    return None


@lru_cache(maxsize=64)
def _plan(
    dialect: Dialect, table: Table, columns: tuple[str, ...]
) -> tuple[list[str], list[tuple[int, _Processor]], list[str]]:
    """Quoted column names, (position, bind processor) pairs, and PostgreSQL type names."""
    quote = dialect.identifier_preparer.quote
    names: list[str] = []
    processors: list[tuple[int, _Processor]] = []
    types: list[str] = []
    for i, name in enumerate(columns):
        column = table.c[name]
        names.append(quote(name))
        processor = column.type.dialect_impl(dialect).bind_processor(dialect)
        if processor is not None:
            processors.append((i, processor))
        types.append(column.type.compile(dialect=dialect))
    return names, processors, types


def _converted(
    rows: Sequence[Sequence[Any]], processors: list[tuple[int, _Processor]]
) -> list[tuple[Any, ...]]:
    if not processors:
        return [tuple(row) for row in rows]
    out = []
    for row in rows:
        values = list(row)
        for i, process in processors:
            values[i] = process(values[i])
        out.append(tuple(values))
    return out


def _columns_of(rows: list[tuple[Any, ...]], width: int) -> tuple[list[Any], ...]:
    if not rows:
        return tuple([] for _ in range(width))
    return tuple(list(column) for column in zip(*rows, strict=True))


async def _write(
    conn: AsyncConnection,
    table: Table,
    columns: tuple[str, ...],
    rows: Sequence[Sequence[Any]],
    conflict: str,
    order_by: int = 0,
) -> None:
    """INSERT the rows; on PostgreSQL they go in sorted by their first `order_by` columns."""
    dialect = conn.dialect
    if _native(dialect) == "sqlite":
        _, processors, _ = _plan(dialect, table, columns)
        sql = _sqlite_insert(dialect, table, columns, conflict)
        await run_sqlite(conn, sql, _converted(rows, processors), many=True)
        return
    sql, arrays = _unnest_insert(dialect, table, columns, rows, conflict, order_by, 1)
    await run_postgres(conn, sql, arrays)


@lru_cache(maxsize=64)
def _sqlite_insert(dialect: Dialect, table: Table, columns: tuple[str, ...], conflict: str) -> str:
    names, _, _ = _plan(dialect, table, columns)
    target = dialect.identifier_preparer.format_table(table)
    marks = ", ".join("?" for _ in columns)
    return f"INSERT INTO {target} ({', '.join(names)}) VALUES ({marks}){conflict}"


def _unnest_insert(
    dialect: Dialect,
    table: Table,
    columns: tuple[str, ...],
    rows: Sequence[Sequence[Any]],
    conflict: str,
    order_by: int,
    first: int,
) -> tuple[str, tuple[list[Any], ...]]:
    """PostgreSQL: the INSERT of `rows` as one array per column, numbered from `$first`."""
    names, processors, types = _plan(dialect, table, columns)
    target = dialect.identifier_preparer.format_table(table)
    arrays = ", ".join(f"${i}::{t}[]" for i, t in enumerate(types, start=first))
    source = f"SELECT * FROM unnest({arrays}) AS batch ({', '.join(names)})"
    if order_by:
        # The server sorts in C what Python would sort key by key: the rows are inserted, and
        # their row locks taken, in this order.
        source += f" ORDER BY {', '.join(names[:order_by])}"
    sql = f"INSERT INTO {target} ({', '.join(names)}) {source}{conflict}"
    return sql, _columns_of(_converted(rows, processors), len(columns))


def carried_columns(
    columns: tuple[str, ...], rows: Sequence[Mapping[str, Any]], defaults: Mapping[str, Any]
) -> tuple[str, ...]:
    """The columns to send: all but those whose every value is the table's default for them.

    Ingest also asks it which token-category sums a batch adds to (`ingest/_rollups.py`)."""
    return tuple(
        name
        for name in columns
        if name not in defaults or set(map(itemgetter(name), rows)) != {defaults[name]}
    )


async def insert_rows(
    conn: AsyncConnection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    defaults: Mapping[str, Any] | None = None,
) -> None:
    """INSERT every row (all rows carry the same keys); a duplicate key raises IntegrityError.

    `defaults` names columns with the value the table's own server default gives them: a
    column holding nothing else in the whole batch is left out, which the database fills in
    for far less than it costs to send (most events carry no token categories)."""
    if not rows:
        return
    if _native(conn.dialect) is None:
        await conn.execute(table.insert(), list(rows))
        return
    columns = tuple(rows[0])
    if defaults:
        columns = carried_columns(columns, rows, defaults)
    get = itemgetter(*columns)
    tuples = [get(row) for row in rows] if len(columns) > 1 else [(get(row),) for row in rows]
    if _native(conn.dialect) == "postgresql" and len(tuples) >= _COPY_FROM:
        await copy_records(conn, table, columns, tuples)
        return
    await _write(conn, table, columns, tuples, "")


@dataclass(frozen=True, slots=True)
class Sums:
    """Rows of (*key, *sums) to add to `table`: a new key is inserted, an existing one has the
    sums added. Keys must be unique within `rows`."""

    table: Table
    key_columns: tuple[str, ...]
    sum_columns: tuple[str, ...]
    rows: Sequence[Sequence[Any]]


async def add_to_all_sums(conn: AsyncConnection, batches: Sequence[Sums]) -> None:
    """Upsert each batch of sums into its table, in the order given (each table at most once:
    on PostgreSQL the batches are parts of one statement, which may not touch a row twice).

    PostgreSQL writes each table's rows sorted by key, so that every writer takes its row locks
    in one order and concurrent upserts cannot deadlock (SQLite has one writer at a time), and
    sends all the tables' upserts as one statement (each a data-modifying WITH of its own): one
    round trip for the seven rollups of a proxied request's event instead of seven.
    """
    batches = [batch for batch in batches if batch.rows]
    if not batches:
        return
    native = _native(conn.dialect)
    if native is None:
        for batch in batches:
            insert = insert_for(conn, batch.table)
            statement = insert.on_conflict_do_update(
                index_elements=[batch.table.c[c] for c in batch.key_columns],
                set_={c: batch.table.c[c] + insert.excluded[c] for c in batch.sum_columns},
            )
            names = (*batch.key_columns, *batch.sum_columns)
            await conn.execute(
                statement, [dict(zip(names, row, strict=True)) for row in batch.rows]
            )
        return
    if native == "sqlite":
        for batch in batches:
            await _write(
                conn,
                batch.table,
                (*batch.key_columns, *batch.sum_columns),
                batch.rows,
                _conflict(conn.dialect, batch),
            )
        return
    statements: list[str] = []
    arrays: list[list[Any]] = []
    for batch in batches:
        sql, columns = _unnest_insert(
            conn.dialect,
            batch.table,
            (*batch.key_columns, *batch.sum_columns),
            batch.rows,
            _conflict(conn.dialect, batch),
            len(batch.key_columns),
            len(arrays) + 1,
        )
        statements.append(sql)
        arrays.extend(columns)
    if len(statements) > 1:
        together = ", ".join(f"sums_{n} AS ({sql})" for n, sql in enumerate(statements))
        statements = [f"WITH {together} SELECT 1"]
    await run_postgres(conn, statements[0], arrays)


def _conflict(dialect: Dialect, batch: Sums) -> str:
    return _conflict_clause(dialect, batch.table, batch.key_columns, batch.sum_columns)


@lru_cache(maxsize=64)
def _conflict_clause(
    dialect: Dialect, table: Table, key_columns: tuple[str, ...], sum_columns: tuple[str, ...]
) -> str:
    """Built once per table and columns: the text of a rollup's upsert, seven per proxied
    event, cost more to write out than SQLite took to run it."""
    quote = dialect.identifier_preparer.quote
    target = dialect.identifier_preparer.format_table(table)
    updates = ", ".join(
        f"{quote(c)} = {target}.{quote(c)} + excluded.{quote(c)}" for c in sum_columns
    )
    keys = ", ".join(quote(c) for c in key_columns)
    return f" ON CONFLICT ({keys}) DO UPDATE SET {updates}"


async def existing_ids(conn: AsyncConnection, table: Table, ids: Sequence[str]) -> set[str]:
    """Which of `ids` (string primary keys) the table holds: one statement for any number."""
    if not ids:
        return set()
    target = conn.dialect.identifier_preparer.format_table(table)
    native = _native(conn.dialect)
    if native == "sqlite":
        # json_each turns one JSON array parameter into a table: no limit on bound parameters.
        sql = f"SELECT id FROM {target} WHERE id IN (SELECT value FROM json_each(?))"
        return {row[0] for row in await run_sqlite(conn, sql, (json.dumps(list(ids)),))}
    if native == "postgresql":
        id_type = table.c.id.type.compile(dialect=conn.dialect)
        sql = f"SELECT id FROM {target} WHERE id = ANY($1::{id_type}[])"
        rows = await run_postgres(conn, sql, (list(ids),))
    else:
        from sqlalchemy import select

        found: set[str] = set()
        for start in range(0, len(ids), 900):
            chunk = list(ids[start : start + 900])
            result = await conn.execute(select(table.c.id).where(table.c.id.in_(chunk)))
            found.update(row[0] for row in result)
        return found
    return {row[0] for row in rows}
