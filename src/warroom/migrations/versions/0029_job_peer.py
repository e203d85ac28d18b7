"""jobs.peer: the host a delivery goes to, so one slow peer cannot take every delivery slot

A worker claims no more deliveries for a peer that already has its share of them in flight; a page to
someone else then goes out at once instead of waiting for a slow webhook or mail server.

Revision ID: 0029
Revises: 0028
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0029"
down_revision = "0028"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("peer", sa.String(length=300), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("peer")
