"""Python handlers for what rules cannot say, registered by alert type.

    from warroom.alerts.handlers import alert_handler

    @alert_handler("DiskFull")
    def grow_volume(ctx: HandlerContext) -> None:
        ctx.log("Asked storage to grow the volume")

Packages register modules through the ``warroom.handlers`` entry-point group; loading the module runs its
decorators. An entry point that names a function (not a module) is registered under the entry point's name
as the alert type. ``"*"`` handles every alert.

Handlers never run in the transaction that stores an alert: each event (created, acknowledged, resolved) of an
alert whose type has a handler in any process enqueues one durable job (``schedule_handlers``); the worker
expands it into one job per handler it has (``expand_event_job``) and runs each after the commit, in its
network lane, where slow work shares slots the way slow peers do. A handler job is one handler's run in its
own transaction: a handler that raises, commits, or leaves invalid values on the alert or incident is rolled
back whole and its failure is recorded (on the alert and on the incident's timeline); the alert is kept
either way. A handler runs in a thread of its own, for at most its time limit (``DEFAULT_TIME_LIMIT``, or
``alert_handler(time_limit=...)``): past it, its job stops waiting, ends its transaction and records it as
failed.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import math
import sqlite3
import sys
import threading
import time
import traceback
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from importlib.metadata import entry_points
from types import ModuleType
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import JSON, Boolean, Connection, Engine, Enum, Integer, String, event, select, text
from sqlalchemy import inspect as inspect_orm
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import Session, object_session, selectinload
from sqlalchemy.pool import PoolProxiedConnection

from warroom.db import utcnow
from warroom.fields import validation_message
from warroom.jobs.models import Job, JobStatus
from warroom.jobs.service import PermanentFailure, RetryLater, job_handler
from warroom.jsonbody import storable_text
from warroom.templating import interrupt_thread

if TYPE_CHECKING:
    from warroom.alerts.models import Alert
    from warroom.context import AppContext
    from warroom.incidents.models import Incident
    from warroom.orgconfig import OrgConfig

log = logging.getLogger("warroom.alerts.handlers")

ENTRY_POINT_GROUP = "warroom.handlers"
PERFORMER = "automation"
# One job per alert event, expanded by the worker into one HANDLER_KIND job per handler it has.
EVENT_KIND = "alerts.handler_event"
HANDLER_KIND = "alerts.run_handler"
# A row (a done job) per set of alert types a worker has handlers for, written when it starts: intake in a
# process without the handler packages still enqueues events for those types.
ANNOUNCE_KIND = "alerts.handlers_installed"
# How long a process trusts what it read of the announcements (intake asks at most this often).
ANNOUNCEMENTS_TTL = 30.0
# Every handler job names this peer: however many handlers hang, they hold at most the worker's per-peer
# share of its network slots, and a page bound elsewhere still gets one.
HANDLER_PEER = "alert-handlers"
# What is kept of a handler's (or a rule template's) error text: an exception message can be megabytes.
MAX_ERROR_TEXT = 1000
# Seconds a handler may run (with the flush of what it changed) when ``alert_handler`` gives it no
# ``time_limit``: a handler stuck in a loop or on a peer that never answers would otherwise hold its job's
# slot, the alert's later handlers and whatever its transaction locked (on SQLite, every write) for ever.
DEFAULT_TIME_LIMIT = 10.0
# Handlers of this process still running past their limit (blocked in a call Python cannot interrupt): with
# this many, handler jobs wait for one to end rather than start more threads that may never end.
MAX_OVERDUE = 16
EVENTS = ("created", "acknowledged", "resolved")
# What a handler may set on the alert and the incident itself; the rest (status, lifecycle times, who
# acknowledged, links to other rows, the timeline's chain) changes through the services, which keep the
# timeline, escalation and metrics in step (``incidents.service.update_incident`` with ``ctx.session``).
ALERT_SETTABLE = frozenset({"summary", "severity", "labels", "annotations", "links"})
INCIDENT_SETTABLE = frozenset({"title", "summary", "severity"})


def failure_text(exc: BaseException) -> str:
    """``Type: message``, cut at ``MAX_ERROR_TEXT``, in text both databases store. A database error is its
    driver's error and that message's first line (not the SQL and its parameters). An exception whose
    ``str()`` itself raises still gets a line: recording a failure must not fail."""
    shown: BaseException = exc
    if isinstance(exc, StatementError) and isinstance(exc.orig, BaseException):
        shown = exc.orig
    try:
        message = str(shown)
        if shown is not exc:
            message = message.strip().split("\n", 1)[0]
    except Exception:
        message = "(its message could not be formatted)"
    return storable_text(f"{type(shown).__name__}: {message}"[:MAX_ERROR_TEXT])


def _trace(exc: BaseException) -> str:
    try:
        return storable_text("".join(traceback.format_exception(exc, limit=5))[-2000:])
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
        self.entries.append((storable_text(str(action)), data))


Handler = Callable[[HandlerContext], None]
_handlers: dict[str, list[Handler]] = defaultdict(list)
_time_limits: dict[str, float] = {}  # by ``handler_name``: those given one
_entry_points_loaded = False
# Entry points that failed to load (name, error), for ``warroom config check`` and startup to report.
_entry_point_failures: list[tuple[str, str]] = []


def handler_name(handler: Handler) -> str:
    """The name a job finds its handler by in another process: a callable object's class, never its
    ``repr`` (an address, different in every process)."""
    named: Any = handler if hasattr(handler, "__qualname__") else type(handler)
    return f"{named.__module__}.{named.__qualname__}"


def _is_async(handler: object) -> bool:
    call = getattr(handler, "__call__", None)  # noqa: B004 - an object whose __call__ is async
    return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(call)


def alert_handler(*alert_types: str, time_limit: float | None = None) -> Callable[[Handler], Handler]:
    """Register a handler for these alert types (none: every type). ``time_limit``: the seconds it may run,
    ``DEFAULT_TIME_LIMIT`` if not given."""
    if time_limit is not None and (
        isinstance(time_limit, bool)
        or not isinstance(time_limit, int | float)
        or not math.isfinite(time_limit)
        or time_limit <= 0
    ):
        raise ValueError(f"an alert handler's time_limit is a positive number of seconds, not {time_limit!r}")

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
        if time_limit is not None:
            _time_limits[handler_name(handler)] = float(time_limit)
        return handler

    return register


def time_limit_of(handler: Handler) -> float:
    return _time_limits.get(handler_name(handler), DEFAULT_TIME_LIMIT)


def unregister(handler: Handler) -> None:
    for registered in _handlers.values():
        if handler in registered:
            registered.remove(handler)
    _time_limits.pop(handler_name(handler), None)


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
            # ``serve``, ``worker`` and ``config check`` print the one line of ``entry_point_failures``; the
            # traceback is for whoever debugs the package.
            log.debug(
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


def local_types() -> set[str]:
    """The alert types this process has handlers for (``"*"``: every type)."""
    load_entry_points()
    return {alert_type for alert_type, registered in _handlers.items() if registered}


# --- which types have handlers anywhere (workers announce theirs) ------------------------------------------

_announced: tuple[float, frozenset[str]] | None = None
_announced_lock = threading.Lock()


def announce(session: Session) -> list[str]:
    """Record the alert types this process has handlers for, so that every process's intake enqueues their
    events (``warroom worker`` and a ``serve`` that runs the worker call it when they start). The types;
    nothing is written when there are none."""
    from warroom.jobs import service as jobs_service

    types = sorted(local_types())
    if not types:
        return []
    digest = hashlib.sha256("\n".join(types).encode()).hexdigest()[:40]
    row = jobs_service.enqueue(
        session, kind=ANNOUNCE_KIND, payload={"types": types}, idempotency_key=f"{ANNOUNCE_KIND}:{digest}"
    )
    # Done at once: a record, never claimed (and not a recurring run, so retention keeps it).
    row.status = JobStatus.done
    row.finished_at = utcnow()
    forget_announcements()
    return types


def announce_logged(context: AppContext) -> None:
    """``announce`` at startup; a failure is a warning (this process's intake still knows its own)."""
    try:
        with context.db.write() as session:
            types = announce(session)
    except Exception as exc:
        log.warning("could not announce this process's alert handlers: %s", failure_text(exc))
        return
    if types:
        log.info("alert handlers here for: %s", ", ".join(types))


def forget_announcements() -> None:
    global _announced
    with _announced_lock:
        _announced = None


def _announced_types(session: Session) -> frozenset[str]:
    """The types any process announced, read at most every ``ANNOUNCEMENTS_TTL`` seconds (an indexed read of
    a few rows, not one per alert)."""
    global _announced
    now = time.monotonic()
    cached = _announced
    if cached is not None and cached[0] > now:
        return cached[1]
    payloads = session.scalars(select(Job.payload).where(Job.kind == ANNOUNCE_KIND))
    types = frozenset(str(name) for payload in payloads for name in (payload or {}).get("types", []))
    with _announced_lock:
        _announced = (now + ANNOUNCEMENTS_TTL, types)
    return types


def any_installed(session: Session) -> bool:
    """Whether any process has a handler for any alert type (intake skips the automation pass otherwise)."""
    return bool(local_types() or _announced_types(session))


def _may_handle(session: Session, alert_type: str) -> bool:
    local = local_types()
    if alert_type in local or "*" in local:
        return True
    announced = _announced_types(session)
    return alert_type in announced or "*" in announced


# --- scheduling (in the transaction that records the event) ------------------------------------------------


def _key_prefix(alert_id: int) -> str:
    return f"alert-handler:{alert_id}:"


def _event_digest(event: str, moment: str) -> str:
    return hashlib.sha256(f"{event}|{moment}".encode()).hexdigest()[:40]


def schedule_handlers(session: Session, alert: Alert, event: str) -> bool:
    """Enqueue the event's job when some process has a handler for the alert's type (the worker expands it
    into its handlers); whether it did. Nothing runs here: intake never waits on handler code. The key names
    the event (an acknowledgement or resolution by its time), so a replayed delivery schedules nothing new,
    and an alert acknowledged again later runs them again.

    One rule orders an alert's events: ``created`` comes first, once. An acknowledgement or resolution of an
    alert whose ``created`` was not scheduled (a rule's delay or a hold kept it back) schedules it first, with
    whatever incident the alert has then; it is not scheduled again when the incident opens."""
    from warroom.jobs import service as jobs_service

    if not _may_handle(session, alert.alert_type):
        return False
    session.flush()  # the alert's id
    for which in ("created", event) if event != "created" else ("created",):
        at = {"acknowledged": alert.acknowledged_at, "resolved": alert.resolved_at}.get(which)
        moment = at.isoformat() if at else ""
        jobs_service.enqueue(
            session,
            kind=EVENT_KIND,
            payload={"alert_id": alert.id, "event": which, "moment": moment},
            idempotency_key=f"{_key_prefix(alert.id)}{_event_digest(which, moment)}",
            incident_id=alert.incident_id,
        )
    return True


def schedule_handlers_many(session: Session, alerts: Sequence[Alert], event: str) -> int:
    """``schedule_handlers`` for many alerts at once (the thousands of an incident that resolves): each step's
    jobs go in by one statement, the database skipping a key already taken (the ``created`` scheduled when
    they came in, a replay), instead of a lookup and a savepoint per job, which held the write lock for
    seconds. Every ``created`` goes in before any other event, so each alert's jobs keep their order (ids).
    How many of the alerts have handlers."""
    wanted = [alert for alert in alerts if _may_handle(session, alert.alert_type)]
    if not wanted:
        return 0
    session.flush()  # their ids, and the moments of the event
    dialect = session.get_bind().dialect.name
    insert: Any
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    now = utcnow()
    for which in ("created", event) if event != "created" else ("created",):
        rows = []
        for alert in wanted:
            at = {"acknowledged": alert.acknowledged_at, "resolved": alert.resolved_at}.get(which)
            moment = at.isoformat() if at else ""
            rows.append(
                {
                    "kind": EVENT_KIND,
                    "payload": {"alert_id": alert.id, "event": which, "moment": moment},
                    "run_at": now,
                    "status": JobStatus.pending,
                    "attempts": 0,
                    "max_attempts": 8,
                    "idempotency_key": f"{_key_prefix(alert.id)}{_event_digest(which, moment)}",
                    "incident_id": alert.incident_id,
                    "created_at": now,
                }
            )
        statement = insert(Job.__table__).on_conflict_do_nothing(index_elements=["idempotency_key"])
        session.execute(statement, rows)
    return len(wanted)


def _earlier_job(session: Session, alert_id: int, job_id: int) -> int | None:
    """A job of the alert's handlers (an event's or a handler's) enqueued before ``job_id`` and not finished:
    one alert's handlers run in the order their events happened."""
    return session.scalar(
        select(Job.id)
        .where(
            Job.kind.in_([EVENT_KIND, HANDLER_KIND]),
            Job.id < job_id,
            Job.status.in_([JobStatus.pending, JobStatus.running]),
            Job.idempotency_key.startswith(_key_prefix(alert_id), autoescape=True),
        )
        .limit(1)
    )


def _record_job_failure(context: AppContext, session: Session, job: Job, error: str, final: bool) -> None:
    """The worker's failure hook for both kinds: a job that ends dead (a handler that kept stopping its
    worker, whose lease expired each time) is recorded as a handler's failure is."""
    if not final:
        return
    name = str(job.payload.get("handler") or "(the event's handlers)")
    text = storable_text(error[:MAX_ERROR_TEXT])
    _record_failure(session, int(job.payload["alert_id"]), name, str(job.payload["event"]), text, "")


@job_handler(EVENT_KIND, on_failure=_record_job_failure)
def expand_event_job(context: AppContext, session: Session, job: Job) -> dict[str, Any]:
    """One alert event: a job per handler this worker has for the alert's type, in the order they were
    registered, after the jobs of the alert's earlier events (their ids are smaller)."""
    from warroom.alerts.models import Alert
    from warroom.jobs import service as jobs_service

    alert_id = int(job.payload["alert_id"])
    event = str(job.payload["event"])
    earlier = _earlier_job(session, alert_id, job.id)
    if earlier is not None:
        raise RetryLater(1, f"waits for job {earlier}, an earlier handler of the alert")
    alert = session.get(Alert, alert_id)
    if alert is None:
        return {"skipped": "the alert is gone"}
    names = [handler_name(handler) for handler in handlers_for(alert.alert_type)]
    for name in names:
        which = hashlib.sha256(f"{event}|{job.payload.get('moment', '')}|{name}".encode()).hexdigest()
        jobs_service.enqueue(
            session,
            kind=HANDLER_KIND,
            payload={"alert_id": alert_id, "event": event, "handler": name},
            idempotency_key=f"{_key_prefix(alert_id)}{which[:40]}",
            incident_id=alert.incident_id,
            peer=HANDLER_PEER,
            # A handler's failure is recorded, not retried: running it again would repeat what it did. Only a
            # worker that stops mid-handler runs it again (at least once), up to this many times.
            max_attempts=3,
        )
    return {"event": event, "handlers": names}


# --- running (the worker) -----------------------------------------------------------------------------------


class InvalidChange(Exception):
    """A handler left a value on the alert or incident that the rest of Warroom cannot read, or set a field
    only the services change."""


class SessionMisuse(Exception):
    """A handler committed, rolled back or closed its session: its run is one transaction, Warroom's."""


class SessionAbandoned(SessionMisuse):
    """A handler used ``ctx.session`` after its time limit, when its transaction had been rolled back."""


class HandlerTimeLimit(BaseException):
    """A handler ran past its time limit. Raised in its thread then, at its next Python instruction (one
    blocked in a call, a sleep or a socket read, gets it when that call returns): a ``BaseException``, like
    ``SystemExit``, so that the handler's own ``except Exception`` does not swallow it."""


_ABANDONED = (
    "ctx.session is closed to this handler: it ran past its time limit, and its transaction was rolled back"
)


def _registered(name: str, alert_type: str) -> Handler | None:
    return next((handler for handler in handlers_for(alert_type) if handler_name(handler) == name), None)


@dataclass
class _Guard:
    """What is refused of the handler running in this thread, however it flushed or caught the refusal."""

    org: OrgConfig
    session: Session
    refused: list[Exception] = field(default_factory=list)
    # The connection the handler's session is bound to, from the pool's checkout to the end of the run
    # (never given back to the pool midway, as a session's own would be after a failed flush).
    connection: Connection | None = None
    fairy: PoolProxiedConnection | None = None
    abandoned: bool = False  # set when its job stopped waiting for it, under ``lock``
    lock: threading.Lock = field(default_factory=threading.Lock)
    ending: int | None = None  # the thread rolling back its abandoned transaction

    def stops_statement(self) -> bool:
        """SQLite's progress handler on the handler's connection: once it is abandoned, its statements fail
        within a hundred steps (but for those that end its transaction)."""
        return self.abandoned and threading.get_ident() != self.ending

    def refuse(self, problem: str, error: type[Exception]) -> None:
        self.refused.append(error(problem))
        raise self.refused[-1]


_guard: ContextVar[_Guard | None] = ContextVar("alert_handler_guard", default=None)
_guards_installed = False
_guards_lock = threading.Lock()


def _install_field_guards() -> None:
    """A listener on every column a handler may not set directly: idle (one context-variable read) unless a
    handler runs in this thread."""
    global _guards_installed
    from warroom.alerts.models import Alert
    from warroom.incidents.models import Incident

    with _guards_lock:
        if _guards_installed:
            return
        for model, settable in ((Alert, ALERT_SETTABLE), (Incident, INCIDENT_SETTABLE)):
            mapper: Any = inspect_orm(model)
            for column in mapper.column_attrs:
                if column.key not in settable:
                    event.listen(getattr(model, column.key), "set", _on_protected_set(column.key))
        _guards_installed = True


def _on_protected_set(key: str) -> Callable[..., None]:
    def on_set(target: Any, value: Any, oldvalue: Any, initiator: Any) -> None:
        guard = _guard.get()
        if guard is None or object_session(target) is not guard.session or _set_by_warroom():
            return
        ref = getattr(target, "ref", type(target).__name__)
        guard.refuse(
            f"{ref} {key} {value!r:.80}: a handler does not set it directly (the services change it, and "
            "keep the timeline, escalation and metrics in step)",
            InvalidChange,
        )

    return on_set


def _set_by_warroom() -> bool:
    """Whether the code assigning the attribute (the first frame outside SQLAlchemy and this listener) is
    Warroom's own, such as a service a handler called, rather than the handler's."""
    frame = sys._getframe(2)
    while frame is not None and frame.f_globals.get("__name__", "").startswith(("sqlalchemy", __name__)):
        frame = frame.f_back  # type: ignore[assignment]
    module = str(frame.f_globals.get("__name__", "")) if frame is not None else ""
    return module == "warroom" or module.startswith("warroom.")


@contextmanager
def _guarded(guard: _Guard) -> Iterator[_Guard]:
    """While the handler runs: every flush checks what it changed on alerts and incidents (a flush clears the
    history a later check would read), protected fields refuse a direct set, and commit, rollback and close
    refuse (instance attributes over the methods, taken away again before Warroom ends the transaction).
    Once the handler is abandoned, the session refuses every statement and flush (``get_bind``)."""
    from warroom.alerts.models import Alert
    from warroom.incidents.models import Incident

    _install_field_guards()
    org, session = guard.org, guard.session

    def check_flush(flushing: Session, context: Any, instances: Any) -> None:
        watched = [obj for obj in (*flushing.new, *flushing.dirty) if isinstance(obj, Alert | Incident)]
        problems = invalid_changes(org, watched)
        if problems:
            guard.refuse("; ".join(problems), InvalidChange)

    def refusing(verb: str) -> Callable[..., None]:
        def refused(*args: Any, **kwargs: Any) -> None:
            guard.refuse(
                f"a handler must not {verb} ctx.session: its run is one transaction, committed when it "
                "returns and rolled back whole when it fails",
                SessionMisuse,
            )

        return refused

    get_bind = session.get_bind

    def unless_abandoned(*args: Any, **kwargs: Any) -> Any:
        if guard.abandoned:
            raise SessionAbandoned(_ABANDONED)
        return get_bind(*args, **kwargs)

    event.listen(session, "before_flush", check_flush)
    for verb in ("commit", "rollback", "close"):
        setattr(session, verb, refusing(verb))
    setattr(session, "get_bind", unless_abandoned)  # noqa: B010 - an instance attribute over the method
    token = _guard.set(guard)
    try:
        yield guard
    finally:
        _guard.reset(token)
        for verb in ("commit", "rollback", "close", "get_bind"):
            delattr(session, verb)
        event.remove(session, "before_flush", check_flush)


def _bind_to_own_connection(guard: _Guard) -> None:
    """Bind the handler's session to a connection of its own, checked out now (its transaction still begins
    at its first statement), which its job can end at the time limit whatever the handler does."""
    engine = guard.session.bind
    assert isinstance(engine, Engine)
    guard.connection = engine.connect()
    guard.fairy = guard.connection.connection
    guard.session.bind = guard.connection
    driver = guard.fairy.driver_connection
    if isinstance(driver, sqlite3.Connection):
        # Set now, while no statement runs on it: once the handler is abandoned, a statement of its (even a
        # long one, running then) fails within a hundred steps.
        driver.set_progress_handler(guard.stops_statement, 100)


def _end_abandoned_transaction(guard: _Guard) -> None:
    """Roll back the transaction of a handler its job stopped waiting for, even while the handler is in the
    middle of a statement, so that its locks go: SQLite's write lock, PostgreSQL's row locks. The handler
    cannot use the connection again, though it may hold it (``ctx.session.connection()``), and the connection
    leaves the pool: it is closed when the handler's thread ends."""
    assert guard.connection is not None and guard.fairy is not None
    driver: Any = guard.fairy.driver_connection
    try:
        if isinstance(driver, sqlite3.Connection):
            # Its statement running fails within a hundred steps (``stops_statement``), which gives the
            # connection to these two. (Not ``set_progress_handler``: it waits for that statement holding the
            # GIL, which the progress handler needs.) Read-only, a statement of the handler after the rollback
            # cannot write outside a transaction, committed at once, nor begin one that takes the write lock.
            guard.ending = threading.get_ident()
            try:
                for _ in range(200):
                    try:
                        driver.execute("PRAGMA query_only = 1")
                        driver.rollback()
                        break
                    except sqlite3.Error:
                        time.sleep(0.005)
                else:
                    log.error("could not roll back the transaction of an abandoned alert handler")
            finally:
                guard.ending = None
        else:
            # PostgreSQL: the server ends that session, which rolls its transaction back, mid-statement too.
            with guard.connection.engine.connect() as connection:
                connection.execute(
                    text("SELECT pg_terminate_backend(:pid)"), {"pid": driver.info.backend_pid}
                )
                connection.commit()
    except Exception as exc:
        log.error(
            "could not end the transaction of an abandoned alert handler (its locks stay until it ends): %s",
            failure_text(exc),
        )
    finally:
        guard.fairy.detach()


def _give_back_connection(guard: _Guard) -> None:
    """The handler ended within its limit, its transaction committed or rolled back: its connection goes back
    to the pool, without the progress handler that watched it."""
    if guard.connection is None or guard.fairy is None:
        return
    driver = guard.fairy.driver_connection
    if isinstance(driver, sqlite3.Connection):
        driver.set_progress_handler(None, 0)
    guard.connection.close()


# Runs abandoned at their time limit whose threads have not ended yet.
_overdue: set[_HandlerRun] = set()
_overdue_lock = threading.Lock()


class _HandlerRun:
    """A handler's call, and the flush of what it changed, in a thread of its own: its job waits for it at
    most its time limit. The handler's session belongs to that thread while it runs; the job's thread takes
    it back only once the handler has ended within its limit."""

    def __init__(self, handler: Handler, ctx: HandlerContext, name: str, limit: float) -> None:
        self.handler = handler
        self.ctx = ctx
        self.name = name
        self.limit = limit
        self.guard = _Guard(ctx.org, ctx.session)
        self.error: BaseException | None = None  # how it failed, when it ended within its limit
        self.where = ""  # where it was at its time limit
        self.done = False  # under ``guard.lock``, as is ``interrupted``
        self.interrupted = False
        self.ended = threading.Event()
        # Set once the job has ended an abandoned handler's transaction: its thread, ending, gives the
        # session back only then (its connection must leave the pool first).
        self.released = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"alert-handler:{name}"[:100], daemon=True)

    def run(self) -> bool:
        """Whether the handler ended within its limit (``error`` then says how it failed). If not, it is
        abandoned: its transaction is rolled back, its session refuses it, and its thread is interrupted."""
        self.thread.start()
        self.ended.wait(self.limit)
        with self.guard.lock:
            if self.done:
                abandoned = False
            else:
                abandoned = self.guard.abandoned = True
                with _overdue_lock:
                    _overdue.add(self)
        if not abandoned:
            self.thread.join()
            return True
        self.where = self._stack()
        try:
            _end_abandoned_transaction(self.guard)
        finally:
            self.released.set()
        with self.guard.lock:
            if not self.done:
                # Stops a loop in Python at once; a call blocked in C first returns.
                interrupt_thread(self.thread.ident or 0, HandlerTimeLimit)
                self.interrupted = True
        return False

    def _run(self) -> None:
        abandoned = False
        try:
            with _guarded(self.guard) as guard:
                returned: Any = self.handler(self.ctx)
                if inspect.isawaitable(returned):
                    if inspect.iscoroutine(returned):
                        returned.close()  # no "never awaited" warning: the failure below says it
                    raise TypeError(
                        "the handler returned an awaitable; alert handlers must be plain functions"
                    )
                self.ctx.session.flush()  # checked by the guard, with what earlier flushes did
                if guard.refused:  # refused, and the handler caught it
                    raise guard.refused[0]
        except BaseException as exc:  # SystemExit too; KeyboardInterrupt the job's thread raises again
            self.error = exc
        finally:
            while True:
                try:
                    abandoned = self._finish()
                    break
                except HandlerTimeLimit:  # sent as it ended, and struck before ``_finish`` took it back
                    continue
        if abandoned:
            self._clean_up()

    def _finish(self) -> bool:
        with self.guard.lock:
            self.done = True
            if self.interrupted:
                interrupt_thread(threading.get_ident(), None)  # sent, but not raised yet
            self.ended.set()
            return self.guard.abandoned

    def _clean_up(self) -> None:
        """In the handler's thread, once an abandoned handler has ended after all."""
        self.released.wait()
        # The methods themselves (the guard's refusals may have been left on). A connection the server ended
        # (PostgreSQL) wants the rollback first. The connection, out of the pool, is closed.
        connection = self.guard.connection
        for end in (Session.rollback, Session.close, lambda _: connection.close() if connection else None):
            try:
                end(self.ctx.session)
            except Exception as exc:
                log.debug("ending the session of abandoned handler %s: %s", self.name, failure_text(exc))
        with _overdue_lock:
            _overdue.discard(self)
        log.info("alert handler %s, abandoned at its time limit, has ended", self.name)

    def _stack(self) -> str:
        frame = sys._current_frames().get(self.thread.ident or 0)
        if frame is None:
            return ""
        where = "".join(traceback.format_stack(frame, limit=12))
        return storable_text(f"Running at its time limit:\n{where}"[-2000:])


@job_handler(HANDLER_KIND, on_failure=_record_job_failure, deferred_transaction=True)
def run_handler_job(context: AppContext, session: Session, job: Job) -> dict[str, Any]:
    """One handler on one alert event, in a thread and a transaction of its own (``_HandlerRun``), for at most
    its time limit. Deferred transaction: the write lock is taken at the handler's first statement (or, for
    one that only reads ``ctx.alert`` and calls ``ctx.log``, after it returns), so a handler waiting on an
    external API holds up no intake. Its writes and log commit before the job is marked done: a worker that
    stops between the two runs it again, as one that stops mid-handler does."""
    from warroom.alerts.models import Alert
    from warroom.incidents.models import Incident

    alert_id = int(job.payload["alert_id"])
    event_name = str(job.payload["event"])
    name = str(job.payload["handler"])
    with _overdue_lock:
        overdue = len(_overdue)
    if overdue >= MAX_OVERDUE:
        log.warning("alert handlers still running past their time limit here: %d; %s waits", overdue, name)
        raise RetryLater(5, f"waits: alert handlers still running past their time limit here: {overdue}")
    with context.db.read() as reading:
        earlier = _earlier_job(reading, alert_id, job.id)
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
        _record_failure(session, alert_id, name, event_name, error, "")
        return {"handler": name, "failed": error}
    limit = time_limit_of(handler)
    # The handler's own transaction, apart from the job's: at its time limit the job stops waiting for it,
    # and records that in its own while the handler's thread may still hold the other.
    handler_session = context.db.write_session()
    handler_session.add(alert)
    if incident is not None:
        handler_session.add(incident)
    ctx = HandlerContext(handler_session, context.org, alert, incident, event_name)
    run = _HandlerRun(handler, ctx, name, limit)
    _bind_to_own_connection(run.guard)
    failure: BaseException | None = None
    trace = ""
    try:
        if not run.run():
            failure = HandlerTimeLimit(
                f"ran longer than {limit:g} s, its time limit: its transaction was rolled back, and its "
                "thread left to end on its own"
            )
            trace = run.where
        elif run.error is not None:
            failure = run.error
            trace = _trace(failure)
        else:
            _write_log(ctx)
            handler_session.commit()
    except Exception as exc:  # writing its log, committing
        failure = exc
        trace = _trace(exc)
    finally:
        if not run.guard.abandoned:  # else its thread closes them when it ends
            handler_session.close()
            _give_back_connection(run.guard)
    if isinstance(failure, KeyboardInterrupt):
        raise failure  # as from the worker's own code: it stops, and the job runs again after its lease
    if failure is None:
        return {"handler": name, "ran": event_name}
    error = failure_text(failure)
    log.warning("alert handler %s failed on ALR-%s (%s): %s", name, alert_id, event_name, error)
    try:
        _record_failure(session, alert_id, name, event_name, error, trace)
        session.flush()
    except Exception as failed:
        # Never run the handler again because its record failed: the job ends here, and the worker's
        # failure hook records this shorter line in a transaction of its own.
        raise PermanentFailure(f"{error} (recording it failed: {failure_text(failed)})") from failed
    return {"handler": name, "failed": error}


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
            problems.append(f"{key} {value!r:.80}: {validation_message(exc.errors()[0])}")
    return problems


def invalid_changes(org: OrgConfig, instances: Iterable[Any]) -> list[str]:
    """What was changed on these alerts and incidents that is not a value Warroom allows there: the columns'
    types (enums, lengths), the alert intake's limits (severity, summary) and the incident API's (title,
    status, the org's severities). Empty when all is well."""
    from warroom.alerts.config import ALERT_SEVERITIES
    from warroom.alerts.models import Alert
    from warroom.alerts.schemas import GenericAlert
    from warroom.incidents.schemas import IncidentUpdate

    problems: list[str] = []
    for instance in instances:
        is_alert = isinstance(instance, Alert)
        schema: Any = GenericAlert if is_alert else IncidentUpdate
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
        if is_alert and "severity" in changed and changed["severity"] not in ALERT_SEVERITIES:
            found.append(
                f"severity {changed['severity']!r:.80}: must be one of {', '.join(ALERT_SEVERITIES)}"
            )
        if not is_alert and "severity" in changed and org.severity(str(changed["severity"])) is None:
            found.append(
                f"severity {changed['severity']!r:.80}: must be one of {', '.join(org.severity_ids)}"
            )
        ref = getattr(instance, "ref", None) or type(instance).__name__
        problems += [f"{ref} {problem}" for problem in found]
    return problems
