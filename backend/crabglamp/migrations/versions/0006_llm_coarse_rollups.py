"""coarse LLM rollups (per model, per agent, per key and provider), backfilled from llm_daily

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0006"
down_revision: str | tuple[str, ...] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "llm_daily_model",
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("provider", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("model", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("cost_micros", sa.BigInteger(), nullable=False),
        sa.Column("request_count", sa.BigInteger(), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "day", "provider", "model"),
    )
    op.create_table(
        "llm_daily_agent",
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("agent_id", sa.Uuid(), nullable=False),
        sa.Column("cost_micros", sa.BigInteger(), nullable=False),
        sa.Column("request_count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "day", "agent_id"),
    )
    op.create_table(
        "llm_daily_key",
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("key_id", sa.Uuid(), nullable=False),
        sa.Column("provider", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("cost_micros", sa.BigInteger(), nullable=False),
        sa.Column("request_count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "day", "key_id", "provider"),
    )
    # Existing databases already hold events: the coarse rows are exact sums of llm_daily's,
    # so they are computed from it (the columns are stored alike on both sides, no conversion).
    op.execute(
        "INSERT INTO llm_daily_model (account_id, day, provider, model, cost_micros,"
        " request_count, input_tokens, output_tokens)"
        " SELECT account_id, day, provider, model, SUM(cost_micros), SUM(request_count),"
        " SUM(input_tokens), SUM(output_tokens)"
        " FROM llm_daily GROUP BY account_id, day, provider, model"
    )
    op.execute(
        "INSERT INTO llm_daily_agent (account_id, day, agent_id, cost_micros, request_count)"
        " SELECT account_id, day, agent_id, SUM(cost_micros), SUM(request_count)"
        " FROM llm_daily GROUP BY account_id, day, agent_id"
    )
    op.execute(
        "INSERT INTO llm_daily_key (account_id, day, key_id, provider, cost_micros,"
        " request_count)"
        " SELECT account_id, day, key_id, provider, SUM(cost_micros), SUM(request_count)"
        " FROM llm_daily GROUP BY account_id, day, key_id, provider"
    )
    if op.get_bind().dialect.name == "postgresql":
        # Planner statistics now, not at autovacuum's leisure: until then PostgreSQL guesses one
        # row per account-month and picks slower plans for usage's first reads.
        for table in ("llm_daily_model", "llm_daily_agent", "llm_daily_key"):
            op.execute(f"ANALYZE {table}")


def downgrade() -> None:
    op.drop_table("llm_daily_key")
    op.drop_table("llm_daily_agent")
    op.drop_table("llm_daily_model")
