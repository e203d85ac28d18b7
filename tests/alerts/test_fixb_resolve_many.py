"""Resolving an incident that holds many alerts closes them with a few set-wise statements in the incident's
transaction, however many there are, and one timeline entry names them. Before, each alert was flushed and run
through automation in turn: an incident of 3,000 alerts held the write lock (and so, on SQLite, all alert
intake) for 14 s. What follows the resolve (handlers, the release of what they muted, a heartbeat watched
again) is as when they resolved one by one."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import event, select

from tests.alerts.conftest import make_key
from tests.alerts.test_handler_safety import handler_jobs, register, registered, run_handlers
from tests.alerts.test_heartbeat_resolved_by_hand import FIRED_AT, T0, WATCHDOG, due, listed
from tests.alerts.test_heartbeats import heartbeat_alerts, ping
from tests.alerts.test_inhibition import HOST_DOWN
from tests.alerts.test_source_ack import run_at, timeline
from tests.conftest import EXAMPLE_CONFIG
from warroom.alerts import handlers
from warroom.alerts.handlers import EVENT_KIND, HandlerContext
from warroom.alerts.models import Alert, AlertStatus
from warroom.app import create_app
from warroom.clock import clock
from warroom.context import AppContext
from warroom.incidents.models import Incident
from warroom.jobs.worker import Worker
from warroom.orgconfig import OrgConfig, load_org_config, parse_org_config

__all__ = ["registered"]  # the fixture, imported for the handler test


@pytest.fixture
def org() -> OrgConfig:
    """Every generic alert opens or joins its group's incident (by alertname); HostDown mutes the alerts of
    its instance."""
    data: dict[str, Any] = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    data["automation"]["inhibit_rules"] = [HOST_DOWN]
    data["automation"]["rules"].insert(
        0,
        {
            "name": "everything",
            "match": {"source": ["generic"]},
            "incident": {"title": "{{ labels.alertname }}"},
        },
    )
    return parse_org_config(yaml.safe_dump(data))


def fire(api: TestClient, key: str, alertname: str, instances: range, **fields: Any) -> list[dict[str, Any]]:
    """One delivery: an alert of ``alertname`` per instance, all of one group."""
    body = [
        {
            "summary": f"{alertname} on web-{n}",
            "severity": "critical",
            "dedup_key": f"{alertname}/web-{n}",
            "type": alertname,
            "labels": {"alertname": alertname, "instance": f"web-{n}"},
            **fields,
        }
        for n in instances
    ]
    response = api.post(f"/api/v1/alerts?key={key}", json=body)
    assert response.status_code == 202, response.text
    answers: list[dict[str, Any]] = response.json()["alerts"]
    return answers


def resolve(api: TestClient, headers: dict[str, str], ref: str) -> None:
    response = api.patch(f"/api/v1/incidents/{ref}", headers=headers, json={"status": "resolved"})
    assert response.status_code == 200, response.text


def alerts_of(context: AppContext, incident_id: int) -> list[Alert]:
    with context.db.read() as session:
        return list(session.scalars(select(Alert).where(Alert.incident_id == incident_id).order_by(Alert.id)))


def after_status(context: AppContext, number: int) -> list[Any]:
    """The incident's timeline after its last status change."""
    entries = timeline(context, number)
    index = max(i for i, e in enumerate(entries) if e.kind == "status_change")
    return entries[index + 1 :]


def test_many_alerts_resolve_with_their_incident_under_one_entry_and_release_what_they_muted(
    api: TestClient, context: AppContext, generic_key: str, responder: dict[str, str]
) -> None:
    clock.set(T0)
    hosts = fire(api, generic_key, "HostDown", range(30))
    assert {answer["incident"] for answer in hosts} == {"INC-1"}
    [muted] = fire(api, generic_key, "ApiErrors", range(3, 4))
    assert muted["incident"] is None  # web-3 is down: its API errors are muted by its HostDown
    acknowledged = api.post(f"/api/v1/alerts/ALR-{hosts[1]['id']}/acknowledge", headers=responder)
    assert acknowledged.status_code == 200, acknowledged.text

    clock.set(T0 + timedelta(minutes=5))
    resolve(api, responder, "INC-1")

    closed = alerts_of(context, 1)
    assert len(closed) == 30
    assert {
        (a.status, a.resolved_at, a.resolved_by, a.resolution_note, a.open_dedup_key) for a in closed
    } == {
        (
            AlertStatus.resolved,
            T0 + timedelta(minutes=5),
            "responder-user",
            "its incident INC-1 was resolved",
            None,
        )
    }
    # One entry for the 30 (each had one of its own before), by the person, naming every alert in its data.
    [entry] = [e for e in after_status(context, 1) if e.kind == "alert"]
    assert entry.action == (
        "30 alerts resolved by hand: ALR-1, ALR-2, ALR-3, ALR-4, ALR-5, ALR-6, ALR-7, ALR-8, ALR-9, ALR-10 "
        "and 20 more — its incident INC-1 was resolved"
    )
    assert entry.performer == "responder-user"
    assert entry.data == {
        "alerts": [a.id for a in closed],
        "count": 30,
        "note": "its incident INC-1 was resolved",
        "resolved_by": "responder-user",
        "with_incident": True,
    }
    with context.db.read() as session:
        incident = session.get_one(Incident, 1)
        assert (incident.status.value, incident.monitoring_at) == ("resolved", None)  # not settled back

    # The API errors of web-3 were muted by an alert that resolved: routed now, on an incident of their own
    # (INC-1 is over), whose timeline says why they come late.
    with context.db.read() as session:
        released = session.get_one(Alert, muted["id"])
    assert released.incident_id == 2 and released.status == AlertStatus.firing
    assert any(
        f"ALR-{muted['id']} was inhibited by ALR-{hosts[3]['id']}" in e.action for e in timeline(context, 2)
    )

    # The alerts list shows them all resolved; the same problem firing again is a new alert, routed anew.
    listed_open = api.get("/api/v1/alerts?firing=true", headers=responder).json()["items"]
    assert [a["ref"] for a in listed_open] == [f"ALR-{muted['id']}"]
    [again] = fire(api, generic_key, "HostDown", range(5, 6))
    assert again["id"] not in {a.id for a in closed} and again["incident"] == "INC-3"


@pytest.mark.parametrize("with_handlers", [False, True])
def test_the_resolve_costs_the_same_statements_for_20_alerts_as_for_200(
    with_handlers: bool,
    api: TestClient,
    context: AppContext,
    generic_key: str,
    responder: dict[str, str],
    registered: list[handlers.Handler],
) -> None:
    """The statements run while the incident's transaction holds the write lock do not grow with its alerts
    (before: several per alert, thousands for 200), nor when every alert's handlers hear of its resolve
    (before: a lookup and a savepoint per job)."""
    if with_handlers:
        register(registered, "*", lambda ctx: None)
    fire(api, generic_key, "Small", range(20))
    fire(api, generic_key, "Big", range(200))
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    def resolved(ref: str) -> int:
        statements.clear()
        event.listen(context.db.engine, "before_cursor_execute", count)
        try:
            resolve(api, responder, ref)
        finally:
            event.remove(context.db.engine, "before_cursor_execute", count)
        return len(statements)

    small, big = resolved("INC-1"), resolved("INC-2")
    assert big <= small + 2, (small, big)
    assert {a.status for a in alerts_of(context, 2)} == {AlertStatus.resolved}
    assert len([e for e in after_status(context, 2) if e.kind == "alert"]) == 1


@pytest.mark.parametrize("count", [3, 12])
def test_their_handlers_hear_of_each_resolve(
    count: int,
    api: TestClient,
    context: AppContext,
    generic_key: str,
    responder: dict[str, str],
    registered: list[handlers.Handler],
) -> None:
    """One ``resolved`` event per alert, at the moment they resolved, for a few as for many."""

    heard: list[tuple[int, str]] = []

    def noted(ctx: HandlerContext) -> None:
        heard.append((ctx.alert.id, ctx.event))

    register(registered, "DiskFull", noted)
    clock.set(T0)
    fire(api, generic_key, "DiskFull", range(count))
    clock.set(T0 + timedelta(minutes=1))
    resolve(api, responder, "INC-1")
    resolved_events = [
        job.payload
        for job in handler_jobs(context, kinds=(EVENT_KIND,))
        if job.payload["event"] == "resolved"
    ]
    assert sorted(p["alert_id"] for p in resolved_events) == list(range(1, count + 1))
    assert {p["moment"] for p in resolved_events} == {(T0 + timedelta(minutes=1)).isoformat()}
    entries = [e for e in after_status(context, 1) if e.kind == "alert"]
    assert len(entries) == (count if count <= 10 else 1)  # each its own entry up to 10, as before
    # Each alert's handler runs once per event, its resolve after its creation.
    run_handlers(context)
    assert sorted(heard) == sorted(
        (n, event) for n in range(1, count + 1) for event in ("created", "resolved")
    )
    for n in range(1, count + 1):
        assert [event for alert_id, event in heard if alert_id == n] == ["created", "resolved"]


def test_a_heartbeat_s_alert_among_many_is_watched_again(
    context: AppContext, responder: dict[str, str], viewer: dict[str, str]
) -> None:
    """A heartbeat's missed alert on an incident of many alerts: resolved with it, the heartbeat is watched
    again from that moment, as when it is resolved alone."""
    context.org = load_org_config(EXAMPLE_CONFIG)  # where an info alert from a script is routed by no rule
    hb_key, generic_key = make_key(context, "heartbeat", "watchdog"), make_key(context, "generic", "scripts")
    clock.set(T0)
    worker = Worker(context, name="w1")
    with TestClient(create_app(context=context)) as api:
        ping(api, hb_key)
        run_at(worker, FIRED_AT)
        assert heartbeat_alerts(context) == [("firing", 1)]
        others = fire(api, generic_key, "Disk", range(12), severity="info")
        for other in others:  # put on the heartbeat's incident by hand
            assert other["incident"] is None
            moved = api.post(
                f"/api/v1/alerts/ALR-{other['id']}/attach", headers=responder, json={"incident": "INC-1"}
            )
            assert moved.status_code == 200, moved.text
        resolved_at = FIRED_AT + timedelta(minutes=11)
        clock.set(resolved_at)
        resolve(api, responder, "INC-1")
        assert heartbeat_alerts(context) == [("resolved", 1)]
        assert {a.status for a in alerts_of(context, 1)} == {AlertStatus.resolved}
        row = listed(api, viewer)
        assert (row["state"], row["missed_at"], due(row)) == (
            "watching",
            None,
            resolved_at + timedelta(minutes=3),
        )
        assert len([e for e in after_status(context, 1) if e.kind == "alert"]) == 1
        notes = api.get("/api/v1/alerts/ALR-1", headers=viewer).json()["notes"]
        assert f"{WATCHDOG} is watched again" in notes[-1]["body"]
