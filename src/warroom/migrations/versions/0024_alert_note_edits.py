"""alert notes: when a note was last edited (by its author or an admin)

Revision ID: 0024
Revises: 0023
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import warroom.db

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("alert_notes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("edited_at", warroom.db.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("alert_notes", schema=None) as batch_op:
        batch_op.drop_column("edited_at")
