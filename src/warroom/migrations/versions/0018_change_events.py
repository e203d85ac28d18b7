"""change events: deploys and config pushes, listed on the timeline of an incident that opens soon after

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import warroom.db

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "change_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("service", sa.String(length=200), nullable=True),
        sa.Column("source", sa.String(length=255), nullable=True),
        sa.Column("happened_at", warroom.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", warroom.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("recorded_by", sa.String(length=200), nullable=False),
        sa.Column("integration_id", sa.Integer(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("links", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["integration_id"], ["integration_keys.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_change_events_happened_at", "change_events", ["happened_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_change_events_happened_at", table_name="change_events")
    op.drop_table("change_events")
