from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from warroom.app import create_app
from warroom.cli.main import app as cli
from warroom.clock import clock
from warroom.context import AppContext
from warroom.db import Database
from warroom.errors import InvalidInput
from warroom.incidents.models import Incident
from warroom.jobs import service
from warroom.jobs.models import Job, JobStatus
from warroom.jobs.service import RetryLater, backoff, enqueue, job_handler
from warroom.jobs.worker import Worker

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

_lock = threading.Lock()
side_effects: list[tuple[int, str]] = []
failure_calls: list[tuple[str, bool]] = []
later_calls: Counter[int] = Counter()


@job_handler("test.record")
def _record(context: AppContext, session: Session, job: Job) -> dict[str, Any]:
    with _lock:
        side_effects.append((job.payload["n"], job.lease_owner or ""))
    return {"n": job.payload["n"]}


@job_handler("test.flaky", on_failure=lambda c, s, job, error, final: failure_calls.append((error, final)))
def _flaky(context: AppContext, session: Session, job: Job) -> dict[str, Any]:
    # Writes made before the failure are rolled back with the attempt.
    enqueue(session, kind="test.record", payload={"n": -1})
    if job.attempts <= job.payload["fail_times"]:
        raise RuntimeError(f"boom on attempt {job.attempts}")
    return {"succeeded_on": job.attempts}


@job_handler("test.later")
def _later(context: AppContext, session: Session, job: Job) -> None:
    later_calls[job.id] += 1
    if later_calls[job.id] == 1:
        raise RetryLater(timedelta(seconds=30), "peer asked us to wait")


class _Deadlock(Exception):
    sqlstate = "40P01"


@job_handler("test.deadlocked")
def _deadlocked(context: AppContext, session: Session, job: Job) -> dict[str, Any]:
    if job.attempts <= job.payload["losses"]:
        raise OperationalError("SELECT … FOR UPDATE", {}, _Deadlock("deadlock detected"))
    return {"ran_on": job.attempts}


@pytest.fixture(autouse=True)
def _reset() -> None:
    side_effects.clear()
    failure_calls.clear()
    later_calls.clear()


def job(context: AppContext, job_id: int) -> Job:
    with context.db.read() as session:
        found = session.get(Job, job_id)
        assert found is not None
        return found


def count(context: AppContext, **filters: Any) -> int:
    with context.db.read() as session:
        statement = select(func.count()).select_from(Job).filter_by(**filters)
        return session.scalar(statement) or 0


def test_enqueue_and_run_when_due(context: AppContext) -> None:
    clock.set(START)
    with context.db.write() as session:
        job_id = enqueue(
            session, kind="test.record", payload={"n": 1}, run_at=START + timedelta(minutes=5), incident_id=7
        ).id
    worker = Worker(context, name="w1")
    assert worker.run_once() == 0
    clock.advance(timedelta(minutes=4, seconds=59))
    assert worker.run_once() == 0
    clock.advance(timedelta(seconds=1))
    assert worker.run_once() == 1
    done = job(context, job_id)
    assert done.status == JobStatus.done
    assert done.result == {"n": 1}
    assert done.attempts == 1
    assert done.started_at == START + timedelta(minutes=5)
    assert done.finished_at == START + timedelta(minutes=5)
    assert done.lease_owner is None
    assert done.incident_id == 7
    assert side_effects == [(1, "w1")]
    assert worker.run_once() == 0


def test_enqueue_joins_the_callers_transaction(context: AppContext) -> None:
    with pytest.raises(RuntimeError), context.db.write() as session:
        enqueue(session, kind="test.record", payload={"n": 1})
        raise RuntimeError("the state change failed")
    assert count(context) == 0


def test_failures_retry_with_backoff_until_dead(context: AppContext) -> None:
    clock.set(START)
    with context.db.write() as session:
        job_id = enqueue(session, kind="test.flaky", payload={"fail_times": 99}, max_attempts=3).id
    worker = Worker(context, name="w1", retry_base=5, retry_cap=600)
    delays = []
    for attempt in (1, 2):
        assert worker.run_once() == 1
        failed = job(context, job_id)
        assert failed.status == JobStatus.pending
        assert failed.attempts == attempt
        assert failed.last_error == f"RuntimeError: boom on attempt {attempt}"
        delays.append((failed.run_at - clock.now()).total_seconds())
        assert worker.run_once() == 0  # not due yet
        clock.advance(timedelta(seconds=601))
    assert 4 <= delays[0] <= 6
    assert 8 <= delays[1] <= 12
    assert worker.run_once() == 1
    dead = job(context, job_id)
    assert dead.status == JobStatus.dead
    assert dead.attempts == 3
    assert dead.last_error == "RuntimeError: boom on attempt 3"
    assert dead.finished_at == clock.now()
    assert [final for _, final in failure_calls] == [False, False, True]
    # the handler's own writes were rolled back with each failed attempt
    assert count(context, kind="test.record") == 0
    clock.advance(timedelta(hours=1))
    assert worker.run_once() == 0


def test_a_retry_that_succeeds(context: AppContext) -> None:
    clock.set(START)
    with context.db.write() as session:
        job_id = enqueue(session, kind="test.flaky", payload={"fail_times": 1}).id
    worker = Worker(context, name="w1")
    assert worker.run_once() == 1
    clock.advance(timedelta(minutes=10))
    assert worker.run_once() == 1
    done = job(context, job_id)
    assert done.status == JobStatus.done
    assert done.result == {"succeeded_on": 2}
    assert done.last_error == "RuntimeError: boom on attempt 1"
    assert count(context, kind="test.record") == 1  # the successful attempt's write stays


def test_backoff_grows_and_is_capped() -> None:
    for attempts in range(1, 40):
        delay = backoff(attempts, base=5, cap=600).total_seconds()
        expected = min(600, 5 * 2 ** (attempts - 1))
        assert expected * 0.8 - 1e-9 <= delay <= min(600, expected * 1.2) + 1e-9


def test_retry_later_does_not_count_an_attempt(context: AppContext) -> None:
    clock.set(START)
    with context.db.write() as session:
        job_id = enqueue(session, kind="test.later", payload={}, max_attempts=1).id
    worker = Worker(context, name="w1")
    assert worker.run_once() == 1
    waiting = job(context, job_id)
    assert waiting.status == JobStatus.pending
    assert waiting.attempts == 0
    assert waiting.run_at == START + timedelta(seconds=30)
    clock.advance(timedelta(seconds=30))
    assert worker.run_once() == 1
    assert job(context, job_id).status == JobStatus.done


def test_unknown_kind_ends_dead(context: AppContext) -> None:
    with context.db.write() as session:
        job_id = enqueue(session, kind="nobody.handles.this", payload={}, max_attempts=1).id
    assert Worker(context).run_once() == 1
    dead = job(context, job_id)
    assert dead.status == JobStatus.dead
    assert "no handler is registered for job kind 'nobody.handles.this'" in (dead.last_error or "")


def test_idempotency_key(context: AppContext) -> None:
    with context.db.write() as session:
        first = enqueue(session, kind="test.record", payload={"n": 1}, idempotency_key="page:INC-1:step:1")
        again = enqueue(session, kind="test.record", payload={"n": 2}, idempotency_key="page:INC-1:step:1")
        assert again.id == first.id
        other = enqueue(session, kind="test.record", payload={"n": 3}, idempotency_key="page:INC-1:step:2")
        assert other.id != first.id
    with context.db.write() as session:
        later = enqueue(session, kind="test.record", payload={"n": 4}, idempotency_key="page:INC-1:step:1")
        assert later.id == first.id
        enqueue(session, kind="test.record", payload={"n": 5})  # the transaction is still usable
    assert count(context) == 3
    Worker(context).run_once()
    with context.db.write() as session:
        # a finished job still holds its key: the same work is never scheduled twice
        assert (
            enqueue(session, kind="test.record", payload={}, idempotency_key="page:INC-1:step:1").id
            == first.id
        )
    assert sorted(n for n, _ in side_effects) == [1, 3, 5]


def test_idempotency_race_keeps_the_callers_transaction(context: AppContext, database_url: str) -> None:
    """Two transactions enqueue the same key at once: one job, and neither caller's transaction breaks."""
    if database_url.startswith("sqlite"):
        pytest.skip("SQLite write transactions are serialised, so the race cannot happen")
    other = Database(database_url)
    try:
        first_holds_the_key = threading.Event()
        results: dict[str, int] = {}

        def first() -> None:
            with context.db.write() as session:
                results["first"] = enqueue(
                    session, kind="test.record", payload={"n": 1}, idempotency_key="k"
                ).id
                first_holds_the_key.set()
                time.sleep(0.3)  # hold the uncommitted row so the second insert waits on it

        thread = threading.Thread(target=first)
        thread.start()
        first_holds_the_key.wait(5)
        with other.write() as session:
            session.execute(select(1))
            results["second"] = enqueue(session, kind="test.record", payload={"n": 2}, idempotency_key="k").id
            enqueue(session, kind="test.record", payload={"n": 3})
        thread.join()
        assert results["first"] == results["second"]
        assert count(context) == 2
    finally:
        other.dispose()


def test_bad_enqueue_and_cancel_input(context: AppContext) -> None:
    with context.db.write() as session:
        with pytest.raises(InvalidInput):
            enqueue(session, kind="test.record", payload={"when": datetime.now()})
        with pytest.raises(InvalidInput):
            enqueue(session, kind="test.record", payload={}, run_at=datetime(2026, 1, 1))
        with pytest.raises(InvalidInput):
            service.cancel(session)


def test_cancel_pending_jobs(context: AppContext) -> None:
    clock.set(START)
    with context.db.write() as session:
        for n in range(3):
            enqueue(
                session,
                kind="test.record",
                payload={"n": n},
                incident_id=1,
                run_at=START + timedelta(minutes=n),
            )
        enqueue(session, kind="test.record", payload={"n": 9}, incident_id=2)
        enqueue(session, kind="test.later", payload={}, incident_id=1, idempotency_key="escalate:1")
    with context.db.write() as session:
        assert service.cancel(session, idempotency_key="escalate:1") == 1
        assert service.cancel(session, kind="test.record", incident_id=1) == 3
    clock.advance(timedelta(hours=1))
    assert Worker(context).run_once() == 1
    assert [n for n, _ in side_effects] == [9]
    assert count(context, status=JobStatus.cancelled) == 4


def test_expired_lease_runs_again(context: AppContext) -> None:
    clock.set(START)
    with context.db.write() as session:
        job_id = enqueue(session, kind="test.record", payload={"n": 1}).id
    lost = Worker(context, name="crashed", lease=timedelta(seconds=60))
    survivor = Worker(context, name="survivor", lease=timedelta(seconds=60))
    assert lost.claim() == [job_id]  # ... and then the process dies before running it
    assert job(context, job_id).status == JobStatus.running
    assert survivor.run_once() == 0
    clock.advance(timedelta(seconds=59))
    assert survivor.run_once() == 0
    clock.advance(timedelta(seconds=1))
    assert survivor.run_once() == 1
    done = job(context, job_id)
    assert done.status == JobStatus.done
    assert done.attempts == 2
    assert side_effects == [(1, "survivor")]
    # the first worker comes back to life: it no longer holds the lease and does nothing
    assert lost.run_job(job_id) is False
    assert len(side_effects) == 1


def test_a_dead_workers_job_is_not_kept_waiting_behind_newer_ones(context: AppContext) -> None:
    """A backlog of newer jobs filled every claim, and a dead worker's job, older than all of them, waited for
    the backlog to drain (QA: a page two minutes late). It competes by when it was due."""
    clock.set(START)
    with context.db.write() as session:
        lost_job = enqueue(session, kind="test.record", payload={"n": 0}).id
    assert Worker(context, name="crashed", lease=timedelta(seconds=60)).claim() == [lost_job]
    clock.advance(timedelta(seconds=30))
    with context.db.write() as session:
        backlog = [enqueue(session, kind="test.record", payload={"n": n}).id for n in range(1, 4)]
    clock.advance(timedelta(seconds=31))  # the lease is over; three newer jobs are due
    survivor = Worker(context, name="survivor", batch=2)
    assert survivor.claim() == [lost_job, backlog[0]]


def test_a_job_that_keeps_killing_its_worker_ends_dead(context: AppContext) -> None:
    clock.set(START)
    with context.db.write() as session:
        job_id = enqueue(session, kind="test.record", payload={"n": 1}, max_attempts=1).id
    assert Worker(context, name="crashed").claim() == [job_id]
    clock.advance(timedelta(minutes=10))
    assert Worker(context, name="survivor").run_once() == 0
    dead = job(context, job_id)
    assert dead.status == JobStatus.dead
    assert "crashed stopped without finishing (lease expired)" in (dead.last_error or "")


def test_shutdown_releases_claimed_jobs(context: AppContext) -> None:
    clock.set(START)
    with context.db.write() as session:
        ids = [enqueue(session, kind="test.record", payload={"n": n}).id for n in range(3)]
    worker = Worker(context, name="w1")
    stop = threading.Event()
    stop.set()
    worker._stop = stop  # a stop requested between claiming and running
    assert worker.run_once() == 0
    for job_id in ids:
        released = job(context, job_id)
        assert released.status == JobStatus.pending
        assert released.attempts == 0
        assert released.lease_owner is None
    worker.run_forever(stop)  # returns at once
    assert Worker(context, name="w2").run_once() == 3


def test_committed_job_survives_a_restart(settings: Any, org: Any) -> None:
    clock.set(START)
    first = AppContext(settings=settings, db=Database(settings.resolved_database_url), org=org)
    with first.db.write() as session:
        job_id = enqueue(
            session, kind="test.record", payload={"n": 42}, run_at=START + timedelta(minutes=1)
        ).id
    first.db.dispose()  # the process goes away
    clock.advance(timedelta(minutes=2))
    restarted = AppContext(settings=settings, db=Database(settings.resolved_database_url), org=org)
    try:
        assert Worker(restarted).run_once() == 1
        assert job(restarted, job_id).status == JobStatus.done
        assert [n for n, _ in side_effects] == [42]
    finally:
        restarted.db.dispose()


def test_two_workers_run_each_job_exactly_once(settings: Any, org: Any, context: AppContext) -> None:
    total = 300
    with context.db.write() as session:
        for n in range(total):
            enqueue(session, kind="test.record", payload={"n": n})
    contexts = [
        AppContext(settings=settings, db=Database(settings.resolved_database_url), org=org) for _ in range(2)
    ]
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def work(worker_context: AppContext, name: str) -> None:
        try:
            worker = Worker(worker_context, name=name, batch=7)
            start.wait(10)
            while worker.run_once() or count(worker_context, status=JobStatus.pending):
                pass
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(c, f"worker-{i}")) for i, c in enumerate(contexts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    for worker_context in contexts:
        worker_context.db.dispose()
    assert not errors
    ran = sorted(n for n, _ in side_effects)
    assert ran == list(range(total))  # every job, none twice
    assert count(context, status=JobStatus.done) == total


def test_embedded_worker_runs_jobs_in_serve(context: AppContext) -> None:
    context.settings.run_worker = True
    context.settings.worker_poll_interval = 0.05
    with TestClient(create_app(context=context)) as client:
        assert client.app.state.worker is not None  # type: ignore[attr-defined]
        with context.db.write() as session:
            job_id = enqueue(session, kind="test.record", payload={"n": 5}).id
        deadline = time.monotonic() + 20
        while job(context, job_id).status != JobStatus.done and time.monotonic() < deadline:
            time.sleep(0.02)
    assert job(context, job_id).status == JobStatus.done
    assert side_effects[0][0] == 5


def test_cli_jobs_list_and_worker_once(context: AppContext, database_url: str) -> None:
    with context.db.write() as session:
        enqueue(session, kind="test.record", payload={"n": 1})
        enqueue(session, kind="test.record", payload={"n": 2}, run_at=clock.now() + timedelta(days=1))
    runner = CliRunner()
    listed = runner.invoke(cli, ["jobs", "list", "--database-url", database_url, "--json"])
    assert listed.exit_code == 0, listed.output
    assert '"status": "pending"' in listed.output
    ran = runner.invoke(cli, ["worker", "--once", "--database-url", database_url])
    assert ran.exit_code == 0, ran.output
    assert "ran 1 job(s)" in ran.output
    done = runner.invoke(cli, ["jobs", "list", "--status", "done", "--database-url", database_url])
    assert done.exit_code == 0, done.output
    assert "test.record" in done.output
    bad = runner.invoke(cli, ["jobs", "list", "--status", "finished", "--database-url", database_url])
    assert bad.exit_code != 0
    # A misspelt kind is refused rather than listed as no jobs; a real one with none lists none.
    typo = runner.invoke(cli, ["jobs", "list", "--kind", "oncall.strat", "--database-url", database_url])
    assert typo.exit_code == 1 and "unknown job kind 'oncall.strat'" in typo.output
    none_yet = runner.invoke(cli, ["jobs", "list", "--kind", "oncall.start", "--database-url", database_url])
    assert none_yet.exit_code == 0, none_yet.output


def test_sessions_know_their_context(context: AppContext) -> None:
    from warroom.context import context_of

    with context.db.write() as session:
        assert context_of(session) is context
    with context.db.read() as session:
        assert context_of(session).org is context.org


def test_jobs_api(
    context: AppContext, api: TestClient, admin: dict[str, str], viewer: dict[str, str]
) -> None:
    with context.db.write() as session:
        incident = Incident(title="Checkout down", severity="P3", created_by="test")  # a row only: no jobs
        session.add(incident)
        session.flush()
        enqueue(session, kind="test.record", payload={"n": 1}, incident_id=incident.id)
        enqueue(session, kind="test.later", payload={})
        ref = incident.ref
    listed = api.get("/api/v1/jobs", params={"status": "pending", "incident": ref}, headers=admin)
    assert listed.status_code == 200, listed.text
    assert [(j["kind"], f"INC-{j['incident_id']}") for j in listed.json()["items"]] == [("test.record", ref)]
    assert listed.json()["total"] == 1
    listed_all = api.get("/api/v1/jobs", headers=admin).json()
    assert [job["kind"] for job in listed_all["items"]] == ["test.later", "test.record", "alerts.retention"]
    assert (listed_all["total"], listed_all["limit"], listed_all["offset"]) == (3, 100, 0)
    assert api.get("/api/v1/jobs", headers=viewer).status_code == 403
    bad = api.get("/api/v1/jobs", params={"status": "finished"}, headers=admin)
    assert bad.status_code == 422
    assert bad.json()["error"]["details"][0]["field"] == "status"


def test_jobs_api_total_counts_what_the_filters_and_cursor_select(
    context: AppContext, api: TestClient, admin: dict[str, str]
) -> None:
    """``GET /api/v1/jobs`` answered a bare list: a script could not tell a full page from the whole queue.
    Its ``total`` is what the filters and ``before_id`` select, whatever ``limit`` and ``offset`` show."""
    with context.db.write() as session:
        incident = Incident(title="Checkout down", severity="P3", created_by="test")
        session.add(incident)
        session.flush()
        for n in range(5):
            enqueue(session, kind="test.record", payload={"n": n}, incident_id=incident.id if n < 2 else None)
        enqueue(session, kind="test.later", payload={})
        ref = incident.ref
        done = session.scalars(select(Job).where(Job.kind == "test.later")).one()
        done.status = JobStatus.done

    def page(**params: Any) -> tuple[list[int], int, int, int]:
        answer = api.get("/api/v1/jobs", params=params, headers=admin)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body.keys() == {"items", "total", "limit", "offset"}
        return [job["id"] for job in body["items"]], body["total"], body["limit"], body["offset"]

    every, total, _, _ = page()
    assert total == len(every) == 7  # with the retention job every app schedules
    assert page(limit=2) == (every[:2], 7, 2, 0)
    assert page(limit=2, offset=3) == (every[3:5], 7, 2, 3)
    assert page(offset=10) == ([], 7, 100, 10)
    assert page(kind="test.record", limit=1)[1:] == (5, 1, 0)
    assert page(status="pending")[1] == 6
    assert page(status="done") == ([every[0]], 1, 100, 0)
    assert page(incident=ref, limit=1, offset=1)[1:] == (2, 1, 1)
    # With the cursor, what is left after it, with the filters too.
    assert page(before_id=every[2], limit=1) == ([every[3]], 4, 1, 0)
    assert page(before_id=every[2], kind="test.record", offset=1)[:2] == (every[4:6], 3)
    assert page(before_id=every[-1])[:2] == ([], 0)


@job_handler("test.deferred", deferred_transaction=True)
def _deferred(context: AppContext, session: Session, job: Job) -> dict[str, Any]:
    with context.db.read() as reader:  # reads go through their own session
        pending = reader.scalar(select(func.count()).select_from(Job).where(Job.status == JobStatus.pending))
    if job.payload.get("fail"):
        enqueue(session, kind="test.record", payload={"n": -1})
        raise RuntimeError("peer down")
    enqueue(session, kind="test.record", payload={"n": 1})
    return {"pending_seen": pending}


def test_deferred_transaction_handlers(context: AppContext) -> None:
    clock.set(START)
    with context.db.write() as session:
        ok = enqueue(session, kind="test.deferred", payload={}).id
        failing = enqueue(session, kind="test.deferred", payload={"fail": True}, max_attempts=1).id
    assert Worker(context, concurrency=1).run_once() == 2
    assert job(context, ok).status == JobStatus.done
    assert job(context, ok).result == {"pending_seen": 0}
    assert job(context, failing).status == JobStatus.dead
    assert job(context, failing).last_error == "RuntimeError: peer down"
    # the successful handler's write committed with its job; the failed one's was rolled back
    assert count(context, kind="test.record") == 1


SLOW_PEER: list[str] = []


@job_handler("test.slow-peer", deferred_transaction=True)
def _slow_peer(context: AppContext, session: Session, job: Job) -> None:
    """A delivery whose peer answers slowly: while it waits, another worker looks for expired leases."""
    SLOW_PEER.append("sent")
    clock.advance(timedelta(seconds=50))
    taken = Worker(context, name="other", lease=timedelta(seconds=60)).claim()
    SLOW_PEER.append(f"other took {taken}")


def test_a_delivery_that_waited_in_its_batch_keeps_its_lease_while_it_runs(context: AppContext) -> None:
    """Claimed at START with a 60 s lease, started 40 s later (behind others of its batch), waiting 50 s
    on its peer: another worker must not take it over and send it again (a second page)."""
    clock.set(START)
    SLOW_PEER.clear()
    with context.db.write() as session:
        job_id = enqueue(session, kind="test.slow-peer", payload={}).id
    worker = Worker(context, name="first", lease=timedelta(seconds=60), concurrency=1)
    assert worker.claim() == [job_id]
    clock.advance(timedelta(seconds=40))
    assert worker.run_job(job_id) is True
    assert SLOW_PEER == ["sent", "other took []"]
    assert job(context, job_id).status == JobStatus.done


def test_a_bad_worker_setting_is_one_line_naming_it_and_an_empty_one_is_unset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = ["--database-url", f"sqlite:///{tmp_path / 'w.db'}"]
    runner = CliRunner()
    for value, reason in (("0", "greater than or equal to 1"), ("x", "valid integer"), ("100", "less than")):
        monkeypatch.setenv("WARROOM_WORKER_PEER_LIMIT", value)
        refused = runner.invoke(cli, ["worker", "--once", *database])
        assert refused.exit_code == 1, refused.output
        assert "WARROOM_WORKER_PEER_LIMIT: Input should be" in refused.output and reason in refused.output
        assert "Traceback" not in refused.output
    monkeypatch.setenv("WARROOM_WORKER_PEER_LIMIT", "")  # VAR= in an env file: unset
    assert runner.invoke(cli, ["worker", "--once", *database]).exit_code == 0


def test_a_job_that_lost_a_race_runs_again_at_once(context: AppContext) -> None:
    """A deadlock (PostgreSQL aborts one of the transactions) is no fault of the job: it runs again now, not
    after the backoff, so an escalation step is not seconds late. Each loss counts, so one that keeps losing
    ends dead."""
    clock.set(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    with context.db.write() as session:
        once = enqueue(session, kind="test.deadlocked", payload={"losses": 2}).id
        always = enqueue(session, kind="test.deadlocked", payload={"losses": 99}, max_attempts=3).id
    worker = Worker(context, name="w")
    while worker.run_once():  # the clock stands still: only a retry due now runs again
        pass
    with context.db.read() as session:
        won, lost = session.get(Job, once), session.get(Job, always)
        assert won is not None and lost is not None
        assert (won.status, won.attempts, won.result) == (JobStatus.done, 3, {"ran_on": 3})
        assert (lost.status, lost.attempts) == (JobStatus.dead, 3)
