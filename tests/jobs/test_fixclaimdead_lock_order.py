"""A job whose lease expired after its last attempt (its worker died each time) ends dead, and its failure
hook records that on its incident (a dead page goes on the timeline), which locks the incident. The worker
used to do so inside its claim's transaction, holding the rows of the due jobs it was claiming; an
acknowledgement locks the incident, then cancels the incident's pending jobs: the two took the locks in
opposite orders and deadlocked on PostgreSQL (the hook's part aborted: "failure hook raised", the dead page
never on the timeline). Such a job is now buried in a transaction of its own that locks the incident first,
before the claim takes any job's row.

Deterministic: the acknowledgement holds the incident until the worker is seen waiting for it
(``pg_blocking_pids``), then looks whether the worker holds a due job's row (``NOWAIT``) and acknowledges."""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import OperationalError

from tests.alerts.test_incident_lock_order import waits_for_lock
from tests.oncall.conftest import org  # noqa: F401  (a fixture: the example org, console channels)
from tests.oncall.test_fixdeadlock_lock_order import carol_paged_by, page_queued
from tests.oncall.test_paging import T0, timeline
from tests.peers import Recorder
from warroom.context import AppContext
from warroom.incidents import service as incident_service
from warroom.jobs.models import Job, JobStatus
from warroom.jobs.worker import Worker
from warroom.notify import service as notify
from warroom.notify.models import Delivery, DeliveryStatus

WORKER = "worker-claims"
ACKNOWLEDGER = "api-acknowledges"
DIED = "crashed"


def died_on_its_last_attempt(context: AppContext, incident_id: int) -> tuple[int, int]:
    """A notification of the incident whose worker (``crashed``) died while sending it, on its last attempt,
    its lease over: (the delivery, its job)."""
    with context.db.write() as session:
        delivery = notify.send(
            session, channel="console", to="", template="test", context={}, incident_id=incident_id
        )
        session.flush()
        delivery_id, job_id = delivery.id, delivery.job_id
        assert job_id is not None
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(
                status=JobStatus.running,
                lease_owner=DIED,
                lease_expires_at=T0 - timedelta(seconds=1),
                attempts=Job.max_attempts,
                started_at=T0 - timedelta(minutes=1),
            )
        )
    return delivery_id, job_id


def job_of(context: AppContext, job_id: int) -> Job:
    with context.db.read() as session:
        found = session.get(Job, job_id)
        assert found is not None
        return found


def delivery_status(context: AppContext, delivery_id: int) -> DeliveryStatus:
    with context.db.read() as session:
        found = session.get(Delivery, delivery_id)
        assert found is not None
        return found.status


def told(caplog: pytest.LogCaptureFixture, *words: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if any(word in r.getMessage() for word in words)]


def test_a_job_dead_of_an_expired_lease_is_not_buried_while_the_claim_holds_due_jobs(
    context: AppContext, pager: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    if context.db.is_sqlite:
        pytest.skip("SQLite runs one write transaction at a time: no row locks to order")
    carol_paged_by(context, pager)
    incident_id, page_id, page_job = page_queued(context)  # carol's page: a job due now
    spent_delivery, spent_job = died_on_its_last_attempt(context, incident_id)
    worker = Worker(context, name="survivor", lane="network", concurrency=1, lease=timedelta(seconds=60))
    caplog.set_level(logging.INFO, logger="warroom")

    held = threading.Event()
    pid: list[int] = []
    seen: dict[str, str] = {}
    outcomes: dict[str, Any] = {}

    def acknowledge() -> None:
        try:
            with context.db.write() as session:
                # Should the old order come back, the worker is the one PostgreSQL aborts (it waits first).
                session.execute(text("SET LOCAL deadlock_timeout = '30s'"))
                pid.append(int(session.scalar(text("SELECT pg_backend_pid()")) or 0))
                incident_service.get_incident(session, incident_id, for_update=True)  # as acknowledge does
                held.set()
                waits_for_lock(context, pid[0], time.monotonic() + 20)  # the worker waits for the incident
                try:
                    with session.begin_nested():
                        session.execute(select(Job.id).where(Job.id == page_job).with_for_update(nowait=True))
                    seen["page job"] = "free"
                except OperationalError:
                    seen["page job"] = "locked by the worker"
                incident_service.acknowledge(session, ref=incident_id, performer="carol")
            outcomes[ACKNOWLEDGER] = None
        except BaseException as exc:  # asserted on below
            outcomes[ACKNOWLEDGER] = exc
        finally:
            held.set()

    def claim() -> None:
        try:
            outcomes[WORKER] = worker.claim()
        except BaseException as exc:  # asserted on below
            outcomes[WORKER] = exc

    acknowledger = threading.Thread(target=acknowledge, name=ACKNOWLEDGER)
    acknowledger.start()
    assert held.wait(20)
    claimer = threading.Thread(target=claim, name=WORKER)
    claimer.start()
    acknowledger.join(60)
    claimer.join(60)
    assert not acknowledger.is_alive() and not claimer.is_alive()

    # While it waited for the incident, the worker held no job's row: the acknowledgement cancelled the page.
    assert seen == {"page job": "free"}
    assert outcomes == {ACKNOWLEDGER: None, WORKER: []}
    assert told(caplog, "failure hook raised", "deadlock", "lost a") == []
    assert job_of(context, page_job).status == JobStatus.cancelled
    assert delivery_status(context, page_id) == DeliveryStatus.withdrawn
    dead = job_of(context, spent_job)
    assert dead.status == JobStatus.dead and dead.lease_owner is None
    assert (
        dead.last_error
        == f"worker {DIED} stopped without finishing (lease expired) after {dead.max_attempts} attempt(s)"
    )
    assert delivery_status(context, spent_delivery) == DeliveryStatus.dead
    assert told(caplog, "is dead") == [f"job {spent_job} (notify.deliver) is dead: {dead.last_error}"]
    notes = [e.data for e in timeline(context, incident_id) if e.kind == "notification"]
    assert [n["delivery_id"] for n in notes if n and n.get("status") == "dead"] == [spent_delivery]


def test_a_job_dead_of_an_expired_lease_is_buried_once_and_never_claimed(
    context: AppContext, pager: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    carol_paged_by(context, pager)
    incident_id, page_id, page_job = page_queued(context)
    spent_delivery, spent_job = died_on_its_last_attempt(context, incident_id)
    caplog.set_level(logging.INFO, logger="warroom")

    worker = Worker(context, name="survivor", lane="network", concurrency=1, lease=timedelta(seconds=60))
    assert worker.claim() == [page_job]
    assert worker.claim() == []  # nothing more: the dead one is not claimed, nor buried twice

    dead = job_of(context, spent_job)
    assert dead.status == JobStatus.dead
    assert dead.lease_owner is None and dead.lease_expires_at is None and dead.finished_at is not None
    assert (
        dead.last_error
        == f"worker {DIED} stopped without finishing (lease expired) after {dead.max_attempts} attempt(s)"
    )
    assert told(caplog, "is dead") == [f"job {spent_job} (notify.deliver) is dead: {dead.last_error}"]
    assert told(caplog, "failure hook raised", "retrying") == []
    # Its failure hook ran as the last one: the notification is a dead letter, on the incident's timeline.
    assert delivery_status(context, spent_delivery) == DeliveryStatus.dead
    notes = [e.data for e in timeline(context, incident_id) if e.kind == "notification"]
    assert [n["delivery_id"] for n in notes if n and n.get("status") == "dead"] == [spent_delivery]
    assert delivery_status(context, page_id) == DeliveryStatus.pending
    assert job_of(context, page_job).lease_owner == "survivor"
