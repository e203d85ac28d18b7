"""Open plain JSON alerts sent without a dedup key get the key this release gives them, with their type
(``adapters.generic_identity``): keyed the old way, a repeat after the upgrade would open a second alert and
its resolve would close that one, leaving the first firing forever.
Resolved alerts keep their keys (history).

Revision ID: 0037
Revises: 0036
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import orjson
import sqlalchemy as sa
from alembic import op

revision = "0037"
down_revision = "0036"
branch_labels = None
depends_on = None

# A copy of adapters.label_hash and generic_identity as they are in this release, not an import: the app's
# identity may change again, and this migration must still turn the keys of 0036 into these (as 0036 does).
_MOVED = "|moved:"  # automation.moved_key, as in 0036
_MOVED_KEY = re.compile(r"(.*)\|moved:([0-9a-f]{64})", re.DOTALL)

_alerts = sa.table(
    "alerts",
    sa.column("id", sa.Integer),
    sa.column("source", sa.String),
    sa.column("scope", sa.String),
    sa.column("dedup_key", sa.String),
    sa.column("open_dedup_key", sa.String),
    sa.column("raw", sa.JSON),
    sa.column("group_key", sa.String),
)


def _label_hash(identity: dict[str, str]) -> str:
    return hashlib.sha256(orjson.dumps(identity, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _keys(raw: Any) -> tuple[str, str] | None:
    """The old key and the new of a plain JSON alert, from its first delivery as sent (the stored labels may
    be enriched); None when it named its key, names no type, or a label names it (the key stays)."""
    if not isinstance(raw, dict) or raw.get("dedup_key") is not None:
        return None
    summary, alert_type, service = raw.get("summary"), raw.get("type"), raw.get("service")
    labels = raw.get("labels") or {}
    if not isinstance(summary, str) or not isinstance(alert_type, str) or not alert_type.strip():
        return None
    if not isinstance(labels, dict) or not all(isinstance(value, str) for value in labels.values()):
        return None
    if "alertname" in labels:
        return None
    labels = dict(labels)
    # The intake trims the type and the service, and adds the service to the labels unless one names it.
    if isinstance(service, str) and service.strip() and "service" not in labels:
        labels["service"] = service.strip()
    old = labels or {"summary": summary}
    return _label_hash(old), _label_hash({**old, "alertname": alert_type.strip()})


def _moved(group_key: str | None, scope: str, old: str, new: str) -> str | None:
    """A group of its own a person gave the alert (0036) is named by its dedup key: the same group under the
    new key, so its later firings still find it. None when it has none (or one not made from ``old``)."""
    found = _MOVED_KEY.fullmatch(group_key or "")
    if found is None or _sha(f"{found[1]}\n{scope}\n{old}") != found[2]:
        return None
    return found[1] + _MOVED + _sha(f"{found[1]}\n{scope}\n{new}")


def _rekey(*, upgrade: bool) -> None:
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(_alerts.c.id, _alerts.c.scope, _alerts.c.open_dedup_key, _alerts.c.raw, _alerts.c.group_key)
        .where(_alerts.c.source == "generic", _alerts.c.open_dedup_key.is_not(None))
        .order_by(_alerts.c.id)
    ).all()
    for row in rows:
        keys = _keys(row.raw)
        if keys is None:
            continue
        old, new = keys if upgrade else keys[::-1]
        if row.open_dedup_key != old:
            continue  # not a key the intake made of this payload: left as it is
        taken = connection.execute(
            sa.select(_alerts.c.id).where(
                _alerts.c.scope == row.scope, _alerts.c.open_dedup_key == new, _alerts.c.id != row.id
            )
        ).first()
        if taken is not None:
            continue  # another open alert already has the key (one unique per scope): both stay as they are
        values = {"dedup_key": new, "open_dedup_key": new}
        moved = _moved(row.group_key, row.scope, old, new)
        if moved is not None:
            values["group_key"] = moved
        connection.execute(sa.update(_alerts).where(_alerts.c.id == row.id).values(**values))


def upgrade() -> None:
    _rekey(upgrade=True)


def downgrade() -> None:
    # The release before finds its open alerts by the keys it made.
    _rekey(upgrade=False)
