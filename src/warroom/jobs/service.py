"""Durable jobs: enqueue in the caller's transaction (the outbox), cancel, and the handler registry.

A state change and the side effects it causes commit together: ``enqueue`` only adds a row to the
caller's session. The worker (``jobs.worker``) claims due rows, runs the registered handler for the
row's ``kind`` in a write transaction, and retries failures with capped, jittered exponential backoff
until ``max_attempts``, after which the job is ``dead`` and keeps its last error.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, overload

from sqlalchemy import Select, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from warroom.db import get_or_404, utcnow
from warroom.errors import InvalidInput
from warroom.incidents.models import Incident
from warroom.jobs.models import Job, JobStatus
from warroom.loglines import one_line

if TYPE_CHECKING:
    from warroom.context import AppContext

Handler = Callable[["AppContext", Session, Job], "dict[str, Any] | None"]
# Called when an attempt failed (after the handler's own writes were rolled back), in the transaction
# that records the failure; ``final`` is true when the job is now dead.
FailureHook = Callable[["AppContext", Session, Job, str, bool], None]


# A failure's text as a job keeps it (``last_error``, which the API returns and the CLI shows): a peer's
# answer in it (a webhook's body, a mail server's reply, Slack's error) is cut to this many characters.
MAX_ERROR_LENGTH = 1000
# One character of ``one_line``'s output, an escape whole: a cut never leaves half of one (``\x1``).
_SHOWN_CHARACTER = re.compile(r"\\(?:x[0-9a-f]{2}|u[0-9a-f]{4}|.)|.", re.DOTALL)


def error_text(text: str) -> str:
    """A failure's ``text`` as the job keeps it: one visible line, escaped as the log lines are (a peer's
    answer may hold terminal escapes, line breaks, bidi marks), and at most ``MAX_ERROR_LENGTH`` characters,
    the cut marked with "…"."""
    shown = one_line(text)
    if len(shown) <= MAX_ERROR_LENGTH:
        return shown
    kept = 0
    for character in _SHOWN_CHARACTER.finditer(shown):
        if character.end() > MAX_ERROR_LENGTH - 1:
            break
        kept = character.end()
    return shown[:kept] + "…"


@overload
def set_last_error(job: Job, text: str) -> str: ...
@overload
def set_last_error(job: Job, text: None) -> None: ...
def set_last_error(job: Job, text: str | None) -> str | None:
    """Every write of a job's ``last_error`` goes through here (None clears it), so Warroom's own texts
    (a lease expired, naming the worker's ``--name``; a handler's "retry later" reason, naming a window or a
    job) are kept as a peer's are (``error_text``). Returns what was kept."""
    kept = None if text is None else error_text(text)
    job.last_error = kept
    return kept


class RetryLater(Exception):
    """Raised by a handler to run again after ``delay`` without counting an attempt; with
    ``counts_attempt`` (a peer that keeps asking us to slow down) the attempt counts, so the job still ends
    dead after ``max_attempts``, but waits ``delay`` rather than the backoff."""

    def __init__(self, delay: timedelta | float, reason: str = "", *, counts_attempt: bool = False) -> None:
        self.delay = delay if isinstance(delay, timedelta) else timedelta(seconds=delay)
        self.reason = reason
        self.counts_attempt = counts_attempt
        super().__init__(reason or f"retry in {self.delay.total_seconds():g}s")


class PermanentFailure(Exception):
    """Raised by a handler when trying again cannot help (a mailbox that does not exist, a webhook that
    answers 404): the job is dead at once, instead of after ``max_attempts`` retries spread over an hour."""


@dataclass(frozen=True)
class HandlerSpec:
    kind: str
    handler: Handler
    on_failure: FailureHook | None = None
    deferred_transaction: bool = False


_handlers: dict[str, HandlerSpec] = {}


def job_handler(
    kind: str, *, on_failure: FailureHook | None = None, deferred_transaction: bool = False
) -> Callable[[Handler], Handler]:
    """Register ``handler`` for jobs of ``kind``: ``def handler(context, session, job) -> dict | None``.

    The handler runs inside a write transaction that also marks the job done. With
    ``deferred_transaction`` (for handlers that wait on the network: SMTP, webhooks), that transaction
    starts only at the handler's first statement on ``session``: the handler reads what it needs through
    ``context.db.read()``, does its I/O, then writes, so a slow peer never holds the write lock (on
    SQLite, the only one). Such a handler must not change ``job`` itself.
    """

    def register(handler: Handler) -> Handler:
        _handlers[kind] = HandlerSpec(kind, handler, on_failure, deferred_transaction)
        return handler

    return register


def handler_for(kind: str) -> HandlerSpec | None:
    return _handlers.get(kind)


def registered_kinds() -> list[str]:
    return sorted(_handlers)


def network_kinds() -> list[str]:
    """The kinds whose handlers wait on peers (``deferred_transaction``): deliveries."""
    return sorted(kind for kind, spec in _handlers.items() if spec.deferred_transaction)


def backoff(attempts: int, *, base: float = 5.0, cap: float = 600.0, jitter: float = 0.2) -> timedelta:
    """Delay before the next try after ``attempts`` failed ones: base * 2^(n-1), capped, +/- jitter.

    The jitter spreads retries of many jobs that failed together (a peer was down) so they do not all
    hit it again in the same instant.
    """
    exponent = max(0, attempts - 1)
    delay = min(cap, base * (2 ** min(exponent, 30)))
    delay *= 1 + random.uniform(-jitter, jitter)
    return timedelta(seconds=min(cap, max(0.0, delay)))


def _json_payload(payload: dict[str, Any]) -> dict[str, Any]:
    try:
        value: dict[str, Any] = json.loads(json.dumps(payload))
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"job payload must be JSON: {exc}", {"field": "payload"}) from exc
    return value


def enqueue(
    session: Session,
    *,
    kind: str,
    payload: dict[str, Any],
    run_at: datetime | None = None,
    idempotency_key: str | None = None,
    incident_id: int | None = None,
    max_attempts: int = 8,
    peer: str | None = None,
) -> Job:
    """Add a job to the caller's transaction; it runs once that transaction commits and ``run_at`` passes.

    With an ``idempotency_key`` that already exists (in any status), the existing job is returned and
    nothing is added, so a retried request or a replayed event never schedules the same work twice.
    """
    if not kind:
        raise InvalidInput("job kind must not be empty", {"field": "kind"})
    if max_attempts < 1:
        raise InvalidInput("max_attempts must be at least 1", {"field": "max_attempts"})
    if run_at is not None and run_at.tzinfo is None:
        raise InvalidInput("run_at must be timezone-aware", {"field": "run_at"})
    payload = _json_payload(payload)
    if idempotency_key is not None:
        existing = session.scalar(select(Job).where(Job.idempotency_key == idempotency_key))
        if existing is not None:
            return existing
    now = utcnow()
    job = Job(
        kind=kind,
        payload=payload,
        run_at=run_at or now,
        status=JobStatus.pending,
        attempts=0,
        max_attempts=max_attempts,
        idempotency_key=idempotency_key,
        incident_id=incident_id,
        peer=peer[:300] if peer else None,
        created_at=now,
    )
    if idempotency_key is None:
        session.add(job)
        session.flush()
        return job
    try:
        # A SAVEPOINT, so losing the race on the unique key leaves the caller's transaction usable.
        with session.begin_nested():
            session.add(job)
            session.flush()
    except IntegrityError:
        existing = session.scalar(select(Job).where(Job.idempotency_key == idempotency_key))
        if existing is None:
            raise
        return existing
    return job


def enqueue_on_grid(
    session: Session,
    *,
    kind: str,
    key_prefix: str,
    payload: dict[str, Any],
    every: timedelta,
    after: datetime,
    peer: str | None = None,
) -> Job:
    """The next run of a recurring chain after ``after``, on a fixed grid (run n at n * ``every`` since the
    epoch): processes that schedule the same chain agree on the run's key, and so on one job. ``peer`` as for
    ``enqueue``."""
    seconds = max(1, int(every.total_seconds()))
    slot = int(after.timestamp()) // seconds + 1
    return enqueue(
        session,
        kind=kind,
        payload=payload,
        run_at=datetime.fromtimestamp(slot * seconds, UTC),
        idempotency_key=f"{key_prefix}{slot}",
        peer=peer,
    )


def start_grid_chain(
    session: Session,
    *,
    kind: str,
    key_prefix: str,
    payload: dict[str, Any],
    every: timedelta,
    peer: str | None = None,
) -> bool:
    """At startup: the chain's run due now, unless a run of it is pending (each run enqueues the next with
    ``enqueue_on_grid``). Whether one was started."""
    if has_pending(session, kind=kind, key_prefix=key_prefix):
        return False
    seconds = max(1, int(every.total_seconds()))
    now = utcnow()
    run = enqueue_on_grid(
        session,
        kind=kind,
        key_prefix=key_prefix,
        payload=payload,
        every=every,
        after=now - timedelta(seconds=seconds),
        peer=peer,
    )
    if run.status not in (JobStatus.pending, JobStatus.running):
        # This slot's run is over: it ended the chain (an org file without the entries, read a moment before
        # a reload put them back). The chain starts again at the next slot.
        enqueue_on_grid(
            session, kind=kind, key_prefix=key_prefix, payload=payload, every=every, after=now, peer=peer
        )
    return True


def has_pending(session: Session, *, kind: str, key_prefix: str) -> bool:
    """Whether a job of ``kind`` whose idempotency key starts with ``key_prefix`` is waiting or running: a
    chain of jobs (each scheduling the next) checks this before it starts again at startup."""
    found = session.scalar(
        select(Job.id)
        .where(
            Job.kind == kind,
            Job.status.in_([JobStatus.pending, JobStatus.running]),
            Job.idempotency_key.startswith(key_prefix, autoescape=True),
        )
        .limit(1)
    )
    return found is not None


def run_by(session: Session, *, kind: str, key_prefix: str, run_at: datetime) -> bool:
    """Whether a job of ``kind`` (key starting with ``key_prefix``) is waiting or running; a waiting one is
    moved to run no later than ``run_at`` (a deadline that came closer since it was set).

    A running one is never locked here: its worker holds it and then locks what the job reads (a
    heartbeat's row, which the caller may hold), and the two would deadlock."""
    session.execute(
        update(Job)
        .where(
            Job.kind == kind,
            Job.status == JobStatus.pending,
            Job.idempotency_key.startswith(key_prefix, autoescape=True),
            Job.run_at > run_at,
        )
        .values(run_at=run_at)
        .execution_options(synchronize_session=False)
    )
    return has_pending(session, kind=kind, key_prefix=key_prefix)


def cancel(
    session: Session,
    *,
    idempotency_key: str | None = None,
    kind: str | None = None,
    incident_id: int | None = None,
    key_prefix: str | None = None,
) -> int:
    """Cancel pending jobs matching every given filter (``key_prefix``: whose idempotency key starts with
    it); returns how many. Running jobs are left alone (their handler re-checks the state it acts on)."""
    if idempotency_key is None and kind is None and incident_id is None and key_prefix is None:
        raise InvalidInput("cancel needs at least one of idempotency_key, kind, incident_id, key_prefix")
    statement = update(Job).where(Job.status == JobStatus.pending)
    if idempotency_key is not None:
        statement = statement.where(Job.idempotency_key == idempotency_key)
    if key_prefix is not None:
        statement = statement.where(Job.idempotency_key.startswith(key_prefix, autoescape=True))
    if kind is not None:
        statement = statement.where(Job.kind == kind)
    if incident_id is not None:
        statement = statement.where(Job.incident_id == incident_id)
    result = session.execute(
        statement.values(status=JobStatus.cancelled, finished_at=utcnow()).execution_options(
            synchronize_session="fetch"
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)


def get_job(session: Session, job_id: int) -> Job:
    return get_or_404(session, Job, job_id, f"job {job_id}")


def _jobs_matching(
    session: Session,
    *,
    status: JobStatus | None,
    kind: str | None,
    incident_id: int | None,
    before_id: int | None,
) -> Select[Job]:
    """The jobs ``list_jobs`` pages through."""
    statement = select(Job)
    if before_id is not None:
        statement = statement.where(Job.id < before_id)
    if status is not None:
        statement = statement.where(Job.status == status)
    if kind is not None:
        statement = statement.where(Job.kind == kind)
    if incident_id is not None:
        # An incident that does not exist is named as such, not shown as "no jobs" (as notifications do).
        get_or_404(session, Incident, incident_id, f"incident INC-{incident_id}")
        statement = statement.where(Job.incident_id == incident_id)
    return statement


def count_jobs(
    session: Session,
    *,
    status: JobStatus | None = None,
    kind: str | None = None,
    incident_id: int | None = None,
    before_id: int | None = None,
) -> int:
    """How many jobs ``list_jobs`` pages through with these filters: a page's ``total`` (with ``before_id``,
    what is left), as the other lists give it."""
    statement = _jobs_matching(
        session, status=status, kind=kind, incident_id=incident_id, before_id=before_id
    )
    return session.scalar(select(func.count()).select_from(statement.subquery())) or 0


def list_jobs(
    session: Session,
    *,
    status: JobStatus | None = None,
    kind: str | None = None,
    incident_id: int | None = None,
    limit: int = 100,
    offset: int = 0,
    before_id: int | None = None,
) -> list[Job]:
    """Newest first; ``before_id``: those older than that one (keyset paging)."""
    statement = _jobs_matching(
        session, status=status, kind=kind, incident_id=incident_id, before_id=before_id
    )
    jobs = list(session.scalars(statement.order_by(Job.id.desc()).limit(limit).offset(offset)))
    if not jobs and kind is not None:
        from warroom import wiring  # every domain's handlers, as in the worker

        wiring.load()
    if not jobs and kind is not None and kind not in registered_kinds():
        known = sorted(set(registered_kinds()) | set(session.scalars(select(Job.kind).distinct())))
        # A misspelt kind would look like "no such jobs".
        raise InvalidInput(f"unknown job kind {kind!r}; kinds: {', '.join(known)}", {"field": "kind"})
    return jobs
