"""heartbeats: the pings of each dead man's switch of the org file

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import warroom.db

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "heartbeats",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("first_ping_at", warroom.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_ping_at", warroom.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("pings", sa.Integer(), nullable=False),
        sa.Column("due_at", warroom.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("missed_at", warroom.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("misses", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_heartbeats")),
        sa.UniqueConstraint("name", name=op.f("uq_heartbeats_name")),
    )


def downgrade() -> None:
    op.drop_table("heartbeats")
