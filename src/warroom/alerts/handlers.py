"""Python handlers for what rules cannot say, registered by alert type.

    from warroom.alerts.handlers import alert_handler

    @alert_handler("DiskFull")
    def grow_volume(ctx: HandlerContext) -> None:
        ctx.log("Asked storage to grow the volume")

Packages register modules through the ``warroom.handlers`` entry-point group; loading the module runs its
decorators. An entry point that names a function (not a module) is registered under the entry point's name
as the alert type. ``"*"`` handles every alert.

Handlers never run in the transaction that stores an alert: each event (created, acknowledged, resolved)
enqueues one durable job per handler (``schedule_handlers``), and the worker runs it after the commit, in
its network lane, where slow work shares slots the way slow peers do. A job is one handler's run in its own
transaction: a handler that raises, or leaves invalid values on the alert or incident, is rolled back whole
and its failure is recorded (on the alert and on the incident's timeline); the alert is kept either way.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import traceback
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from importlib.metadata import entry_points
from types import ModuleType
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import JSON, Boolean, Enum, Integer, String, select
from sqlalchemy import inspect as inspect_orm
from sqlalchemy.orm import Session, selectinload

from warroom.db import utcnow
from warroom.jobs.models import Job, JobStatus
from warroom.jobs.service import RetryLater, job_handler

if TYPE_CHECKING:
    from warroom.alerts.models import Alert
    from warroom.context import AppContext
    from warroom.incidents.models import Incident
    from warroom.orgconfig import OrgConfig

log = logging.getLogger("warroom.alerts.handlers")

ENTRY_POINT_GROUP = "warroom.handlers"
PERFORMER = "automation"
HANDLER_KIND = "alerts.run_handler"
# Every handler job names this peer: however many handlers hang, they hold at most the worker's per-peer
# share of its network slots, and a page bound elsewhere still gets one.
HANDLER_PEER = "alert-handlers"
# What is kept of a handler's (or a rule template's) error text: an exception message can be megabytes.
MAX_ERROR_TEXT = 1000
EVENTS = ("created", "acknowledged", "resolved")


def failure_text(exc: BaseException) -> str:
    """``Type: message``, cut at ``MAX_ERROR_TEXT``. An exception whose ``str()`` itself raises still gets a
    line: recording a failure must not fail."""
    try:
        message = str(exc)
    except Exception:
        message = "(its message could not be formatted)"
    return f"{type(exc).__name__}: {message}"[:MAX_ERROR_TEXT]


def _trace(exc: BaseException) -> str:
    try:
        return "".join(traceback.format_exception(exc, limit=5))[-2000:]
    except Exception:
        return ""


@dataclass
class HandlerContext:
    session: Session
    org: OrgConfig
    alert: Alert
    incident: Incident | None
    event: str  # created, acknowledged or resolved
    # Entries of ``log``, written when the handler returns: a handler that logs and then waits on the network
    # holds no write lock meanwhile.
    entries: list[tuple[str, dict[str, Any] | None]] = field(default_factory=list, repr=False)

    def log(self, action: str, *, data: dict[str, Any] | None = None) -> None:
        """Record what the handler did on the incident's timeline (when the alert has one)."""
        self.entries.append((action, data))


Handler = Callable[[HandlerContext], None]
_handlers: dict[str, list[Handler]] = defaultdict(list)
_entry_points_loaded = False
# Entry points that failed to load (name, error), for ``warroom config check`` and startup to report.
_entry_point_failures: list[tuple[str, str]] = []


def handler_name(handler: Handler) -> str:
    return f"{handler.__module__}.{getattr(handler, '__qualname__', repr(handler))}"


def _is_async(handler: object) -> bool:
    call = getattr(handler, "__call__", None)  # noqa: B004 - an object whose __call__ is async
    return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(call)


def alert_handler(*alert_types: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        # The worker calls handlers from its threads, with no event loop: an async one would never run.
        if _is_async(handler) or inspect.isasyncgenfunction(handler):
            raise TypeError(
                f"alert handler {handler_name(handler)} is async; alert handlers must be plain functions "
                "(they run in the worker, off the intake path, so blocking calls are fine)"
            )
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
    """Import every ``warroom.handlers`` entry point once; returns the names loaded. Those that fail are
    logged and kept for ``entry_point_failures``."""
    global _entry_points_loaded
    if _entry_points_loaded and not force:
        return []
    _entry_points_loaded = True
    _entry_point_failures.clear()
    loaded = []
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            target = entry_point.load()
            if callable(target) and not isinstance(target, ModuleType):
                alert_handler(entry_point.name)(target)
        except Exception as exc:
            log.error(
                "alert handler entry point %s (%s) cannot be loaded: %s",
                entry_point.name,
                entry_point.value,
                failure_text(exc),
                exc_info=True,
            )
            _entry_point_failures.append((f"{entry_point.name} = {entry_point.value}", failure_text(exc)))
            continue
        loaded.append(entry_point.name)
    return loaded


def entry_point_failures() -> list[str]:
    """One line per ``warroom.handlers`` entry point that cannot be loaded (loading them if not yet done)."""
    load_entry_points()
    return [
        f"alert handler entry point {name} cannot be loaded: {error}" for name, error in _entry_point_failures
    ]


def handlers_for(alert_type: str) -> list[Handler]:
    load_entry_points()
    return [*_handlers.get(alert_type, []), *_handlers.get("*", [])]


# --- scheduling (in the transaction that records the event) ------------------------------------------------


def _key_prefix(alert_id: int) -> str:
    return f"alert-handler:{alert_id}:"


def schedule_handlers(session: Session, alert: Alert, event: str) -> int:
    """Enqueue one job per handler of the alert's type for ``event``; how many. Nothing runs here: intake
    never waits on handler code. The key names the event (an acknowledgement or resolution by its time), so
    a replayed delivery schedules nothing new, and an alert acknowledged again later runs them again."""
    from warroom.jobs import service as jobs_service

    handlers = handlers_for(alert.alert_type)
    if not handlers:
        return 0
    session.flush()  # the alert's id
    moment = {"acknowledged": alert.acknowledged_at, "resolved": alert.resolved_at}.get(event)
    for handler in handlers:
        name = handler_name(handler)
        which = hashlib.sha256(f"{event}|{moment.isoformat() if moment else ''}|{name}".encode()).hexdigest()
        jobs_service.enqueue(
            session,
            kind=HANDLER_KIND,
            payload={"alert_id": alert.id, "event": event, "handler": name},
            idempotency_key=f"{_key_prefix(alert.id)}{which[:40]}",
            incident_id=alert.incident_id,
            peer=HANDLER_PEER,
            # A handler's failure is recorded, not retried: running it again would repeat what it did.
            max_attempts=3,
        )
    return len(handlers)


# --- running (the worker) -----------------------------------------------------------------------------------


class InvalidChange(Exception):
    """A handler left a value on the alert or incident that the rest of Warroom cannot read."""


def _registered(name: str, alert_type: str) -> Handler | None:
    return next((handler for handler in handlers_for(alert_type) if handler_name(handler) == name), None)


@job_handler(HANDLER_KIND, deferred_transaction=True)
def run_handler_job(context: AppContext, session: Session, job: Job) -> dict[str, Any]:
    """One handler on one alert event. Deferred transaction: the write lock is taken at the handler's first
    statement (or, for one that only reads ``ctx.alert`` and calls ``ctx.log``, after it returns), so a
    handler waiting on an external API holds up no intake."""
    from warroom.alerts.models import Alert
    from warroom.incidents.models import Incident

    alert_id = int(job.payload["alert_id"])
    event = str(job.payload["event"])
    name = str(job.payload["handler"])
    with context.db.read() as reading:
        # One alert's handlers run in the order their events happened (created before resolved).
        earlier = reading.scalar(
            select(Job.id)
            .where(
                Job.kind == HANDLER_KIND,
                Job.id < job.id,
                Job.status.in_([JobStatus.pending, JobStatus.running]),
                Job.idempotency_key.startswith(_key_prefix(alert_id), autoescape=True),
            )
            .limit(1)
        )
        if earlier is not None:
            raise RetryLater(1, f"waits for job {earlier}, an earlier handler of the alert")
        # Loaded here, outside the write transaction; handed to the handler's session below without SQL.
        alert = reading.get(Alert, alert_id, options=[selectinload(Alert.notes)])
        incident = (
            reading.get(
                Incident,
                alert.incident_id,
                options=[selectinload(Incident.services), selectinload(Incident.responders)],
            )
            if alert is not None and alert.incident_id is not None
            else None
        )
    if alert is None:
        return {"handler": name, "skipped": "the alert is gone"}
    handler = _registered(name, alert.alert_type)
    if handler is None:
        error = (
            f"{name} is not registered in this worker (is its module imported or its entry point installed?)"
        )
        _record_failure(session, alert_id, name, event, error, "")
        return {"handler": name, "failed": error}
    session.add(alert)
    if incident is not None:
        session.add(incident)
    ctx = HandlerContext(session, context.org, alert, incident, event)
    try:
        returned: Any = handler(ctx)
        if inspect.isawaitable(returned):
            if inspect.iscoroutine(returned):
                returned.close()  # no "never awaited" warning: the failure below says it
            raise TypeError("the handler returned an awaitable; alert handlers must be plain functions")
        _write_log(ctx)
        problems = invalid_changes(context.org, alert, incident)
        if problems:
            raise InvalidChange("; ".join(problems))
        session.flush()
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # SystemExit too: a handler must not stop the worker or lose the record
        error = failure_text(exc)
        log.warning("alert handler %s failed on ALR-%s (%s): %s", name, alert_id, event, error)
        trace = _trace(exc)
        session.rollback()
        session.expunge_all()  # the handler's changes to the alert and incident, and what it added
        _record_failure(session, alert_id, name, event, error, trace)
        return {"handler": name, "failed": error}
    return {"handler": name, "ran": event}


def _write_log(ctx: HandlerContext) -> None:
    from warroom.incidents import service as incident_service

    if ctx.incident is None or not ctx.entries:
        return
    # The chain's head as it is now, under the incident's lock (it was read before the transaction began).
    ctx.session.refresh(ctx.incident, ["timeline_count", "timeline_head"], with_for_update=True)
    for action, data in ctx.entries:
        incident_service.append_timeline(
            ctx.session, ctx.incident, performer=PERFORMER, kind="automation", action=action, data=data
        )


def _record_failure(session: Session, alert_id: int, name: str, event: str, error: str, trace: str) -> None:
    from warroom.alerts.models import Alert
    from warroom.incidents import service as incident_service
    from warroom.incidents.models import Incident

    alert = session.get(Alert, alert_id, with_for_update=True)
    if alert is None:
        return
    failure = {"handler": name, "event": event, "error": error, "at": utcnow().isoformat(), "trace": trace}
    alert.handler_errors = [*(alert.handler_errors or []), failure]
    incident = (
        session.get(Incident, alert.incident_id, with_for_update=True)
        if alert.incident_id is not None
        else None
    )
    if incident is not None:
        incident_service.append_timeline(
            session,
            incident,
            performer=PERFORMER,
            kind="automation",
            action=f"Handler {name} failed on {alert.ref}: {error}",
            data={"handler": name, "alert": alert.id, "error": error},
        )


# --- what a handler may leave on the alert and incident -----------------------------------------------------


def _column_problem(column: Any, value: Any) -> str | None:
    """What the column's own type says is wrong with ``value`` (None: nothing)."""
    if value is None:
        return None if column.nullable else "must not be empty"
    kind = column.type
    if isinstance(kind, Enum):
        if kind.enum_class is not None and isinstance(value, kind.enum_class):
            return None
        return None if value in kind.enums else f"must be one of {', '.join(kind.enums)}"
    if isinstance(kind, String):  # Text too
        if not isinstance(value, str):
            return "must be text"
        if kind.length is not None and len(value) > kind.length:
            return f"must be at most {kind.length} characters"
        return None
    if isinstance(kind, Boolean):
        return None if isinstance(value, bool) else "must be true or false"
    if isinstance(kind, Integer):
        return None if isinstance(value, int) and not isinstance(value, bool) else "must be a whole number"
    if isinstance(kind, JSON):
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            return "must be JSON"
        return None
    if _python_type(kind) is datetime and (not isinstance(value, datetime) or value.tzinfo is None):
        return "must be a timezone-aware datetime"
    return None


def _python_type(kind: Any) -> type | None:
    try:
        python_type: type = kind.python_type
    except NotImplementedError:  # types that do not say
        return None
    return python_type


def _changed(instance: Any) -> dict[str, Any]:
    state = inspect_orm(instance)
    return {
        attr.key: getattr(instance, attr.key)
        for attr in state.mapper.column_attrs
        if state.attrs[attr.key].history.has_changes()
    }


def _schema_problems(schema: Any, values: dict[str, Any]) -> list[str]:
    """Problems of ``values`` under the named fields of a Pydantic model (the API's own limits)."""
    problems = []
    for key, value in values.items():
        info = schema.model_fields.get(key)
        if info is None:
            continue
        annotation: Any = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
        try:
            TypeAdapter(annotation).validate_python(value, strict=False)
        except ValidationError as exc:
            problems.append(f"{key} {value!r:.80}: {exc.errors()[0]['msg']}")
    return problems


def invalid_changes(org: OrgConfig, alert: Alert, incident: Incident | None) -> list[str]:
    """What a handler changed on the alert or incident that is not a value Warroom allows there: the columns'
    types (enums, lengths), the alert intake's limits (severity, summary) and the incident API's (title,
    status, the org's severities). Empty when all is well."""
    from warroom.alerts.config import ALERT_SEVERITIES
    from warroom.alerts.schemas import GenericAlert
    from warroom.incidents.schemas import IncidentUpdate

    problems: list[str] = []
    targets: list[tuple[str, Any, Any]] = [(alert.ref, alert, GenericAlert)]
    if incident is not None:
        targets.append((incident.ref, incident, IncidentUpdate))
    for ref, instance, schema in targets:
        changed = _changed(instance)
        if not changed:
            continue
        columns = inspect_orm(type(instance)).columns
        found = [
            f"{key} {value!r:.80}: {problem}"
            for key, value in changed.items()
            if (problem := _column_problem(columns[key], value)) is not None
        ]
        # The status is checked by its column's enum above; the schema's is the intake's narrower wording.
        found += _schema_problems(
            schema, {k: v for k, v in changed.items() if k not in ("status", "severity")}
        )
        if instance is alert and "severity" in changed and changed["severity"] not in ALERT_SEVERITIES:
            found.append(
                f"severity {changed['severity']!r:.80}: must be one of {', '.join(ALERT_SEVERITIES)}"
            )
        if instance is incident and "severity" in changed and org.severity(str(changed["severity"])) is None:
            found.append(
                f"severity {changed['severity']!r:.80}: must be one of {', '.join(org.severity_ids)}"
            )
        problems += [f"{ref} {problem}" for problem in found]
    return problems
