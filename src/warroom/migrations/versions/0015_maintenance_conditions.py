"""maintenance windows: conditions beyond services and label equality (sources, severities, types, label
regexes, absent labels), as in an automation rule's match

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("maintenance_windows", schema=None) as batch_op:
        # Existing windows have none: '{}'.
        batch_op.add_column(sa.Column("conditions", sa.JSON(), nullable=False, server_default="{}"))


def downgrade() -> None:
    with op.batch_alter_table("maintenance_windows", schema=None) as batch_op:
        batch_op.drop_column("conditions")
