"""An alert handler runs for at most its time limit. Past it, its job stops waiting and records the failure,
its transaction is rolled back (its locks with it: SQLite's write lock, PostgreSQL's row locks), its session
refuses it from then on, and a loop in Python is interrupted.

What a stuck handler held before the limit, found by these tests without it: its job's slot in the worker
(``run_once`` never returned), and, once it had written through ``ctx.session``, on SQLite the database's
only write lock (every intake and API write waited up to the busy timeout) and on PostgreSQL the rows it
changed (an alert joining its incident waited, and with it the intake writer, so every other alert too)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text, update

from tests.alerts.conftest import generic_key
from tests.alerts.test_automation import fire, payments_alert
from tests.alerts.test_handler_safety import (
    alert_row,
    assert_chain_intact,
    handler_jobs,
    register,
    registered,
    timeline_actions,
)
from warroom.alerts import handlers
from warroom.alerts.handlers import HANDLER_KIND, HandlerContext, alert_handler, time_limit_of
from warroom.alerts.models import Alert
from warroom.context import AppContext
from warroom.incidents.models import Incident
from warroom.jobs.models import Job, JobStatus
from warroom.jobs.worker import Worker

__all__ = ["generic_key", "registered"]  # fixtures

LIMIT = 0.5
# How long a run past the limit may take to end in these tests: the limit, the rollback, recording.
PROMPTLY = 8.0


def run_in_thread(worker: Worker) -> tuple[threading.Thread, Callable[[], float]]:
    """``worker.run_once`` in a thread; and how long it took once it ended."""
    took: list[float] = []

    def run() -> None:
        started = time.monotonic()
        worker.run_once()
        took.append(time.monotonic() - started)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, lambda: took[0]


def handler_errors(context: AppContext) -> dict[str, dict[str, Any]]:
    return {error["handler"].rsplit(".", 1)[-1]: error for error in alert_row(context).handler_errors or []}


def wait_until(condition: Callable[[], bool], seconds: float = 10.0) -> bool:
    ends = time.monotonic() + seconds
    while time.monotonic() < ends:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def long_statement(context: AppContext) -> str:
    """A statement that runs for minutes unless stopped."""
    if context.db.is_sqlite:
        return (
            "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 10000000000) "
            "SELECT count(*) FROM n"
        )
    return "SELECT pg_sleep(120)"


def test_a_handler_stuck_in_a_call_after_writing_is_abandoned_at_its_limit_and_frees_intake(
    api: TestClient, context: AppContext, generic_key: str, viewer: dict[str, str], registered: list[Any]
) -> None:
    wrote, release, ended = threading.Event(), threading.Event(), threading.Event()
    seen: list[str] = []

    def stuck(ctx: HandlerContext) -> None:
        assert ctx.incident is not None
        ctx.alert.summary = "set by the stuck handler"
        ctx.incident.summary = "set by the stuck handler"
        ctx.session.flush()  # the incident's row (PostgreSQL), the write lock (SQLite)
        connection = ctx.session.connection()  # kept, to write with after the limit
        ctx.log("never on the timeline")
        wrote.set()
        try:
            release.wait(60)  # blocked in C (a slow peer): interrupted only once it returns
        except BaseException as exc:  # a handler that swallows everything, even the time limit
            seen.append(type(exc).__name__)
        ctx.alert.summary = "set after the limit"
        for attempt in (
            lambda: connection.execute(update(Alert).values(summary="written after the limit")),
            ctx.session.flush,
            lambda: ctx.session.execute(select(Alert.id)),
        ):
            try:
                attempt()
                seen.append("ran")
            except Exception as exc:
                seen.append(type(exc).__name__)
        ended.set()

    alert_handler("ChargeErrors", time_limit=LIMIT)(stuck)
    registered.append(stuck)
    [first] = fire(api, generic_key, payments_alert())
    assert first["incident"] == "INC-1"
    Worker(context, name="fan-out", lane="local").run_once()
    running, took = run_in_thread(Worker(context, name="handlers", concurrency=1))
    try:
        assert wrote.wait(10)
        running.join(PROMPTLY)
        assert not running.is_alive(), "the job still waits for its handler"
        assert took() < PROMPTLY
        assert not ended.is_set()  # the handler's thread still runs; nothing waits for it

        assert_intake_free(api, generic_key)
        assert_rolled_back_and_recorded(api, context, viewer, "stuck")
        assert "in stuck" in handler_errors(context)["stuck"]["trace"]  # where it was
        assert "never on the timeline" not in timeline_actions(api, viewer)
    finally:
        release.set()
        running.join(30)
    # When it goes on, its session refuses it, and the connection it kept writes nothing.
    assert ended.wait(30)
    assert seen[:2] == ["HandlerTimeLimit", "OperationalError"]  # the kept connection runs nothing
    # The session refuses (PostgreSQL's connection, ended by the server, makes SQLAlchemy refuse first).
    assert len(seen) == 4 and set(seen[2:]) <= {"SessionAbandoned", "PendingRollbackError"}
    assert wait_until(lambda: not handlers._overdue)
    assert alert_row(context).summary == "card charges failing"
    assert_chain_intact(context)
    # The database is as usable as before (no pooled connection left refusing statements).
    for _ in range(6):
        fire(api, generic_key, payments_alert(dedup_key="after", summary="still failing"))


def test_a_handler_stuck_in_a_long_statement_is_stopped_at_its_limit(
    api: TestClient, context: AppContext, generic_key: str, viewer: dict[str, str], registered: list[Any]
) -> None:
    wrote, ended = threading.Event(), threading.Event()

    def querying(ctx: HandlerContext) -> None:
        try:
            ctx.alert.summary = "set by the querying handler"
            assert ctx.incident is not None
            ctx.incident.summary = "set by the querying handler"
            ctx.session.flush()
            wrote.set()
            ctx.session.execute(text(long_statement(context)))
        finally:
            ended.set()

    alert_handler("ChargeErrors", time_limit=LIMIT)(querying)
    registered.append(querying)
    fire(api, generic_key, payments_alert())
    Worker(context, name="fan-out", lane="local").run_once()
    running, _ = run_in_thread(Worker(context, name="handlers", concurrency=1))
    try:
        assert wrote.wait(10)
        running.join(PROMPTLY)
        assert not running.is_alive(), "the job still waits for its handler"
        # Not just abandoned: the statement itself was stopped, and the handler's thread ended.
        assert ended.wait(5)
        assert wait_until(lambda: not handlers._overdue, 5)
        assert_intake_free(api, generic_key)
        assert_rolled_back_and_recorded(api, context, viewer, "querying")
    finally:
        running.join(30)
    assert_chain_intact(context)


def assert_intake_free(api: TestClient, key: str) -> None:
    """An alert joining the handler's incident, and another, are taken at once: its locks are gone."""
    started = time.monotonic()
    [joining] = fire(api, key, payments_alert(dedup_key="second", summary="more charges failing"))
    [other] = fire(api, key, payments_alert(dedup_key="disk", labels={"alertname": "DiskFull"}))
    assert time.monotonic() - started < 5
    assert joining["incident"] == "INC-1" and other["status"] == "firing"


def assert_rolled_back_and_recorded(
    api: TestClient, context: AppContext, viewer: dict[str, str], name: str
) -> None:
    assert alert_row(context).summary == "card charges failing"
    with context.db.read() as session:
        incident = session.get(Incident, 1)
        assert incident is not None and not incident.summary.startswith("set by the")
    error = handler_errors(context)[name]
    assert error["error"].startswith(f"HandlerTimeLimit: ran longer than {LIMIT:g} s, its time limit")
    assert error["trace"].startswith("Running at its time limit")
    actions = timeline_actions(api, viewer)
    assert sum(f"{name} failed on ALR-1: HandlerTimeLimit" in action for action in actions) == 1
    [job] = handler_jobs(context, kinds=(HANDLER_KIND,))
    assert job.status == JobStatus.done and job.result is not None and "failed" in job.result


def test_a_handler_looping_in_python_is_interrupted_at_its_limit(
    api: TestClient, context: AppContext, generic_key: str, registered: list[Any]
) -> None:
    stopped_by: list[str] = []
    give_up = threading.Event()  # only for a run where nothing stops the loop

    def loops(ctx: HandlerContext) -> None:
        count = 0
        try:
            while not give_up.is_set():
                with contextlib.suppress(Exception):  # swallows errors: not the time limit
                    count += 1
        except BaseException as exc:
            stopped_by.append(type(exc).__name__)
            raise

    alert_handler("ChargeErrors", time_limit=LIMIT)(loops)
    registered.append(loops)
    fire(api, generic_key, payments_alert())
    Worker(context, name="fan-out", lane="local").run_once()
    running, _ = run_in_thread(Worker(context, name="handlers", concurrency=1))
    try:
        running.join(PROMPTLY)
        assert not running.is_alive(), "the job still waits for its handler"
        # The loop itself stopped: no thread is left burning a CPU (and the worker's share of the GIL).
        assert wait_until(lambda: stopped_by == ["HandlerTimeLimit"], 5)
        assert wait_until(lambda: not handlers._overdue, 5)
    finally:
        give_up.set()
        running.join(30)
    assert handler_errors(context)["loops"]["error"].startswith("HandlerTimeLimit: ran longer than 0.5 s")


def test_handler_jobs_wait_while_too_many_abandoned_handlers_still_run(
    api: TestClient,
    context: AppContext,
    generic_key: str,
    registered: list[Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(handlers, "MAX_OVERDUE", 1)
    release = threading.Event()
    ran: list[str] = []

    def hangs(ctx: HandlerContext) -> None:
        release.wait(60)

    def quick(ctx: HandlerContext) -> None:
        ran.append(ctx.alert.ref)

    alert_handler("ChargeErrors", time_limit=LIMIT)(hangs)
    registered.append(hangs)
    register(registered, "DiskFull", quick)
    fire(api, generic_key, payments_alert())
    Worker(context, name="fan-out", lane="local").run_once()
    try:
        Worker(context, name="first", concurrency=1).run_once()  # abandons the hanging one
        assert len(handlers._overdue) == 1
        fire(api, generic_key, payments_alert(dedup_key="disk", labels={"alertname": "DiskFull"}))
        Worker(context, name="fan-out", lane="local").run_once()
        Worker(context, name="second", concurrency=1).run_once()
        assert ran == []  # waits rather than start another thread that may never end
        [waiting] = handler_jobs(context, JobStatus.pending, kinds=(HANDLER_KIND,))
        assert waiting.last_error is not None and "still running past their time limit" in waiting.last_error
    finally:
        release.set()
    assert wait_until(lambda: not handlers._overdue)
    with context.db.write() as session:  # due now rather than in five seconds
        session.execute(update(Job).where(Job.id == waiting.id).values(run_at=waiting.created_at))
    Worker(context, name="third", concurrency=1).run_once()
    assert ran == ["ALR-2"]


def test_a_handler_within_its_limit_keeps_what_it_did(
    api: TestClient, context: AppContext, generic_key: str, viewer: dict[str, str], registered: list[Any]
) -> None:
    def careful(ctx: HandlerContext) -> None:
        time.sleep(0.3)  # well within its limit
        ctx.alert.summary = "checked by the handler"
        ctx.log("Checked the card processor")

    alert_handler("ChargeErrors", time_limit=5)(careful)
    registered.append(careful)
    fire(api, generic_key, payments_alert())
    Worker(context, name="fan-out", lane="local").run_once()
    Worker(context, name="handlers", concurrency=1).run_once()
    assert alert_row(context).summary == "checked by the handler"
    assert alert_row(context).handler_errors in (None, [])
    assert "Checked the card processor" in timeline_actions(api, viewer)
    assert not handlers._overdue


def test_time_limits_are_per_handler_and_checked() -> None:
    def plain(ctx: HandlerContext) -> None:
        pass

    def patient(ctx: HandlerContext) -> None:
        pass

    try:
        alert_handler("LimitsPlain")(plain)
        alert_handler("LimitsPatient", time_limit=30)(patient)
        assert time_limit_of(plain) == handlers.DEFAULT_TIME_LIMIT == 10.0
        assert time_limit_of(patient) == 30.0
    finally:
        handlers.unregister(plain)
        handlers.unregister(patient)
    assert time_limit_of(patient) == handlers.DEFAULT_TIME_LIMIT
    for wrong in (0, -1, float("inf"), float("nan"), True, "5"):
        with pytest.raises(ValueError, match="time_limit is a positive number of seconds"):
            alert_handler("LimitsWrong", time_limit=wrong)  # type: ignore[arg-type]
