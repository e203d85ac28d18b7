"""Python handlers for what rules cannot say, registered by alert type.

    from warroom.alerts.handlers import alert_handler

    @alert_handler("DiskFull")
    def grow_volume(ctx: HandlerContext) -> None:
        ctx.log("Asked storage to grow the volume")

Packages register modules through the ``warroom.handlers`` entry-point group; loading the module runs its
decorators. An entry point that names a function (not a module) is registered under the entry point's name
as the alert type. ``"*"`` handles every alert.
"""

from __future__ import annotations

import logging
import traceback
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from types import ModuleType
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from warroom.db import utcnow

if TYPE_CHECKING:
    from warroom.alerts.models import Alert
    from warroom.incidents.models import Incident
    from warroom.orgconfig import OrgConfig

log = logging.getLogger("warroom.alerts.handlers")

ENTRY_POINT_GROUP = "warroom.handlers"
PERFORMER = "automation"


@dataclass
class HandlerContext:
    session: Session
    org: OrgConfig
    alert: Alert
    incident: Incident | None
    event: str  # created, acknowledged or resolved

    def log(self, action: str, *, data: dict[str, Any] | None = None) -> None:
        """Record what the handler did on the incident's timeline (when the alert has one)."""
        from warroom.incidents import service as incident_service

        if self.incident is not None:
            incident_service.append_timeline(
                self.session, self.incident, performer=PERFORMER, kind="automation", action=action, data=data
            )


Handler = Callable[[HandlerContext], None]
_handlers: dict[str, list[Handler]] = defaultdict(list)
_entry_points_loaded = False


def alert_handler(*alert_types: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        for alert_type in alert_types or ("*",):
            if handler not in _handlers[alert_type]:
                _handlers[alert_type].append(handler)
        return handler

    return register


def unregister(handler: Handler) -> None:
    for registered in _handlers.values():
        if handler in registered:
            registered.remove(handler)


def load_entry_points(force: bool = False) -> list[str]:
    """Import every ``warroom.handlers`` entry point once; returns the names loaded."""
    global _entry_points_loaded
    if _entry_points_loaded and not force:
        return []
    _entry_points_loaded = True
    loaded = []
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            target = entry_point.load()
        except Exception:
            log.exception("cannot load alert handler entry point %s", entry_point.name)
            continue
        if callable(target) and not isinstance(target, ModuleType):
            alert_handler(entry_point.name)(target)
        loaded.append(entry_point.name)
    return loaded


def handlers_for(alert_type: str) -> list[Handler]:
    load_entry_points()
    return [*_handlers.get(alert_type, []), *_handlers.get("*", [])]


def run_handlers(
    session: Session, org: OrgConfig, alert: Alert, incident: Incident | None, event: str
) -> None:
    """A failing handler is rolled back to its savepoint and recorded; the alert is kept either way."""
    handlers = handlers_for(alert.alert_type)
    if not handlers:
        return
    from warroom.incidents import service as incident_service

    for handler in handlers:
        name = f"{handler.__module__}.{getattr(handler, '__qualname__', repr(handler))}"
        try:
            with session.begin_nested():
                handler(HandlerContext(session, org, alert, incident, event))
        except Exception as exc:
            log.warning("alert handler %s failed on %s", name, alert.ref, exc_info=True)
            error = {
                "handler": name,
                "event": event,
                "error": f"{type(exc).__name__}: {exc}",
                "at": utcnow().isoformat(),
                "trace": traceback.format_exc(limit=5)[-2000:],
            }
            alert.handler_errors = [*alert.handler_errors, error]
            if incident is not None:
                incident_service.append_timeline(
                    session,
                    incident,
                    performer=PERFORMER,
                    kind="automation",
                    action=f"Handler {name} failed on {alert.ref}: {type(exc).__name__}: {exc}",
                    data={"handler": name, "alert": alert.id, "error": error["error"]},
                )
