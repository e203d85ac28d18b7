"""A short database outage right after a delivery went out: the worker writes its outcome once the database
is back (with backoff, for up to a lease) instead of leaving the job running until its lease expires and
sending it again; each failed attempt is one log line, not a stack trace."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from warroom.context import AppContext
from warroom.jobs.models import Job, JobStatus
from warroom.jobs.worker import Worker
from warroom.notify import channels
from warroom.notify import service as notify
from warroom.notify.models import Delivery, DeliveryStatus


def test_a_sent_delivery_whose_outcome_the_database_refused_is_recorded_once_it_is_back(
    context: AppContext, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with context.db.write() as session:
        delivery_id = notify.send(session, channel="console", to="", template="test", context={}).id

    sent: list[int] = []
    real_deliver = channels.deliver

    def counting(*args: Any, **kwargs: Any) -> dict[str, Any]:
        sent.append(1)
        return real_deliver(*args, **kwargs)

    monkeypatch.setattr(channels, "deliver", counting)

    # PostgreSQL restarts as the worker commits the outcome: the next two commits fail.
    outage = {"left": 2}
    real_commit = Session.commit

    def commit(self: Session) -> None:
        if sent and outage["left"] > 0:
            outage["left"] -= 1
            self.rollback()
            raise OperationalError("COMMIT", {}, Exception("server closed the connection unexpectedly"))
        real_commit(self)

    monkeypatch.setattr(Session, "commit", commit)

    worker = Worker(context, name="w1", lease=timedelta(seconds=30), concurrency=1)
    worker.record_retry_pause = 0.01
    caplog.set_level(logging.INFO, logger="warroom.jobs")
    worker.run_once()

    assert outage["left"] == 0
    assert len(sent) == 1
    with context.db.read() as session:
        row = session.get(Delivery, delivery_id)
        assert row is not None and row.status == DeliveryStatus.sent
        job = session.query(Job).filter(Job.kind == "notify.deliver").one()
        assert job.status == JobStatus.done and job.lease_owner is None

    # Nothing left to send again, even after its lease would have expired.
    worker.run_once()
    assert len(sent) == 1

    failures = [r for r in caplog.records if "could not record its outcome" in r.getMessage()]
    assert len(failures) == 2, [r.getMessage() for r in caplog.records]
    assert all(r.exc_info is None and "\n" not in r.getMessage() for r in failures)
    assert "server closed the connection unexpectedly" in failures[0].getMessage()


def test_a_database_that_stays_away_leaves_the_job_to_its_lease_in_one_line_a_failure(
    context: AppContext, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with context.db.write() as session:
        notify.send(session, channel="console", to="", template="test", context={})

    def commit(self: Session) -> None:
        self.rollback()
        raise OperationalError("COMMIT", {}, Exception("the database system is shutting down"))

    def write_fails(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("BEGIN", {}, Exception("the database system is shutting down"))

    worker = Worker(context, name="w1", lease=timedelta(seconds=0.3), concurrency=1)
    worker.record_retry_pause = 0.05
    claimed = worker.claim()
    assert claimed
    monkeypatch.setattr(Session, "commit", commit)
    caplog.set_level(logging.INFO, logger="warroom.jobs")
    # The deferred job's first write (its lease) works; then the database goes for good.
    real_write = context.db.write
    calls = {"n": 0}

    def write(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] > 1:
            return write_fails()
        return real_write(*args, **kwargs)

    monkeypatch.setattr(context.db, "write", write)
    assert worker._run_claimed(claimed[0], None) is False
    messages = [r for r in caplog.records if r.name == "warroom.jobs"]
    assert messages and all(r.exc_info is None for r in messages), [r.getMessage() for r in messages]
    assert any("runs again when its lease expires" in r.getMessage() for r in messages)
