"""An alert on no incident that gets worse under its dedup key (PagerDuty's way to escalate: the same key sent
again as critical after warning) is seen by the rules again, as a new alert of its severity would be."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.alerts.test_source_ack import pd, timeline
from warroom.alerts import service as alerts_service
from warroom.alerts.models import Alert, AlertNote
from warroom.context import AppContext
from warroom.events import DomainEvent
from warroom.incidents.models import Incident


def disk(key: str, severity: str, used: str, action: str = "trigger") -> dict[str, Any]:
    return {
        "routing_key": key,
        "event_action": action,
        "dedup_key": "disk-db9",
        "payload": {
            "summary": f"disk {used} on db-9",
            "source": "db-9",
            "severity": severity,
            "component": "database",
            "class": "DiskFull9",
        },
    }


def alert_row(context: AppContext, alert_id: int) -> Alert:
    with context.db.read() as session:
        alert = session.get_one(Alert, alert_id)
        session.expunge(alert)
        return alert


def notes(context: AppContext, alert_id: int) -> list[str]:
    with context.db.read() as session:
        return list(session.scalars(select(AlertNote.body).where(AlertNote.alert_id == alert_id)))


def test_an_unrouted_warning_that_turns_critical_opens_an_incident_and_pages(
    api: TestClient,
    context: AppContext,
    pd_key: str,
    viewer: dict[str, str],
    page_requests: list[DomainEvent],
) -> None:
    """QA's report: the example org file's critical-monitoring rule opens a P1 and pages for a new critical
    alert, but the warning it had been was unrouted, and its critical repeat stayed so."""
    warning = pd(api, disk(pd_key, "warning", "85%"))
    [first] = api.get("/api/v1/alerts?unrouted=true", headers=viewer).json()["items"]
    assert first["severity"] == "warning" and first["incident"] is None  # no rule takes a warning
    assert page_requests == []
    worse = pd(api, disk(pd_key, "critical", "99%"))
    assert worse["dedup_key"] == warning["dedup_key"] == "disk-db9"
    alert = _only_alert(context)
    assert (alert.severity, alert.occurrences, alert.incident_id) == ("critical", 2, 1)
    assert alert.rules == ["critical-monitoring"]  # routed now: no longer unrouted
    assert [event.data["policy"] for event in page_requests] == ["platform-escalation"]
    actions = [entry.action for entry in timeline(context, 1)]
    why = (
        f"Alert ALR-{alert.id} went from warning to critical while on no incident (no rule had routed it): "
        "the rules took it as a new critical alert"
    )
    assert why in actions, actions
    with context.db.read() as session:
        assert session.get_one(Incident, 1).severity == "P1"
    # Once per rise: the same critical again is a plain repeat; nothing more opens or pages.
    pd(api, disk(pd_key, "critical", "99.5%"))
    assert len(page_requests) == 1 and len(timeline(context, 1)) == len(actions)


def test_what_keeps_a_worse_alert_off_an_incident(
    api: TestClient, context: AppContext, pd_key: str, generic_key: str, page_requests: list[DomainEvent]
) -> None:
    """Acknowledged (someone took it on without an incident): a note on the alert, no incident. A delivery
    that ends no more severe than the alert was: nothing. Neither is a rise when no rule cares."""
    pd(api, disk(pd_key, "warning", "85%"))
    alert_id = _only_alert(context).id
    # Worse and better again within one delivery (PagerDuty takes batches as single events, so the generic
    # intake): it ends a warning, and the rules are not asked again.
    body = {"summary": "s", "service": "database", "labels": {"alertname": "DiskFull7"}, "dedup_key": "d7"}
    both = [
        {**body, "severity": "warning"},
        {**body, "severity": "critical"},
        {**body, "severity": "warning"},
    ]
    assert api.post(f"/api/v1/alerts?key={generic_key}", json=[both[0]]).status_code == 202
    assert api.post(f"/api/v1/alerts?key={generic_key}", json=both[1:]).status_code == 202
    assert page_requests == []
    # Acknowledged at its source, then worse: left to whoever is on it, and said so on the alert.
    pd(api, disk(pd_key, "warning", "85%", action="acknowledge"))
    pd(api, disk(pd_key, "critical", "99%"))
    alert = alert_row(context, alert_id)
    assert (alert.severity, alert.incident_id, alert.rules) == ("critical", None, None)
    assert page_requests == []
    assert notes(context, alert_id) == [
        "Went from warning to critical while acknowledged at its source (pagerduty), on no incident: not "
        f"routed, as someone is on it. To open an incident: warroom alerts promote ALR-{alert_id}"
    ]


def test_ordinary_repeats_of_an_unrouted_alert_do_no_routing_work(
    api: TestClient, context: AppContext, pd_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    original = alerts_service._severity_raised

    def counting(*args: Any, **kwargs: Any) -> None:
        calls.append(kwargs["was"])
        original(*args, **kwargs)

    monkeypatch.setattr(alerts_service, "_severity_raised", counting)
    pd(api, disk(pd_key, "warning", "85%"))
    pd(api, disk(pd_key, "warning", "86%"))  # changed, as severe
    pd(api, disk(pd_key, "info", "70%"))  # less severe
    assert calls == []
    pd(api, disk(pd_key, "error", "95%"))
    assert calls == ["info"]


def _only_alert(context: AppContext) -> Alert:
    with context.db.read() as session:
        [alert] = session.scalars(select(Alert)).all()
        session.expunge(alert)
        return alert
