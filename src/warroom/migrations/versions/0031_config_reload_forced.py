"""config_reloads.forced: a reload forced through the guard against a file that defines nothing that routes
or pages, so that the other processes follow it forced too

Revision ID: 0031
Revises: 0030
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0031"
down_revision = "0030"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("config_reloads", schema=None) as batch_op:
        batch_op.add_column(sa.Column("forced", sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("config_reloads", schema=None) as batch_op:
        batch_op.drop_column("forced")
