"""The Core table behind a SQLModel table model, typed (SQLModel does not declare `__table__`)."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Table


def table_of(model: Any) -> Table:
    return cast(Table, model.__table__)
