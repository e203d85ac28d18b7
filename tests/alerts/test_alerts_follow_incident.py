"""An incident's alerts follow it, as in PagerDuty: acknowledging the incident acknowledges its firing alerts,
and resolving it (or closing it) resolves its open ones, so the same problem firing again opens a new alert
that is routed and pages, instead of being absorbed into an incident nobody is on."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import update

from tests.alerts.test_source_ack import SEARCH_5XX, T0, generic, incident, pd, pd_ack, pd_trigger, timeline
from warroom.alerts.models import Alert, AlertStatus
from warroom.clock import clock
from warroom.context import AppContext


def alert_row(context: AppContext, number: int) -> Alert:
    with context.db.read() as session:
        return session.get_one(Alert, number)


def disk_trigger(key: str, severity: str = "critical") -> dict[str, Any]:
    """QA's PagerDuty event: routed by the example's critical-monitoring rule (an incident, and a page)."""
    return {
        "routing_key": key,
        "event_action": "trigger",
        "dedup_key": "disk-db8",
        "payload": {
            "summary": "disk 95% on db-8",
            "source": "db-8",
            "severity": severity,
            "class": "DiskFull8",
        },
    }


def page_requests(context: AppContext, number: int) -> list[str]:
    return [e.action for e in timeline(context, number) if e.kind == "page"]


# --- resolving --------------------------------------------------------------------------------------------


def test_resolving_an_incident_resolves_its_alerts_and_the_next_firing_pages(
    api: TestClient, context: AppContext, pd_key: str, responder: dict[str, str]
) -> None:
    clock.set(T0)
    first = pd(api, disk_trigger(pd_key))
    assert alert_row(context, 1).incident_id == 1
    assert page_requests(context, 1)  # the first firing opened INC-1 and paged

    clock.set(T0 + timedelta(minutes=5))
    response = api.patch(
        "/api/v1/incidents/INC-1", headers=responder, json={"status": "resolved", "note": "cleaned tmp"}
    )
    assert response.status_code == 200, response.text
    alert = alert_row(context, 1)
    assert (alert.status, alert.resolved_by, alert.resolution_note, alert.open_dedup_key) == (
        AlertStatus.resolved,
        "responder-user",
        "its incident INC-1 was resolved",
        None,
    )
    assert alert.resolved_at == T0 + timedelta(minutes=5)
    status_entry, alert_entry = _after_status(context, 1)
    assert status_entry.action == "Status: investigating → resolved — cleaned tmp"
    assert (
        alert_entry.action
        == "Alert ALR-1 resolved by hand: disk 95% on db-8 — its incident INC-1 was resolved"
    )
    assert alert_entry.performer == "responder-user"
    assert alert_entry.data == {
        "alert": 1,
        "resolved_by": "responder-user",
        "note": "its incident INC-1 was resolved",
    }
    # Its alert closing does not move the resolved incident back to monitoring.
    after = incident(context, 1)
    assert after.status == "resolved" and after.monitoring_at is None
    statuses = [e.action for e in timeline(context, 1) if e.kind in ("status_change", "reopened")]
    assert statuses == ["Status: investigating → resolved — cleaned tmp"]
    before = [(e.seq, e.hash) for e in timeline(context, 1)]

    # 61 s later the same problem fires again: a new alert, routed like any new one (an incident, a page).
    clock.set(T0 + timedelta(minutes=5, seconds=61))
    again = pd(api, disk_trigger(pd_key))
    assert again["dedup_key"] == first["dedup_key"] == "disk-db8"
    second = alert_row(context, 2)
    assert (second.status, second.incident_id, second.occurrences) == (AlertStatus.firing, 2, 1)
    assert alert_row(context, 1).occurrences == 1
    assert incident(context, 2).status == "investigating"
    assert page_requests(context, 2)
    assert [(e.seq, e.hash) for e in timeline(context, 1)] == before  # INC-1's record is left alone
    listed = api.get("/api/v1/alerts?firing=true", headers=responder).json()["items"]
    assert [(a["ref"], a["incident"]) for a in listed] == [("ALR-2", "INC-2")]


def _after_status(context: AppContext, number: int) -> tuple[Any, Any]:
    """The incident's last status change and the entry right after it."""
    entries = timeline(context, number)
    index = max(i for i, e in enumerate(entries) if e.kind == "status_change")
    return entries[index], entries[index + 1]


def test_a_worse_repeat_after_the_incident_resolved_opens_a_new_incident(
    api: TestClient, context: AppContext, pd_key: str, responder: dict[str, str]
) -> None:
    """warning, the incident is resolved, then critical under the same key: it is not a raise of the resolved
    incident (which pages nobody) but a new alert, routed by the rules."""
    clock.set(T0)
    pd(api, pd_trigger(pd_key, "api-5xx"))
    api.patch("/api/v1/incidents/INC-1", headers=responder, json={"status": "resolved"})
    clock.set(T0 + timedelta(minutes=2))
    answer = pd(api, pd_trigger(pd_key, "api-5xx"))
    assert answer["dedup_key"] == "api-5xx"
    assert alert_row(context, 2).incident_id == 2
    assert incident(context, 1).severity == "P1" and incident(context, 1).status == "resolved"
    assert page_requests(context, 2)


def test_acknowledged_and_snoozed_alerts_resolve_with_the_incident_resolved_ones_are_left_alone(
    api: TestClient, context: AppContext, generic_key: str, responder: dict[str, str]
) -> None:
    generic(api, generic_key, summary="5xx on api-a", dedup_key="api-a")
    generic(api, generic_key, summary="5xx on api-b", dedup_key="api-b")
    generic(api, generic_key, summary="5xx on api-c", dedup_key="api-c")
    generic(api, generic_key, summary="5xx on api-c", dedup_key="api-c", status="resolved")
    assert (
        api.post("/api/v1/alerts/ALR-1/snooze", headers=responder, json={"duration": "1h"}).status_code == 200
    )
    generic(api, generic_key, summary="5xx on api-b", dedup_key="api-b", status="acknowledged")
    earlier_resolve = alert_row(context, 3)
    api.patch("/api/v1/incidents/INC-1", headers=responder, json={"status": "identified"})
    response = api.patch("/api/v1/incidents/INC-1", headers=responder, json={"status": "resolved"})
    assert response.status_code == 200, response.text
    rows = [alert_row(context, n) for n in (1, 2, 3)]
    assert [r.status for r in rows] == [AlertStatus.resolved] * 3
    assert [r.resolved_by for r in rows] == ["responder-user", "responder-user", None]
    assert rows[0].snoozed_until is None  # the snooze ended with it
    assert rows[2].resolved_at == earlier_resolve.resolved_at  # resolved at its source before: untouched
    assert incident(context).status == "resolved"
    lines = [e.action for e in timeline(context) if "its incident INC-1 was resolved" in e.action]
    assert lines == [
        "Alert ALR-1 resolved by hand: 5xx on api-a — its incident INC-1 was resolved",
        "Alert ALR-2 resolved by hand: 5xx on api-b — its incident INC-1 was resolved",
    ]


def test_closing_resolves_alerts_left_open_on_an_incident_resolved_before(
    api: TestClient, context: AppContext, pd_key: str, responder: dict[str, str]
) -> None:
    """An incident resolved before alerts followed their incident may still hold an open alert: closing it
    (or starting its post-mortem) resolves that one too."""
    pd(api, disk_trigger(pd_key))
    api.patch("/api/v1/incidents/INC-1", headers=responder, json={"status": "resolved"})
    with context.db.write() as session:  # as such a database holds it
        session.execute(
            update(Alert)
            .where(Alert.id == 1)
            .values(status=AlertStatus.firing, resolved_at=None, resolved_by=None, open_dedup_key="disk-db8")
        )
    response = api.patch("/api/v1/incidents/INC-1", headers=responder, json={"status": "closed"})
    assert response.status_code == 200, response.text
    alert = alert_row(context, 1)
    assert (alert.status, alert.resolved_by, alert.resolution_note) == (
        AlertStatus.resolved,
        "responder-user",
        "its incident INC-1 was closed",
    )
    assert incident(context).status == "closed"
    assert timeline(context)[-1].action.endswith("its incident INC-1 was closed")


def test_a_merged_incidents_alerts_move_on_open(
    api: TestClient, context: AppContext, generic_key: str, responder: dict[str, str]
) -> None:
    generic(api, generic_key, summary="api 5xx", dedup_key="api-5xx")
    generic(api, generic_key, **SEARCH_5XX)
    assert (alert_row(context, 1).incident_id, alert_row(context, 2).incident_id) == (1, 2)
    merged = api.post("/api/v1/incidents/INC-2/merge", headers=responder, json={"into": "INC-1"})
    assert merged.status_code == 200, merged.text
    assert incident(context, 2).status == "resolved"
    moved = alert_row(context, 2)
    assert (moved.status, moved.incident_id, moved.resolved_at) == (AlertStatus.firing, 1, None)
    # Its next firing updates it there.
    again = generic(api, generic_key, **SEARCH_5XX)
    assert (again["id"], again["incident"]) == (2, "INC-1")


# --- acknowledging ----------------------------------------------------------------------------------------


def test_acknowledging_an_incident_acknowledges_its_firing_alerts(
    api: TestClient, context: AppContext, pd_key: str, generic_key: str, responder: dict[str, str]
) -> None:
    clock.set(T0)
    generic(api, generic_key, summary="5xx on api-a", dedup_key="api-a")
    pd(api, pd_trigger(pd_key, "api-b"))
    generic(api, generic_key, summary="5xx on api-c", dedup_key="api-c")
    generic(api, generic_key, summary="5xx on api-c", dedup_key="api-c", status="acknowledged")
    assert incident(context).acknowledged_at is None  # two still fire

    clock.set(T0 + timedelta(minutes=3))
    response = api.post("/api/v1/incidents/INC-1/ack", headers=responder)
    assert response.status_code == 200, response.text
    rows = [alert_row(context, n) for n in (1, 2, 3)]
    assert [(r.status, r.acknowledged_by) for r in rows] == [
        (AlertStatus.acknowledged, "responder-user"),
        (AlertStatus.acknowledged, "responder-user"),
        (AlertStatus.acknowledged, None),  # acknowledged at its source before: it keeps that
    ]
    assert rows[0].acknowledged_at == rows[1].acknowledged_at == T0 + timedelta(minutes=3)
    entries = timeline(context)
    ack_index = next(i for i, e in enumerate(entries) if e.kind == "acknowledged")
    assert entries[ack_index].action == "Acknowledged by responder-user"
    with_it = entries[ack_index + 1]
    assert with_it.action == "Alerts ALR-1, ALR-2 acknowledged with INC-1 by responder-user"
    assert with_it.performer == "responder-user"
    assert with_it.data == {"alerts": [1, 2], "acknowledged_by": "responder-user", "with_incident": True}
    firing = api.get("/api/v1/alerts?status=firing&incident=INC-1", headers=responder).json()
    assert firing["items"] == []
    overview = api.get("/api/v1/alerts/overview", headers=responder).json()
    assert [
        (c["firing"], c["acknowledged"]) for c in overview["severities"] if c["severity"] == "critical"
    ] == [(0, 3)]
    assert [(i["ref"], i["acknowledged"], i["alerts_open"]) for i in overview["incidents"]] == [
        ("INC-1", True, 3)
    ]

    # Later firings leave them acknowledged; a second ack of the incident changes nothing.
    count = len(timeline(context))
    clock.set(T0 + timedelta(minutes=5))
    generic(api, generic_key, summary="5xx on api-a (again)", dedup_key="api-a")
    assert alert_row(context, 1).status == AlertStatus.acknowledged
    assert api.post("/api/v1/incidents/INC-1/ack", headers=responder).status_code == 200
    assert len(timeline(context)) == count


def test_acknowledging_the_last_firing_alert_writes_no_second_entry(
    api: TestClient, context: AppContext, pd_key: str, responder: dict[str, str]
) -> None:
    """The reverse direction (the incident's last firing alert acknowledged, so the incident is) leaves no
    firing alert for the incident's acknowledgement to reach: nothing more is written, and nothing loops."""
    pd(api, pd_trigger(pd_key, "api-5xx"))
    assert api.post("/api/v1/alerts/ALR-1/acknowledge", headers=responder).status_code == 200
    assert incident(context).acknowledged_by == "responder-user"
    assert not [e for e in timeline(context) if "acknowledged with" in e.action]
    assert len([e for e in timeline(context) if e.kind == "acknowledged"]) == 1
    pd_ack(api, pd_key, "api-5xx")  # its source's acknowledgement changes nothing more
    assert alert_row(context, 1).acknowledged_by == "responder-user"


def test_an_alert_joining_an_acknowledged_incident_is_acknowledged_with_it(
    api: TestClient, context: AppContext, generic_key: str, responder: dict[str, str]
) -> None:
    clock.set(T0)
    generic(api, generic_key, summary="5xx on api-a", dedup_key="api-a")
    generic(
        api, generic_key, summary="db slow", dedup_key="db-slow", severity="info", labels={"alertname": "Db"}
    )
    assert api.post("/api/v1/incidents/INC-1/ack", headers=responder).status_code == 200
    clock.set(T0 + timedelta(minutes=4))
    joined = generic(api, generic_key, summary="5xx on api-b", dedup_key="api-b")
    assert joined["incident"] == "INC-1"
    row = alert_row(context, 3)
    # Acknowledged as it joined, four minutes after the incident was: never before it was first seen.
    assert (row.status, row.acknowledged_by, row.acknowledged_at) == (
        AlertStatus.acknowledged,
        "responder-user",
        T0 + timedelta(minutes=4),
    )
    assert incident(context).acknowledged_at == T0
    attached, acknowledged = timeline(context)[-2:]
    assert attached.action.startswith("Alert ALR-3 (generic, critical) attached")
    assert acknowledged.action == (
        "Alert ALR-3 acknowledged on joining INC-1, which responder-user acknowledged: they are on it"
    )
    assert acknowledged.performer == "automation"
    # Attached by hand: the same.
    response = api.post("/api/v1/alerts/ALR-2/attach", headers=responder, json={"incident": "INC-1"})
    assert response.status_code == 200, response.text
    assert (alert_row(context, 2).status, alert_row(context, 2).acknowledged_by) == (
        AlertStatus.acknowledged,
        "responder-user",
    )
    assert timeline(context)[-1].performer == "responder-user"
    # Taken back by hand, it fires, and the incident keeps its acknowledgement.
    assert api.post("/api/v1/alerts/ALR-3/unacknowledge", headers=responder).status_code == 200
    assert alert_row(context, 3).status == AlertStatus.firing
    assert incident(context).acknowledged_by == "responder-user"
