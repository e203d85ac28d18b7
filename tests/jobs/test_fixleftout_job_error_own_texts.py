"""Warroom's own texts in a job's ``last_error`` are kept as a peer's are (one visible line, escaped as the
log lines are, at most ``MAX_ERROR_LENGTH`` characters): they name things given from outside, a worker's
``--name`` (a lease expired) or whatever a handler's "retry later" reason names. Before, only a failure's
text went through the escaper, and these were kept raw."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from warroom.clock import clock
from warroom.context import AppContext
from warroom.jobs.models import Job, JobStatus
from warroom.jobs.service import MAX_ERROR_LENGTH, RetryLater, enqueue, job_handler
from warroom.jobs.worker import Worker

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
RAW = ("\x1b", "\r", "\n", "\u202e")


@job_handler("test.fixleftout-noop")
def _noop(context: AppContext, session: Session, job: Job) -> None:
    return None


@job_handler("test.fixleftout-retry-later")
def _retry_later(context: AppContext, session: Session, job: Job) -> None:
    raise RetryLater(60, job.payload["reason"])


def last_error(context: AppContext, job_id: int) -> tuple[JobStatus, str]:
    with context.db.read() as session:
        found = session.get(Job, job_id)
        assert found is not None and found.last_error is not None
        return found.status, found.last_error


def test_a_lease_expired_names_the_worker_escaped(context: AppContext) -> None:
    clock.set(START)
    with context.db.write() as session:
        job_id = enqueue(session, kind="test.fixleftout-noop", payload={}, max_attempts=1).id
    crashed = "w1\r\n\x1b[2Jjob 7 done \u202eok"
    assert Worker(context, name=crashed).claim() == [job_id]
    clock.advance(timedelta(minutes=10))
    assert Worker(context, name="survivor").run_once() == 0
    status, error = last_error(context, job_id)
    assert status == JobStatus.dead
    assert not any(raw in error for raw in RAW), repr(error)
    assert error == (
        "worker w1\\r\\n\\x1b[2Jjob 7 done \\u202eok stopped without finishing (lease expired) "
        "after 1 attempt(s)"
    )


def test_a_retry_later_reason_is_kept_escaped_and_bounded(context: AppContext) -> None:
    clock.set(START)
    with context.db.write() as session:
        short = enqueue(
            session, kind="test.fixleftout-retry-later", payload={"reason": "waits\nfor \x1b[31m"}
        ).id
        long = enqueue(
            session, kind="test.fixleftout-retry-later", payload={"reason": "z" * 996 + "\u202e" * 50}
        ).id
    Worker(context, name="w1").run_once()
    status, error = last_error(context, short)
    assert (status, error) == (JobStatus.pending, "waits\\nfor \\x1b[31m")
    status, error = last_error(context, long)
    assert status == JobStatus.pending
    assert len(error) <= MAX_ERROR_LENGTH and error == "z" * 996 + "…"
