"""integration keys: the service an integration's alerts and changes belong to when they name none

Revision ID: 0021
Revises: 0020
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("integration_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("service", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("integration_keys", schema=None) as batch_op:
        batch_op.drop_column("service")
