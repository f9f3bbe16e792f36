"""The one dialect-specific statement both engines need: INSERT ... ON CONFLICT."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine


def insert_for(bind: AsyncEngine | AsyncConnection, table: Table) -> Any:
    """An INSERT of this engine's dialect, so `.on_conflict_do_nothing()` and
    `.on_conflict_do_update()` are there (SQLite and PostgreSQL spell them alike)."""
    insert = sqlite.insert if bind.dialect.name == "sqlite" else postgresql.insert
    return insert(table)
