"""A database that cannot be used right now gets 503 with Retry-After, from intake and from the API alike,
and nothing is stored; once it is back, the same requests succeed. Real conditions: a SQLite file whose write
lock another process holds past the busy timeout, and a PostgreSQL database that refuses connections."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from tests.alerts.conftest import make_key
from tests.peers import wait_until
from warroom.alerts.models import Alert
from warroom.app import create_app
from warroom.auth import service as auth_service
from warroom.auth.integrations import FORGET_REPLACED_KEY
from warroom.auth.models import Role
from warroom.context import AppContext
from warroom.db import Database
from warroom.incidents.models import Incident
from warroom.jobs import service as jobs
from warroom.jobs.models import JobStatus
from warroom.jobs.worker import Worker
from warroom.orgconfig import OrgConfig
from warroom.settings import Settings


@pytest.fixture
def impatient(settings: Settings, org: OrgConfig) -> Iterator[AppContext]:
    """The app's context with a SQLite busy timeout of 0.2 s, so a held lock makes writes fail fast."""
    settings = settings.model_copy(update={"sqlite_busy_timeout": 0.2})
    db = Database.from_settings(settings)
    yield AppContext(settings=settings, db=db, org=org)
    db.dispose()


@contextmanager
def database_down(context: AppContext) -> Iterator[None]:
    url = make_url(context.settings.resolved_database_url)
    if url.get_backend_name() == "sqlite":
        # Another process holds the write lock (reads still work in WAL mode).
        holder = sqlite3.connect(url.database or "", isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        return
    # PostgreSQL: the database refuses new connections and every open one is ended, as in a restart.
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    name = url.database
    try:
        with admin.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
            connection.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"),
                {"name": name},
            )
        yield
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        admin.dispose()


def job_status(context: AppContext, job_id: int) -> JobStatus:
    with context.db.read() as session:
        return jobs.get_job(session, job_id).status


def counts(context: AppContext) -> tuple[int, int]:
    with context.db.read() as session:
        return (
            session.scalar(select(func.count()).select_from(Alert)) or 0,
            session.scalar(select(func.count()).select_from(Incident)) or 0,
        )


def assert_unavailable(response: Any) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "5"
    error = response.json()["error"]
    assert error["code"] == "database_unavailable"
    assert error["message"] == "the database is unavailable right now; retry later"


def assert_unavailable_as_pagerduty(response: Any) -> None:
    """PagerDuty's error shape (its clients read ``status`` and ``message``), status and Retry-After kept."""
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "5"
    assert response.json() == {
        "status": "database_unavailable",
        "message": "the database is unavailable right now; retry later",
        "errors": ["the database is unavailable right now; retry later"],
    }


def assert_unavailable_as_opsgenie(response: Any) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "5"
    body = response.json()
    assert set(body) == {"message", "took", "requestId"}
    assert body["message"] == "the database is unavailable right now; retry later"


def refused_unavailable(source: str) -> float:
    labels = {"source": source, "reason": "unavailable"}
    return REGISTRY.get_sample_value("warroom_alert_deliveries_rejected_total", labels) or 0


def test_a_database_that_cannot_be_used_gets_503_and_stores_nothing(impatient: AppContext) -> None:
    context = impatient
    key, pd_key = make_key(context, "generic"), make_key(context, "pagerduty")
    genie = {"Authorization": f"GenieKey {make_key(context, 'opsgenie')}"}
    webhook_key = make_key(context, "webhook")
    with context.db.write() as session:
        token = auth_service.create_token(session, name="ic", role=Role.responder).token
    headers = {"Authorization": f"Bearer {token}"}
    alert = {"summary": "disk full on db-1", "dedup_key": "disk"}
    incident = {"title": "Checkout failing", "severity": "P1"}
    sqlite = context.db.is_sqlite
    # Each intake route counts its 503 as a refused delivery, the fast path's and the framework's alike.
    sources = ("generic", "pagerduty", "opsgenie", "webhook")
    refused_before = {source: refused_unavailable(source) for source in sources}

    with TestClient(create_app(context=context)) as api:
        assert (
            api.post(f"/api/v1/alerts?key={key}", json={"summary": "warm", "dedup_key": "w"}).status_code
            == 202
        )
        with database_down(context):
            assert_unavailable(api.post(f"/api/v1/alerts?key={key}", json=alert))
            # PagerDuty's and Opsgenie's routes answer in their own shapes, as their clients read them.
            assert_unavailable_as_pagerduty(
                api.post(
                    "/v2/enqueue",
                    json={
                        "routing_key": pd_key,
                        "event_action": "trigger",
                        "payload": {"summary": "replica lag", "source": "db-2", "severity": "error"},
                    },
                )
            )
            # Opsgenie's shape goes through the framework's routes, not the intake's fast path.
            assert_unavailable_as_opsgenie(
                api.post("/v2/alerts", json={"message": "replica lag"}, headers=genie)
            )
            kuma_down = {"heartbeat": {"status": 0, "msg": "timeout"}, "monitor": {"id": 3, "name": "shop"}}
            assert_unavailable(
                api.post(f"/api/v1/alerts/webhook/uptime-kuma?key={webhook_key}", json=kuma_down)
            )
            assert_unavailable(api.post("/api/v1/incidents", json=incident, headers=headers))
            health = api.get("/healthz")
            if sqlite:
                assert health.status_code == 200  # WAL: reads go on while a writer holds the lock
            else:
                assert_unavailable(health)  # a load balancer takes this node out
        # Nothing of what was refused was stored; the same requests now succeed.
        assert counts(context) == (1, 0)
        assert {source: refused_unavailable(source) - refused_before[source] for source in sources} == {
            source: 1 for source in sources
        }
        stored = api.post(f"/api/v1/alerts?key={key}", json=alert)
        assert stored.status_code == 202, stored.text
        assert api.post("/api/v1/incidents", json=incident, headers=headers).status_code == 201
        assert api.get("/healthz").status_code == 200
    assert counts(context) == (2, 1)


def test_a_connection_opened_while_a_writer_holds_the_lock_reads_and_healthz_stays_200(
    impatient: AppContext,
) -> None:
    """CI saw /healthz answer 503 "database is locked" under a held write lock, now and then: when the pool
    had no idle connection, the one it opened set the file's auto-vacuum mode, which takes the write lock,
    and waited out the busy timeout. In WAL mode neither a read nor opening a connection needs that lock."""
    context = impatient
    if not context.db.is_sqlite:
        pytest.skip("SQLite's write lock; PostgreSQL's held lock is test_a_held_postgres_lock_gets_503_...")
    with TestClient(create_app(context=context)) as api:
        assert api.get("/healthz").status_code == 200
        with database_down(context):
            # Every connection from here on is opened while the lock is held, as a pool grows under load.
            context.db.engine.dispose()
            for _ in range(2):
                health = api.get("/healthz")
                assert health.status_code == 200, health.text
                assert api.head("/healthz").status_code == 200
            with context.db.read() as session, context.db.read() as other:
                assert session.scalar(select(func.count()).select_from(Alert)) == 0
                assert other.scalar(select(func.count()).select_from(Incident)) == 0


def test_the_worker_backs_off_through_an_outage_and_then_runs_what_is_due(
    impatient: AppContext, caplog: pytest.LogCaptureFixture
) -> None:
    context = impatient
    with context.db.write() as session:
        # Any registered kind will do: this one finds nothing to erase and finishes.
        job_id = jobs.enqueue(session, kind=FORGET_REPLACED_KEY, payload={"integration_id": 999}).id
    worker = Worker(context, name="outage", poll_interval=0.05)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run_forever, args=(stop,), daemon=True)
    caplog.set_level(logging.INFO, logger="warroom.jobs")

    def outage_warnings() -> list[logging.LogRecord]:
        # The worker polls in two lanes (deliveries, timers); each backs off on its own.
        return [r for r in caplog.records if "outage/local: database unavailable" in r.getMessage()]

    try:
        with database_down(context):
            thread.start()
            wait_until(lambda: len(outage_warnings()) >= 3, timeout=30)
        wait_until(lambda: job_status(context, job_id) == JobStatus.done, timeout=30)
    finally:
        stop.set()
        thread.join(10)
    # One line per attempt, no stack traces, waits growing; then one line when it works again.
    warnings = outage_warnings()
    assert all(r.levelno == logging.WARNING and r.exc_info is None for r in warnings)
    waits = [float(r.getMessage().rsplit("retrying in ", 1)[1].rstrip("s")) for r in warnings[:3]]
    assert waits == sorted(waits) and waits[2] > waits[0]
    assert any("claiming works again" in r.getMessage() for r in caplog.records)


# The busy timeout of the intake deadline tests: long enough to tell one wait from two on a loaded machine.
BUSY = 1.5


@pytest.fixture
def waiting(settings: Settings, org: OrgConfig) -> Iterator[AppContext]:
    """The app's context on SQLite with a busy timeout of ``BUSY`` seconds."""
    if make_url(settings.resolved_database_url).get_backend_name() != "sqlite":
        pytest.skip("SQLite's busy timeout bounds how long intake waits for the write lock")
    settings = settings.model_copy(update={"sqlite_busy_timeout": BUSY})
    db = Database.from_settings(settings)
    yield AppContext(settings=settings, db=db, org=org)
    db.dispose()


def lock_holder(context: AppContext) -> sqlite3.Connection:
    """Another process's connection holding the SQLite write lock (ROLLBACK releases it)."""
    holder = sqlite3.connect(
        make_url(context.settings.resolved_database_url).database or "", isolation_level=None
    )
    holder.execute("BEGIN EXCLUSIVE")
    return holder


Timed = tuple[httpx.Response, float]


@asynccontextmanager
async def locked_out(
    app: Any, context: AppContext, url: str
) -> AsyncIterator[tuple[httpx.AsyncClient, sqlite3.Connection]]:
    """A client of ``app`` after one stored delivery (so startup work is done), while another connection holds
    the write lock: a test may ``ROLLBACK`` it early; it is released on the way out in any case."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://warroom", timeout=60) as client:
        warm = await client.post(url, json={"summary": "warm", "dedup_key": "warm"})
        assert warm.status_code == 202, warm.text
        holder = lock_holder(context)
        try:
            yield client, holder
        finally:
            if holder.in_transaction:
                holder.execute("ROLLBACK")
            holder.close()


async def timed_post(client: httpx.AsyncClient, url: str, body: dict[str, Any], after: float = 0) -> Timed:
    """POST ``after`` seconds from now; the answer and how long it took from the POST."""
    await asyncio.sleep(after)
    started = time.monotonic()
    response = await client.post(url, json=body)
    return response, time.monotonic() - started


def test_intake_answers_503_within_one_busy_timeout_while_the_lock_is_held(waiting: AppContext) -> None:
    """Each delivery is answered within about one busy timeout of its arrival: those of a batch that could not
    take the lock, and one that arrived later and queued behind them, each at its own deadline; not one
    timeout for the batch and another for each request retried alone."""
    context = waiting
    url = f"/api/v1/alerts?key={make_key(context, 'generic')}"
    app = create_app(context=context)

    async def run() -> list[Timed]:
        async with locked_out(app, context, url) as (client, _):
            return list(
                await asyncio.gather(
                    *(
                        timed_post(client, url, {"summary": f"disk {n}", "dedup_key": f"d{n}"})
                        for n in range(4)
                    ),
                    timed_post(client, url, {"summary": "queued", "dedup_key": "queued"}, after=BUSY / 3),
                )
            )

    answers = asyncio.run(run())
    for response, elapsed in answers:
        assert_unavailable(response)
        assert BUSY * 0.9 < elapsed < BUSY * 1.45, [round(e, 2) for _, e in answers]
    assert counts(context) == (1, 0)


def test_a_delivery_whose_deadline_passed_is_not_stored_later(waiting: AppContext) -> None:
    """The lock is released after the first delivery's deadline and before the second's: the first was
    answered 503 at its deadline and stays unstored (its sender retries); the second is stored and answered
    202 as soon as the lock is free."""
    context = waiting
    url = f"/api/v1/alerts?key={make_key(context, 'generic')}"
    app = create_app(context=context)

    async def run() -> list[Timed]:
        async with locked_out(app, context, url) as (client, holder):

            async def release() -> None:
                await asyncio.sleep(BUSY * 1.3)
                holder.execute("ROLLBACK")

            first, second, _ = await asyncio.gather(
                timed_post(client, url, {"summary": "first", "dedup_key": "first"}),
                timed_post(client, url, {"summary": "second", "dedup_key": "second"}, after=BUSY * 0.6),
                release(),
            )
            return [first, second]

    (first, first_took), (second, _) = asyncio.run(run())
    assert_unavailable(first)
    assert first_took < BUSY * 1.2
    assert second.status_code == 202, second.text  # before its own deadline, once the lock was free
    with context.db.read() as session:
        assert sorted(session.scalars(select(Alert.dedup_key))) == ["second", "warm"]


def test_deliveries_queued_behind_a_stuck_writer_get_503_at_their_deadline(
    waiting: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer is stuck inside a batch (not waiting for the lock, where the busy timeout would end it): a
    delivery still queued is answered 503 at its deadline all the same, and never stored. The one the writer
    started is answered with its real outcome once it is done, past its deadline."""
    from warroom.alerts import intake

    context = waiting
    url = f"/api/v1/alerts?key={make_key(context, 'generic')}"
    stuck = threading.Event()
    real_ingest = intake.service.ingest

    def ingest(session: Any, **kwargs: Any) -> Any:
        if any(event.summary == "stuck" for event in kwargs["events"]):
            stuck.wait(30)
        return real_ingest(session, **kwargs)

    monkeypatch.setattr(intake.service, "ingest", ingest)
    app = create_app(context=context)

    async def run() -> tuple[Timed, Timed]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://warroom", timeout=60) as client:
            started = asyncio.ensure_future(
                timed_post(client, url, {"summary": "stuck", "dedup_key": "stuck"})
            )
            try:
                queued = await timed_post(
                    client, url, {"summary": "queued", "dedup_key": "queued"}, after=BUSY / 3
                )
            finally:
                stuck.set()
            return await started, queued

    (stuck_answer, stuck_elapsed), (queued_answer, queued_elapsed) = asyncio.run(run())
    assert_unavailable(queued_answer)
    assert queued_elapsed < BUSY * 1.45, round(queued_elapsed, 2)
    assert stuck_answer.status_code == 202, stuck_answer.text
    assert stuck_elapsed > BUSY * 1.1, round(stuck_elapsed, 2)  # answered by the writer, past its backstop
    app.state.alert_intake_writer.close()
    with context.db.read() as session:
        assert set(session.scalars(select(Alert.dedup_key))) == {"stuck"}


class _BrokenWriter:
    async def submit(self, *_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("a fault in intake")


def test_pagerduty_and_opsgenie_routes_answer_a_fault_in_their_own_shapes(
    context: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 500 on the PagerDuty and Opsgenie routes (the fast path's and the framework's) is theirs too; the
    other routes keep Warroom's."""
    from warroom.alerts import fastpath

    monkeypatch.setattr(fastpath, "writer_for", lambda *_: _BrokenWriter())
    pd_key, key = make_key(context, "pagerduty"), make_key(context, "generic")
    genie = {"Authorization": f"GenieKey {make_key(context, 'opsgenie')}"}
    internal = "an internal error occurred; it was logged"
    event = {"summary": "replica lag", "source": "db-2", "severity": "error"}
    with TestClient(create_app(context=context), raise_server_exceptions=False) as api:
        v2 = api.post(
            "/v2/enqueue", json={"routing_key": pd_key, "event_action": "trigger", "payload": event}
        )
        v1 = api.post(
            "/generic/2010-04-15/create_event.json",
            json={"service_key": pd_key, "event_type": "trigger", "description": "replica lag"},
        )
        for answer in (v1, v2):
            assert answer.status_code == 500, answer.text
            assert answer.json() == {"status": "internal", "message": internal, "errors": [internal]}
        genie_answer = api.post("/v2/alerts", json={"message": "replica lag"}, headers=genie)
        assert genie_answer.status_code == 500, genie_answer.text
        assert genie_answer.json()["message"] == internal and "requestId" in genie_answer.json()
        ours = api.post(f"/api/v1/alerts?key={key}", json={"summary": "x", "dedup_key": "x"})
        assert ours.status_code == 500
        assert ours.json()["error"]["code"] == "internal"


def test_pagerduty_v1_answers_503_in_its_own_shape(impatient: AppContext) -> None:
    context = impatient
    pd_key = make_key(context, "pagerduty")
    with TestClient(create_app(context=context)) as api, database_down(context):
        assert_unavailable_as_pagerduty(
            api.post(
                "/generic/2010-04-15/create_event.json",
                json={"service_key": pd_key, "event_type": "trigger", "description": "replica lag"},
            )
        )


@contextmanager
def version_table_renamed(context: AppContext) -> Iterator[None]:
    """The database without Warroom's schema, as after ``dropdb; createdb`` (put back afterwards)."""
    with context.db.write() as session:
        session.execute(text("ALTER TABLE alembic_version RENAME TO alembic_version_away"))
    try:
        yield
    finally:
        with context.db.write() as session:
            session.execute(text("ALTER TABLE alembic_version_away RENAME TO alembic_version"))


@contextmanager
def version_set(context: AppContext, revision: str) -> Iterator[None]:
    with context.db.write() as session:
        before = session.scalar(text("SELECT version_num FROM alembic_version"))
        session.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})
    try:
        yield
    finally:
        with context.db.write() as session:
            session.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": before})


def test_healthz_answers_503_when_the_database_is_not_at_this_versions_schema(context: AppContext) -> None:
    """A database emptied, or migrated by another version, fails every other request: a load balancer must
    take the node out (it was 200 on ``SELECT 1``)."""
    with TestClient(create_app(context=context)) as api:
        assert api.get("/healthz").status_code == 200
        assert api.head("/healthz").status_code == 200
        with version_table_renamed(context):
            empty = api.get("/healthz")
            assert empty.status_code == 503, empty.text
            assert empty.json()["error"]["code"] == "wrong_schema"
            assert "no Warroom schema" in empty.json()["error"]["message"]
            assert api.head("/healthz").status_code == 503
        with version_set(context, "0099_future"):
            newer = api.get("/healthz")
            assert newer.status_code == 503, newer.text
            assert "0099_future" in newer.json()["error"]["message"]
            assert api.head("/healthz").status_code == 503
        assert api.get("/healthz").json()["status"] == "ok"


def test_a_claim_that_fails_on_the_database_is_logged_in_one_line(
    context: AppContext, caplog: pytest.LogCaptureFixture
) -> None:
    """Tables gone (PostgreSQL's ProgrammingError, not an outage): the driver's first line, no traceback, no
    SQL or parameters on every attempt."""
    from sqlalchemy.exc import ProgrammingError

    with context.db.read() as session:
        try:
            session.execute(text("SELECT id FROM no_such_table WHERE id = :id"), {"id": 1})
        except Exception as exc:
            real = exc
    made = ProgrammingError(
        "SELECT jobs.id FROM jobs WHERE jobs.status = %(status)s",
        {"status": "pending"},
        Exception('relation "jobs" does not exist\nLINE 1: SELECT jobs.id FROM jobs'),
    )
    worker = Worker(context, name="gone", poll_interval=0.01)
    stopped = threading.Event()
    stopped.set()
    caplog.set_level(logging.INFO, logger="warroom.jobs")
    for failure in (real, made):
        caplog.clear()
        worker._claim_failed(failure, 1, stopped)
        [record] = caplog.records
        said = record.getMessage()
        assert record.exc_info is None and "\n" not in said and "SELECT" not in said, said
        assert "no_such_table" in said or 'relation "jobs" does not exist' in said, said


def test_the_reload_poll_logs_an_outage_once_in_one_line_and_its_end(
    context: AppContext, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import OperationalError

    from warroom import reload

    outage = OperationalError(
        "SELECT max(config_reloads.id)", {}, Exception("connection refused\n\tIs the server running?")
    )
    polls: list[int] = []
    failing = {"reason": outage}

    def follow(_context: AppContext) -> None:
        polls.append(1)
        if failing["reason"] is not None:
            raise failing["reason"]

    monkeypatch.setattr(reload, "follow_announced", follow)
    context.settings.reload_poll_seconds = 0.01
    caplog.set_level(logging.INFO, logger="warroom")
    watcher = reload.ReloadWatcher(context)
    watcher.start()
    try:
        wait_until(lambda: len(polls) >= 10, timeout=10)
        warnings = [r for r in caplog.records if "announced reloads" in r.getMessage()]
        assert [r.getMessage() for r in warnings] == [
            "could not look for announced reloads: connection refused"
        ]
        failing["reason"] = None
        wait_until(lambda: any("works again" in r.getMessage() for r in caplog.records), timeout=10)
    finally:
        watcher.stop()


def test_a_driver_error_on_the_framework_routes_is_a_503_in_the_routes_shape(
    api: TestClient, context: AppContext
) -> None:
    """The key lookup runs SQL straight on the driver, whose errors come unwrapped: with the schema gone,
    Opsgenie's, a webhook format's and the heartbeats' routes answered 500 with two tracebacks (PagerDuty's
    and the plain intake's, on the fast path, answered 503). A missing table is a 503 saying to upgrade the
    database (``test_contract_schema_missing``)."""
    genie = {"Authorization": f"GenieKey {make_key(context, 'opsgenie')}"}
    webhook_key, heartbeat_key = make_key(context, "webhook"), make_key(context, "heartbeat")
    with context.db.write() as session:
        session.execute(text("ALTER TABLE integration_keys RENAME TO integration_keys_gone"))
    try:
        opsgenie = api.post("/v2/alerts", json={"message": "replica lag"}, headers=genie)
        assert opsgenie.status_code == 503 and opsgenie.headers["Retry-After"] == "5", opsgenie.text
        assert set(opsgenie.json()) == {"message", "took", "requestId"}
        for answer in (
            api.post(f"/api/v1/alerts/webhook/uptime-kuma?key={webhook_key}", json={"a": 1}),
            api.post(f"/api/v1/heartbeats/prometheus-watchdog?key={heartbeat_key}"),
        ):
            assert answer.status_code == 503 and answer.headers["Retry-After"] == "5", answer.text
            assert answer.json()["error"]["code"] == "wrong_schema"
    finally:
        with context.db.write() as session:
            session.execute(text("ALTER TABLE integration_keys_gone RENAME TO integration_keys"))


def test_a_held_postgres_lock_gets_503_after_the_lock_timeout_not_a_hang(
    settings: Settings, org: OrgConfig, viewer: dict[str, str]
) -> None:
    """QA: `LOCK TABLE alerts IN ACCESS EXCLUSIVE MODE` held in psql made every intake request, `/metrics` and
    the alert list wait as long as the lock (no lock_timeout), until the connection pool ran dry."""
    if not settings.resolved_database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL's lock_timeout")
    settings = settings.model_copy(update={"postgres_lock_timeout": 0.3})
    db = Database.from_settings(settings)
    holder = create_engine(settings.resolved_database_url).connect()
    try:
        with TestClient(create_app(context=AppContext(settings=settings, db=db, org=org))) as api:
            holder.execute(text("LOCK TABLE alerts IN ACCESS EXCLUSIVE MODE"))
            listed = api.get("/api/v1/alerts", headers=viewer)
            assert listed.status_code == 503, listed.text
            assert listed.headers["retry-after"] and listed.json()["error"]["code"] == "database_unavailable"
            holder.rollback()
            assert api.get("/api/v1/alerts", headers=viewer).status_code == 200
    finally:
        holder.close()
        holder.engine.dispose()
        db.dispose()


def test_healthz_answers_503_when_any_of_warroom_s_tables_is_missing(context: AppContext) -> None:
    """It probed ``incidents`` alone: with another table gone (``deliveries``) it said 200 while every
    route that uses that table answered 503 wrong_schema. Every table of the schema is checked, in one query
    however many tables there are (it runs on every health check)."""
    from sqlalchemy import event

    from tests.test_contract_schema_missing import tables_gone

    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    with TestClient(create_app(context=context)) as api:
        event.listen(context.db.engine, "before_cursor_execute", record)
        try:
            assert api.get("/healthz").status_code == 200
        finally:
            event.remove(context.db.engine, "before_cursor_execute", record)
        catalogue = [s for s in statements if "sqlite_master" in s or "to_regclass" in s]
        assert len(catalogue) == 1 and len(statements) <= 3, statements  # the version, the tables
        for table in ("deliveries", "alert_notes", "jobs"):
            with tables_gone(context, table):
                gone = api.get("/healthz")
                assert gone.status_code == 503, gone.text
                assert gone.json()["error"]["code"] == "wrong_schema"
                assert (
                    f"has no table {table} (were Warroom's tables dropped?)"
                    in gone.json()["error"]["message"]
                )
                assert api.head("/healthz").status_code == 503
        assert api.get("/healthz").json()["status"] == "ok"
