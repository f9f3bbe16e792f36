"""default price catalog

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from crabglamp.prices import SEEDED_CATALOG, price_rows

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The list prices as of this release; later price changes arrive as rows with a later
    # valid_from (by import or a later migration), never as edits of these.
    # The table as this revision made it (later revisions add columns), and the catalog as
    # this release shipped it (prices.py keeps it frozen for this and for 0007).
    rows = price_rows(SEEDED_CATALOG, cache_rates=False)
    price = sa.table("price", *(sa.column(k) for k in rows[0]))
    op.bulk_insert(price, rows)  # type: ignore[arg-type]


def downgrade() -> None:
    op.execute("DELETE FROM price")
