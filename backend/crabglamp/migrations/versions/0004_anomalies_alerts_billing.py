"""anomalies, alert endpoints and deliveries, cap crossings, billing lines

Revision ID: 0004
Revises: 0002
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _moment(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "anomaly",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("dedupe_key", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("key_id", sa.Uuid(), nullable=True),
        sa.Column("agent_id", sa.Uuid(), nullable=True),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("severity", sa.Float(), nullable=False),
        sa.Column("message", sa.String(), nullable=False),
        sa.Column("suggested_action", sa.String(), nullable=False),
        sa.Column("details", sa.String(), nullable=False),
        _moment("detected_at"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("dedupe_key"),
    )
    op.create_index("ix_anomaly_account_day", "anomaly", ["account_id", "day"])

    op.create_table(
        "alert_endpoint",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("url", sa.String(), nullable=False),
        sa.Column("description", sa.String(), nullable=False),
        sa.Column("secret", sa.String(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        _moment("created_at"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_alert_endpoint_account_id", "alert_endpoint", ["account_id"])

    op.create_table(
        "alert_delivery",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("endpoint_id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("event_id", sa.String(), nullable=False),
        sa.Column("event_type", sa.String(), nullable=False),
        sa.Column("payload", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _moment("next_attempt_at"),
        _moment("lease_until", nullable=True),
        sa.Column("lease_token", sa.Uuid(), nullable=True),
        _moment("created_at"),
        _moment("delivered_at", nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("endpoint_id", "event_id"),
    )
    op.create_index("ix_alert_delivery_endpoint_id", "alert_delivery", ["endpoint_id"])
    op.create_index("ix_alert_delivery_due", "alert_delivery", ["status", "next_attempt_at"])
    op.create_index(
        "ix_alert_delivery_account_created", "alert_delivery", ["account_id", "created_at"]
    )

    op.create_table(
        "alert_attempt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("delivery_id", sa.Uuid(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        _moment("attempted_at"),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.String(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_alert_attempt_delivery_id", "alert_attempt", ["delivery_id"])

    op.create_table(
        "cap_crossing",
        sa.Column("key_id", sa.Uuid(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("cap_micros", sa.BigInteger(), nullable=False),
        sa.Column("threshold_percent", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("spent_micros", sa.BigInteger(), nullable=False),
        _moment("crossed_at"),
        sa.PrimaryKeyConstraint("key_id", "month", "cap_micros", "threshold_percent"),
    )

    op.create_table(
        "billing_line",
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("line", sa.String(), nullable=False),
        sa.Column("month", sa.String(), nullable=False),
        sa.Column("reported_seq", sa.Integer(), nullable=False),
        sa.Column("reported_total_micros", sa.BigInteger(), nullable=False),
        _moment("reported_as_of", nullable=True),
        _moment("reported_at", nullable=True),
        sa.Column("pending_seq", sa.Integer(), nullable=True),
        sa.Column("pending_total_micros", sa.BigInteger(), nullable=True),
        _moment("pending_as_of", nullable=True),
        sa.Column("pending_final", sa.Boolean(), nullable=False),
        sa.Column("closed", sa.Boolean(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(), nullable=True),
        _moment("lease_until", nullable=True),
        sa.Column("lease_token", sa.Uuid(), nullable=True),
        sa.PrimaryKeyConstraint("account_id", "line", "month"),
    )
    op.create_index("ix_billing_line_closed", "billing_line", ["closed"])


def downgrade() -> None:
    op.drop_index("ix_billing_line_closed", table_name="billing_line")
    op.drop_table("billing_line")
    op.drop_table("cap_crossing")
    op.drop_index("ix_alert_attempt_delivery_id", table_name="alert_attempt")
    op.drop_table("alert_attempt")
    op.drop_index("ix_alert_delivery_account_created", table_name="alert_delivery")
    op.drop_index("ix_alert_delivery_due", table_name="alert_delivery")
    op.drop_index("ix_alert_delivery_endpoint_id", table_name="alert_delivery")
    op.drop_table("alert_delivery")
    op.drop_index("ix_alert_endpoint_account_id", table_name="alert_endpoint")
    op.drop_table("alert_endpoint")
    op.drop_index("ix_anomaly_account_day", table_name="anomaly")
    op.drop_table("anomaly")
