"""maintenance_windows: planned work during which matching alerts are recorded but not acted on; alerts
remember the window they arrived in

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import warroom.db

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "maintenance_windows",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("services", sa.JSON(), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("starts_at", warroom.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ends_at", warroom.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", warroom.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ended_by", sa.String(length=200), nullable=True),
        sa.Column("released_at", warroom.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_maintenance_windows")),
    )
    op.create_index("ix_maintenance_windows_ends_at", "maintenance_windows", ["ends_at"], unique=False)
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("maintenance_window_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_alerts_maintenance_window_id"), ["maintenance_window_id"])
        batch_op.create_foreign_key(
            batch_op.f("fk_alerts_maintenance_window_id_maintenance_windows"),
            "maintenance_windows",
            ["maintenance_window_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_alerts_maintenance_window_id_maintenance_windows"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_alerts_maintenance_window_id"))
        batch_op.drop_column("maintenance_window_id")
    op.drop_index("ix_maintenance_windows_ends_at", table_name="maintenance_windows")
    op.drop_table("maintenance_windows")
