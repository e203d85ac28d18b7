"""integration_keys: the header names a signing integration read before a change, and until when they still
work (the contact point may change after Warroom does)

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import warroom.db

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("integration_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("previous_signature_header", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("previous_timestamp_header", sa.String(length=100), nullable=True))
        batch_op.add_column(
            sa.Column("previous_headers_valid_until", warroom.db.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("integration_keys", schema=None) as batch_op:
        batch_op.drop_column("previous_headers_valid_until")
        batch_op.drop_column("previous_timestamp_header")
        batch_op.drop_column("previous_signature_header")
