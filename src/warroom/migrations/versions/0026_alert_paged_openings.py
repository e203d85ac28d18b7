"""alerts: the incidents automation opened that paged a policy, counted by the storm guard

Revision ID: 0026
Revises: 0025
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import warroom.db

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alert_paged_openings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("policy", sa.String(length=200), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("rule", sa.String(length=200), nullable=False),
        sa.Column("opened_at", warroom.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["incident_id"], ["incidents.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_alert_paged_openings_policy_opened_at",
        "alert_paged_openings",
        ["policy", "opened_at"],
        unique=False,
    )
    op.create_index(
        "ix_alert_paged_openings_incident_id", "alert_paged_openings", ["incident_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_alert_paged_openings_incident_id", table_name="alert_paged_openings")
    op.drop_index("ix_alert_paged_openings_policy_opened_at", table_name="alert_paged_openings")
    op.drop_table("alert_paged_openings")
