"""alerts.source_started_at: when the source says the trouble began

Alertmanager's startsAt, a PagerDuty payload's timestamp: often before the alert reached Warroom (group_wait,
a retry after an outage). first_seen_at stays the receipt time.

Revision ID: 0030
Revises: 0029
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from warroom.db import UTCDateTime

revision = "0030"
down_revision = "0029"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source_started_at", UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_column("source_started_at")
