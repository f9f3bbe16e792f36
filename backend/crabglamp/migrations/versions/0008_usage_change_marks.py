"""usage change marks: what a dashboard listening on SQLite polls (PostgreSQL uses NOTIFY)

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0008"
down_revision: str | tuple[str, ...] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "usage_change_mark",
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "kind"),
    )
    op.create_index(op.f("ix_usage_change_mark_seq"), "usage_change_mark", ["seq"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_usage_change_mark_seq"), table_name="usage_change_mark")
    op.drop_table("usage_change_mark")
