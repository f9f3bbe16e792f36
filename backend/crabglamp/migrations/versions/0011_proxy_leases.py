"""proxy leases: each process's heartbeat, so that a dead process's reservations are freed soon

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0011"
down_revision: str | tuple[str, ...] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "proxy_lease",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("host", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("process", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_proxy_lease_expires_at", "proxy_lease", ["expires_at"])
    # Reservations held before this revision have no lease: they wait for their own expiry.
    with op.batch_alter_table("spend_reservation") as batch:
        batch.add_column(sa.Column("lease_id", sa.Uuid(), nullable=True))
        batch.create_index("ix_spend_reservation_lease_id", ["lease_id"])


def downgrade() -> None:
    with op.batch_alter_table("spend_reservation") as batch:
        batch.drop_index("ix_spend_reservation_lease_id")
        batch.drop_column("lease_id")
    op.drop_index("ix_proxy_lease_expires_at", table_name="proxy_lease")
    op.drop_table("proxy_lease")
