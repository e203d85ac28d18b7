"""integration keys: when each key (and the replaced one, during a rotation's grace) last authenticated

Revision ID: 0020
Revises: 0019
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import warroom.db

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("integration_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_used_at", warroom.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("previous_key_last_used_at", warroom.db.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("integration_keys", schema=None) as batch_op:
        batch_op.drop_column("previous_key_last_used_at")
        batch_op.drop_column("last_used_at")
