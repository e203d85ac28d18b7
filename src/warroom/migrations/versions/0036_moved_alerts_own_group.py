"""Alerts a person moved out of their incident before 0036 (``alerts promote --move``, ``alerts attach``) get
the group of their own that a move now gives (``automation.moved_key``), with their later firings on the
incident they were moved to: with the group's key, they steered the group's next alerts to that incident.

Revision ID: 0036
Revises: 0035
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0036"
down_revision = "0035"
branch_labels = None
depends_on = None

# As automation.moved_key makes them in this release (a migration keeps its own copy: code changes later).
_MOVED = "|moved:"
_MOVED_KEY = re.compile(r".*\|moved:[0-9a-f]{64}", re.DOTALL)

_timeline = sa.table(
    "timeline_entries",
    sa.column("id", sa.Integer),
    sa.column("kind", sa.String),
    sa.column("action", sa.Text),
    sa.column("data", sa.JSON),
)
_alerts = sa.table(
    "alerts",
    sa.column("id", sa.Integer),
    sa.column("scope", sa.String),
    sa.column("dedup_key", sa.String),
    sa.column("group_key", sa.String),
    sa.column("incident_id", sa.Integer),
)


def _moved_key(key: str, scope: str, dedup_key: str) -> str:
    suffix = _MOVED + hashlib.sha256(f"{key}\n{scope}\n{dedup_key}".encode()).hexdigest()
    return key[: 500 - len(suffix)] + suffix


def upgrade() -> None:
    connection = op.get_bind()
    # The incident an alert left says where it went ("Alert ALR-7 moved to INC-4: …", data alert and to).
    moves = connection.execute(
        sa.select(_timeline.c.data)
        .where(_timeline.c.kind == "alert", _timeline.c.action.like("Alert ALR-% moved to INC-%"))
        .order_by(_timeline.c.id)
    ).scalars()
    for data in moves:
        moved: dict[str, Any] = data if isinstance(data, dict) else {}
        alert_id, target = moved.get("alert"), moved.get("to")
        if not isinstance(alert_id, int) or not isinstance(target, int):
            continue
        alert = connection.execute(
            sa.select(_alerts.c.scope, _alerts.c.dedup_key, _alerts.c.group_key).where(
                _alerts.c.id == alert_id
            )
        ).first()
        if alert is None or alert.group_key is None or _MOVED_KEY.fullmatch(alert.group_key):
            continue  # gone, never grouped, or moved again (a second move keeps the first's group)
        connection.execute(
            sa.update(_alerts)
            .where(
                _alerts.c.scope == alert.scope,
                _alerts.c.dedup_key == alert.dedup_key,
                _alerts.c.group_key == alert.group_key,
                sa.or_(_alerts.c.id == alert_id, _alerts.c.incident_id == target),
            )
            .values(group_key=_moved_key(alert.group_key, alert.scope, alert.dedup_key))
        )


def downgrade() -> None:
    pass  # the moved keys are kept: an older release reads them as any group key
