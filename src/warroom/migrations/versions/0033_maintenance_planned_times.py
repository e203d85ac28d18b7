"""maintenance_windows.planned_starts_at and planned_ends_at: the times a window cancelled before it started
was planned for (its starts_at and ends_at become the moment it was cancelled, so that it holds nothing)

Revision ID: 0033
Revises: 0032
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import warroom.db

revision = "0033"
down_revision = "0032"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("maintenance_windows", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("planned_starts_at", warroom.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("planned_ends_at", warroom.db.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("maintenance_windows", schema=None) as batch_op:
        batch_op.drop_column("planned_ends_at")
        batch_op.drop_column("planned_starts_at")
