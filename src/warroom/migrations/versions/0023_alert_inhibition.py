"""alerts: the firing alert that inhibits this one (automation.inhibit_rules)

Revision ID: 0023
Revises: 0022
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("inhibited_by_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_alerts_inhibited_by_id"), ["inhibited_by_id"])
        batch_op.create_foreign_key(
            batch_op.f("fk_alerts_inhibited_by_id_alerts"),
            "alerts",
            ["inhibited_by_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_alerts_inhibited_by_id_alerts"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_alerts_inhibited_by_id"))
        batch_op.drop_column("inhibited_by_id")
