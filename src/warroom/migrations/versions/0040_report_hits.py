"""The public report form's rate limit, counted in the database (``report_hits``): kept in each process's
memory, N processes on one database allowed a client N times the limit.

Revision ID: 0040
Revises: 0039
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import warroom.db

revision = "0040"
down_revision = "0039"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "report_hits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("bucket", sa.String(length=64), nullable=False),
        sa.Column("at", warroom.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_report_hits_bucket_at", "report_hits", ["bucket", "at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_report_hits_bucket_at", table_name="report_hits")
    op.drop_table("report_hits")
