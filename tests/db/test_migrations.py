"""The migrations build exactly the schema the models describe, on both engines, both ways."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, inspect, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel

import crabglamp.models  # noqa: F401  (registers every table on SQLModel.metadata)
from crabglamp.migrate import downgrade, upgrade
from crabglamp.models import Price


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(
        connection,
        opts={
            "compare_type": True,
            "compare_server_default": False,
            "render_as_batch": connection.dialect.name == "sqlite",
        },
    )
    return list(compare_metadata(context, SQLModel.metadata)) + _rowid_differences(connection)


def _rowid_differences(connection: Connection) -> list[Any]:
    """Tables whose SQLite rowid option differs from the model's (the comparison above does not
    look at table options; the rollups usage() sums are WITHOUT ROWID there)."""
    if connection.dialect.name != "sqlite":
        return []
    inspector = inspect(connection)
    differences = []
    for name, table in SQLModel.metadata.tables.items():
        wanted = table.dialect_options["sqlite"]["with_rowid"]
        found = inspector.get_table_options(name).get("sqlite_with_rowid", True)
        if wanted != found:
            differences.append(("with_rowid", name, wanted, found))
    return differences


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


async def schema_differences(engine: AsyncEngine) -> list[Any]:
    async with engine.connect() as conn:
        return await conn.run_sync(_differences)


async def test_the_migrated_schema_is_the_models_schema(engine: AsyncEngine) -> None:
    # The fixture's database was migrated to every head, as serve and demo migrate theirs.
    assert await schema_differences(engine) == []


async def test_downgrade_to_base_and_upgrade_again(engine: AsyncEngine) -> None:
    await downgrade(engine, "base")
    async with engine.connect() as conn:
        assert await conn.run_sync(_tables) <= {"alembic_version"}
    await upgrade(engine)
    assert await schema_differences(engine) == []
    async with engine.connect() as conn:
        assert await conn.run_sync(_tables) >= set(SQLModel.metadata.tables)
        prices = (await conn.execute(select(func.count()).select_from(Price))).scalar()
    # 0007 took the seeded list prices out again: the table holds overrides only.
    assert prices == 0
