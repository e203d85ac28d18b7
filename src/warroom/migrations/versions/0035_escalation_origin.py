"""escalations.origin: what started a run of a policy (the incident's own, a rule's page, a person), so that
a severity raise supersedes only the incident's own run and a requested one runs alongside

Revision ID: 0035
Revises: 0034
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0035"
down_revision = "0034"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("escalations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("origin", sa.String(length=20), nullable=True))
    # A person's runs are known by who asked; a rule's before now cannot be told from the incident's own.
    op.execute("UPDATE escalations SET origin = 'person' WHERE requested_by IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table("escalations", schema=None) as batch_op:
        batch_op.drop_column("origin")
