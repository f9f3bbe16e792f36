"""anomaly state (acknowledged, resolved) and per-key leak policy with suspension

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0009"
down_revision: str | tuple[str, ...] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TEXT = sqlmodel.sql.sqltypes.AutoString
_MOMENT = sa.DateTime(timezone=True)

_KEY_COLUMNS: list[sa.Column[Any]] = [
    # Existing keys keep today's behaviour: an alert, nothing automatic.
    sa.Column("leak_policy", _TEXT(), nullable=False, server_default="notify"),
    sa.Column("suspended_at", _MOMENT, nullable=True),
    sa.Column("suspended_reason", _TEXT(), nullable=True),
    sa.Column("suspended_by_anomaly", _TEXT(), nullable=True),
]
_ANOMALY_COLUMNS: list[sa.Column[Any]] = [
    sa.Column("state", _TEXT(), nullable=False, server_default="open"),
    sa.Column("acknowledged_by", _TEXT(), nullable=True),
    sa.Column("acknowledged_at", _MOMENT, nullable=True),
    sa.Column("resolution", _TEXT(), nullable=True),
    sa.Column("resolution_reason", _TEXT(), nullable=True),
    sa.Column("resolved_by", _TEXT(), nullable=True),
    sa.Column("resolved_at", _MOMENT, nullable=True),
    sa.Column("policy_action", _TEXT(), nullable=True),
    sa.Column("policy_applied_at", _MOMENT, nullable=True),
    sa.Column("policy_previous_cap_micros", sa.BigInteger(), nullable=True),
    sa.Column("policy_reverted_at", _MOMENT, nullable=True),
    sa.Column("policy_reverted_by", _TEXT(), nullable=True),
]


def upgrade() -> None:
    with op.batch_alter_table("virtual_key") as batch:
        for column in _KEY_COLUMNS:
            batch.add_column(column)
    with op.batch_alter_table("anomaly") as batch:
        for column in _ANOMALY_COLUMNS:
            batch.add_column(column)
    # Rotating or re-capping a key resolves its open anomalies: found by key.
    op.create_index("ix_anomaly_key_state", "anomaly", ["key_id", "state"])


def downgrade() -> None:
    op.drop_index("ix_anomaly_key_state", table_name="anomaly")
    with op.batch_alter_table("anomaly") as batch:
        for column in reversed(_ANOMALY_COLUMNS):
            batch.drop_column(column.name)
    with op.batch_alter_table("virtual_key") as batch:
        for column in reversed(_KEY_COLUMNS):
            batch.drop_column(column.name)
