"""Two changes.

A sealed high-water mark of incident numbers (``incident_number_mark``, one row): the highest incident
number created, with an HMAC of it under the timeline chain's key, moved by every incident creation. So
``warroom audit verify`` finds the newest incident deleted even when the number sequence
(``sqlite_sequence``) is lowered with it. The mark made here is the highest existing incident's number,
sealed with the key as 0041 seals chains: ``warroom db upgrade`` (and ``serve``, ``worker``) pass it. Run
without the key (Alembic by hand), the mark is left unsealed and ``audit verify`` says so until the next
incident is created (which seals a new mark); or downgrade to 0041 and upgrade with ``warroom db upgrade``.

Active API tokens' names are unique in the database too (partial unique index ``uq_api_tokens_active_name``
on ``api_tokens(name) WHERE revoked_at IS NULL``), so two requests creating one name at once cannot both
succeed. Active tokens that already share a name are not revoked: every one after the first (by id) is
renamed by appending " (2)", " (3)", ... (a free name), and the migration logs each rename. A token's
secret does not change; what it performs is recorded under its new name from now on.

Revision ID: 0042
Revises: 0041
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable

import sqlalchemy as sa
from alembic import context, op

revision = "0042"
down_revision = "0041"
branch_labels = None
depends_on = None

log = logging.getLogger("warroom.migrate")

_ACTIVE_TOKEN = "revoked_at IS NULL"


def upgrade() -> None:
    connection = op.get_bind()
    _rename_duplicate_tokens(connection)
    op.create_index(
        "uq_api_tokens_active_name",
        "api_tokens",
        ["name"],
        unique=True,
        sqlite_where=sa.text(_ACTIVE_TOKEN),
        postgresql_where=sa.text(_ACTIVE_TOKEN),
    )
    mark = op.create_table(
        "incident_number_mark",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("highest", sa.Integer(), nullable=False),
        sa.Column("seal", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident_number_mark")),
    )
    highest = connection.execute(sa.text("SELECT max(id) FROM incidents")).scalar()
    if highest is None:  # no incident yet: the first one creates the mark
        return
    key_of: Callable[[], bytes] | None = context.config.attributes.get("timeline_key")
    seal = ""
    if key_of is None:
        log.warning(
            "0042: the highest incident number (INC-%d) is left unsealed: the migration ran without the "
            "server's secret key (use warroom db upgrade); warroom audit verify says so",
            highest,
        )
    else:
        # As incidents.service's number_mark_seal is at this revision.
        seal = hmac.new(key_of(), f"incident-mark:{highest}".encode(), hashlib.sha256).hexdigest()
    connection.execute(sa.insert(mark).values(id=1, highest=highest, seal=seal))


def _rename_duplicate_tokens(connection: sa.Connection) -> None:
    tokens = sa.table(
        "api_tokens", sa.column("id", sa.Integer), sa.column("name", sa.String), sa.column("revoked_at")
    )
    rows = connection.execute(
        sa.select(tokens.c.id, tokens.c.name).where(tokens.c.revoked_at.is_(None)).order_by(tokens.c.id)
    ).all()
    taken = {name for _, name in rows}
    seen: set[str] = set()
    for token_id, name in rows:
        if name not in seen:
            seen.add(name)
            continue
        number = 2
        while _numbered(name, number) in taken:
            number += 1
        new = _numbered(name, number)
        taken.add(new)
        connection.execute(sa.update(tokens).where(tokens.c.id == token_id).values(name=new))
        log.warning(
            "0042: active token %d shared its name %r with an older one: renamed %r", token_id, name, new
        )


def _numbered(name: str, number: int) -> str:
    suffix = f" ({number})"
    return name[: 200 - len(suffix)] + suffix  # the column holds 200


def downgrade() -> None:
    op.drop_table("incident_number_mark")
    op.drop_index("uq_api_tokens_active_name", table_name="api_tokens")
