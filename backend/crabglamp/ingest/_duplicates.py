"""Idempotency: an event id is recorded once; a resend is a duplicate, a changed resend a problem.

The one change allowed is an open compute interval getting its end, rolled up by whichever
writer flips it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from crabglamp.db.bulk import existing_ids
from crabglamp.db.chunks import chunks
from crabglamp.db.tables import table_of
from crabglamp.ingest.records import IngestResult, RecordProblem
from crabglamp.models import ComputeInterval
from crabglamp.periods import as_utc


def by_id(row: dict[str, Any]) -> str:
    return str(row["id"])


def _normal(value: Any) -> Any:
    if isinstance(value, datetime):
        return as_utc(value)
    return value


def _same(stored: dict[str, Any], row: dict[str, Any], ignore: tuple[str, ...] = ()) -> bool:
    return all(_normal(stored.get(k)) == _normal(v) for k, v in row.items() if k not in ignore)


def _difference(stored: dict[str, Any], row: dict[str, Any], ignore: tuple[str, ...] = ()) -> str:
    fields = [k for k, v in row.items() if k not in ignore and _normal(stored.get(k)) != _normal(v)]
    return f"event id already recorded with different {', '.join(fields)}"


def dedupe_batch(
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


# Idempotency


async def _existing(
    conn: AsyncConnection, model: Any, ids: list[str], lock: bool = False
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


async def new_only(
    conn: AsyncConnection,
    model: Any,
    rows: list[dict[str, Any]],
    problems: list[RecordProblem],
    result: IngestResult,
) -> list[dict[str, Any]]:
    if not rows:
        return []
    existing = await _existing(conn, model, [r["id"] for r in rows])
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


async def new_compute(
    conn: AsyncConnection,
    rows: list[dict[str, Any]],
    problems: list[RecordProblem],
    result: IngestResult,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    if not rows:
        return [], []
    existing = await _existing(conn, ComputeInterval, [r["id"] for r in rows], lock=True)
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


async def close_intervals(
    conn: AsyncConnection, closing: list[dict[str, Any]], result: IngestResult
) -> list[dict[str, Any]]:
    table = table_of(ComputeInterval)
    closed = []
    for row in sorted(closing, key=by_id):
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
