"""Statements sent to asyncpg under SQLAlchemy's adapter (db/postgres_direct.py): they belong
to the caller's transaction, whichever comes first in it, and fail as SQLAlchemy's would."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from crabglamp.db import write_transaction
from crabglamp.db.bulk import insert_rows
from crabglamp.db.postgres_direct import run_postgres
from crabglamp.db.tables import table_of
from crabglamp.models import UsageChangeMark

pytestmark = pytest.mark.parametrize(
    "db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
_marks = table_of(UsageChangeMark)
_MARK = "INSERT INTO usage_change_mark (account_id, kind, seq) VALUES ($1, $2, $3)"


class _Undone(Exception):
    pass


async def _count(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return (await conn.execute(select(func.count()).select_from(_marks))).scalar_one()


async def test_a_first_statement_sent_to_asyncpg_begins_the_transaction_it_rolls_back_with(
    engine: AsyncEngine,
) -> None:
    with pytest.raises(_Undone):
        async with write_transaction(engine) as conn:
            await run_postgres(conn, _MARK, (uuid.uuid4(), "llm", 1))  # first: no BEGIN yet
            raise _Undone
    assert await _count(engine) == 0
    async with write_transaction(engine) as conn:
        await run_postgres(conn, _MARK, (uuid.uuid4(), "llm", 2))
        assert await run_postgres(conn, "SELECT count(*) FROM usage_change_mark") == [(1,)]
    assert await _count(engine) == 1


async def test_a_first_copy_rolls_back_with_its_transaction(engine: AsyncEngine) -> None:
    rows = [{"account_id": uuid.uuid4(), "kind": "llm", "seq": n} for n in range(100)]
    with pytest.raises(_Undone):
        async with write_transaction(engine) as conn:
            await insert_rows(conn, _marks, rows)  # 100 rows: COPY, before any other statement
            raise _Undone
    assert await _count(engine) == 0
    async with write_transaction(engine) as conn:
        await insert_rows(conn, _marks, rows)
    assert await _count(engine) == 100


async def test_a_stored_key_sent_again_is_an_integrity_error(engine: AsyncEngine) -> None:
    account = uuid.uuid4()
    async with write_transaction(engine) as conn:
        await run_postgres(conn, _MARK, (account, "llm", 1))
    with pytest.raises(IntegrityError):  # what db/retry.py retries
        async with write_transaction(engine) as conn:
            await run_postgres(conn, _MARK, (account, "llm", 2))
    assert await _count(engine) == 1
