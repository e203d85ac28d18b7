"""What holds an alert now, as reads see it: its maintenance window until the window releases its alerts, or
the open alert that inhibited it until that one resolves. Only an alert on no incident is held.

The alert keeps ``maintenance_window_id`` and ``inhibited_by_id`` afterwards (a window shows what fired
during it; an alert shows what muted it), so those columns alone say what held it once, not what holds it
now. Once its holder ends the alert is released: routed as if it had just fired, and unrouted like any other
if no rule takes it. One that resolved while still held (before its window's ``released_at``, or before its
inhibitor's ``resolved_at``) was never released, so never routed: it is not unrouted either. ``unrouted``
(SQL) and ``hold_states`` (Python, for a page of alerts) are the one definition every read uses;
``service.held`` asks whether one alert is held now inside automation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.orm import Session, aliased

from warroom.alerts.models import Alert, AlertStatus, MaintenanceWindow


def held_now() -> ColumnElement[bool]:
    """SQL: the alert (``Alert``, of the enclosing query) is held now by a window or an open inhibitor."""
    return _held(resolved_while_held=False)


def never_released() -> ColumnElement[bool]:
    """SQL: the alert's holder never released it: it is held now, or it resolved while still held."""
    return _held(resolved_while_held=True)


def unrouted() -> ColumnElement[bool]:
    """SQL: no rule routed the alert, it is on no incident, and it is not held now nor resolved while held
    (an alert its holder never released was never routed; one released that no rule took is unrouted)."""
    return and_(Alert.incident_id.is_(None), Alert.rules.is_(None), ~never_released())


def _held(*, resolved_while_held: bool) -> ColumnElement[bool]:
    inhibitor = aliased(Alert)
    window_holds: ColumnElement[bool] = MaintenanceWindow.released_at.is_(None)
    inhibitor_holds: ColumnElement[bool] = inhibitor.status != AlertStatus.resolved
    if resolved_while_held:
        resolved = Alert.status == AlertStatus.resolved
        # NULL ``resolved_at`` compares to nothing: only an alert that did resolve before its release.
        window_holds = or_(window_holds, and_(resolved, Alert.resolved_at < MaintenanceWindow.released_at))
        inhibitor_holds = or_(inhibitor_holds, and_(resolved, Alert.resolved_at < inhibitor.resolved_at))
    window_held = (
        select(MaintenanceWindow.id)
        .where(MaintenanceWindow.id == Alert.maintenance_window_id, window_holds)
        .exists()
    )
    inhibitor_held = (
        select(inhibitor.id).where(inhibitor.id == Alert.inhibited_by_id, inhibitor_holds).exists()
    )
    return and_(
        Alert.incident_id.is_(None),
        or_(
            and_(Alert.maintenance_window_id.is_not(None), window_held),
            and_(Alert.inhibited_by_id.is_not(None), inhibitor_held),
        ),
    )


@dataclass(frozen=True)
class HoldStates:
    """Of a page of alerts: what holds each now (``held_by``: ``MW-n`` or ``ALR-n``, by alert id), and the
    alerts their holder never released (``never_released``: held now, or resolved while still held)."""

    held_by: dict[int, str] = field(default_factory=dict)
    never_released: set[int] = field(default_factory=set)

    def unrouted(self, alert: Alert) -> bool:
        """As ``unrouted()`` says in SQL."""
        return alert.incident_id is None and not alert.rules and alert.id not in self.never_released


def _before(resolved_at: datetime | None, release: datetime | None) -> bool:
    return resolved_at is not None and release is not None and resolved_at < release


def hold_states(session: Session, alerts: Sequence[Alert]) -> HoldStates:
    """What holds each of ``alerts`` now, and which their holder never released. Two lookups, however many
    alerts (a page of a list)."""
    nowhere = [alert for alert in alerts if alert.incident_id is None]
    window_ids = {alert.maintenance_window_id for alert in nowhere if alert.maintenance_window_id is not None}
    inhibitor_ids = {alert.inhibited_by_id for alert in nowhere if alert.inhibited_by_id is not None}
    # By window: when it released its alerts (None: it holds them still).
    released: dict[int, datetime | None] = {}
    if window_ids:
        released = {
            row.id: row.released_at
            for row in session.execute(
                select(MaintenanceWindow.id, MaintenanceWindow.released_at).where(
                    MaintenanceWindow.id.in_(sorted(window_ids))
                )
            )
        }
    # By inhibitor: when it resolved (None: it is open, and holds its alerts still).
    inhibitor_ends: dict[int, datetime | None] = {}
    if inhibitor_ids:
        inhibitor_ends = {
            row.id: None if row.status != AlertStatus.resolved else row.resolved_at
            for row in session.execute(
                select(Alert.id, Alert.status, Alert.resolved_at).where(Alert.id.in_(sorted(inhibitor_ids)))
            )
        }
    states = HoldStates()
    for alert in nowhere:
        resolved_at = alert.resolved_at if alert.status == AlertStatus.resolved else None
        window, inhibitor = alert.maintenance_window_id, alert.inhibited_by_id
        if window is not None and window in released and released[window] is None:
            states.held_by[alert.id] = f"MW-{window}"
        elif inhibitor is not None and inhibitor in inhibitor_ends and inhibitor_ends[inhibitor] is None:
            states.held_by[alert.id] = f"ALR-{inhibitor}"
        if (
            alert.id in states.held_by
            or (window is not None and _before(resolved_at, released.get(window)))
            or (inhibitor is not None and _before(resolved_at, inhibitor_ends.get(inhibitor)))
        ):
            states.never_released.add(alert.id)
    return states
