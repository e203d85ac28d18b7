"""Group commit for alert intake: one writer thread per process applies the alerts of every request waiting
at that moment in one transaction, commits (one fsync), then answers each request.

Every answer still comes after its alerts are committed. If the shared transaction fails (a bad request,
a race on PostgreSQL), each request in it is retried in a transaction of its own, so one request's failure
never becomes another's.

Signed deliveries (Grafana's HMAC) are checked here, where the integration and its secret are known: the
request hands over its raw body and signature headers (``SignedBody``); other deliveries carry none.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from warroom.alerts import service
from warroom.alerts.adapters import AlertEvent
from warroom.alerts.schemas import Ingested
from warroom.auth import integrations
from warroom.auth.integrations import IntegrationIdentity
from warroom.auth.models import IntegrationType
from warroom.auth.signing import SignedBody
from warroom.context import AppContext
from warroom.db import is_retryable, utcnow
from warroom.errors import WarroomError

log = logging.getLogger("warroom.alerts.intake")

_ATTEMPTS = 3


@dataclass
class _Job:
    secret: str | None
    expected: IntegrationType
    source: str
    events: list[AlertEvent]
    signed: SignedBody | None  # deliveries that may be signed: Grafana's and tools' own webhooks
    future: asyncio.Future[Ingested]
    loop: asyncio.AbstractEventLoop


def _settle(future: asyncio.Future[Ingested], outcome: Ingested | BaseException) -> None:
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


def _settle_all(answers: list[tuple[asyncio.Future[Ingested], Ingested | BaseException]]) -> None:
    for future, outcome in answers:
        _settle(future, outcome)


def ingest_alone(
    context: AppContext,
    secret: str | None,
    expected: IntegrationType,
    source: str,
    events: list[AlertEvent],
    signed: SignedBody | None = None,
) -> Ingested:
    """One request, one transaction, retried when it lost a race: two deliveries opening the same dedup key,
    or (PostgreSQL) a deadlock between transactions routing alerts of the same groups in other orders."""
    for attempt in range(_ATTEMPTS):
        try:
            with context.db.write() as session:
                integration = integrations.authenticate_integration(session, secret, expected)
                integration.check_signature(signed, utcnow())
                return service.ingest(
                    session, org=context.org, source=source, events=events, integration=integration
                )
        except Exception as exc:
            if (not isinstance(exc, IntegrityError) and not is_retryable(exc)) or attempt == _ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


class IntakeWriter:
    """The per-process writer thread. It keeps one database connection while it has work, so a batch
    costs a BEGIN, a few statements and a COMMIT, not a session and a pool checkout."""

    def __init__(self, context: AppContext, *, max_events: int = 5000, idle_seconds: float = 5.0) -> None:
        self.context = context
        self.max_events = max_events
        self.idle_seconds = idle_seconds
        # Each item is the deliveries one event-loop iteration received (None: stop).
        self._queue: queue.SimpleQueue[list[_Job] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._connection: Connection | None = None
        # Deliveries received in the current iteration of each event loop, handed over together.
        self._received: dict[asyncio.AbstractEventLoop, list[_Job]] = {}

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
        job = _Job(secret, expected, source, events, signed, future, loop)
        received = self._received.get(loop)
        if received is None:
            # The first delivery of this loop iteration: hand all of them over once the iteration's other
            # callbacks (more requests, typically) have run. One queue put and thread wake-up per iteration.
            self._received[loop] = [job]
            loop.call_soon(self._hand_over, loop)
        else:
            received.append(job)
        return await future

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        jobs = self._received.pop(loop)
        with self._lock:
            self._queue.put(jobs)
            if self._thread is None:
                # The thread ends itself when idle, so short-lived apps (tests) leave none behind.
                self._thread = threading.Thread(target=self._run, name="warroom-alert-intake", daemon=True)
                self._thread.start()

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
                jobs = list(item)
                size = sum(len(job.events) for job in jobs)
                while size < self.max_events:
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        self._queue.put(None)  # seen again once this batch is answered
                        break
                    jobs.extend(more)
                    size += sum(len(job.events) for job in more)
                try:
                    self._process(jobs)
                except BaseException as exc:  # never leave a request waiting on a dead writer
                    log.exception("alert intake writer failed")
                    self._answer_all(jobs, [exc] * len(jobs))
        finally:
            self._disconnect()

    @staticmethod
    def _answer_all(jobs: list[_Job], outcomes: list[Ingested | BaseException]) -> None:
        # One wake-up per event loop for the whole batch, not one per request.
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Ingested], Any]]] = {}
        for job, outcome in zip(jobs, outcomes, strict=True):
            by_loop.setdefault(job.loop, []).append((job.future, outcome))
        for loop, answers in by_loop.items():
            # RuntimeError: the request's event loop is gone (the server is shutting down).
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle_all, answers)

    def _process(self, jobs: list[_Job]) -> None:
        outcomes: list[Ingested | BaseException]
        try:
            outcomes = self._together(jobs)
        except Exception as exc:
            if not isinstance(exc, WarroomError | IntegrityError):
                # Whatever broke may have broken the connection too: the fallback uses the pool.
                log.warning("alert intake batch failed (%s); retrying each request alone", exc)
                self._disconnect()
            outcomes = [self._alone(job) for job in jobs]
        self._answer_all(jobs, outcomes)

    def _alone(self, job: _Job) -> Ingested | BaseException:
        try:
            return ingest_alone(self.context, job.secret, job.expected, job.source, job.events, job.signed)
        except Exception as exc:
            if not isinstance(exc, WarroomError):
                log.exception("alert intake failed")
            return exc

    def _connect(self) -> Connection:
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
                        identities[cache_key] = integrations.identify_integration(
                            connection, job.secret, job.expected
                        )
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


def writer_for(state: Any, context: AppContext) -> IntakeWriter:
    writer: IntakeWriter | None = getattr(state, "alert_intake_writer", None)
    if writer is None or writer.context is not context:
        writer = IntakeWriter(context)
        state.alert_intake_writer = writer
    return writer
