"""A worker whose transaction PostgreSQL aborted to settle a deadlock (or a serialization failure) says it
lost a race with another transaction, not "database unavailable": nothing is down, and an operator reading
the latter goes looking for an outage."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import Any

import psycopg.errors
import pytest
from sqlalchemy import event, select, text
from sqlalchemy.exc import OperationalError

from warroom.context import AppContext
from warroom.db import as_sqlalchemy_error, trouble
from warroom.incidents import service as incident_service
from warroom.incidents.models import Incident
from warroom.incidents.schemas import IncidentCreate
from warroom.jobs.models import Job, JobStatus
from warroom.jobs.worker import Worker
from warroom.notify import service as notify
from warroom.notify.models import Delivery, DeliveryStatus

WORKER = "worker-records-outcome"


def test_a_lost_race_is_told_apart_from_an_outage() -> None:
    deadlock = as_sqlalchemy_error(psycopg.errors.DeadlockDetected("deadlock detected"))
    serialization = as_sqlalchemy_error(
        psycopg.errors.SerializationFailure("could not serialize access due to concurrent update")
    )
    outage = OperationalError("COMMIT", {}, Exception("server closed the connection unexpectedly"))
    assert trouble(deadlock) == "lost a lock race with another transaction (deadlock detected)"
    assert trouble(serialization) == (
        "lost a lock race with another transaction (could not serialize access due to concurrent update)"
    )
    assert trouble(outage) == "database unavailable (server closed the connection unexpectedly)"


def test_a_worker_whose_outcome_lost_a_deadlock_says_so(
    context: AppContext, caplog: pytest.LogCaptureFixture
) -> None:
    """Another transaction holds the delivery's row and then wants its incident while the worker, recording
    the delivery as sent, holds the incident and wants the delivery: a real deadlock, the worker its victim
    (the other waits far longer before it looks for one). The worker writes its outcome again, and its log
    line names the race."""
    if context.db.is_sqlite:
        pytest.skip("SQLite runs one write transaction at a time: no deadlocks")
    with context.db.write() as session:
        incident = incident_service.create_incident(
            session,
            org=context.org,
            data=IncidentCreate(title="Checkout slow", severity="P3", services=["api"]),
            performer="tester",
        )
        delivery_id = notify.send(
            session, channel="console", to="", template="test", context={}, incident_id=incident.id
        ).id
        incident_id = incident.id
    worker = Worker(context, name="w1", lane="network", concurrency=1, lease=timedelta(seconds=60))
    worker.record_retry_pause = 0.01
    [job_id] = worker.claim()

    # Both hold their first lock before either asks for its second.
    meet = threading.Barrier(2, timeout=20)
    met: list[str] = []

    def before(conn: Any, cursor: Any, statement: str, parameters: Any, context_: Any, many: bool) -> None:
        mine = threading.current_thread().name == WORKER and not met
        if mine and "FOR UPDATE" in statement and "FROM deliveries" in statement:  # it holds the incident
            met.append(statement)
            meet.wait()

    def other() -> None:
        with context.db.engine.begin() as connection:
            connection.execute(text("SET LOCAL deadlock_timeout = '30s'"))
            connection.execute(select(Delivery.id).where(Delivery.id == delivery_id).with_for_update())
            meet.wait()
            connection.execute(select(Incident.id).where(Incident.id == incident_id).with_for_update())

    errors: list[BaseException] = []

    def record() -> None:
        try:
            worker.run_job(job_id)
        except BaseException as exc:  # reported by the assertions
            errors.append(exc)

    caplog.set_level(logging.INFO, logger="warroom.jobs")
    event.listen(context.db.engine, "before_cursor_execute", before)
    try:
        threads = [threading.Thread(target=record, name=WORKER), threading.Thread(target=other)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        event.remove(context.db.engine, "before_cursor_execute", before)

    assert errors == []
    lines = [r.getMessage() for r in caplog.records if "could not record its outcome" in r.getMessage()]
    assert lines == [
        f"job {job_id} (notify.deliver): done, but could not record its outcome: lost a lock race with "
        "another transaction (deadlock detected); retrying in 0.0s"
    ]
    assert "database unavailable" not in caplog.text
    with context.db.read() as session:
        delivery = session.get(Delivery, delivery_id)
        job = session.get(Job, job_id)
        assert delivery is not None and delivery.status == DeliveryStatus.sent
        assert job is not None and job.status == JobStatus.done
