"""default price catalog

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op
from sqlmodel import SQLModel

from crabglamp.prices import DEFAULT_CATALOG, price_rows

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The list prices as of this release; later price changes arrive as rows with a later
    # valid_from (by import or a later migration), never as edits of these.
    op.bulk_insert(SQLModel.metadata.tables["price"], price_rows(DEFAULT_CATALOG))


def downgrade() -> None:
    op.execute("DELETE FROM price")
