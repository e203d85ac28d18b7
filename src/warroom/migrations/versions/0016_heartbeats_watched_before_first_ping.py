"""heartbeats: a heartbeat watched before its first ping (first_ping_within) has a row with no ping times

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

from alembic import op

import warroom.db

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("heartbeats", schema=None) as batch_op:
        for column in ("first_ping_at", "last_ping_at"):
            batch_op.alter_column(column, existing_type=warroom.db.UTCDateTime(timezone=True), nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM heartbeats WHERE first_ping_at IS NULL")
    with op.batch_alter_table("heartbeats", schema=None) as batch_op:
        for column in ("first_ping_at", "last_ping_at"):
            batch_op.alter_column(column, existing_type=warroom.db.UTCDateTime(timezone=True), nullable=False)
