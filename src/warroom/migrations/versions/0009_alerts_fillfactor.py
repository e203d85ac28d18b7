"""alerts: leave room on each page (PostgreSQL fillfactor 70), so repeat notifications update in place

A firing alert's row is rewritten on every repeat notification (count, last seen, the latest payload). With
the default fillfactor the new row version often finds no room on its page, so PostgreSQL writes it
elsewhere and adds an entry to every index; in bench/alerts_intake.py's storm (300,000 updates of 200 rows)
only 36-83% of updates stayed on their page and the table grew to 17-245 MB. With 30% of each page free,
99.9% stay (heap-only tuples, no index entries) and the table stays under 1 MB. SQLite has no such setting.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # Applies to pages written from now on; existing pages keep their rows until they are rewritten.
        op.execute("ALTER TABLE alerts SET (fillfactor = 70)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE alerts RESET (fillfactor)")
