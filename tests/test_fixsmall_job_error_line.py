"""A peer's raw answer (here a pager webhook's 500 body) is kept in the job's ``last_error`` as one visible
line, escaped as the log lines are (``warroom.loglines.one_line``), and bounded: the API returns it and the
CLI shows it, so it must not carry terminal escapes, line breaks or bidi marks."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.oncall.test_dead_pages import hook, page_people_by
from tests.oncall.test_paging import T0, open_incident, run_at
from tests.peers import Recorder
from warroom.clock import clock
from warroom.context import AppContext
from warroom.jobs.models import Job, JobStatus
from warroom.jobs.service import MAX_ERROR_LENGTH, enqueue, job_handler
from warroom.jobs.worker import Worker
from warroom.notify.models import Delivery

# Clears the screen, ends the line, then reverses what follows on a terminal that honours U+202E.
PEER_BODY = "boom \x1b[2J\r\nX-Injected: yes \u202eevil"
RAW = ("\x1b", "\r", "\n", "\u202e")


def test_a_webhooks_answer_is_kept_as_one_escaped_line(
    context: AppContext, pager: Recorder, api: TestClient, admin: dict[str, str]
) -> None:
    pager.fail(
        "/carol",
        1,
        status=500,
        headers={"Content-Type": "text/plain; charset=utf-8"},
        body=PEER_BODY.encode(),
    )
    page_people_by(context, {"carol": [hook(pager, "/carol")]})
    clock.set(T0)
    open_incident(context)
    run_at(Worker(context, name="w1"), T0)
    assert len(pager.to("/carol")) == 1
    with context.db.read() as session:
        [(status, error)] = session.execute(
            select(Job.status, Job.last_error).where(Job.last_error.is_not(None))
        ).all()
        [delivery_error] = session.scalars(
            select(Delivery.last_error).where(Delivery.last_error.is_not(None))
        )
    assert status == JobStatus.pending  # a 500 is retried
    assert error is not None
    assert not any(raw in error for raw in RAW), repr(error)
    assert "answered 500: boom \\x1b[2J\\r\\nX-Injected: yes \\u202eevil" in error
    assert delivery_error == error  # the delivery's copy, which the failure hook is handed, too
    listed = api.get("/api/v1/jobs", params={"status": "pending"}, headers=admin).json()["items"]
    assert [job["last_error"] for job in listed if job["last_error"]] == [error]


@job_handler("test.fixsmall-long-failure")
def _fail_at_length(context: AppContext, session: Session, job: Job) -> None:
    raise RuntimeError(job.payload["message"])


def test_a_long_failure_is_cut_at_a_whole_escape_and_marked(context: AppContext) -> None:
    """Cut to ``MAX_ERROR_LENGTH`` characters with "…", never in the middle of an escape."""
    # "RuntimeError: " is 14 characters; the escapes of the 990 U+202E after the x's reach far past the cut.
    message = "x" * (MAX_ERROR_LENGTH - 14 - 4) + "\u202e" * 990
    with context.db.write() as session:
        job_id = enqueue(session, kind="test.fixsmall-long-failure", payload={"message": message}).id
    Worker(context, name="w1").run_once()
    with context.db.read() as session:
        job = session.get(Job, job_id)
        assert job is not None and job.last_error is not None
        error = job.last_error
    assert len(error) <= MAX_ERROR_LENGTH and error.endswith("x" * 4 + "…")
    assert "\u202e" not in error
    short = "RuntimeError: " + "y" * 20 + "\x1b"
    with context.db.write() as session:
        job_id = enqueue(session, kind="test.fixsmall-long-failure", payload={"message": short[14:]}).id
    Worker(context, name="w1").run_once()
    with context.db.read() as session:
        job = session.get(Job, job_id)
        assert job is not None
        assert job.last_error == "RuntimeError: " + "y" * 20 + "\\x1b"
