"""automation.retention: old resolved alerts on no incident, old change events and finished runs of the
recurring jobs are deleted once an hour; evidence (alerts on incidents) and open alerts stay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text

from tests.conftest import EXAMPLE_CONFIG
from warroom.alerts import retention
from warroom.alerts.heartbeats import CHECK_KIND as HEARTBEAT_CHECK_KIND
from warroom.alerts.maintenance import SCHEDULE_KIND as MAINTENANCE_SCHEDULE_KIND
from warroom.alerts.models import Alert, ChangeEvent
from warroom.alerts.status_pages import POLL_KIND
from warroom.clock import clock
from warroom.context import AppContext
from warroom.jobs.models import Job, JobStatus
from warroom.jobs.worker import Worker
from warroom.orgconfig import ConfigError, parse_org_config

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def alert_keys(context: AppContext) -> list[str]:
    with context.db.read() as session:
        return list(session.scalars(select(Alert.dedup_key).order_by(Alert.id)))


def change_summaries(context: AppContext) -> list[str]:
    with context.db.read() as session:
        return list(session.scalars(select(ChangeEvent.summary).order_by(ChangeEvent.id)))


def job_rows(context: AppContext) -> list[tuple[str, str, Any]]:
    with context.db.read() as session:
        rows = session.scalars(select(Job).where(Job.kind != retention.PRUNE_KIND).order_by(Job.id))
        return [(job.kind, job.status.value, job.payload.get("tag")) for job in rows]


def add_job(
    context: AppContext, kind: str, status: JobStatus, finished_at: datetime | None, tag: str
) -> None:
    with context.db.write() as session:
        session.add(
            Job(
                kind=kind, payload={"tag": tag}, status=status, run_at=T0, finished_at=finished_at, attempts=1
            )
        )


def send(api: TestClient, key: str, **alert: Any) -> None:
    answer = api.post(f"/api/v1/alerts?key={key}", json={"severity": "info", **alert})
    assert answer.status_code == 202, answer.text


def test_what_is_old_enough_goes_and_evidence_stays(
    api: TestClient, context: AppContext, generic_key: str, responder: dict[str, str]
) -> None:
    clock.set(T0)
    send(api, generic_key, summary="disk 81%", dedup_key="old-unrouted")
    send(api, generic_key, summary="disk 81%", dedup_key="old-unrouted", status="resolved")
    send(api, generic_key, summary="queue slow", dedup_key="old-promoted")
    send(api, generic_key, summary="queue slow", dedup_key="old-promoted", status="resolved")
    promoted = api.post("/api/v1/alerts/2/promote", json={"force": True}, headers=responder)  # resolved
    assert promoted.status_code == 201, promoted.text
    send(api, generic_key, summary="cert expires in 20d", dedup_key="still-open")
    # An alert routed by a rule to an incident when it fired.
    send(
        api,
        generic_key,
        summary="charges failing",
        dedup_key="routed",
        severity="critical",
        labels={"service": "payments"},
    )
    send(api, generic_key, summary="charges failing", dedup_key="routed", status="resolved")
    api.post("/api/v1/changes", json={"summary": "Deployed api 2.13"}, headers=responder)
    add_job(context, POLL_KIND, JobStatus.done, T0, "old poll")
    add_job(context, POLL_KIND, JobStatus.dead, T0, "dead poll")  # a dead letter: people must see it
    add_job(context, "notify.deliver", JobStatus.done, T0, "old delivery")  # not a recurring run
    add_job(context, HEARTBEAT_CHECK_KIND, JobStatus.done, T0, "old heartbeat check")
    add_job(context, HEARTBEAT_CHECK_KIND, JobStatus.pending, None, "waiting heartbeat check")
    add_job(context, MAINTENANCE_SCHEDULE_KIND, JobStatus.done, T0, "old schedule run")

    clock.set(T0 + timedelta(days=60))
    send(api, generic_key, summary="disk 85%", dedup_key="recent-unrouted")
    send(api, generic_key, summary="disk 85%", dedup_key="recent-unrouted", status="resolved")
    api.post("/api/v1/changes", json={"summary": "Deployed api 2.14"}, headers=responder)

    clock.set(T0 + timedelta(days=91))
    add_job(context, POLL_KIND, JobStatus.done, clock.now() - timedelta(days=6), "recent poll")
    assert retention.prune(context, clock.now()) == {
        "alerts": 1,
        "changes": 1,
        "paged_openings": 0,  # recorded only while a storm guard is on (test_storm_guard prunes them)
        "idempotent_requests": 0,
        "report_hits": 0,
        "recurring_job_runs": 3,
    }
    assert alert_keys(context) == ["old-promoted", "still-open", "routed", "recent-unrouted"]
    assert change_summaries(context) == ["Deployed api 2.14"]
    kept = [row for row in job_rows(context) if row[2] is not None]
    assert kept == [
        (POLL_KIND, "dead", "dead poll"),
        ("notify.deliver", "done", "old delivery"),
        (HEARTBEAT_CHECK_KIND, "pending", "waiting heartbeat check"),
        (POLL_KIND, "done", "recent poll"),
    ]
    # Again: nothing more to do.
    assert retention.prune(context, clock.now()) == {
        "alerts": 0,
        "changes": 0,
        "paged_openings": 0,
        "idempotent_requests": 0,
        "report_hits": 0,
        "recurring_job_runs": 0,
    }


def test_zero_keeps_for_ever_and_chunks_cover_everything(
    api: TestClient, context: AppContext, generic_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention, "CHUNK", 2)
    clock.set(T0)
    for n in range(5):
        send(api, generic_key, summary="blip", dedup_key=f"blip-{n}")
        send(api, generic_key, summary="blip", dedup_key=f"blip-{n}", status="resolved")
    clock.set(T0 + timedelta(days=400))
    kept_for_ever = context.org.automation.retention.model_copy(update={"alerts": timedelta(0)})
    automation = context.org.automation.model_copy(update={"retention": kept_for_ever})
    original = context.org
    context.org = original.model_copy(update={"automation": automation})
    assert "alerts" not in retention.prune(context, clock.now())
    assert len(alert_keys(context)) == 5
    context.org = original
    assert retention.prune(context, clock.now())["alerts"] == 5  # three chunks of two, two and one
    assert alert_keys(context) == []


def test_the_hourly_chain_runs_on_the_worker(context: AppContext) -> None:
    clock.set(T0 + timedelta(minutes=10))
    with context.db.write() as session:
        assert retention.schedule_pruning(session) is True
    with context.db.write() as session:
        assert retention.schedule_pruning(session) is False  # one chain, however many processes

    def pending() -> list[datetime]:
        with context.db.read() as session:
            return list(
                session.scalars(
                    select(Job.run_at).where(
                        Job.kind == retention.PRUNE_KIND, Job.status == JobStatus.pending
                    )
                )
            )

    assert pending() == [T0 + timedelta(hours=1)]  # the next slot of the hourly grid, not at once
    worker = Worker(context, name="w1")
    assert worker.run_once() == 0
    clock.set(T0 + timedelta(hours=1, seconds=5))
    assert worker.run_once() == 1
    with context.db.read() as session:
        done = session.scalars(select(Job).where(Job.status == JobStatus.done)).one()
        assert done.result == {
            "deleted": {
                "alerts": 0,
                "changes": 0,
                "paged_openings": 0,
                "idempotent_requests": 0,
                "report_hits": 0,
                "recurring_job_runs": 0,
            }
        }
        assert session.scalar(select(func.count()).select_from(Job)) == 2
    assert pending() == [T0 + timedelta(hours=2)]


@pytest.mark.parametrize(
    ("retention_block", "message"),
    [
        ({"alerts": "12h"}, "at least 1d"),
        ({"changes": "5m"}, "at least 1d"),
        ({"recurring_job_runs": "10m"}, "recurring_job_runs must be between"),
        ({"alerts": "20000d"}, "a retention period must be between"),
        ({"logs": "1d"}, "logs"),
    ],
)
def test_bad_retention_is_refused_by_config_check(retention_block: dict[str, str], message: str) -> None:
    document = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    document.setdefault("automation", {})["retention"] = retention_block
    with pytest.raises(ConfigError) as error:
        parse_org_config(yaml.safe_dump(document))
    assert message in str(error.value)


def _sqlite_pages(context: AppContext) -> tuple[int, int, int]:
    """(auto_vacuum mode, pages, free pages) of the SQLite file."""
    with context.db.read() as session:
        # The mode last: a pooled connection reads it afresh only once a read has loaded the file's header.
        pages, free, mode = (
            int(session.execute(text(f"PRAGMA {name}")).scalar_one())
            for name in ("page_count", "freelist_count", "auto_vacuum")
        )
        return mode, pages, free


def _old_resolved_alerts(api: TestClient, generic_key: str, count: int) -> None:
    clock.set(T0)
    bulky = "x" * 4000  # a payload that takes a page of its own, as Alertmanager's do
    for n in range(count):
        alert = {"summary": "blip", "dedup_key": f"blip-{n}", "annotations": {"output": bulky}}
        send(api, generic_key, **alert)
        send(api, generic_key, **alert, status="resolved")


def test_retention_gives_the_space_back_to_the_file_system_on_sqlite(
    api: TestClient, context: AppContext, generic_key: str
) -> None:
    if not context.db.is_sqlite:
        pytest.skip("PostgreSQL's autovacuum keeps freed space for reuse; there is no file to shrink")
    _old_resolved_alerts(api, generic_key, 300)
    mode, pages_before, _ = _sqlite_pages(context)
    assert mode == 2  # a new database is in incremental auto-vacuum mode
    # The app scheduled the hourly chain when it started (on the real clock); its next run, a day later.
    clock.set(datetime.now(UTC) + timedelta(days=1))
    assert Worker(context, name="w1").run_once() == 1
    with context.db.read() as session:
        done = session.scalars(select(Job).where(Job.status == JobStatus.done)).one()
    assert done.result["deleted"]["alerts"] == 300
    _, pages_after, free_after = _sqlite_pages(context)
    assert done.result["pages_reclaimed"] > 300  # at least a page per alert's payloads
    assert free_after == 0 and pages_after < pages_before - 300


def test_db_vacuum_turns_an_older_file_to_incremental_and_shrinks_it(
    api: TestClient, context: AppContext, generic_key: str, database_url: str
) -> None:
    from typer.testing import CliRunner

    from warroom.cli.main import app

    if context.db.is_sqlite:
        # A file made before Warroom set auto_vacuum: no mode, and deletes leave free pages in it.
        with context.db.engine.connect() as connection:
            raw: Any = connection.connection.dbapi_connection
            raw.execute("PRAGMA auto_vacuum=NONE")
            raw.execute("VACUUM")
        assert _sqlite_pages(context)[0] == 0
    _old_resolved_alerts(api, generic_key, 100)
    clock.set(T0 + timedelta(days=91))
    assert retention.prune(context, clock.now())["alerts"] == 100
    if context.db.is_sqlite:
        assert context.db.reclaim_free_pages() == 0  # not in incremental mode: nothing can be given back
        _, pages, free = _sqlite_pages(context)
        assert free > 100
    vacuumed = CliRunner().invoke(app, ["db", "vacuum", "--database-url", database_url])
    assert vacuumed.exit_code == 0, vacuumed.output
    assert " MB -> " in " ".join(vacuumed.output.split())  # however long the database's name wraps
    if context.db.is_sqlite:
        mode, pages_after, free_after = _sqlite_pages(context)
        # Compacted: only what the remaining rows use (plus the pointer-map pages incremental mode keeps).
        assert (mode, free_after) == (2, 0) and pages_after < pages - free + 5


def test_what_muted_a_kept_alert_stays_and_a_deleted_one_says_why_it_is_gone(
    api: TestClient, context: AppContext, generic_key: str, viewer: dict[str, str]
) -> None:
    clock.set(T0)
    send(api, generic_key, summary="host db-1 down", dedup_key="host-down")
    send(api, generic_key, summary="host db-1 down", dedup_key="host-down", status="resolved")
    send(api, generic_key, summary="disk 81%", dedup_key="old-unrouted")
    send(api, generic_key, summary="disk 81%", dedup_key="old-unrouted", status="resolved")
    send(api, generic_key, summary="db-1 disk full", dedup_key="disk-full")
    with context.db.write() as session:
        # Muted by the host-down alert, then released when it resolved: it says "was inhibited by ALR-1".
        session.execute(Alert.__table__.update().where(Alert.id == 3).values(inhibited_by_id=1))
    clock.set(T0 + timedelta(days=91))
    assert retention.prune(context, clock.now())["alerts"] == 1
    assert alert_keys(context) == ["host-down", "disk-full"]
    shown = api.get("/api/v1/alerts/ALR-3", headers=viewer).json()
    assert shown["inhibited_by"] == "ALR-1", shown
    gone = api.get("/api/v1/alerts/ALR-2", headers=viewer)
    assert gone.status_code == 404
    assert gone.json()["error"]["message"] == (
        "no alert ALR-2: it was deleted by retention (resolved alerts on no incident are kept for "
        "automation.retention.alerts)"
    )
    never = api.get("/api/v1/alerts/ALR-9", headers=viewer)
    assert never.status_code == 404 and "retention" not in never.text
