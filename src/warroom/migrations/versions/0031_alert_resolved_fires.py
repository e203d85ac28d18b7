"""alert_resolved_fires: a resolved alert's last firing event, so that its retried delivery opens nothing

Revision ID: 0031
Revises: 0030
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from warroom.db import UTCDateTime

revision = "0031"
down_revision = "0030"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alert_resolved_fires",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("scope", sa.String(length=60), nullable=False),
        sa.Column("dedup_key", sa.String(length=255), nullable=False),
        sa.Column("alert_id", sa.Integer(), nullable=False),
        sa.Column("event_hash", sa.String(length=64), nullable=False),
        sa.Column("expires_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["alert_id"], ["alerts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("scope", "dedup_key", name="uq_alert_resolved_fires_scope_dedup_key"),
    )
    op.create_index("ix_alert_resolved_fires_alert_id", "alert_resolved_fires", ["alert_id"])
    op.create_index("ix_alert_resolved_fires_expires_at", "alert_resolved_fires", ["expires_at"])


def downgrade() -> None:
    op.drop_table("alert_resolved_fires")
