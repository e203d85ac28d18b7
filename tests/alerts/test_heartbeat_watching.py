"""A heartbeat's alert resolved other than by a ping shows the heartbeat ``watching`` (watched again, nothing
heard since) until its next ping: the list, the CLI and /metrics agree. The example org file has
``prometheus-watchdog`` (1m + 2m grace) and ``nightly-backup`` (1d + 2h), and its ``scheduled-job-failed``
rule opens an incident for a ``HeartbeatFailed`` alert."""

from __future__ import annotations

import re
import threading
import time
from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from typer.testing import CliRunner

from tests.alerts.test_cli_output import cli_through_app
from tests.alerts.test_heartbeat_resolved_by_hand import (
    FIRED_AT,
    T0,
    auto_resolve_heartbeats,
    due,
    hb_key,
    listed,
    waiting_checks,
)
from tests.alerts.test_heartbeats import heartbeat_alerts, ping, with_heartbeat
from tests.alerts.test_incident_lock_order import waits_for_lock
from tests.alerts.test_source_ack import run_at
from warroom import reload
from warroom.alerts import heartbeats
from warroom.alerts import service as alerts_service
from warroom.app import create_app
from warroom.cli.main import app
from warroom.clock import clock
from warroom.context import AppContext
from warroom.jobs.worker import Worker

__all__ = ["cli_through_app", "hb_key"]  # fixtures shared with the modules they come from

BACKUP = "nightly-backup"
REPORT = f"/api/v1/heartbeats/{BACKUP}"


def metric(api: TestClient, family: str, name: str = BACKUP) -> str:
    prefix = f'warroom_heartbeat_{family}{{name="{name}"}} '
    return next(line for line in api.get("/metrics").text.splitlines() if line.startswith(prefix)).split()[-1]


def cli_row(cli: CliRunner, name: str = BACKUP) -> str:
    shown = cli.invoke(app, ["heartbeats"], env={"COLUMNS": "250"})
    assert shown.exit_code == 0, shown.output
    return next(line for line in shown.stdout.splitlines() if name in line)


@pytest.mark.parametrize("how", ["by hand", "with its incident", "by auto-resolve"])
def test_a_failure_alert_resolved_without_a_good_run_leaves_the_heartbeat_watching(
    how: str,
    context: AppContext,
    hb_key: str,
    viewer: dict[str, str],
    responder: dict[str, str],
    api: TestClient,
    cli_through_app: CliRunner,
) -> None:
    """The nightly backup failed (exit 2); the on-call fixed the disk and resolved the alert. The heartbeat
    stayed "failed" (list, CLI, warroom_heartbeat_failed 1) until the next night's run, with nothing firing:
    it is "watching" now, due by the failed run's deadline, and the next failed run fires a new alert."""
    clock.set(T0)
    if how == "by auto-resolve":
        auto_resolve_heartbeats(context)
        reload.start_recurring(context)  # as a reload that adds the entry: its sweeps start
    worker = Worker(context, name="w1")
    assert api.post(f"{REPORT}/2?key={hb_key}", content=b"disk full").status_code == 200
    assert heartbeat_alerts(context) == [("firing", 1)]
    row = listed(api, viewer, BACKUP)
    assert (row["state"], metric(api, "failed")) == ("failed", "1.0")
    deadline = T0 + timedelta(days=1, hours=2)
    assert due(row) == deadline

    resolved_at = T0 + timedelta(minutes=11)
    if how == "by auto-resolve":
        run_at(worker, resolved_at)  # not seen for 10m: the sweep resolves it
    else:
        clock.set(resolved_at)
        if how == "by hand":
            answer = api.post("/api/v1/alerts/ALR-1/resolve", json={"note": "disk fixed"}, headers=responder)
        else:
            answer = api.patch("/api/v1/incidents/INC-1", json={"status": "resolved"}, headers=responder)
        assert answer.status_code == 200, answer.text
    assert heartbeat_alerts(context) == [("resolved", 1)]

    # Nothing fires: not failed anywhere. Watched, due by the failed run's deadline (the resolve kept it).
    row = listed(api, viewer, BACKUP)
    assert (row["state"], row["failed_at"], due(row)) == ("watching", None, deadline)
    assert datetime.fromisoformat(row["watched_again_at"]) == resolved_at
    assert row["last_exit_status"] == 2  # what the last run said stays shown
    assert metric(api, "failed") == "0.0" and metric(api, "missed") == "0.0"
    assert re.search(r"(?<!\S)watching(?!\S)", cli_row(cli_through_app)), cli_row(cli_through_app)
    assert waiting_checks(context, BACKUP) == [deadline]
    said = f"heartbeat {BACKUP} is watched again: its next ping is due by {deadline:%Y-%m-%d %H:%M:%S} UTC"
    notes = api.get("/api/v1/alerts/ALR-1", headers=viewer).json()["notes"]
    assert [(n["author"], n["body"].startswith(said)) for n in notes][-1] == ("automation", True)

    # The next night fails again: a new alert at once, and "failed" again.
    clock.set(T0 + timedelta(days=1))
    assert api.post(f"{REPORT}/2?key={hb_key}").status_code == 200
    assert [status for status, _ in heartbeat_alerts(context)] == ["resolved", "firing"]
    assert (listed(api, viewer, BACKUP)["state"], metric(api, "failed")) == ("failed", "1.0")
    # A good run resolves it: ok.
    clock.set(T0 + timedelta(days=2))
    assert api.post(f"{REPORT}/0?key={hb_key}").status_code == 200
    assert [status for status, _ in heartbeat_alerts(context)] == ["resolved", "resolved"]
    row = listed(api, viewer, BACKUP)
    assert (row["state"], row["watched_again_at"], metric(api, "failed")) == ("ok", None, "0.0")


def test_watching_ends_with_a_ping_or_at_the_deadline(
    api: TestClient, context: AppContext, hb_key: str, viewer: dict[str, str], responder: dict[str, str]
) -> None:
    """A missed alert resolved by hand: "watching" (not "ok": the Watchdog has not pinged since), then "late"
    as the deadline passes, "missed" when it fires; and a ping while watching makes it "ok"."""
    clock.set(T0)
    worker = Worker(context, name="w1")
    ping(api, hb_key)
    run_at(worker, FIRED_AT)
    clock.set(FIRED_AT + timedelta(minutes=1))
    assert api.post("/api/v1/alerts/ALR-1/resolve", headers=responder).status_code == 200
    assert listed(api, viewer)["state"] == "watching"
    clock.set(FIRED_AT + timedelta(minutes=4))  # its deadline passed, the check not run yet
    assert listed(api, viewer)["state"] == "late"
    run_at(worker, FIRED_AT + timedelta(minutes=4))
    assert listed(api, viewer)["state"] == "missed"
    clock.set(FIRED_AT + timedelta(minutes=5))
    assert api.post("/api/v1/alerts/ALR-2/resolve", headers=responder).status_code == 200
    assert listed(api, viewer)["state"] == "watching"
    ping(api, hb_key)
    row = listed(api, viewer)
    assert (row["state"], row["watched_again_at"]) == ("ok", None)


def test_a_failure_resolved_while_the_sender_is_silent_leaves_it_missed(
    api: TestClient, context: AppContext, hb_key: str, viewer: dict[str, str], responder: dict[str, str]
) -> None:
    """The backup failed and then went silent: both alerts fire. Resolving the failure alert leaves the
    missed one firing, and the heartbeat shown "missed" (its note says so); the missed one resolved too, it is
    watched again."""
    clock.set(T0)
    assert api.post(f"{REPORT}/1?key={hb_key}").status_code == 200
    run_at(Worker(context, name="w1"), T0 + timedelta(days=1, hours=2, seconds=1))
    assert [status for status, _ in heartbeat_alerts(context)] == ["firing", "firing"]
    assert api.post("/api/v1/alerts/ALR-1/resolve", headers=responder).status_code == 200
    row = listed(api, viewer, BACKUP)
    assert (row["state"], row["failed_at"], metric(api, "failed"), metric(api, "missed")) == (
        "missed",
        None,
        "0.0",
        "1.0",
    )
    notes = api.get("/api/v1/alerts/ALR-1", headers=viewer).json()["notes"]
    assert notes[-1]["body"] == (
        f"heartbeat {BACKUP}'s next failed run fires a new alert (its missed alert still fires)"
    )
    clock.set(T0 + timedelta(days=1, hours=3))
    assert api.post("/api/v1/alerts/ALR-2/resolve", headers=responder).status_code == 200
    row = listed(api, viewer, BACKUP)
    assert (row["state"], due(row)) == ("watching", T0 + timedelta(days=2, hours=5))


def test_a_report_during_a_resolve_of_the_failure_alert_waits_for_it(
    api: TestClient, context: AppContext, hb_key: str, viewer: dict[str, str]
) -> None:
    """PostgreSQL: resolving the failure alert by hand holds it (after its incident), then takes the
    heartbeat's row. A good run reported at that moment took the row first, then waited for the alert to
    resolve it: a deadlock, one of the two refused. It takes the alert first now, and waits."""
    if context.db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite runs one write transaction at a time: no deadlocks")
    clock.set(T0)
    assert api.post(f"{REPORT}/2?key={hb_key}").status_code == 200
    clock.set(T0 + timedelta(hours=1))
    outcomes: dict[str, BaseException | None] = {}

    def reported() -> None:
        try:
            with context.db.write() as session:
                session.execute(text("SET LOCAL deadlock_timeout = '100ms'"))
                heartbeats.ping(session, org=context.org, name=BACKUP, secret=hb_key)
            outcomes["report"] = None
        except BaseException as exc:  # asserted on below
            outcomes["report"] = exc

    sender = threading.Thread(target=reported)
    try:
        with context.db.write() as session:
            session.execute(text("SET LOCAL deadlock_timeout = '200ms'"))
            holder = int(session.scalar(text("SELECT pg_backend_pid()")) or 0)
            alerts_service.lock_alert(session, 1)
            sender.start()
            waits_for_lock(context, holder, time.monotonic() + 8)
            alerts_service.resolve(session, org=context.org, ref=1, performer="bob")
        outcomes["resolve"] = None
    except BaseException as exc:  # asserted on below
        outcomes["resolve"] = exc
    sender.join(10)
    assert not sender.is_alive()
    assert outcomes == {"resolve": None, "report": None}
    assert heartbeat_alerts(context) == [("resolved", 1)]
    row = listed(api, viewer, BACKUP)
    assert (row["state"], row["failed_at"]) == ("ok", None)


def test_a_heartbeat_put_back_after_a_run_began_is_not_shown_running(
    context: AppContext, hb_key: str, viewer: dict[str, str]
) -> None:
    """The backup signalled /start, then was taken out of the org file: its end was refused (404) and its
    time limit cancelled. Put back a day later, it showed "running" (since the day before) until its next
    ping, with nothing watching the run. It starts afresh: watched again from the reload."""
    with_heartbeat(context, BACKUP, max_runtime=timedelta(hours=2))
    original = context.org
    clock.set(T0)
    with TestClient(create_app(context=context)) as api:
        ping(api, hb_key, name=BACKUP)
        clock.set(T0 + timedelta(hours=1))
        assert api.post(f"{REPORT}/start?key={hb_key}").status_code == 200
        assert listed(api, viewer, BACKUP)["state"] == "running"
        with_heartbeat(context, BACKUP)  # taken out
        reload.start_recurring(context)
        clock.set(T0 + timedelta(hours=1, minutes=30))
        assert api.post(f"{REPORT}/0?key={hb_key}").status_code == 404

        clock.set(T0 + timedelta(days=1))
        context.org = original
        reload.start_recurring(context)
        row = listed(api, viewer, BACKUP)
        assert (row["state"], row["started_at"], due(row)) == (
            "watching",
            None,
            T0 + timedelta(days=2, hours=2),
        )
        run_at(Worker(context, name="w1"), T0 + timedelta(days=1, hours=3))
        assert heartbeat_alerts(context) == []  # no time limit of a run it no longer knows of
