"""Python alert handlers cannot lose an alert, corrupt it, stall intake, run twice, or fail unseen: they run
as durable jobs after the alert is stored, each rolled back whole and recorded when it fails."""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from tests.alerts.test_automation import fire, payments_alert
from tests.alerts.test_rule_delay import T0, delayed
from tests.alerts.test_rule_delay import fire as fire_search
from warroom.alerts import handlers
from warroom.alerts.handlers import EVENT_KIND, HANDLER_KIND, HANDLER_PEER, HandlerContext, alert_handler
from warroom.alerts.models import Alert, AlertStatus
from warroom.cli.main import app
from warroom.clock import clock
from warroom.context import AppContext
from warroom.db import utcnow
from warroom.incidents.models import Incident
from warroom.jobs.models import Job, JobStatus
from warroom.jobs.service import network_kinds
from warroom.jobs.worker import Worker

__all__ = ["delayed"]  # the fixture, imported for the delayed-rule test


@pytest.fixture
def registered() -> Iterator[list[handlers.Handler]]:
    """Handlers a test registers; unregistered after it."""
    added: list[handlers.Handler] = []
    yield added
    for handler in added:
        handlers.unregister(handler)
    handlers.forget_announcements()  # what a test's worker announced is not the next test's database


def register(added: list[handlers.Handler], alert_type: str, handler: handlers.Handler) -> None:
    alert_handler(alert_type)(handler)
    added.append(handler)


def handler_jobs(
    context: AppContext, *statuses: JobStatus, kinds: tuple[str, ...] = (EVENT_KIND, HANDLER_KIND)
) -> list[Job]:
    """The jobs of alert events and of their handlers."""
    with context.db.read() as session:
        query = select(Job).where(Job.kind.in_(kinds)).order_by(Job.id)
        if statuses:
            query = query.where(Job.status.in_(statuses))
        return list(session.scalars(query))


def run_handlers(context: AppContext, worker: Worker | None = None) -> None:
    """Run due jobs until no handler job is left, stepping the time past the waits that keep one alert's
    handlers in order."""
    worker = worker or Worker(context, name="handlers")
    moment = utcnow()
    for _ in range(40):
        worker.run_once(moment)
        if not handler_jobs(context, JobStatus.pending, JobStatus.running):
            return
        moment += timedelta(seconds=2)
    raise AssertionError("handler jobs still waiting")


def alert_row(context: AppContext, alert_id: int = 1) -> Alert:
    with context.db.read() as session:
        alert = session.get(Alert, alert_id)
        assert alert is not None
        return alert


def timeline_actions(api: TestClient, viewer: dict[str, str], ref: str = "INC-1") -> list[str]:
    answer = api.get(f"/api/v1/incidents/{ref}/timeline", headers=viewer)
    assert answer.status_code == 200, answer.text
    return [entry["action"] for entry in answer.json()["items"]]


def assert_chain_intact(context: AppContext) -> None:
    from warroom.incidents import service as incident_service

    with context.db.read() as session:
        _, problems = incident_service.verify_timelines(session)
    assert problems == []


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text for you")


def test_system_exit_and_an_unprintable_error_are_recorded_and_the_alert_kept(
    api: TestClient, context: AppContext, generic_key: str, viewer: dict[str, str], registered: list[Any]
) -> None:
    def exits(ctx: HandlerContext) -> None:
        ctx.log("rolled back with the exit")
        raise SystemExit(3)

    def unprintable(ctx: HandlerContext) -> None:
        raise Unprintable()

    def fine(ctx: HandlerContext) -> None:
        ctx.log(f"Checked {ctx.alert.ref}")

    for handler in (exits, unprintable, fine):
        register(registered, "ChargeErrors", handler)
    [result] = fire(api, generic_key, payments_alert())
    assert result["incident"] == "INC-1"
    run_handlers(context)

    alert = api.get("/api/v1/alerts/1", headers=viewer).json()
    errors = {error["handler"].rsplit(".", 1)[-1]: error["error"] for error in alert["handler_errors"]}
    assert errors == {
        "exits": "SystemExit: 3",
        "unprintable": "Unprintable: (its message could not be formatted)",
    }
    actions = timeline_actions(api, viewer)
    assert "Checked ALR-1" in actions
    assert "rolled back with the exit" not in actions
    assert sum("failed on ALR-1: SystemExit: 3" in action for action in actions) == 1
    assert sum("failed on ALR-1: Unprintable" in action for action in actions) == 1
    assert {job.status for job in handler_jobs(context)} == {JobStatus.done}
    assert_chain_intact(context)


def test_invalid_values_left_on_the_alert_or_incident_are_rolled_back(
    api: TestClient, context: AppContext, generic_key: str, viewer: dict[str, str], registered: list[Any]
) -> None:
    def bogus_status(ctx: HandlerContext) -> None:
        ctx.alert.status = "bogus-status"  # type: ignore[assignment]
        ctx.alert.summary = "kept only if the rest is valid"

    def bogus_severity(ctx: HandlerContext) -> None:
        ctx.alert.severity = "apocalyptic"

    def blank_summary(ctx: HandlerContext) -> None:
        ctx.alert.summary = "   "

    def incident_severity(ctx: HandlerContext) -> None:
        assert ctx.incident is not None
        ctx.incident.severity = "P9"

    def valid(ctx: HandlerContext) -> None:
        ctx.alert.severity = "error"

    for handler in (bogus_status, bogus_severity, blank_summary, incident_severity, valid):
        register(registered, "ChargeErrors", handler)
    fire(api, generic_key, payments_alert())
    run_handlers(context)

    answer = api.get("/api/v1/alerts/1", headers=viewer)
    assert answer.status_code == 200, answer.text
    alert = answer.json()
    assert (alert["status"], alert["summary"], alert["severity"]) == (
        "firing",
        "card charges failing",
        "error",
    )
    errors = {error["handler"].rsplit(".", 1)[-1]: error["error"] for error in alert["handler_errors"]}
    assert set(errors) == {"bogus_status", "bogus_severity", "blank_summary", "incident_severity"}
    assert "status 'bogus-status'" in errors["bogus_status"]
    assert "severity 'apocalyptic'" in errors["bogus_severity"]
    assert "summary" in errors["blank_summary"]
    assert "INC-1 severity 'P9'" in errors["incident_severity"]
    assert api.get("/api/v1/incidents/INC-1", headers=viewer).json()["severity"] != "P9"
    assert api.get("/api/v1/alerts", headers=viewer).status_code == 200
    assert api.get("/metrics").status_code == 200
    with context.db.read() as session:
        assert session.get(Alert, 1).status == AlertStatus.firing  # type: ignore[union-attr]


def test_intake_never_waits_on_a_handler(
    api: TestClient, context: AppContext, generic_key: str, viewer: dict[str, str], registered: list[Any]
) -> None:
    calls: list[str] = []
    started, release = threading.Event(), threading.Event()

    def slow(ctx: HandlerContext) -> None:
        calls.append(ctx.alert.ref)
        ctx.log(f"Asked the card processor about {ctx.alert.ref}")
        started.set()
        assert release.wait(30)  # an external API that takes its time

    register(registered, "ChargeErrors", slow)
    fire(api, generic_key, payments_alert())
    assert calls == []  # stored and answered; the handler is a job
    [event] = handler_jobs(context)
    assert (event.kind, event.status) == (EVENT_KIND, JobStatus.pending)
    Worker(context, name="fan-out", lane="local").run_once()  # the worker makes it one job per handler it has
    [job] = handler_jobs(context, kinds=(HANDLER_KIND,))
    assert (job.status, job.peer) == (JobStatus.pending, HANDLER_PEER)
    assert HANDLER_KIND in network_kinds()  # the lane of slow work, not the one of escalation timers

    worker = Worker(context, name="slow", lease=timedelta(seconds=0.3))
    running = threading.Thread(target=worker.run_once)
    running.start()
    try:
        assert started.wait(30)
        # While the handler waits, other alerts are stored as usual.
        [other] = fire(api, generic_key, payments_alert(dedup_key="other", summary="another charge failing"))
        assert other["status"] == "firing"
        # Its lease outlives the handler's wait (renewed), so another worker does not run it a second time.
        initial = handler_jobs(context, kinds=(HANDLER_KIND,))[0].lease_expires_at
        assert initial is not None
        for _ in range(300):
            renewed = handler_jobs(context, kinds=(HANDLER_KIND,))[0].lease_expires_at
            if renewed is not None and renewed > initial + timedelta(seconds=0.3):
                break
            release.wait(0.05)
        other_worker = Worker(context, name="other")
        claimed = other_worker.claim()
        other_worker.release(claimed)
        assert job.id not in claimed
    finally:
        release.set()
        running.join(30)
    run_handlers(context)
    assert calls == ["ALR-1", "ALR-2"]  # each once
    assert "Asked the card processor about ALR-1" in timeline_actions(api, viewer)
    assert_chain_intact(context)


def test_created_handlers_run_once_with_the_incident_after_a_rule_delay(
    api: TestClient, delayed: AppContext, generic_key: str, registered: list[Any]
) -> None:
    seen: list[tuple[str, str, str | None]] = []

    def note(ctx: HandlerContext) -> None:
        seen.append((ctx.alert.ref, ctx.event, ctx.incident.ref if ctx.incident else None))

    register(registered, "SearchDown", note)
    clock.set(T0)
    worker = Worker(delayed, name="w1")
    fire_search(api, generic_key, "search-1")
    fire_search(api, generic_key, "search-2")
    run_handlers(delayed, worker)
    assert seen == []  # waiting for the incident
    clock.set(T0 + timedelta(minutes=2))
    fire_search(api, generic_key, "search-2", status="resolved")  # within its delay: no incident, ever
    clock.set(T0 + timedelta(minutes=6))
    while worker.run_once():
        pass
    run_handlers(delayed, worker)
    with delayed.db.read() as session:
        opened = session.scalars(select(Incident)).one()
    # One alert's handlers run in order; two alerts' in any.
    assert sorted(seen, key=lambda call: call[0]) == [
        ("ALR-1", "created", opened.ref),
        ("ALR-2", "created", None),
        ("ALR-2", "resolved", None),
    ]
    fire_search(api, generic_key, "search-1")  # a repeat of the same alert is no new event
    run_handlers(delayed, worker)
    assert len(seen) == 3


def payments_window(api: TestClient, admin: dict[str, str]) -> Any:
    """A maintenance window on payments, from now for an hour."""
    now = utcnow()
    window = api.post(
        "/api/v1/maintenance",
        headers=admin,
        json={
            "reason": "card processor upgrade",
            "services": ["payments"],
            "starts_at": now.isoformat(),
            "ends_at": (now + timedelta(hours=1)).isoformat(),
        },
    )
    assert window.status_code in (200, 201), window.text
    return window


def test_an_alert_held_by_a_maintenance_window_runs_its_created_handlers_once(
    api: TestClient, context: AppContext, generic_key: str, admin: dict[str, str], registered: list[Any]
) -> None:
    seen: list[str] = []
    register(registered, "ChargeErrors", lambda ctx: seen.append(ctx.event))
    window = payments_window(api, admin)
    fire(api, generic_key, payments_alert())
    run_handlers(context)
    assert seen == []
    ended = api.post(f"/api/v1/maintenance/{window.json()['ref']}/end", headers=admin)
    assert ended.status_code == 200, ended.text
    run_handlers(context)
    assert seen == ["created"]


def test_async_handlers_are_refused_at_registration() -> None:
    async def awaits(ctx: HandlerContext) -> None:
        pass

    class Callback:
        async def __call__(self, ctx: HandlerContext) -> None:
            pass

    for handler in (awaits, Callback()):
        with pytest.raises(TypeError, match="is async; alert handlers must be plain functions"):
            alert_handler("ChargeErrors")(handler)  # type: ignore[arg-type]
    assert handlers.handlers_for("ChargeErrors") == []


def test_a_handler_that_returns_an_awaitable_is_recorded_as_failed(
    api: TestClient, context: AppContext, generic_key: str, viewer: dict[str, str], registered: list[Any]
) -> None:
    async def later() -> None:
        pass

    register(registered, "ChargeErrors", lambda ctx: later())  # type: ignore[arg-type,return-value]
    fire(api, generic_key, payments_alert())
    run_handlers(context)
    [error] = api.get("/api/v1/alerts/1", headers=viewer).json()["handler_errors"]
    assert "returned an awaitable" in error["error"]


def test_a_huge_error_message_is_cut(
    api: TestClient, context: AppContext, generic_key: str, viewer: dict[str, str], registered: list[Any]
) -> None:
    def shouts(ctx: HandlerContext) -> None:
        raise ValueError("E" * 2_000_000)

    register(registered, "ChargeErrors", shouts)
    fire(api, generic_key, payments_alert())
    run_handlers(context)
    answer = api.get("/api/v1/alerts/1", headers=viewer)
    assert len(answer.content) < 20_000
    [error] = answer.json()["handler_errors"]
    assert len(error["error"]) == handlers.MAX_ERROR_TEXT
    assert error["error"].startswith("ValueError: EEE")
    [failed] = [a for a in timeline_actions(api, viewer) if "failed on ALR-1" in a]
    assert len(failed) < 2 * handlers.MAX_ERROR_TEXT


def test_a_replayed_resolution_runs_the_resolved_handlers_once(
    api: TestClient, context: AppContext, generic_key: str, registered: list[Any]
) -> None:
    seen: list[str] = []
    register(registered, "ChargeErrors", lambda ctx: seen.append(ctx.event))
    fire(api, generic_key, payments_alert())
    fire(api, generic_key, payments_alert())
    fire(api, generic_key, payments_alert(status="resolved"))
    fire(api, generic_key, payments_alert(status="resolved"))
    run_handlers(context)
    assert seen == ["created", "resolved"]


def broken_entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "acme_broken.py").write_text("import acme_missing_dependency\n")
    dist = tmp_path / "acme_broken-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-broken\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[warroom.handlers]\nacme_broken = acme_broken\n")
    monkeypatch.syspath_prepend(str(tmp_path))


def test_a_broken_entry_point_is_reported_by_config_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.conftest import EXAMPLE_CONFIG

    broken_entry_point(tmp_path, monkeypatch)
    try:
        handlers.load_entry_points(force=True)
        [problem] = handlers.entry_point_failures()
        assert "acme_broken = acme_broken" in problem
        assert "ModuleNotFoundError: No module named 'acme_missing_dependency'" in problem
        checked = CliRunner().invoke(app, ["config", "check", str(EXAMPLE_CONFIG)])
        assert checked.exit_code == 0, checked.output
        assert "entry point acme_broken = acme_broken cannot be loaded" in checked.output
        assert "acme_missing_dependency" in checked.output
    finally:
        sys.modules.pop("acme_broken", None)
        monkeypatch.undo()
        handlers.load_entry_points(force=True)
    assert handlers.entry_point_failures() == []


def test_a_broken_entry_point_is_reported_when_the_worker_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, context: AppContext
) -> None:
    broken_entry_point(tmp_path, monkeypatch)
    handlers.load_entry_points(force=True)
    try:
        started = CliRunner().invoke(
            app, ["worker", "--once", "--database-url", context.settings.resolved_database_url]
        )
        assert started.exit_code == 0, started.output
        assert "entry point acme_broken = acme_broken cannot be loaded" in started.output
    finally:
        sys.modules.pop("acme_broken", None)
        monkeypatch.undo()
        handlers.load_entry_points(force=True)


# --- QA round 2 ---------------------------------------------------------------------------------------------


def handler_errors(api: TestClient, viewer: dict[str, str], ref: str = "ALR-1") -> dict[str, str]:
    alert = api.get(f"/api/v1/alerts/{ref.removeprefix('ALR-')}", headers=viewer).json()
    return {error["handler"].rsplit(".", 1)[-1]: error["error"] for error in alert["handler_errors"]}


def test_invalid_values_are_refused_however_the_handler_flushed(
    api: TestClient, context: AppContext, generic_key: str, viewer: dict[str, str], registered: list[Any]
) -> None:
    from sqlalchemy import func

    def severity_then_log(ctx: HandlerContext) -> None:
        assert ctx.incident is not None
        ctx.incident.severity = "P9"
        ctx.log("x")

    def alert_severity_then_query(ctx: HandlerContext) -> None:
        ctx.alert.severity = "urgent"
        ctx.session.scalar(select(func.count(Alert.id)))  # autoflush

    def long_title_then_flush(ctx: HandlerContext) -> None:
        assert ctx.incident is not None
        ctx.incident.title = "T" * 5000
        ctx.session.flush()
        ctx.log("flushed")

    def swallows_the_refusal(ctx: HandlerContext) -> None:
        ctx.alert.severity = "urgent"
        with contextlib.suppress(Exception):
            ctx.session.flush()

    for handler in (
        severity_then_log,
        alert_severity_then_query,
        long_title_then_flush,
        swallows_the_refusal,
    ):
        register(registered, "ChargeErrors", handler)
    fire(api, generic_key, payments_alert())
    run_handlers(context)

    errors = handler_errors(api, viewer)
    assert set(errors) == {
        "severity_then_log",
        "alert_severity_then_query",
        "long_title_then_flush",
        "swallows_the_refusal",
    }
    assert "INC-1 severity 'P9'" in errors["severity_then_log"]
    assert "ALR-1 severity 'urgent'" in errors["alert_severity_then_query"]
    assert "INC-1 title" in errors["long_title_then_flush"]
    incident = api.get("/api/v1/incidents/INC-1", headers=viewer).json()
    assert incident["severity"] != "P9" and len(incident["title"]) < 300
    assert api.get("/api/v1/alerts/1", headers=viewer).json()["severity"] == "critical"
    assert "flushed" not in timeline_actions(api, viewer)
    assert 'severity="P9"' not in api.get("/metrics").text
    assert_chain_intact(context)


def test_a_handler_cannot_commit_or_roll_back_its_transaction(
    api: TestClient, context: AppContext, generic_key: str, viewer: dict[str, str], registered: list[Any]
) -> None:
    def commits(ctx: HandlerContext) -> None:
        ctx.alert.summary = "committed by the handler"
        ctx.session.commit()
        raise RuntimeError("after the commit")

    def swallows(ctx: HandlerContext) -> None:
        ctx.alert.severity = "info"
        with contextlib.suppress(Exception):
            ctx.session.commit()

    def rolls_back(ctx: HandlerContext) -> None:
        ctx.session.rollback()

    def closes(ctx: HandlerContext) -> None:
        ctx.session.close()

    for handler in (commits, swallows, rolls_back, closes):
        register(registered, "ChargeErrors", handler)
    fire(api, generic_key, payments_alert())
    run_handlers(context)

    alert = api.get("/api/v1/alerts/1", headers=viewer).json()
    assert (alert["summary"], alert["severity"]) == ("card charges failing", "critical")
    errors = handler_errors(api, viewer)
    assert set(errors) == {"commits", "swallows", "rolls_back", "closes"}
    for name, verb in (("commits", "commit"), ("swallows", "commit"), ("rolls_back", "rollback")):
        assert f"must not {verb}" in errors[name], errors[name]
    assert "must not close" in errors["closes"]
    assert {job.status for job in handler_jobs(context)} == {JobStatus.done}
    assert_chain_intact(context)


def test_nul_in_a_handler_error_is_recorded_once(
    api: TestClient, context: AppContext, generic_key: str, viewer: dict[str, str], registered: list[Any]
) -> None:
    runs: list[str] = []

    def nul_error(ctx: HandlerContext) -> None:
        runs.append("nul_error")
        raise ValueError("bad\x00byte \udcff")

    def nul_log(ctx: HandlerContext) -> None:
        ctx.log("a\x00b")

    for handler in (nul_error, nul_log):
        register(registered, "ChargeErrors", handler)
    fire(api, generic_key, payments_alert())
    run_handlers(context)

    assert runs == ["nul_error"]
    errors = handler_errors(api, viewer)
    assert set(errors) == {"nul_error"}
    assert errors["nul_error"].startswith("ValueError: bad\ufffdbyte")
    assert "a\ufffdb" in timeline_actions(api, viewer)
    assert {job.status for job in handler_jobs(context)} == {JobStatus.done}
    assert_chain_intact(context)


def test_a_database_error_in_a_handler_is_recorded_short(
    api: TestClient, context: AppContext, generic_key: str, viewer: dict[str, str], registered: list[Any]
) -> None:
    from sqlalchemy import text

    def bad_sql(ctx: HandlerContext) -> None:
        ctx.session.execute(text("SELECT secret FROM no_such_table WHERE x = :x"), {"x": "parameter-value"})

    register(registered, "ChargeErrors", bad_sql)
    fire(api, generic_key, payments_alert())
    run_handlers(context)
    error = handler_errors(api, viewer)["bad_sql"]
    assert "no_such_table" in error
    assert "[SQL" not in error and "parameter-value" not in error and "SELECT" not in error
    assert error.split(":")[0] in ("OperationalError", "UndefinedTable")
    assert_chain_intact(context)


def test_a_handler_that_keeps_killing_its_worker_is_recorded_and_spares_the_others(
    api: TestClient, context: AppContext, generic_key: str, viewer: dict[str, str], registered: list[Any]
) -> None:
    """The worker process dying mid-handler (``os.kill(os.getpid(), 9)``): nothing after the handler's start
    is committed, and its lease expires. ``KeyboardInterrupt`` stops the real worker the same way here (it is
    let through), without taking pytest with it."""
    from sqlalchemy import update

    seen: list[str] = []

    def kills(ctx: HandlerContext) -> None:
        raise KeyboardInterrupt

    def innocent(ctx: HandlerContext) -> None:
        seen.append(ctx.alert.ref)

    register(registered, "ChargeErrors", kills)
    register(registered, "DiskFull", innocent)
    fire(api, generic_key, payments_alert())
    fire(api, generic_key, payments_alert(dedup_key="disk", labels={"alertname": "DiskFull"}))
    Worker(context, name="fan-out", lane="local").run_once()  # the events become their handlers' jobs
    killer, spared = handler_jobs(context, JobStatus.pending)
    with context.db.write() as session:  # claimed after the killer, in the same batch
        session.execute(
            update(Job).where(Job.id == spared.id).values(run_at=killer.run_at + timedelta(seconds=1))
        )
    lease = timedelta(seconds=30)
    moment = utcnow() + timedelta(seconds=2)
    for attempt in range(3):
        worker = Worker(context, name=f"doomed-{attempt}", lease=lease, concurrency=1)
        with pytest.raises(KeyboardInterrupt):
            worker.run_once(moment)
        assert seen == []  # the spared job was claimed with it but never started
        moment += lease + timedelta(seconds=1)
    Worker(context, name="survivor", lease=lease).run_once(moment)
    with context.db.read() as session:
        dead = session.get(Job, killer.id)
        ran = session.get(Job, spared.id)
        assert dead is not None and ran is not None
        assert (dead.status, dead.attempts) == (JobStatus.dead, 3)
        assert (ran.status, ran.attempts) == (JobStatus.done, 1)
    assert seen == ["ALR-2"]
    error = handler_errors(api, viewer)["kills"]
    assert "stopped" in error and "3 attempt" in error
    assert any("kills failed on ALR-1" in action for action in timeline_actions(api, viewer))
    assert_chain_intact(context)


def test_an_acknowledgement_within_a_rule_delay_runs_the_created_handlers_first(
    api: TestClient, delayed: AppContext, generic_key: str, registered: list[Any]
) -> None:
    seen: list[tuple[str, str | None]] = []

    def note(ctx: HandlerContext) -> None:
        seen.append((ctx.event, ctx.incident.ref if ctx.incident else None))

    register(registered, "SearchDown", note)
    clock.set(T0)
    worker = Worker(delayed, name="w1")
    fire_search(api, generic_key, "search-1")
    clock.set(T0 + timedelta(minutes=1))
    fire_search(api, generic_key, "search-1", status="acknowledged")
    clock.set(T0 + timedelta(minutes=6))
    while worker.run_once():
        pass
    run_handlers(delayed, worker)
    assert [event for event, _ in seen] == ["created", "acknowledged"]


def test_handlers_installed_only_where_the_worker_runs_are_run(
    api: TestClient, context: AppContext, generic_key: str, registered: list[Any]
) -> None:
    seen: list[str] = []

    def worker_only(ctx: HandlerContext) -> None:
        seen.append(ctx.event)

    # Nothing installed anywhere: intake adds no job for an alert.
    fire(api, generic_key, payments_alert(dedup_key="before"))
    assert handler_jobs(context) == []
    # A worker with the handler says so when it starts; this process (intake) does not have it.
    register(registered, "ChargeErrors", worker_only)
    with context.db.write() as session:
        handlers.announce(session)
    handlers.unregister(worker_only)
    handlers.forget_announcements()
    fire(api, generic_key, payments_alert())
    fire(api, generic_key, payments_alert(status="resolved"))
    assert handler_jobs(context) != []
    alert_handler("ChargeErrors")(worker_only)  # the worker's process
    run_handlers(context)
    assert seen == ["created", "resolved"]


def test_a_callable_object_handler_has_a_stable_name() -> None:
    class CCall:
        def __call__(self, ctx: HandlerContext) -> None:
            pass

    name = handlers.handler_name(CCall())
    assert name == handlers.handler_name(CCall())
    assert "0x" not in name and name.endswith("CCall")


def test_an_alert_that_resolves_while_held_runs_created_then_resolved(
    api: TestClient, context: AppContext, generic_key: str, admin: dict[str, str], registered: list[Any]
) -> None:
    seen: list[tuple[str, str | None]] = []
    register(
        registered,
        "ChargeErrors",
        lambda ctx: seen.append((ctx.event, ctx.incident.ref if ctx.incident else None)),
    )
    payments_window(api, admin)
    fire(api, generic_key, payments_alert())
    fire(api, generic_key, payments_alert(status="resolved"))
    run_handlers(context)
    assert seen == [("created", None), ("resolved", None)]


def test_a_handler_cannot_change_lifecycle_fields_directly(
    api: TestClient, context: AppContext, generic_key: str, viewer: dict[str, str], registered: list[Any]
) -> None:
    from warroom.incidents import service as incident_service
    from warroom.incidents.schemas import IncidentUpdate

    def resolves_directly(ctx: HandlerContext) -> None:
        assert ctx.incident is not None
        ctx.incident.status = "resolved"  # type: ignore[assignment]

    def acknowledges_the_alert_directly(ctx: HandlerContext) -> None:
        ctx.alert.status = AlertStatus.acknowledged

    def moves_to_identified(ctx: HandlerContext) -> None:
        assert ctx.incident is not None
        incident_service.update_incident(
            ctx.session,
            org=ctx.org,
            ref=ctx.incident.id,
            data=IncidentUpdate(status="identified", note="the handler found it"),  # type: ignore[arg-type]
            performer="automation",
        )

    for handler in (resolves_directly, acknowledges_the_alert_directly, moves_to_identified):
        register(registered, "ChargeErrors", handler)
    fire(api, generic_key, payments_alert())
    run_handlers(context)
    errors = handler_errors(api, viewer)
    assert set(errors) == {"resolves_directly", "acknowledges_the_alert_directly"}
    assert "INC-1 status" in errors["resolves_directly"]
    assert "ALR-1 status" in errors["acknowledges_the_alert_directly"]
    incident = api.get("/api/v1/incidents/INC-1", headers=viewer).json()
    assert incident["status"] == "identified"
    assert api.get("/api/v1/alerts/1", headers=viewer).json()["status"] == "firing"
    assert_chain_intact(context)


def test_a_broken_entry_point_is_one_line_in_config_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from tests.conftest import EXAMPLE_CONFIG

    broken_entry_point(tmp_path, monkeypatch)
    try:
        handlers._entry_points_loaded = False  # loaded by the command, as at startup
        with caplog.at_level(logging.DEBUG, logger="warroom.alerts.handlers"):
            checked = CliRunner().invoke(app, ["config", "check", str(EXAMPLE_CONFIG)])
        assert checked.exit_code == 0, checked.output
        assert checked.output.count("acme_missing_dependency") == 1, checked.output
        assert "Traceback" not in checked.output
        # The traceback is kept for debugging, never shown at the levels the commands log at.
        traced = [record for record in caplog.records if record.exc_info]
        assert traced and all(record.levelno == logging.DEBUG for record in traced)
    finally:
        sys.modules.pop("acme_broken", None)
        monkeypatch.undo()
        handlers.load_entry_points(force=True)
