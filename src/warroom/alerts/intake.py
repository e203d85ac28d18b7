"""Group commit for alert intake: one writer thread per process applies the alerts of every request waiting
at that moment in one transaction, commits (one fsync), then answers each request.

Every answer still comes after its alerts are committed. If the shared transaction fails (a bad request,
a race on PostgreSQL), each request in it is retried in a transaction of its own, so one request's failure
never becomes another's. If it fails because the database cannot be used (down, locked), all of it is answered
503: retrying each request alone would make each wait again. Only when the kept connection was lost (the
server restarted) is the batch tried once more first, on a new connection; a lock wait that ran out
(PostgreSQL's lock_timeout) is not tried again, so the sender hears within one lock timeout.

On SQLite each request is answered within about one busy timeout of its arrival (its deadline): 503 if its
alerts could not be committed by then. The writer waits for the write lock only until the earliest deadline
of its batch, answers the requests whose deadline passed and tries again for the rest, so a held lock costs
each request one wait, not one for the batch and another for each request retried alone. Requests whose
deadline passed while they queued are answered without being tried. A backstop timer on the request's event
loop answers 503 a little after the deadline if the writer still has not (stuck in a slow batch).

The answer and the outcome always agree: a 503 means nothing of the delivery was stored. Each group of
deliveries has a state, changed under one lock: the writer claims the groups of a batch when it starts it
("started"), leaving out those the backstop already answered ("abandoned"); the backstop answers 503 only a
group still waiting in the queue ("pending"). A group the writer started gets its real outcome, however long
it takes: a delivery too large to apply within the busy timeout (a thousand items that each open an incident)
is stored, slowly, and the deliveries queued behind it past their deadline get 503 with nothing stored (their
senders retry). If a started batch fails (rolled back, nothing stored), its groups are pending again: those
whose backstop came meanwhile are answered 503 at once, the rest retried as usual. PostgreSQL has no busy
timeout, and its requests no deadline.

Signed deliveries (Grafana's HMAC) are checked here, where the integration and its secret are known: the
request hands over its raw body and signature headers (``SignedBody``); other deliveries carry none.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

from sqlalchemy import Connection
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from sqlalchemy.orm import Session

from warroom.alerts import service
from warroom.alerts.adapters import AlertEvent
from warroom.alerts.schemas import Ingested
from warroom.auth import integrations
from warroom.auth.integrations import IntegrationIdentity
from warroom.auth.models import IntegrationType
from warroom.auth.signing import SignedBody
from warroom.context import AppContext
from warroom.db import (
    connection_lost,
    is_retryable,
    lost_race,
    schema_missing,
    unavailable,
    unavailable_reason,
    utcnow,
)
from warroom.errors import WarroomError

log = logging.getLogger("warroom.alerts.intake")

_ATTEMPTS = 3
# The backstop answers a request this share of its busy timeout after its deadline: late enough that the
# writer, which ends its own waits at the deadline, answers first whenever it can.
_BACKSTOP_SHARE = 0.1
# A batch waits the full busy timeout for the lock unless its earliest deadline is nearer than this share
# of it: in the usual case (requests picked up at once) the connection's timeout is left as it is.
_WAIT_SLACK_SHARE = 0.05

# A group's state (``_Group.state``), changed only under ``IntakeWriter._claims``.
_PENDING = 0  # queued (or back from a batch that failed): the backstop may answer it 503
_STARTED = 1  # claimed by the writer's batch: answered by the writer with its real outcome, even late
_ABANDONED = 2  # answered 503 by the backstop: never tried, nothing stored


class NotCommittedInTime(SQLAlchemyTimeoutError):
    """A delivery's alerts could not be committed by its deadline (answered 503, as any unavailable
    database is: ``db.unavailable``)."""

    def __init__(self, seconds: float) -> None:
        # Either may be why: another process's write lock, or this process's writer still on a large batch.
        super().__init__(
            f"alert intake: not committed within {seconds:g} s (the database's write lock was held, or the "
            "intake writer was busy with earlier deliveries)"
        )


@dataclass
class _Job:
    secret: str | None
    expected: IntegrationType
    source: str
    events: list[AlertEvent]
    signed: SignedBody | None  # deliveries that may be signed: Grafana's and tools' own webhooks
    future: asyncio.Future[Ingested]


@dataclass
class _Group:
    """The deliveries one event-loop iteration received, handed to the writer together."""

    loop: asyncio.AbstractEventLoop
    jobs: list[_Job]
    # time.monotonic() by which each must be answered (its first's arrival plus the busy timeout), or None.
    deadline: float | None
    backstop: asyncio.TimerHandle | None = None
    state: int = _PENDING
    # The backstop came while the group was started: if its batch fails, the writer answers it 503.
    late: bool = False

    def past_deadline(self, now: float) -> bool:
        return self.deadline is not None and self.deadline <= now


def _settle(future: asyncio.Future[Ingested], outcome: Ingested | BaseException) -> None:
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


def _settle_all(
    answers: list[tuple[asyncio.Future[Ingested], Ingested | BaseException]],
    backstops: list[asyncio.TimerHandle],
) -> None:
    for future, outcome in answers:
        _settle(future, outcome)
    for backstop in backstops:  # answered: the timer (and what it holds) can go
        backstop.cancel()


@contextlib.contextmanager
def _transaction(context: AppContext, connection: Connection | None) -> Iterator[Session]:
    """A write transaction: a session of its own, or one on ``connection`` (the intake writer's)."""
    if connection is None:
        with context.db.write() as session:
            yield session
        return
    with connection.begin(), context.db.session_on(connection) as session:
        yield session
        session.flush()


def check_caller(
    context: AppContext, secret: str | None, expected: IntegrationType, signed: SignedBody | None
) -> None:
    """Only what a delivery's own authentication checks (401, 403), writing nothing: for a refusal that
    would tell the caller something about the org file. Blocking: run it in a thread."""
    with context.db.read() as session:
        integration = integrations.authenticate_integration(session, secret, expected, record_use=False)
        integration.check_signature(signed, utcnow())


def ingest_alone(
    context: AppContext,
    secret: str | None,
    expected: IntegrationType,
    source: str,
    events: list[AlertEvent],
    signed: SignedBody | None = None,
    *,
    connection: Connection | None = None,
) -> Ingested:
    """One request, one transaction, retried when it lost a race: two deliveries opening the same dedup key,
    or (PostgreSQL) a deadlock between transactions routing alerts of the same groups in other orders.
    ``connection``: run on it (the intake writer's), not on a session of its own."""
    for attempt in range(_ATTEMPTS):
        try:
            with _transaction(context, connection) as session:
                integration = integrations.authenticate_integration(session, secret, expected)
                integration.check_signature(signed, utcnow())
                return service.ingest(
                    session, org=context.org, source=source, events=events, integration=integration
                )
        except Exception as exc:
            # The driver SQL of intake's hot path raises psycopg's and sqlite3's own errors: ``lost_race``
            # tells a race among them as among SQLAlchemy's.
            if not lost_race(exc) or attempt == _ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


class IntakeWriter:
    """The per-process writer thread. It keeps one database connection while it has work, so a batch
    costs a BEGIN, a few statements and a COMMIT, not a session and a pool checkout."""

    def __init__(self, context: AppContext, *, max_events: int = 5000, idle_seconds: float = 5.0) -> None:
        self.context = context
        self.max_events = max_events
        self.idle_seconds = idle_seconds
        # How long a request may wait for its commit: SQLite's busy timeout (None on PostgreSQL).
        self.wait_seconds = context.db.busy_timeout
        # Each item is the deliveries one event-loop iteration received (None: stop).
        self._queue: queue.SimpleQueue[_Group | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        # Guards each group's ``state``: the backstop (on an event loop) and the writer's claims.
        self._claims = threading.Lock()
        self._thread: threading.Thread | None = None
        self._connection: Connection | None = None
        # Deliveries received in the current iteration of each event loop, handed over together.
        self._received: dict[asyncio.AbstractEventLoop, _Group] = {}

    async def submit(
        self,
        secret: str | None,
        expected: IntegrationType,
        source: str,
        events: list[AlertEvent],
        signed: SignedBody | None = None,
    ) -> Ingested:
        """Apply ``events`` for the integration whose key is ``secret``; ``signed`` when the delivery may
        be signed (its raw body and signature headers), checked if the integration has a signing secret."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Ingested] = loop.create_future()
        job = _Job(secret, expected, source, events, signed, future)
        received = self._received.get(loop)
        if received is None:
            # The first delivery of this loop iteration: hand all of them over once the iteration's other
            # callbacks (more requests, typically) have run. One queue put and thread wake-up per iteration.
            wait = self.wait_seconds
            deadline = time.monotonic() + wait if wait is not None else None
            self._received[loop] = _Group(loop, [job], deadline)
            loop.call_soon(self._hand_over, loop)
        else:
            received.jobs.append(job)
        return await future

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        group = self._received.pop(loop)
        if self.wait_seconds is not None:
            # One timer per iteration, cancelled when the writer answers.
            group.backstop = loop.call_later(
                self.wait_seconds * (1 + _BACKSTOP_SHARE), self._answer_late, group
            )
        with self._lock:
            self._queue.put(group)
            if self._thread is None:
                # The thread ends itself when idle, so short-lived apps (tests) leave none behind.
                self._thread = threading.Thread(target=self._run, name="warroom-alert-intake", daemon=True)
                self._thread.start()

    def _answer_late(self, group: _Group) -> None:
        """The backstop (on the group's event loop): 503 for its requests the writer has not answered, if the
        group is still queued (abandoned: the writer leaves it out). A group the writer started is left to it:
        its real outcome comes when the batch ends."""
        assert self.wait_seconds is not None
        with self._claims:
            if group.state == _STARTED:
                group.late = True
                return
            group.state = _ABANDONED
        late = [job for job in group.jobs if not job.future.done()]
        if late:
            log.warning("alert intake: %d deliveries not committed in time; answered 503", len(late))
            for job in late:
                job.future.set_exception(NotCommittedInTime(self.wait_seconds))

    def _claim(self, groups: list[_Group]) -> list[_Group]:
        """As a batch starts: ``groups`` without those the backstop abandoned (answered 503 already), the rest
        marked started, so that the backstop leaves their answers to the writer."""
        with self._claims:
            started = [group for group in groups if group.state != _ABANDONED]
            for group in started:
                group.state = _STARTED
        return started

    def _unclaim(self, groups: list[_Group]) -> list[_Group]:
        """After a batch that failed (rolled back, nothing stored): its groups are pending again; those whose
        backstop came meanwhile are abandoned and answered 503 here. Returns the groups still to answer."""
        with self._claims:
            late = [group for group in groups if group.late]
            for group in groups:
                group.state = _ABANDONED if group.late else _PENDING
        if not late:
            return groups
        assert self.wait_seconds is not None  # only a backstop (SQLite) sets ``late``
        log.warning(
            "alert intake: %d deliveries not committed in time; answered 503",
            sum(len(group.jobs) for group in late),
        )
        self._answer_all(late, NotCommittedInTime(self.wait_seconds))
        return [group for group in groups if not group.late]

    def close(self, timeout: float = 10.0) -> None:
        """Finish what is queued, then end the thread (app shutdown)."""
        with self._lock:
            thread = self._thread
            if thread is not None:
                self._queue.put(None)
        if thread is not None:
            thread.join(timeout)

    def _run(self) -> None:
        try:
            while True:
                try:
                    item = self._queue.get(timeout=self.idle_seconds)
                except queue.Empty:
                    item = None  # idle for a while: end, like on close()
                if item is None:
                    with self._lock:
                        if self._queue.empty():
                            self._thread = None
                            return
                    continue
                groups = [item]
                size = sum(len(job.events) for job in item.jobs)
                while size < self.max_events:
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        self._queue.put(None)  # seen again once this batch is answered
                        break
                    groups.append(more)
                    size += sum(len(job.events) for job in more.jobs)
                try:
                    self._process(groups)
                except BaseException as exc:  # never leave a request waiting on a dead writer
                    log.exception("alert intake writer failed")
                    self._answer_all(groups, exc)
        finally:
            self._disconnect()

    @staticmethod
    def _answer_all(groups: list[_Group], outcomes: list[Ingested | BaseException] | BaseException) -> None:
        """Answer every request of ``groups``: ``outcomes`` has one outcome per request, in order, or is
        the one error for all of them."""
        # One wake-up per event loop for the whole batch, not one per request.
        by_loop: dict[
            asyncio.AbstractEventLoop,
            tuple[list[tuple[asyncio.Future[Ingested], Any]], list[asyncio.TimerHandle]],
        ] = {}
        index = 0
        for group in groups:
            answers, backstops = by_loop.setdefault(group.loop, ([], []))
            for job in group.jobs:
                answers.append((job.future, outcomes[index] if isinstance(outcomes, list) else outcomes))
                index += 1
            if group.backstop is not None:
                backstops.append(group.backstop)
        for loop, (answers, backstops) in by_loop.items():
            # RuntimeError: the request's event loop is gone (the server is shutting down).
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle_all, answers, backstops)

    def _answer_past_deadline(self, groups: list[_Group]) -> list[_Group]:
        """Answer 503 to the groups whose deadline has passed; the others, still to be tried."""
        if self.wait_seconds is None:
            return groups
        now = time.monotonic()
        late = [group for group in groups if group.past_deadline(now)]
        if not late:
            return groups
        log.warning(
            "alert intake: %d deliveries not committed within %g s; answered 503",
            sum(len(group.jobs) for group in late),
            self.wait_seconds,
        )
        self._answer_all(late, NotCommittedInTime(self.wait_seconds))
        return [group for group in groups if not group.past_deadline(now)]

    def _process(self, groups: list[_Group]) -> None:
        outcomes: list[Ingested | BaseException] | BaseException
        fresh_connection_tried = False
        while True:
            groups = self._claim(self._answer_past_deadline(groups))
            if not groups:
                return
            jobs = [job for group in groups for job in group.jobs]
            deadline = min((group.deadline for group in groups if group.deadline is not None), default=None)
            try:
                with self._waiting_until(self._connect(), deadline):
                    outcomes = self._together(jobs)
                break
            except Exception as exc:
                # Rolled back: those whose backstop came meanwhile are answered 503, the rest handled below.
                groups = self._unclaim(groups)
                if not groups:
                    return
                if schema_missing(exc):
                    # Tables gone: no retry mends it (``warroom db upgrade`` does). 503 for all, each logged
                    # as it is answered.
                    self._disconnect()
                    outcomes = exc
                    break
                if unavailable(exc) and not is_retryable(exc):
                    lost = connection_lost(exc, self._connection)
                    self._disconnect()
                    still_waiting = self._answer_past_deadline(groups)
                    if still_waiting is not groups:
                        # It waited out the earliest deadline (the lock is held): those requests are
                        # answered; the rest wait on, each at most until its own deadline.
                        groups = still_waiting
                        continue
                    if lost and not fresh_connection_tried:
                        # The kept connection died (PostgreSQL restarted): once more on a new one. Not after a
                        # lock wait that ran out (a held LOCK TABLE past lock_timeout): the new one waited it
                        # out again, and the sender had its 503 after twice the time the operator set.
                        fresh_connection_tried = True
                        log.warning(
                            "alert intake batch failed (%s); retrying it on a new connection",
                            unavailable_reason(exc),
                        )
                        continue
                    outcomes = exc  # the database cannot be used right now: 503 for all
                    break
                if not isinstance(exc, WarroomError) and not lost_race(exc):
                    # Whatever broke may have broken the connection too.
                    # One line (the driver's first): the SQL and SQLAlchemy's pointer would take several.
                    log.warning(
                        "alert intake batch failed (%s: %s); retrying each request alone",
                        type(exc).__name__,
                        unavailable_reason(exc),
                    )
                    self._disconnect()
                outcomes = self._each_alone(groups)
                break
        self._answer_all(groups, outcomes)

    def _each_alone(self, groups: list[_Group]) -> list[Ingested | BaseException]:
        outcomes: list[Ingested | BaseException] = []
        for group in groups:
            for job in group.jobs:
                if self.wait_seconds is not None and group.past_deadline(time.monotonic()):
                    outcomes.append(NotCommittedInTime(self.wait_seconds))
                    continue
                outcomes.append(self._alone(job, group))
        return outcomes

    def _alone(self, job: _Job, group: _Group) -> Ingested | BaseException:
        # Claimed by its first delivery tried, the group stays claimed: each of its deliveries is answered
        # with its own outcome (its failure too: a failure stores nothing).
        if not self._claim([group]):
            assert self.wait_seconds is not None  # answered 503 by the backstop already
            return NotCommittedInTime(self.wait_seconds)
        try:
            connection = self._connect()
            with self._waiting_until(connection, group.deadline):
                return ingest_alone(
                    self.context,
                    job.secret,
                    job.expected,
                    job.source,
                    job.events,
                    job.signed,
                    connection=connection,
                )
        except Exception as exc:
            if not isinstance(exc, WarroomError):
                if not unavailable(exc) and not schema_missing(exc):
                    log.exception("alert intake failed")
                self._disconnect()  # the next request starts on a sound connection
            return exc

    @contextlib.contextmanager
    def _waiting_until(self, connection: Connection, deadline: float | None) -> Iterator[None]:
        """SQLite: wait for the write lock only until ``deadline``, not a full busy timeout from now."""
        wait = self.wait_seconds
        if deadline is None or wait is None:
            yield
            return
        remaining = deadline - time.monotonic()
        if remaining >= wait * (1 - _WAIT_SLACK_SHARE):
            yield  # picked up at once: the connection's own timeout is the request's
            return
        driver = connection.connection.driver_connection
        assert driver is not None
        driver.execute(f"PRAGMA busy_timeout={max(0, math.ceil(remaining * 1000))}")
        try:
            yield
        finally:
            with contextlib.suppress(Exception):  # a connection that broke is disconnected anyway
                driver.execute(f"PRAGMA busy_timeout={math.ceil(wait * 1000)}")

    def _connect(self) -> Connection:
        if self._connection is not None and not self.context.db.on_current_file(self._connection):
            # SQLite: its file was removed or replaced under the server (or its WAL). Given back, the pool
            # drops it at checkout; a new one uses the file the path names, or is refused (503).
            self._disconnect()
        if self._connection is None or self._connection.closed or self._connection.invalidated:
            self._disconnect()
            self._connection = self.context.db.engine.execution_options(write=True).connect()
        return self._connection

    def _disconnect(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                self._connection.close()
            self._connection = None

    def _together(self, jobs: list[_Job]) -> list[Ingested | BaseException]:
        outcomes: list[Ingested | BaseException | None] = [None] * len(jobs)
        connection = self._connect()
        with connection.begin():
            identities: dict[tuple[str | None, IntegrationType], IntegrationIdentity | WarroomError] = {}
            groups: dict[tuple[int, str], list[int]] = {}
            now: datetime | None = None  # read once per batch, and only if a delivery is signed
            for index, job in enumerate(jobs):
                cache_key = (job.secret, job.expected)
                if cache_key not in identities:
                    try:
                        # The key's use is written only for a delivery accepted: this transaction commits
                        # the batch's other deliveries even when this one's signature is refused.
                        found = integrations.identify_integration(
                            connection, job.secret, job.expected, record_use=False
                        )
                        if not found.signing_secrets:
                            integrations.record_use_of(connection, found)  # nothing left to refuse it for
                        identities[cache_key] = found
                    except WarroomError as exc:
                        identities[cache_key] = exc
                identity = identities[cache_key]
                if isinstance(identity, WarroomError):
                    outcomes[index] = identity
                    continue
                if identity.signing_secrets:
                    if now is None:
                        now = utcnow()
                    try:
                        identity.check_signature(job.signed, now)
                    except WarroomError as exc:
                        outcomes[index] = exc
                        continue
                    integrations.record_use_of(connection, identity)  # once per batch: then a no-op
                groups.setdefault((identity.id, job.source), []).append(index)
            if groups:
                # A session on the writer's connection and transaction: automation needs the ORM.
                with self.context.db.session_on(connection) as session:
                    for (_, source), members in groups.items():
                        identity = identities[(jobs[members[0]].secret, jobs[members[0]].expected)]
                        assert isinstance(identity, IntegrationIdentity)
                        events = [event for index in members for event in jobs[index].events]
                        combined = service.ingest(
                            session, org=self.context.org, source=source, events=events, integration=identity
                        )
                        start = 0
                        for index in members:
                            count = len(jobs[index].events)
                            outcomes[index] = Ingested(count, combined.alerts[start : start + count])
                            start += count
                    session.flush()
        return [outcome if outcome is not None else RuntimeError("not processed") for outcome in outcomes]


class _OfContext(Protocol):
    context: AppContext


_Kept = TypeVar("_Kept", bound=_OfContext)


def kept_on_app(state: Any, name: str, context: AppContext, make: Callable[[AppContext], _Kept]) -> _Kept:
    """The app's one ``name`` (kept on its ``state``) for ``context``: made on first use, and again when the
    app runs with another context (tests reuse an app's state)."""
    kept: _Kept | None = getattr(state, name, None)
    if kept is None or kept.context is not context:
        kept = make(context)
        setattr(state, name, kept)
    return kept


def writer_for(state: Any, context: AppContext) -> IntakeWriter:
    return kept_on_app(state, "alert_intake_writer", context, IntakeWriter)
