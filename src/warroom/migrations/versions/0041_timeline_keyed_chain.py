"""The timeline hash chain is keyed: entries from now on are HMAC-SHA256 with a key derived from the
server's secret key, and each incident's entry count and head are sealed with it (``timeline_seal``), so an
edit that re-chains, or a timeline wiped back to nothing, no longer verifies. Entries already written keep
their plain SHA-256 hashes (``timeline_keyed_from``: the first keyed entry); their incident's seal, made
here, covers their head, so re-chaining them is found too.

Sealing needs the key: ``warroom db upgrade``, ``serve``, ``worker`` and the other admin commands that
migrate pass theirs (``migrate.upgrade``): run them with the server's key. Run
without it (Alembic by hand), existing incidents are left unsealed, and ``warroom audit verify`` names
them: downgrade to 0040 and upgrade with ``warroom db upgrade`` to seal them.

Revision ID: 0041
Revises: 0040
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable

import sqlalchemy as sa
from alembic import context, op

revision = "0041"
down_revision = "0040"
branch_labels = None
depends_on = None

log = logging.getLogger("warroom.migrate")


def upgrade() -> None:
    # Plain ADD COLUMN (a batch would copy the table, and drop its AUTOINCREMENT on SQLite).
    op.add_column(
        "incidents", sa.Column("timeline_seal", sa.String(length=64), nullable=False, server_default="")
    )
    op.add_column(
        "incidents",
        sa.Column("timeline_keyed_from", sa.Integer(), nullable=False, server_default=sa.text("1")),
    )
    connection = op.get_bind()
    incidents = sa.table(
        "incidents",
        sa.column("id", sa.Integer),
        sa.column("timeline_head", sa.String),
        sa.column("timeline_count", sa.Integer),
        sa.column("timeline_seal", sa.String),
        sa.column("timeline_keyed_from", sa.Integer),
    )
    # Every entry written so far is a plain SHA-256 one, from the all-zero genesis.
    connection.execute(
        incidents.update()
        .where(incidents.c.timeline_count > 0)
        .values(timeline_keyed_from=incidents.c.timeline_count + 1)
    )
    rows = connection.execute(
        sa.select(
            incidents.c.id,
            incidents.c.timeline_count,
            incidents.c.timeline_head,
            incidents.c.timeline_keyed_from,
        )
    ).all()
    if not rows:
        return
    key_of: Callable[[], bytes] | None = context.config.attributes.get("timeline_key")
    if key_of is None:
        log.warning(
            "0041: %d incident(s) left unsealed: the migration ran without the server's secret key "
            "(use warroom db upgrade); warroom audit verify names them",
            len(rows),
        )
        return
    key = key_of()
    # As incidents.service's chain_genesis and chain_seal are at this revision.
    for incident_id, count, head, keyed_from in rows:
        if count == 0:  # an empty chain starts at the keyed genesis, as a new incident's does
            head = _keyed(key, f"genesis:{incident_id}")
        seal = _keyed(key, f"seal:{incident_id}:{count}:{head}:{keyed_from}")
        connection.execute(
            incidents.update()
            .where(incidents.c.id == incident_id)
            .values(timeline_head=head, timeline_seal=seal)
        )


def _keyed(key: bytes, message: str) -> str:
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def downgrade() -> None:
    # Entries written since stay keyed: an older Warroom's verify reports them as edited.
    # Plain DROP COLUMN (SQLite 3.35+), not a batch copy of the table: it keeps AUTOINCREMENT.
    op.drop_column("incidents", "timeline_keyed_from")
    op.drop_column("incidents", "timeline_seal")
