"""rollups by the grain usage draws: per agent and per key by month, voice by day and model

Revision ID: 0013
Revises: 0012

usage() summed a month of daily rows per key, per agent and per voice agent and model (about
8,000 rows for the benchmark's big account) to draw lists of a hundred entries. Each new table
is an exact sum of a daily rollup, so existing databases are backfilled from those. On SQLite
they are clustered by their primary key, like the rollups they sum (models.READ_CLUSTERED).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0013"
down_revision: str | tuple[str, ...] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CLUSTERED = {"sqlite_with_rowid": False}
_TABLES = ("llm_monthly_agent", "llm_monthly_key", "voice_daily_model", "voice_monthly_agent")


def _sums(*names: str) -> list[sa.Column[int]]:
    return [sa.Column(name, sa.BigInteger(), nullable=False) for name in names]


def upgrade() -> None:
    op.create_table(
        "llm_monthly_agent",
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("agent_id", sa.Uuid(), nullable=False),
        *_sums("cost_micros", "request_count"),
        sa.PrimaryKeyConstraint("account_id", "month", "agent_id"),
        **_CLUSTERED,
    )
    op.create_table(
        "llm_monthly_key",
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("key_id", sa.Uuid(), nullable=False),
        sa.Column("provider", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        *_sums("cost_micros", "request_count"),
        sa.PrimaryKeyConstraint("account_id", "month", "key_id", "provider"),
        **_CLUSTERED,
    )
    op.create_table(
        "voice_daily_model",
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("voice_model", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        *_sums("cost_micros", "characters", "request_count"),
        sa.PrimaryKeyConstraint("account_id", "day", "voice_model"),
        **_CLUSTERED,
    )
    op.create_table(
        "voice_monthly_agent",
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("agent_id", sa.Uuid(), nullable=False),
        *_sums("cost_micros", "characters", "request_count"),
        sa.PrimaryKeyConstraint("account_id", "month", "agent_id"),
        **_CLUSTERED,
    )
    postgres = op.get_bind().dialect.name == "postgresql"
    # SQLite keeps a date as its ISO text, so the first of its month is a prefix and "01".
    month = "CAST(date_trunc('month', day) AS date)" if postgres else "substr(day, 1, 8) || '01'"
    op.execute(
        "INSERT INTO llm_monthly_agent (account_id, month, agent_id, cost_micros, request_count)"
        f" SELECT account_id, {month}, agent_id, SUM(cost_micros), SUM(request_count)"
        f" FROM llm_daily_agent GROUP BY account_id, {month}, agent_id"
    )
    op.execute(
        "INSERT INTO llm_monthly_key"
        " (account_id, month, key_id, provider, cost_micros, request_count)"
        f" SELECT account_id, {month}, key_id, provider, SUM(cost_micros), SUM(request_count)"
        f" FROM llm_daily_key GROUP BY account_id, {month}, key_id, provider"
    )
    op.execute(
        "INSERT INTO voice_daily_model"
        " (account_id, day, voice_model, cost_micros, characters, request_count)"
        " SELECT account_id, day, voice_model, SUM(cost_micros), SUM(characters),"
        " SUM(request_count) FROM voice_daily GROUP BY account_id, day, voice_model"
    )
    op.execute(
        "INSERT INTO voice_monthly_agent"
        " (account_id, month, agent_id, cost_micros, characters, request_count)"
        f" SELECT account_id, {month}, agent_id, SUM(cost_micros), SUM(characters),"
        f" SUM(request_count) FROM voice_daily GROUP BY account_id, {month}, agent_id"
    )
    if postgres:
        # Planner statistics now, not at autovacuum's leisure (as in 0006).
        for table in _TABLES:
            op.execute(f"ANALYZE {table}")


def downgrade() -> None:
    for table in reversed(_TABLES):
        op.drop_table(table)
