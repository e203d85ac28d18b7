"""The worker loop: claim due jobs, run each in its own transaction, record the outcome.

Claiming is one short write transaction. On PostgreSQL it selects due rows ``FOR UPDATE SKIP LOCKED``
so several workers split the work without waiting on each other; on SQLite the write transaction is
``BEGIN IMMEDIATE``, which serialises claims. A claim sets ``status=running`` and a lease
(``lease_owner``, ``lease_expires_at``); a worker that dies leaves its lease to expire, after which any
worker claims the job again. Each job then runs in its own write transaction that first checks the
worker still holds the lease, so a job is done at most once per successful commit.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections import Counter as Tally
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager, suppress
from datetime import datetime, timedelta
from typing import Any, Literal, NamedTuple

from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import ColumnElement, and_, case, func, or_, select, true, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from warroom.context import AppContext
from warroom.db import as_sqlalchemy_error, is_retryable, trouble, unavailable, unavailable_reason, utcnow
from warroom.errors import NotFound
from warroom.incidents import service as incident_service
from warroom.jobs.models import Job, JobStatus
from warroom.jobs.service import (
    PermanentFailure,
    RetryLater,
    backoff,
    handler_for,
    network_kinds,
    set_last_error,
)

log = logging.getLogger("warroom.jobs")

JOBS_RUN = Counter(
    "warroom_jobs_run_total", "Jobs run by this process, by kind and outcome.", ["kind", "outcome"]
)
JOB_LATENESS = Histogram(
    "warroom_job_lateness_seconds",
    "How long after its run_at a job was claimed.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
)

CLOCK_OFFSET = Gauge(
    "warroom_clock_offset_seconds",
    "This process's clock minus the database server's (PostgreSQL), as its worker last measured it: jobs run "
    "on this process's clock, so it should stay within a second or two of 0. NaN until measured (a process "
    "without a worker, or the database not answering yet); 0 on SQLite (one machine, one clock).",
)
CLOCK_OFFSET.set(float("nan"))  # not 0: an offset never measured must not read as "in step"

# How far this process's clock may be from the database's before the worker warns, and how often it looks.
CLOCK_TOLERANCE = 2.0
CLOCK_CHECK_EVERY = 60.0

# Which jobs a worker claims: "network" ones wait on peers (deliveries: seconds each, a batch of them
# minutes), "local" ones are quick (escalation steps, delayed rules, sweeps). ``run_forever`` runs the two in
# separate loops, so a timer never waits behind a batch of slow deliveries.
Lane = Literal["all", "network", "local"]


class DueJob(NamedTuple):
    id: int
    run_at: datetime
    peer: str | None


# A deferred-transaction handler whose I/O is done (a message went out) says how to write its outcome again,
# on a fresh session, should the commit of its transaction fail (``record_after_io``).
_REDO = "warroom.jobs.redo_outcome"


def record_after_io(session: Session, write: Callable[[Session], dict[str, Any]]) -> dict[str, Any]:
    """In a deferred-transaction handler, after its I/O: write its outcome on ``session`` with ``write``, and
    let the worker write it again on a fresh session if the database cannot take the commit now (a restart):
    the worker retries that with backoff, for up to a lease, instead of leaving the job to run (and send)
    again once its lease expires. ``write`` must only write what the I/O's result says, and be safe to run
    again from the start."""
    session.info[_REDO] = write
    return write(session)


def clock_offset(context: AppContext) -> float | None:
    """Seconds this process's clock is ahead of the database server's (negative: behind), the round trip
    taken into account; None on SQLite (one machine, one clock)."""
    if context.db.is_sqlite:
        return None
    with context.db.read() as session:
        before = utcnow()
        started = time.monotonic()
        # clock_timestamp(), not now(): now() is the transaction's start.
        theirs: datetime | None = session.scalar(select(func.clock_timestamp()))
        trip = time.monotonic() - started
    if theirs is None:
        return None
    ours = before + timedelta(seconds=trip / 2)
    return float((ours - theirs).total_seconds())


def default_worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Worker:
    """Runs due jobs. ``run_once`` does one claim-and-run pass (tests call it with a frozen clock);
    ``run_forever`` loops until its stop event is set, then finishes or releases what it claimed."""

    def __init__(
        self,
        context: AppContext,
        *,
        name: str | None = None,
        poll_interval: float | None = None,
        batch: int | None = None,
        lease: timedelta | None = None,
        retry_base: float | None = None,
        retry_cap: float | None = None,
        concurrency: int | None = None,
        lane: Lane = "all",
    ) -> None:
        settings = context.settings
        self.lane = lane
        self.context = context
        # Leases hold the name and a lane's suffix (String(200)).
        self.name = (name or default_worker_name())[:180]
        self.poll_interval = poll_interval if poll_interval is not None else settings.worker_poll_interval
        self.batch = batch if batch is not None else settings.worker_batch
        self.lease = lease if lease is not None else timedelta(seconds=settings.worker_lease_seconds)
        self.retry_base = retry_base if retry_base is not None else settings.job_retry_base_seconds
        self.retry_cap = retry_cap if retry_cap is not None else settings.job_retry_cap_seconds
        # Jobs of one claimed batch run in parallel threads, each in its own transaction, so waits on
        # the database and on peers overlap. SQLite serialises writers, so there it is one at a time.
        self.wanted_concurrency = max(
            1, concurrency if concurrency is not None else settings.worker_concurrency
        )
        # Deliveries hold no write transaction while they wait on a peer, so they overlap on SQLite too: one
        # slow peer does not hold up a page to someone else.
        self.concurrency = 1 if context.db.is_sqlite and lane != "network" else self.wanted_concurrency
        # Of those, how many may go to one peer at once: a slow webhook or mail server leaves the other slots
        # to pages bound elsewhere.
        self.peer_limit = settings.worker_peer_limit or max(1, self.concurrency // 2)
        self._executor: ThreadPoolExecutor | None = None
        self._stop: threading.Event | None = None
        self._clock_checked_at: float | None = None
        self._clock_skewed = False

    # --- claiming -------------------------------------------------------------------------------

    def claim(self, now: datetime | None = None, *, limit: int | None = None) -> list[int]:
        """Take up to ``limit`` due jobs (and jobs whose lease expired) and commit the lease."""
        return [job_id for job_id, _ in self._claim(now, limit=limit)]

    def _claim(
        self, now: datetime | None = None, *, limit: int | None = None, in_flight: Tally[str] | None = None
    ) -> list[tuple[int, str | None]]:
        """``claim``, with each job's peer. With ``in_flight`` (this worker's running jobs by peer), no peer
        gets more than ``peer_limit`` at once, and the last free slot goes only to a peer with nothing in
        flight: due jobs of a busy peer wait, and later jobs bound elsewhere go first. Two hung peers then
        hold at most all slots but one, which a page to anyone else still gets."""
        now = now or utcnow()
        limit = limit or self.batch
        with_room = self._with_room(in_flight, limit)
        if not self._anything_to_claim(now, with_room):
            return []
        self._bury_expired(now)
        with self.context.db.write() as session:
            query = select(Job.id, Job.run_at, Job.peer).where(
                Job.status == JobStatus.pending, Job.run_at <= now, self._in_lane(), with_room
            )
            rows = [
                DueJob(*row)
                for row in session.execute(
                    query.order_by(Job.run_at)  # the index's order: no sort, and a plain index scan
                    # Wider than the free slots: several due for one peer must not hide the rest.
                    .limit(limit if in_flight is None else max(limit, self.batch))
                    .with_for_update(skip_locked=True)
                )
            ]
            # Jobs whose worker died mid-run compete with the pending ones by when they were due: under a
            # steady backlog, a dead worker's page must not wait for every newer job (it waited minutes
            # when only free slots went to them). Their attempt counts, and a job that keeps killing its
            # worker ends dead instead of looping forever (a deferred job it held but never started was not
            # charged, see ``_charged_at_claim``): that one was buried before this transaction
            # (``_bury_expired``), and one this pass left is not claimed. They count against their peer's
            # limit like any other: a dead worker's deliveries to a hung peer must not take every slot.
            expired: dict[int, Job] = {}
            for job in session.scalars(
                select(Job)
                .where(
                    Job.status == JobStatus.running,
                    Job.lease_expires_at <= now,
                    Job.attempts < Job.max_attempts,
                    self._in_lane(),
                    with_room,
                )
                .order_by(Job.run_at)
                .limit(limit if in_flight is None else max(limit, self.batch))
                .with_for_update(skip_locked=True)
            ):
                expired[job.id] = job
                rows.append(DueJob(job.id, job.run_at, job.peer))
            rows.sort(key=lambda row: row.run_at)
            if in_flight is not None:
                rows = _within_peer_limit(
                    rows, in_flight, self.peer_limit, limit, reserve=self.concurrency > 1
                )
            else:
                rows = rows[:limit]
            due = [job_id for job_id, _, _ in rows]
            peers: dict[int, str | None] = {job_id: peer for job_id, _, peer in rows}
            for job_id, run_at, _ in rows:
                if job_id in expired:
                    job = expired[job_id]
                    log.warning(
                        "job %s (%s): lease of %s expired; retrying", job.id, job.kind, job.lease_owner
                    )
                else:
                    JOB_LATENESS.observe(max(0.0, (now - run_at).total_seconds()))
            session.flush()
            if due:
                session.execute(
                    update(Job)
                    .where(Job.id.in_(due))
                    .values(
                        status=JobStatus.running,
                        lease_owner=self.name,
                        lease_expires_at=now + self.lease,
                        attempts=_charged_at_claim(Job.attempts + 1),
                        started_at=now,
                    )
                    .execution_options(synchronize_session=False)
                )
        return [(job_id, peers[job_id]) for job_id in due]

    def _spent(self, now: datetime) -> ColumnElement[bool]:
        """Jobs of this lane whose lease expired after their last attempt: their worker died each time."""
        return and_(
            Job.status == JobStatus.running,
            Job.lease_expires_at <= now,
            Job.attempts >= Job.max_attempts,
            self._in_lane(),
        )

    def _bury_expired(self, now: datetime) -> None:
        """Mark dead (up to a batch of) the jobs whose lease expired after their last attempt, each in a short
        transaction of its own that locks the job's incident before the job: the order every transaction that
        locks both takes (an acknowledgement or a resolve locks the incident, then cancels its pending jobs).
        Done in the claim's transaction, the failure hook (a dead page goes on the incident's timeline) locked
        the incident while that held the rows of the jobs it was claiming: it deadlocked with an
        acknowledgement on PostgreSQL."""
        spent = self._spent(now)
        with self.context.db.read() as session:
            found = session.execute(
                select(Job.id, Job.incident_id).where(spent).order_by(Job.run_at).limit(self.batch)
            ).all()
        for job_id, incident_id in found:
            with self.context.db.write() as session:
                if incident_id is not None:
                    with suppress(NotFound):  # deleted since (a job outlives its incident): nothing to lock
                        incident_service.get_incident(session, incident_id, for_update=True)
                # Skip one another worker is burying now; one finished meanwhile no longer matches.
                job = session.scalar(
                    select(Job)
                    .where(Job.id == job_id, spent)
                    .with_for_update(skip_locked=True)
                    .execution_options(populate_existing=True)
                )
                if job is None:
                    continue
                job.status = JobStatus.dead
                # The worker's name is whatever ``--name`` was given: escaped as a peer's text is.
                error = set_last_error(
                    job,
                    f"worker {job.lease_owner} stopped without finishing (lease expired) "
                    f"after {job.attempts} attempt(s)",
                )
                job.lease_owner = None
                job.lease_expires_at = None
                job.finished_at = now
                log.warning("job %s (%s) is dead: %s", job.id, job.kind, error)
                self._failure_hook(session, job, error, final=True)

    def _with_room(self, in_flight: Tally[str] | None, free: int) -> ColumnElement[bool]:
        """Jobs that may take one of ``free`` slots: no peer, or a peer below its limit; with one slot left,
        only a peer with nothing in flight."""
        most = peer_cap(free, self.peer_limit, reserve=self.concurrency > 1)
        full = sorted(peer for peer, count in (in_flight or {}).items() if count >= most)
        return or_(Job.peer.is_(None), Job.peer.not_in(full)) if full else true()

    def _anything_to_claim(self, now: datetime, with_room: ColumnElement[bool]) -> bool:
        """A plain read first: an idle poll takes no write lock, so on SQLite it never queues behind (or
        holds up) alert intake and API writes."""
        with self.context.db.read() as session:
            found = session.scalar(
                select(Job.id)
                .where(
                    or_(
                        and_(Job.status == JobStatus.pending, Job.run_at <= now, with_room),
                        and_(Job.status == JobStatus.running, Job.lease_expires_at <= now),
                    ),
                    self._in_lane(),
                )
                .limit(1)
            )
        return found is not None

    def release(self, job_ids: list[int]) -> int:
        """Give claimed, unstarted jobs back: pending again, lease cleared, the attempt not counted."""
        if not job_ids:
            return 0
        with self.context.db.write() as session:
            result = session.execute(
                update(Job)
                .where(Job.id.in_(job_ids), Job.status == JobStatus.running, Job.lease_owner == self.name)
                .values(
                    status=JobStatus.pending,
                    lease_owner=None,
                    lease_expires_at=None,
                    attempts=_charged_at_claim(Job.attempts - 1),
                )
                .execution_options(synchronize_session=False)
            )
        released = int(getattr(result, "rowcount", 0) or 0)
        if released:
            log.info("released %d claimed job(s) on shutdown", released)
        return released

    # --- running --------------------------------------------------------------------------------

    def _held(self, session: Session, job_id: int, *, lost: str = "before it ran; skipping") -> Job | None:
        """The job, locked, if this worker still holds its lease; else None, logging the lease as lost
        ``lost`` (when: before running it, or after, when its outcome is another worker's to record)."""
        job = session.get(Job, job_id, with_for_update=True, populate_existing=True)
        if job is None or job.status != JobStatus.running or job.lease_owner != self.name:
            log.info("job %s: lease lost %s", job_id, lost)
            return None
        return job

    def run_job(self, job_id: int, now: datetime | None = None) -> bool:
        """Run one claimed job in its own write transaction. False if this worker lost its lease.

        The success path is one transaction: lock the row, run the handler, mark it done, commit. A
        failing handler's transaction is rolled back whole (its writes with it) and the failure is
        recorded in a second one, which keeps the common path free of savepoints.
        """
        kind: str | None = None
        try:
            with self.context.db.write() as session:
                job = self._held(session, job_id)
                if job is None:
                    return False
                kind = job.kind
                spec = handler_for(job.kind)
                if spec is None:
                    raise LookupError(f"no handler is registered for job kind {job.kind!r}")
                if not spec.deferred_transaction:
                    self._mark_done(job, spec.handler(self.context, session, job), now)
                else:
                    # The lease ran from the claim, and the job may have waited behind others of its batch:
                    # its I/O gets a whole lease from now, so no other worker takes it (and sends again)
                    # while a slow peer answers.
                    job.lease_expires_at = (now or utcnow()) + self.lease
                    # Its attempt counts from here, committed before it runs (see ``_charged_at_claim``).
                    job.attempts += 1
                    job.started_at = now or utcnow()
            if spec.deferred_transaction:
                # The lease is ours (committed above): the handler's I/O runs before its transaction begins,
                # and the lease is renewed while it waits, so a peer slower than a lease is not sent twice.
                with self._lease_kept(job_id):
                    deferred = self.context.db.write_session()
                    try:
                        with deferred as session:
                            result = spec.handler(self.context, session, job)
                            if not self._commit_done(session, job_id, result, now):
                                return False
                    except Exception as exc:
                        redo = deferred.info.get(_REDO)
                        if redo is None or not unavailable(exc):
                            raise
                        # Its I/O is done (the message went out): write that down once the database is
                        # back, rather than leave the job to be sent again when its lease expires.
                        recorded = self._record_outcome_again(job, redo, exc, now)
                        if recorded is None:
                            raise
                        if not recorded:
                            return False
        except Exception as exc:
            if kind is None:
                raise  # the database failed before the job was reached: the lease expires, it runs again
            return self._record_failure(job_id, exc, now)
        JOBS_RUN.labels(kind=kind, outcome="done").inc()
        return True

    record_retry_pause = 0.5  # seconds before the first retry of an outcome; doubles, up to 10 s

    def _record_outcome_again(
        self, job: Job, redo: Callable[[Session], dict[str, Any]], exc: Exception, now: datetime | None
    ) -> bool | None:
        """A deferred job did its I/O but the database could not take its outcome (``exc``): write it again
        (``redo``) with backoff for up to a lease (the lease is renewed meanwhile), one log line a failure.
        True once recorded; False if the lease was lost meanwhile; None if the database stayed away."""
        give_up = time.monotonic() + self.lease.total_seconds()
        pause = self.record_retry_pause
        failures = 0
        while True:
            failures += 1
            left = give_up - time.monotonic()
            if left <= 0:
                log.error(
                    "job %s (%s): its outcome could not be recorded after %d attempt(s) (%s); it runs again "
                    "when its lease expires",
                    job.id,
                    job.kind,
                    failures,
                    unavailable_reason(exc),
                )
                return None
            wait_for = min(pause, left)
            log.warning(
                "job %s (%s): done, but could not record its outcome: %s; retrying in %.1fs",
                job.id,
                job.kind,
                trouble(exc),
                wait_for,
            )
            time.sleep(wait_for)
            pause = min(pause * 2, 10.0)
            try:
                with self.context.db.write_session() as session:
                    result = redo(session)
                    if not self._commit_done(session, job.id, result, now):
                        return False
            except Exception as again:
                if not unavailable(again):
                    raise
                exc = again
                continue
            log.info("job %s (%s): outcome recorded after %d failed attempt(s)", job.id, job.kind, failures)
            return True

    @contextmanager
    def _lease_kept(self, job_id: int) -> Iterator[None]:
        """Renew the job's lease every third of a lease until the block ends (from another thread: the
        block is waiting on a peer)."""
        done = threading.Event()

        def renew() -> None:
            while not done.wait(max(self.lease.total_seconds() / 3, 0.05)):
                try:
                    with self.context.db.write() as session:
                        session.execute(
                            update(Job)
                            .where(
                                Job.id == job_id,
                                Job.status == JobStatus.running,
                                Job.lease_owner == self.name,
                            )
                            .values(lease_expires_at=utcnow() + self.lease)
                            .execution_options(synchronize_session=False)
                        )
                except Exception as exc:
                    if unavailable(exc):  # one line while the database is away
                        log.warning("job %s: could not renew its lease: %s; retrying", job_id, trouble(exc))
                    else:
                        log.warning("job %s: could not renew its lease; retrying", job_id, exc_info=True)

        keeper = threading.Thread(target=renew, name=f"lease-{job_id}", daemon=True)
        keeper.start()
        try:
            yield
        finally:
            done.set()
            keeper.join()

    def _failure_hook(self, session: Session, job: Job, error: str, *, final: bool) -> None:
        spec = handler_for(job.kind)
        if spec is None or spec.on_failure is None:
            return
        try:
            with session.begin_nested():
                spec.on_failure(self.context, session, job, error, final)
        except Exception:
            log.exception("job %s (%s): failure hook raised", job.id, job.kind)

    def _commit_done(self, session: Session, job_id: int, result: Any, now: datetime | None) -> bool:
        """Mark the job done with ``result`` and commit, if this worker still holds it (else roll back: the
        lease went to another worker, whose outcome stands); whether it did."""
        held = self._held(
            session,
            job_id,
            lost="while it ran here: another worker took it (it may run twice); its outcome is that worker's",
        )
        if held is None:
            session.rollback()
            return False
        self._mark_done(held, result, now)
        session.commit()
        return True

    @staticmethod
    def _mark_done(job: Job, result: dict[str, Any] | None, now: datetime | None) -> None:
        job.status = JobStatus.done
        job.result = _json_result(result)
        job.finished_at = now or utcnow()
        job.lease_owner = None
        job.lease_expires_at = None

    def _record_failure(self, job_id: int, exc: Exception, now: datetime | None) -> bool:
        with self.context.db.write() as session:
            job = self._held(
                session,
                job_id,
                lost=f"while it ran here (it failed: {type(exc).__name__}); another worker took it",
            )
            if job is None:
                return False
            job.lease_owner = None
            job.lease_expires_at = None
            if isinstance(exc, RetryLater) and not exc.counts_attempt:
                outcome = "retry_later"
                job.status = JobStatus.pending
                job.attempts = max(0, job.attempts - 1)
                job.run_at = (now or utcnow()) + exc.delay
                if exc.reason:  # else the failure before it stays the one to read
                    set_last_error(job, exc.reason)
            elif is_retryable(exc) and job.attempts < job.max_attempts:
                # A deadlock or serialization failure (PostgreSQL): the other transaction has gone through,
                # so run it again now, not after a backoff (an escalation step a race made 5 s late). The
                # attempt counts, so a job that keeps losing still ends.
                outcome = "failed"
                job.status = JobStatus.pending
                job.run_at = now or utcnow()
                set_last_error(
                    job, f"lost a race with another transaction ({type(exc).__name__}); ran again at once"
                )
                log.info(
                    "job %s (%s) lost a race (%s); running it again", job.id, job.kind, type(exc).__name__
                )
            else:
                error = set_last_error(
                    job, exc.reason if isinstance(exc, RetryLater) else f"{type(exc).__name__}: {exc}"
                )
                final = job.attempts >= job.max_attempts or isinstance(exc, PermanentFailure)
                outcome = "dead" if final else "failed"
                if final:
                    job.status = JobStatus.dead
                    job.finished_at = now or utcnow()
                    log.error(
                        "job %s (%s) is dead after %d attempt(s): %s", job.id, job.kind, job.attempts, error
                    )
                else:
                    job.status = JobStatus.pending
                    # A counted "later" (a 429) waits as asked, but no less than the backoff: a burst of
                    # rate limiting must not use up every attempt in seconds.
                    delay = backoff(job.attempts, base=self.retry_base, cap=self.retry_cap)
                    if isinstance(exc, RetryLater):
                        delay = max(delay, exc.delay)
                    job.run_at = (now or utcnow()) + delay
                    log.warning(
                        "job %s (%s) attempt %d/%d failed: %s; retry at %s",
                        job.id,
                        job.kind,
                        job.attempts,
                        job.max_attempts,
                        error,
                        job.run_at.isoformat(),
                    )
                self._failure_hook(session, job, error, final=final)
            kind = job.kind
        JOBS_RUN.labels(kind=kind, outcome=outcome).inc()
        return True

    def _run_claimed(self, job_id: int, now: datetime | None) -> bool | None:
        """Run one claimed job; None when a stop was requested before it started (release it)."""
        if self._stop is not None and self._stop.is_set():
            return None
        try:
            return self.run_job(job_id, now)
        except Exception as exc:
            # The transaction failed (e.g. the database went away): the job keeps its lease and is
            # retried by whichever worker claims it after the lease expires.
            if unavailable(exc):  # one line, the driver's first, not a stack trace per job
                log.warning(
                    "job %s: could not record its outcome: %s; it runs again when its lease expires",
                    job_id,
                    trouble(exc),
                )
            else:
                log.exception("job %s: could not record its outcome", job_id)
            return False

    def _catch_up(self) -> None:
        """Follow a reload another process announced before running what was claimed
        (``AppContext.catch_up_reloads``); a failure to look is logged, and the jobs run under the file this
        process has."""
        catch_up = self.context.catch_up_reloads
        if catch_up is None:
            return
        try:
            catch_up()
        except Exception as exc:
            log.warning(
                "worker %s: could not look for announced reloads: %s", self.name, unavailable_reason(exc)
            )

    def run_once(self, now: datetime | None = None) -> int:
        """Claim due jobs and run them; returns how many ran (successfully or not)."""
        claimed = self.claim(now)
        if not claimed:
            return 0
        self._catch_up()
        if self.concurrency > 1 and len(claimed) > 1:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.concurrency, thread_name_prefix=f"job-{self.name}")
            outcomes = list(self._executor.map(lambda job_id: self._run_claimed(job_id, now), claimed))
        else:
            outcomes = [self._run_claimed(job_id, now) for job_id in claimed]
        self.release([job_id for job_id, outcome in zip(claimed, outcomes, strict=True) if outcome is None])
        return sum(1 for outcome in outcomes if outcome)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    def next_due_in(self, with_room: ColumnElement[bool] | None = None) -> float | None:
        """Seconds until the earliest pending job is due (None when there is none), of those ``with_room``
        (whose peer is not at its limit) when given."""
        with self.context.db.read() as session:
            next_run = session.scalar(
                select(func.min(Job.run_at)).where(
                    Job.status == JobStatus.pending,
                    self._in_lane(),
                    with_room if with_room is not None else true(),
                )
            )
        if next_run is None:
            return None
        if next_run.tzinfo is None:  # SQLite aggregate results bypass the column type
            from datetime import UTC

            next_run = next_run.replace(tzinfo=UTC)
        return max(0.0, (next_run - utcnow()).total_seconds())

    def _in_lane(self) -> ColumnElement[bool]:
        if self.lane == "all":
            return true()
        network = network_kinds()
        return Job.kind.in_(network) if self.lane == "network" else Job.kind.not_in(network)

    def in_lane(self, lane: Lane) -> Worker:
        """A worker like this one that claims only ``lane``'s jobs, under a name of its own."""
        return Worker(
            self.context,
            name=f"{self.name}/{lane}",
            poll_interval=self.poll_interval,
            batch=self.batch,
            lease=self.lease,
            retry_base=self.retry_base,
            retry_cap=self.retry_cap,
            concurrency=self.wanted_concurrency,
            lane=lane,
        )

    def run_forever(self, stop_event: threading.Event) -> None:
        """Poll until ``stop_event`` is set, sleeping at most ``poll_interval`` (less if a job is due). A
        worker of every lane runs its network and local jobs in two loops (two threads), so that neither
        waits for the other."""
        if self.lane != "all":
            self._poll(stop_event)
            return
        network = self.in_lane("network")
        deliveries = threading.Thread(
            target=network._poll, args=(stop_event,), name=f"warroom-worker-{network.name}", daemon=True
        )
        deliveries.start()
        try:
            self.in_lane("local")._poll(stop_event)
        finally:
            deliveries.join()

    def _poll(self, stop_event: threading.Event) -> None:
        self._stop = stop_event
        log.info(
            "worker %s started (poll every %.2fs, %d at a time)",
            self.name,
            self.poll_interval,
            self.concurrency,
        )
        if self.lane == "network":
            if self.concurrency < 2:
                log.warning(
                    "worker %s runs one delivery at a time: a peer that hangs holds up every page until its "
                    "timeout (set WARROOM_WORKER_CONCURRENCY to 2 or more)",
                    self.name,
                )
            self._poll_slots(stop_event)
        else:
            self._poll_batches(stop_event)
        self.close()
        log.info("worker %s stopped", self.name)

    def check_clock(self) -> float | None:
        """At most once every ``CLOCK_CHECK_EVERY`` seconds (the first call at once), compare this process's
        clock with the database's (``clock_offset``): every due time, lease and timeline entry is this
        process's clock, so one ahead pages early, dates entries in the future and takes other workers' leases
        as expired. A warning line while they differ by more than ``CLOCK_TOLERANCE`` s, one line when they
        agree again; the offset is the gauge ``warroom_clock_offset_seconds``. Returns it (None when not
        measured: SQLite, not due yet, or the database not answering, which claiming reports)."""
        moment = time.monotonic()
        if self._clock_checked_at is not None and moment - self._clock_checked_at < CLOCK_CHECK_EVERY:
            return None
        self._clock_checked_at = moment
        try:
            offset = clock_offset(self.context)
        except Exception as exc:
            log.debug("worker %s: could not compare clocks with the database: %s", self.name, exc)
            return None
        if offset is None:
            if self.context.db.is_sqlite:
                CLOCK_OFFSET.set(0.0)
            return None
        CLOCK_OFFSET.set(offset)
        if abs(offset) > CLOCK_TOLERANCE:
            self._clock_skewed = True
            log.warning(
                "worker %s: this machine's clock is %.1fs %s the database server's: jobs run on this "
                "clock, so pages and escalation steps go out %s, timeline entries are dated off, and other "
                "workers' leases %s; synchronise every Warroom machine's clock and the database's (NTP)",
                self.name,
                abs(offset),
                "ahead of" if offset > 0 else "behind",
                "early" if offset > 0 else "late",
                "look expired to it too soon" if offset > 0 else "are taken over late",
            )
        elif self._clock_skewed:
            self._clock_skewed = False
            log.info("worker %s: its clock agrees with the database's again (%.1fs off)", self.name, offset)
        return offset

    def _poll_batches(self, stop_event: threading.Event) -> None:
        """Quick jobs: claim a batch in one transaction, run it, claim again (in this thread when one at a
        time, which keeps a thousand timers a second on SQLite)."""
        failures = 0
        while not stop_event.is_set():
            self.check_clock()  # at start, then once a minute
            try:
                ran = self.run_once()
            except Exception as exc:
                failures += 1
                self._claim_failed(exc, failures, stop_event)
                continue
            if failures:
                log.info("worker %s: claiming works again after %d failed attempts", self.name, failures)
                failures = 0
            if not ran:  # when some ran, more may have come due meanwhile
                stop_event.wait(self._idle_wait())

    def _poll_slots(self, stop_event: threading.Event) -> None:
        """Deliveries: keep up to ``concurrency`` running, claiming as slots free up rather than batch by
        batch, so none waits for the slowest peer of a batch it was claimed with."""
        failures = 0
        running: dict[Future[bool | None], tuple[int, str | None]] = {}
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix=f"job-{self.name}") as pool:
            while not stop_event.is_set():
                free = self.concurrency - len(running)
                claimed: list[tuple[int, str | None]] = []
                if free > 0:
                    in_flight = Tally(peer for _, peer in running.values() if peer is not None)
                    try:
                        claimed = self._claim(limit=free, in_flight=in_flight)
                    except Exception as exc:
                        failures += 1
                        self._claim_failed(exc, failures, stop_event)
                        continue
                    if failures:
                        log.info(
                            "worker %s: claiming works again after %d failed attempts", self.name, failures
                        )
                        failures = 0
                if claimed:
                    self._catch_up()
                for job_id, peer in claimed:
                    running[pool.submit(self._run_claimed, job_id, None)] = (job_id, peer)
                # Fewer due than free slots: nothing more until the next is due (the due jobs of a peer at
                # its limit wait for one of its own to finish). Otherwise (every slot busy) more may be due
                # as soon as one frees up.
                if len(claimed) < free:
                    in_flight = Tally(peer for _, peer in running.values() if peer is not None)
                    timeout = self._idle_wait(self._with_room(in_flight, self.concurrency - len(running)))
                else:
                    timeout = self.poll_interval
                if running:
                    done, _ = wait(running, timeout=timeout, return_when=FIRST_COMPLETED)
                    self._collect(running, done)
                else:
                    stop_event.wait(timeout)
            self._collect(running, wait(running).done)

    def _claim_failed(self, exc: Exception, failures: int, stop_event: threading.Event) -> None:
        """Back off while it lasts (up to 30 s), and log a database outage in one line, not a stack trace
        every poll."""
        pause = min(self.poll_interval * 2 ** min(failures - 1, 10), 30.0)
        if unavailable(exc):
            log.warning("worker %s: %s; retrying in %.1fs", self.name, trouble(exc), pause)
        elif isinstance(as_sqlalchemy_error(exc), SQLAlchemyError):
            # A database that can be reached but not used (its tables gone, a connection ended mid-query):
            # the driver's first line says why, without the SQL and its parameters on every attempt.
            log.warning(
                "worker %s: claiming failed (%s: %s); retrying in %.1fs",
                self.name,
                type(exc).__name__,
                unavailable_reason(exc),
                pause,
            )
        else:
            log.exception("worker %s: claiming failed; retrying in %.1fs", self.name, pause)
        stop_event.wait(pause)

    def _idle_wait(self, with_room: ColumnElement[bool] | None = None) -> float:
        try:
            due_in = self.next_due_in(with_room)
        except Exception:
            due_in = None
        return self.poll_interval if due_in is None else min(self.poll_interval, due_in)

    def _collect(
        self, running: dict[Future[bool | None], tuple[int, str | None]], done: set[Future[bool | None]]
    ) -> None:
        """Forget finished jobs; give back those a stop kept from starting."""
        finished = {future: running.pop(future) for future in done}
        self.release([job_id for future, (job_id, _) in finished.items() if future.result() is None])


def _charged_at_claim(charged: ColumnElement[int]) -> ColumnElement[int]:
    """A job's attempts after a claim (or a release) changes them by one. A deferred-transaction job (the
    network lane: deliveries, alert handlers) is charged when it starts, in the commit that renews its lease
    before it runs, so jobs a worker claimed with it and never reached are not charged when that worker dies
    (a handler that kills its worker must not use up the attempts of the jobs queued behind it). Other jobs
    run in the transaction that marks them done, with no commit before: they are charged at the claim."""
    deferred = network_kinds()
    if not deferred:
        return charged
    return case((Job.kind.in_(deferred), Job.attempts), else_=charged)


def peer_cap(free: int, limit: int, *, reserve: bool) -> int:
    """How many running jobs a peer may have for it to take one of ``free`` slots: ``limit``; with
    ``reserve``, the last free slot only for a peer with nothing in flight (so two hung peers never hold
    every slot). The claim's SQL and its pick among due jobs both go by this."""
    return 1 if reserve and free <= 1 else limit


def _within_peer_limit(
    rows: list[DueJob], in_flight: Tally[str], limit: int, wanted: int, *, reserve: bool
) -> list[DueJob]:
    """The first ``wanted`` of ``rows`` (due jobs, oldest first) whose peers are within ``peer_cap``,
    counting the jobs already in flight and those chosen before them."""
    counts = Tally(in_flight)
    chosen: list[DueJob] = []
    for row in rows:
        peer = row.peer
        if peer is not None:
            if counts[peer] >= peer_cap(wanted - len(chosen), limit, reserve=reserve):
                continue
            counts[peer] += 1
        chosen.append(row)
        if len(chosen) == wanted:
            break
    return chosen


def _json_result(result: Any) -> dict[str, Any] | None:
    if result is None:
        return None
    value = json.loads(json.dumps(result, default=str))
    return value if isinstance(value, dict) else {"value": value}


class WorkerThread:
    """A worker in a background thread (``warroom serve`` embeds one)."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.stop_event = threading.Event()
        self.thread = threading.Thread(
            target=worker.run_forever,
            args=(self.stop_event,),
            name=f"warroom-worker-{worker.name}",
            daemon=True,
        )

    def start(self) -> None:
        self.thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop claiming, let the job in hand finish, release the rest."""
        self.stop_event.set()
        self.thread.join(timeout)
        if self.thread.is_alive():
            log.warning("worker %s did not stop within %.0fs", self.worker.name, timeout)
