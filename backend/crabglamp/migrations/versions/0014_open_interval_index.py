"""an index of the open compute intervals per account

Revision ID: 0014
Revises: 0013

usage() accrues each open interval until now, and billing looks for accounts with one. Both ask
for `"end" IS NULL` of one account, which the index on (account_id, start) answered by walking
every interval the account ever had (2,440 rows for the benchmark's big account, 0.8 ms of a
month's usage on SQLite, and growing with its history). A partial index holds only the open ones:
about one per agent and VM.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | tuple[str, ...] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OPEN = sa.text('"end" IS NULL')


def upgrade() -> None:
    op.create_index(
        "ix_compute_interval_open",
        "compute_interval",
        ["account_id", "start"],
        sqlite_where=_OPEN,
        postgresql_where=_OPEN,
    )


def downgrade() -> None:
    op.drop_index("ix_compute_interval_open", table_name="compute_interval")
