"""proxy: retired key secrets, monthly spend per key, spend reservations

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "virtual_key_secret",
        sa.Column("secret_hash", sa.String(), nullable=False),
        sa.Column("key_id", sa.Uuid(), nullable=False),
        sa.Column("secret_prefix", sa.String(), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["key_id"], ["virtual_key.id"]),
        sa.PrimaryKeyConstraint("secret_hash"),
    )
    op.create_index("ix_virtual_key_secret_key_id", "virtual_key_secret", ["key_id"])
    op.create_table(
        "key_spend",
        sa.Column("key_id", sa.Uuid(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("spent_micros", sa.BigInteger(), nullable=False),
        sa.Column("reserved_micros", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key_id", "month"),
    )
    op.create_table(
        "spend_reservation",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("key_id", sa.Uuid(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("amount_micros", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_spend_reservation_expires_at", "spend_reservation", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_spend_reservation_expires_at", table_name="spend_reservation")
    op.drop_table("spend_reservation")
    op.drop_table("key_spend")
    op.drop_index("ix_virtual_key_secret_key_id", table_name="virtual_key_secret")
    op.drop_table("virtual_key_secret")
