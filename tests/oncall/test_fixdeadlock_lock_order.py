"""A page's delivery being recorded (sent, or failed) while someone acknowledges its incident: both lock the
incident and the delivery, and must take them in one order (the incident first). The worker used to lock the
delivery, then the incident (to write its timeline entry); an acknowledgement locks the incident, then
withdraws the deliveries not sent yet. On PostgreSQL the two deadlocked: each stalled for deadlock_timeout,
one was aborted (the worker logged "database unavailable", an API request could end in a 409).

Each test lets both transactions get as far as their first lock and meet there (a barrier, hooked on the SQL
each sends), then go on: in the old order each then waited for the other's lock, deterministically."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, select

from tests.oncall.test_paging import T0, escalation, open_incident, run_at, timeline
from tests.peers import Recorder
from warroom.clock import clock
from warroom.context import AppContext
from warroom.incidents import service as incident_service
from warroom.jobs.models import Job, JobStatus
from warroom.jobs.worker import Worker
from warroom.notify.config import WebhookChannel, WebhookSettings
from warroom.notify.models import Delivery, DeliveryStatus
from warroom.notify.service import DELIVER_JOB
from warroom.oncall.config import NotificationRule
from warroom.oncall.models import EscalationState

WORKER = "worker-records-outcome"
ACKNOWLEDGER = "api-acknowledges"


def carol_paged_by(context: AppContext, pager: Recorder) -> None:
    """carol (step 1 of the P1 escalation) is paged by a webhook to ``pager``."""
    channel = WebhookChannel(name="pager", type="webhook", settings=WebhookSettings(secret="pager secret"))
    rule = NotificationRule(channel="pager", to=pager.url("/carol"))
    people = [
        p.model_copy(update={"contact_methods": [], "notification_rules": [rule]}) if p.name == "carol" else p
        for p in context.org.people
    ]
    context.org = context.org.model_copy(
        update={"people": people, "notification_channels": [*context.org.notification_channels, channel]}
    )


def page_queued(context: AppContext) -> tuple[int, int, int]:
    """A P1 incident whose first step paged carol: (incident, her delivery, its job), the job claimed by
    the delivery worker and not run yet."""
    clock.set(T0)
    incident_id = open_incident(context)
    run_at(Worker(context, name="timers", lane="local"), T0)  # the escalation's first step; no deliveries
    with context.db.read() as session:
        delivery_id, job_id = session.execute(
            select(Delivery.id, Delivery.job_id).where(
                Delivery.incident_id == incident_id, Delivery.status == DeliveryStatus.pending
            )
        ).one()
        assert session.get(Job, job_id).kind == DELIVER_JOB  # type: ignore[union-attr]
    return incident_id, delivery_id, job_id


def meet_before(context: AppContext, meet: threading.Barrier, locks: dict[str, str]) -> Callable[[], None]:
    """Hook the SQL the threads send: the first statement thread ``name`` sends that locks rows of table
    ``locks[name]`` (``… FROM <table> … FOR UPDATE``) waits until the other thread got to its own.
    Returns what removes the hook."""
    met: set[str] = set()

    def before(conn: Any, cursor: Any, statement: str, parameters: Any, context_: Any, many: bool) -> None:
        name = threading.current_thread().name
        table = locks.get(name)
        if table is None or name in met or "FOR UPDATE" not in statement:
            return
        if f"FROM {table}" in statement:
            met.add(name)
            meet.wait()

    engine = context.db.engine
    event.listen(engine, "before_cursor_execute", before)
    return lambda: event.remove(engine, "before_cursor_execute", before)


def race(context: AppContext, worker: Worker, job_id: int, incident_id: int) -> list[BaseException]:
    """The worker runs the job while carol acknowledges the incident; each first lock held (the worker's,
    in the old order: the delivery; the acknowledgement's: the incident), they meet, then take their
    second (the incident; the delivery, to withdraw it). What either raised."""
    errors: list[BaseException] = []
    meet = threading.Barrier(2, timeout=20)
    unhook = meet_before(context, meet, {WORKER: "incidents", ACKNOWLEDGER: "deliveries"})

    def record() -> None:
        try:
            worker.run_job(job_id)
        except BaseException as exc:  # reported by the assertions
            errors.append(exc)

    def acknowledge() -> None:
        try:
            with context.db.write() as session:
                incident_service.acknowledge(session, ref=incident_id, performer="carol")
        except BaseException as exc:  # reported by the assertions
            errors.append(exc)

    threads = [
        threading.Thread(target=record, name=WORKER),
        threading.Thread(target=acknowledge, name=ACKNOWLEDGER),
    ]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        unhook()
    assert not any(thread.is_alive() for thread in threads)
    return errors


def lost_races(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What the worker logged of a transaction aborted (its outcome written again; its failure hook lost)."""
    told = ("could not record", "failure hook raised", "deadlock", "lost a")
    return [r.getMessage() for r in caplog.records if any(words in r.getMessage() for words in told)]


@pytest.fixture
def postgres_only(context: AppContext) -> AppContext:
    if context.db.is_sqlite:
        pytest.skip("SQLite runs one write transaction at a time: no row locks to order")
    return context


def test_a_page_sent_as_its_incident_is_acknowledged_takes_the_locks_in_one_order(
    postgres_only: AppContext, pager: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    context = postgres_only
    carol_paged_by(context, pager)
    incident_id, delivery_id, job_id = page_queued(context)
    worker = Worker(context, name="w1", lane="network", concurrency=1, lease=timedelta(seconds=60))
    worker.record_retry_pause = 0.01
    assert worker.claim() == [job_id]
    caplog.set_level(logging.INFO, logger="warroom")

    errors = race(context, worker, job_id, incident_id)

    assert errors == []
    assert lost_races(caplog) == []
    assert len(pager.to("/carol")) == 1
    with context.db.read() as session:
        delivery = session.get(Delivery, delivery_id)
        job = session.get(Job, job_id)
        assert delivery is not None and job is not None
        # The page went out while the acknowledgement withdrew it: it is recorded as sent.
        assert delivery.status == DeliveryStatus.sent
        assert job.status == JobStatus.done
    assert escalation(context, incident_id).state == EscalationState.acknowledged
    actions = [e.action for e in timeline(context, incident_id) if e.kind == "notification"]
    assert len(actions) == 1 and actions[0].startswith("Sent ")


def test_a_page_that_failed_as_its_incident_is_acknowledged_takes_the_locks_in_one_order(
    postgres_only: AppContext, pager: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    context = postgres_only
    carol_paged_by(context, pager)
    pager.fail("/carol", 1, status=503)
    incident_id, delivery_id, job_id = page_queued(context)
    worker = Worker(context, name="w1", lane="network", concurrency=1, lease=timedelta(seconds=60))
    assert worker.claim() == [job_id]
    caplog.set_level(logging.INFO, logger="warroom")

    errors = race(context, worker, job_id, incident_id)

    assert errors == []
    assert lost_races(caplog) == []
    assert len(pager.to("/carol")) == 1
    with context.db.read() as session:
        delivery = session.get(Delivery, delivery_id)
        job = session.get(Job, job_id)
        assert delivery is not None and job is not None
        # Withdrawn by the acknowledgement, it stays so: its retry will send nothing.
        assert delivery.status == DeliveryStatus.withdrawn
        assert delivery.attempts == 1
        assert job.status == JobStatus.pending and job.attempts == 1
    assert escalation(context, incident_id).state == EscalationState.acknowledged
