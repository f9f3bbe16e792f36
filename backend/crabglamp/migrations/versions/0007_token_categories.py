"""token categories on LLM events and their rollups; the price table holds only overrides

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

from crabglamp.prices import SEEDED_CATALOG, price_rows

revision: str = "0007"
down_revision: str | tuple[str, ...] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TOKEN_COLUMNS = (
    "cached_input_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "reasoning_tokens",
    "audio_input_tokens",
    "audio_output_tokens",
    "cache_saved_micros",
)
_CACHE_RATES = (
    "cache_read_micros_per_mtok",
    "cache_write_5m_micros_per_mtok",
    "cache_write_1h_micros_per_mtok",
)
_SEEDED_KEYS = (
    "provider",
    "model",
    "kind",
    "valid_from",
    "input_micros_per_mtok",
    "output_micros_per_mtok",
    "micros_per_mchar",
)


def upgrade() -> None:
    # Existing events had no categories: zeros describe them exactly (all input uncached, no
    # reasoning reported), so nothing they cost or show changes.
    for table in ("llm_event", "llm_daily", "llm_daily_model"):
        with op.batch_alter_table(table) as batch:
            for name in _TOKEN_COLUMNS:
                batch.add_column(
                    sa.Column(name, sa.BigInteger(), nullable=False, server_default="0")
                )
    with op.batch_alter_table("llm_event") as batch:
        batch.add_column(
            sa.Column("service_tier", sqlmodel.sql.sqltypes.AutoString(), nullable=True)
        )
        batch.add_column(
            sa.Column("estimated", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("price") as batch:
        for name in _CACHE_RATES:
            batch.add_column(sa.Column(name, sa.BigInteger(), nullable=True))
    # The rows 0002 seeded were the list prices of that release; the maintained list now
    # prices those models (with their cache rates), so they go, exactly as seeded. A row an
    # operator added or changed differs in some value and stays, as an override.
    price = sa.table("price", *(sa.column(k) for k in _SEEDED_KEYS))
    for row in price_rows(SEEDED_CATALOG, cache_rates=False):
        op.execute(price.delete().where(*(price.c[k] == row[k] for k in _SEEDED_KEYS)))


def downgrade() -> None:
    price = sa.table("price", *(sa.column(k) for k in _SEEDED_KEYS))
    op.bulk_insert(price, price_rows(SEEDED_CATALOG, cache_rates=False))  # type: ignore[arg-type]
    with op.batch_alter_table("price") as batch:
        for name in _CACHE_RATES:
            batch.drop_column(name)
    with op.batch_alter_table("llm_event") as batch:
        batch.drop_column("estimated")
        batch.drop_column("service_tier")
    for table in ("llm_daily_model", "llm_daily", "llm_event"):
        with op.batch_alter_table(table) as batch:
            for name in _TOKEN_COLUMNS:
                batch.drop_column(name)
