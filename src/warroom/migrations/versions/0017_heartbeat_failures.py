"""heartbeats: a sender can report a failed run (/fail or its exit status), which fires at once

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import warroom.db

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("heartbeats", schema=None) as batch_op:
        batch_op.add_column(sa.Column("failed_at", warroom.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("last_exit_status", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("heartbeats", schema=None) as batch_op:
        batch_op.drop_column("last_exit_status")
        batch_op.drop_column("failed_at")
