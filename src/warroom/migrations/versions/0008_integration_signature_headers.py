"""integration_keys: the signature and timestamp header names a Grafana contact point was told to use

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NULL: Grafana's default names (X-Grafana-Alerting-Signature, X-Grafana-Alerting-Signature-Timestamp).
    with op.batch_alter_table("integration_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("signature_header", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("timestamp_header", sa.String(length=100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("integration_keys", schema=None) as batch_op:
        batch_op.drop_column("timestamp_header")
        batch_op.drop_column("signature_header")
