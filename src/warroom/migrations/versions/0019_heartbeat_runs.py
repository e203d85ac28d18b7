"""heartbeats: a run can signal its start (/start); a run that outlives max_runtime fires, and each run's
duration is kept

Revision ID: 0019
Revises: 0018
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import warroom.db

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("heartbeats", schema=None) as batch_op:
        batch_op.add_column(sa.Column("started_at", warroom.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("last_run_seconds", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("heartbeats", schema=None) as batch_op:
        batch_op.drop_column("last_run_seconds")
        batch_op.drop_column("started_at")
