"""heartbeats: when one was watched again with no ping (its alert resolved by a person, or put back in the org
file), so it shows as watching rather than ok or failed; status_pages: which status pages the org file last
read has, so a poll in a process that has not reloaded yet raises nothing for a page taken out

Revision ID: 0039
Revises: 0038
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import warroom.db

revision = "0039"
down_revision = "0038"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("heartbeats", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("watched_again_at", warroom.db.UTCDateTime(timezone=True), nullable=True)
        )
    op.create_table(
        "status_pages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("removed_at", warroom.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_status_pages")),
        sa.UniqueConstraint("name", name=op.f("uq_status_pages_name")),
    )


def downgrade() -> None:
    op.drop_table("status_pages")
    with op.batch_alter_table("heartbeats", schema=None) as batch_op:
        batch_op.drop_column("watched_again_at")
