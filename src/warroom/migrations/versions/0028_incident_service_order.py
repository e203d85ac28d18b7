"""incident_services.position: the order people named the affected services in

The first affected service chooses the escalation policy; rows were read back sorted by name, so an
incident on "payments, api" paged api's policy.

Revision ID: 0028
Revises: 0027
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("incident_services", schema=None) as batch_op:
        batch_op.add_column(sa.Column("position", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("incident_services", schema=None) as batch_op:
        batch_op.drop_column("position")
