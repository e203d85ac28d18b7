"""A heartbeat's missed alert resolved other than by a ping (by a person, with its incident, by auto-resolve)
leaves the heartbeat watched again from that moment: a sender still silent fires a new alert. And
``warroom heartbeats`` shows a due time only while something is watched. The example org file has
``prometheus-watchdog`` (1m + 2m grace) and ``nightly-backup`` (1d + 2h)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from tests.alerts.conftest import make_key
from tests.alerts.test_heartbeats import heartbeat_alerts, ping, with_heartbeat
from tests.alerts.test_incident_lock_order import waits_for_lock
from tests.alerts.test_source_ack import run_at, timeline
from warroom.alerts import heartbeats
from warroom.alerts import service as alerts_service
from warroom.alerts.config import AutoResolveConfig
from warroom.alerts.heartbeats import CHECK_KIND, DEADLINE_KEY
from warroom.app import create_app
from warroom.clock import clock
from warroom.context import AppContext
from warroom.jobs.models import Job, JobStatus
from warroom.jobs.worker import Worker

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
FIRED_AT = T0 + timedelta(minutes=3, seconds=1)  # a ping at T0, then silence: 1m + 2m grace
WATCHDOG = "prometheus-watchdog"
BACKUP = "/api/v1/heartbeats/nightly-backup"


@pytest.fixture
def hb_key(context: AppContext) -> str:
    return make_key(context, "heartbeat", "watchdog")


def listed(api: TestClient, headers: dict[str, str], name: str = WATCHDOG) -> dict[str, Any]:
    rows = {h["name"]: h for h in api.get("/api/v1/heartbeats", headers=headers).json()}
    row: dict[str, Any] = rows[name]
    return row


def due(row: dict[str, Any]) -> datetime | None:
    return datetime.fromisoformat(row["due_at"]) if row["due_at"] is not None else None


def missed_metric(api: TestClient, name: str = WATCHDOG) -> str:
    prefix = f'warroom_heartbeat_missed{{name="{name}"}} '
    return next(line for line in api.get("/metrics").text.splitlines() if line.startswith(prefix)).split()[-1]


def waiting_checks(context: AppContext, name: str = WATCHDOG) -> list[datetime]:
    """When each deadline check of the heartbeat that has not run yet will run."""
    with context.db.read() as session:
        return list(
            session.scalars(
                select(Job.run_at).where(
                    Job.kind == CHECK_KIND,
                    Job.status == JobStatus.pending,
                    Job.idempotency_key.startswith(f"{DEADLINE_KEY}{name}:"),
                )
            )
        )


def auto_resolve_heartbeats(context: AppContext) -> None:
    entry = AutoResolveConfig.model_validate({"match": {"source": ["heartbeat"]}, "after": "10m"})
    automation = context.org.automation.model_copy(update={"auto_resolve": [entry]})
    context.org = context.org.model_copy(update={"automation": automation})


@pytest.mark.parametrize("how", ["by hand", "with its incident", "by auto-resolve"])
def test_a_missed_heartbeat_resolved_without_a_ping_is_watched_again(
    how: str, context: AppContext, hb_key: str, viewer: dict[str, str], responder: dict[str, str]
) -> None:
    """3 a.m.: "Monitoring is blind" fires; the on-call restarts Prometheus and resolves it. The Watchdog
    still does not ping: 1m + 2m after the resolve, a new alert fires (a new incident pages again)."""
    if how == "by auto-resolve":
        auto_resolve_heartbeats(context)
    clock.set(T0)
    worker = Worker(context, name="w1")
    with TestClient(create_app(context=context)) as api:
        ping(api, hb_key)
        run_at(worker, FIRED_AT)
        assert heartbeat_alerts(context) == [("firing", 1)]
        assert listed(api, viewer)["state"] == "missed" and missed_metric(api) == "1.0"

        resolved_at = FIRED_AT + timedelta(minutes=11)
        if how == "by auto-resolve":
            run_at(worker, resolved_at)  # not seen for 10m: the sweep resolves it
        else:
            clock.set(resolved_at)
            if how == "by hand":
                answer = api.post(
                    "/api/v1/alerts/ALR-1/resolve", json={"note": "restarted"}, headers=responder
                )
            else:
                answer = api.patch("/api/v1/incidents/INC-1", json={"status": "resolved"}, headers=responder)
            assert answer.status_code == 200, answer.text
        assert heartbeat_alerts(context) == [("resolved", 1)]

        # Watched again from the resolve: no longer missed (list and metric), due 1m + 2m later, one check.
        # Shown "watching", not "ok": nothing was heard from it since.
        watched_until = resolved_at + timedelta(minutes=3)
        row = listed(api, viewer)
        assert (row["state"], row["missed_at"], due(row)) == ("watching", None, watched_until)
        assert missed_metric(api) == "0.0"
        assert waiting_checks(context) == [watched_until]
        said = f"{WATCHDOG} is watched again: its next ping is due by {watched_until:%Y-%m-%d %H:%M:%S} UTC"
        notes = api.get("/api/v1/alerts/ALR-1", headers=viewer).json()["notes"]
        assert [(n["author"], said in n["body"]) for n in notes][-1] == ("automation", True)
        assert any(f"Note on alert ALR-1: heartbeat {said}" in entry.action for entry in timeline(context, 1))

        # Still silent: nothing before the new deadline, then a new alert.
        run_at(worker, watched_until - timedelta(seconds=1))
        assert heartbeat_alerts(context) == [("resolved", 1)]
        run_at(worker, watched_until + timedelta(seconds=1))
        [_, (status, incident)] = heartbeat_alerts(context)
        assert status == "firing" and incident is not None  # routed as any: back on INC-1, or a new one
        assert listed(api, viewer)["state"] == "missed" and missed_metric(api) == "1.0"
        # A ping still resolves it, as before.
        clock.set(watched_until + timedelta(minutes=5))
        ping(api, hb_key)
        assert [status for status, _ in heartbeat_alerts(context)] == ["resolved", "resolved"]
        assert listed(api, viewer)["state"] == "ok" and waiting_checks(context) == [
            watched_until + timedelta(minutes=8)
        ]


def test_a_ping_and_a_resolve_leave_one_check(
    api: TestClient, context: AppContext, hb_key: str, viewer: dict[str, str], responder: dict[str, str]
) -> None:
    clock.set(T0)
    worker = Worker(context, name="w1")
    ping(api, hb_key)
    run_at(worker, FIRED_AT)
    # Resolved by hand, then the sender comes back a minute later: one check, at the ping's deadline.
    clock.set(FIRED_AT + timedelta(minutes=1))
    assert api.post("/api/v1/alerts/ALR-1/resolve", headers=responder).status_code == 200
    clock.set(FIRED_AT + timedelta(minutes=2))
    ping(api, hb_key)
    assert heartbeat_alerts(context) == [("resolved", 1)]  # nothing left to resolve
    assert waiting_checks(context) == [FIRED_AT + timedelta(minutes=4)]
    # Silent again: one new alert at that deadline, not two.
    run_at(worker, FIRED_AT + timedelta(minutes=5))
    assert [status for status, _ in heartbeat_alerts(context)] == ["resolved", "firing"]
    # The other way round: a ping resolves it first, and the person's resolve finds it resolved.
    clock.set(FIRED_AT + timedelta(minutes=6))
    ping(api, hb_key)
    late = api.post("/api/v1/alerts/ALR-2/resolve", headers=responder)
    assert late.status_code == 409, late.text
    assert waiting_checks(context) == [FIRED_AT + timedelta(minutes=9)]
    assert listed(api, viewer)["state"] == "ok"


def test_a_ping_during_a_resolve_by_hand_waits_for_it(
    api: TestClient, context: AppContext, hb_key: str, viewer: dict[str, str]
) -> None:
    """PostgreSQL: the person's resolve holds the alert (after its incident) and then takes the heartbeat's
    row; a ping at that moment takes them in the same order, so it waits instead of holding the row while
    waiting for the incident (a deadlock, one of the two refused). Made deterministic: the resolve goes on
    only once the ping is seen waiting for it."""
    if context.db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite runs one write transaction at a time: no deadlocks")
    clock.set(T0)
    ping(api, hb_key)
    run_at(Worker(context, name="w1"), FIRED_AT)
    assert heartbeat_alerts(context) == [("firing", 1)]
    clock.set(FIRED_AT + timedelta(minutes=1))
    outcomes: dict[str, BaseException | None] = {}

    def pinged() -> None:
        try:
            with context.db.write() as session:
                session.execute(text("SET LOCAL deadlock_timeout = '100ms'"))
                heartbeats.ping(session, org=context.org, name=WATCHDOG, secret=hb_key)
            outcomes["ping"] = None
        except BaseException as exc:  # asserted on below
            outcomes["ping"] = exc

    sender = threading.Thread(target=pinged)
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
    assert outcomes == {"resolve": None, "ping": None}
    assert heartbeat_alerts(context) == [("resolved", 1)]
    assert waiting_checks(context) == [FIRED_AT + timedelta(minutes=4)]
    assert listed(api, viewer)["state"] == "ok"


def test_a_run_limit_missed_before_any_ping_and_resolved_by_hand_waits_for_the_first_ping(
    api: TestClient, context: AppContext, hb_key: str, viewer: dict[str, str], responder: dict[str, str]
) -> None:
    """nightly-backup has never pinged (and no first_ping_within): only its run's time limit fired. Resolved
    by hand, it is no longer missed, and, like any heartbeat that never pinged, waits for its first ping."""
    with_heartbeat(context, "nightly-backup", max_runtime=timedelta(hours=2))
    clock.set(T0)
    assert api.post(f"{BACKUP}/start?key={hb_key}").status_code == 200
    run_at(Worker(context, name="w1"), T0 + timedelta(hours=2, seconds=1))
    assert [status for status, _ in heartbeat_alerts(context)] == ["firing"]
    clock.set(T0 + timedelta(hours=3))
    assert api.post("/api/v1/alerts/ALR-1/resolve", headers=responder).status_code == 200
    row = listed(api, viewer, "nightly-backup")
    assert (row["state"], row["missed_at"], row["due_at"]) == ("running", None, None)
    assert missed_metric(api, "nightly-backup") == "0.0"
    assert waiting_checks(context, "nightly-backup") == []


def test_due_times_only_while_watched(
    api: TestClient, context: AppContext, hb_key: str, viewer: dict[str, str]
) -> None:
    """A /start alone (no first_ping_within) watches nothing without max_runtime; with it, the run's time
    limit is what is due. A missed heartbeat is due nothing more: its alert fires already."""
    clock.set(T0)
    started = api.post(f"{BACKUP}/start?key={hb_key}").json()
    assert (started["status"], started["next_due_at"]) == ("started", None)
    row = listed(api, viewer, "nightly-backup")
    assert (row["state"], row["due_at"]) == ("running", None)
    assert listed(api, viewer)["due_at"] is None  # never pinged

    with_heartbeat(context, "nightly-backup", max_runtime=timedelta(hours=2))
    clock.set(T0 + timedelta(hours=1))
    started = api.post(f"{BACKUP}/start?key={hb_key}").json()
    assert datetime.fromisoformat(started["next_due_at"]) == T0 + timedelta(hours=3)
    assert due(listed(api, viewer, "nightly-backup")) == T0 + timedelta(hours=3)
    # Its run ends with a ping: the deadline is the ping's (1d + 2h), the run's limit no longer counts.
    clock.set(T0 + timedelta(hours=2))
    ended = ping(api, hb_key, name="nightly-backup")
    assert datetime.fromisoformat(ended["next_due_at"]) == T0 + timedelta(days=1, hours=4)
    # The next run starts: its time limit comes first.
    clock.set(T0 + timedelta(hours=12))
    api.post(f"{BACKUP}/start?key={hb_key}")
    assert due(listed(api, viewer, "nightly-backup")) == T0 + timedelta(hours=14)

    ping(api, hb_key)
    assert due(listed(api, viewer)) == T0 + timedelta(hours=12, minutes=3)
    run_at(Worker(context, name="w1"), T0 + timedelta(hours=12, minutes=4))
    row = listed(api, viewer)
    assert (row["state"], row["due_at"]) == ("missed", None)
