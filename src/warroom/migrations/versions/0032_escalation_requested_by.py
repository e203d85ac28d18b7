"""escalations.requested_by and request_note: who asked for a run of a policy, and why, for its pages

Revision ID: 0032
Revises: 0031
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0032"
down_revision = "0031"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("escalations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("requested_by", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("request_note", sa.String(length=300), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("escalations", schema=None) as batch_op:
        batch_op.drop_column("request_note")
        batch_op.drop_column("requested_by")
