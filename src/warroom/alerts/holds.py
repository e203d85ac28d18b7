"""What holds an alert now, as reads see it: its maintenance window until the window releases its alerts, or
the open alert that inhibited it until that one resolves. Only an alert on no incident is held.

The alert keeps ``maintenance_window_id`` and ``inhibited_by_id`` afterwards (a window shows what fired
during it; an alert shows what muted it), so those columns alone say what held it once, not what holds it
now. Once its holder ends the alert is released: routed as if it had just fired, and unrouted like any other
if no rule takes it. ``service.held`` asks the same of one alert inside automation.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.orm import Session, aliased

from warroom.alerts.models import Alert, AlertStatus, MaintenanceWindow


def held_now() -> ColumnElement[bool]:
    """SQL: the alert (``Alert``, of the enclosing query) is held now by a window or an open inhibitor."""
    inhibitor = aliased(Alert)
    window_holds = (
        select(MaintenanceWindow.id)
        .where(MaintenanceWindow.id == Alert.maintenance_window_id, MaintenanceWindow.released_at.is_(None))
        .exists()
    )
    inhibitor_open = (
        select(inhibitor.id)
        .where(inhibitor.id == Alert.inhibited_by_id, inhibitor.status != AlertStatus.resolved)
        .exists()
    )
    return and_(
        Alert.incident_id.is_(None),
        or_(
            and_(Alert.maintenance_window_id.is_not(None), window_holds),
            and_(Alert.inhibited_by_id.is_not(None), inhibitor_open),
        ),
    )


def holders(session: Session, alerts: Sequence[Alert]) -> dict[int, str]:
    """What holds each of ``alerts`` now, by alert id: its window (``MW-n``) or its inhibitor (``ALR-n``).
    Alerts nothing holds are left out. Two lookups, however many alerts (a page of a list)."""
    nowhere = [alert for alert in alerts if alert.incident_id is None]
    window_ids = {alert.maintenance_window_id for alert in nowhere if alert.maintenance_window_id is not None}
    inhibitor_ids = {alert.inhibited_by_id for alert in nowhere if alert.inhibited_by_id is not None}
    holding: set[int] = set()
    if window_ids:
        holding = set(
            session.scalars(
                select(MaintenanceWindow.id).where(
                    MaintenanceWindow.id.in_(sorted(window_ids)), MaintenanceWindow.released_at.is_(None)
                )
            )
        )
    inhibiting: set[int] = set()
    if inhibitor_ids:
        inhibiting = set(
            session.scalars(
                select(Alert.id).where(
                    Alert.id.in_(sorted(inhibitor_ids)), Alert.status != AlertStatus.resolved
                )
            )
        )
    found: dict[int, str] = {}
    for alert in nowhere:
        if alert.maintenance_window_id in holding:
            found[alert.id] = f"MW-{alert.maintenance_window_id}"
        elif alert.inhibited_by_id in inhibiting:
            found[alert.id] = f"ALR-{alert.inhibited_by_id}"
    return found
