"""integration_keys: rotation (the replaced key and signing secret keep working until a deadline)

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import warroom.db

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("integration_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rotated_at", warroom.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("previous_key_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("previous_signing_secret", sa.String(length=200), nullable=True))
        batch_op.add_column(
            sa.Column("previous_valid_until", warroom.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.create_index("ix_integration_keys_previous_key_hash", ["previous_key_hash"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("integration_keys", schema=None) as batch_op:
        batch_op.drop_index("ix_integration_keys_previous_key_hash")
        batch_op.drop_column("previous_valid_until")
        batch_op.drop_column("previous_signing_secret")
        batch_op.drop_column("previous_key_hash")
        batch_op.drop_column("rotated_at")
