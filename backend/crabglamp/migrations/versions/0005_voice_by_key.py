"""join the proxy and anomaly branches; index voice events by key

Revision ID: 0005
Revises: 0003, 0004
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | tuple[str, ...] | None = ("0003", "0004")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A key's accrued spend (its card and its cap) includes the speech made with it.
    op.create_index("ix_voice_event_key_ts", "voice_event", ["key_id", "ts"])


def downgrade() -> None:
    op.drop_index("ix_voice_event_key_ts", table_name="voice_event")
