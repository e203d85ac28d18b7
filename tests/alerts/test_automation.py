"""Automation rules, grouping, handlers and reports, through the HTTP API on both databases."""

from __future__ import annotations

import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.alerts.test_wait_for_business_hours import run_until
from tests.conftest import EXAMPLE_CONFIG
from warroom.alerts import automation, handlers
from warroom.alerts import service as alerts_service
from warroom.alerts.adapters import AlertEvent, from_generic
from warroom.alerts.config import AutomationConfig
from warroom.alerts.handlers import HandlerContext, alert_handler
from warroom.alerts.models import Alert
from warroom.clock import clock
from warroom.context import AppContext
from warroom.events import DomainEvent
from warroom.incidents.models import Incident
from warroom.jobs.worker import Worker
from warroom.orgconfig import ConfigError, OrgConfig, load_org_config, parse_org_config

RULES: dict[str, Any] = {
    "group_by": ["service", "alertname"],
    "group_window": "30m",
    "rules": [
        {
            "name": "payments",
            "match": {"labels": {"service": "payments"}, "severity": ["critical"]},
            "incident": {
                "title": "Payments: {{ alert.summary }} ({{ labels.alertname }})",
                "severity": "P0",
                "services": ["api"],
                "assessment": {"symptoms": ["payment_failure"], "business_impact": {"revenue": "high"}},
            },
            "runbooks": ["payments-failover", "card-processor-status"],
            "page": "payments-escalation",
            "notify": [{"audience": "internal", "message": "{{ incident.ref }}: {{ alert.summary }}"}],
        },
        {
            "name": "db-regex",
            "match": {"labels_regex": {"alertname": "Postgres.*"}, "labels_missing": ["silenced"]},
            "incident": {},
        },
        {"name": "reports", "match": {"source": ["customer-report"]}, "incident": {"severity": "P2"}},
        {
            "name": "internal",
            "match": {"source": ["internal-discovery"]},
            "incident": {"group_by": ["source", "service"]},
            "resolve_to_monitoring": False,
        },
    ],
    "reports": {"rate_limit": 2, "rate_period": "1m"},
}


@pytest.fixture
def org() -> OrgConfig:
    base = load_org_config(EXAMPLE_CONFIG)
    return base.model_copy(update={"automation": AutomationConfig.model_validate(RULES)})


def fire(api: TestClient, key: str, *alerts: dict[str, Any]) -> list[dict[str, Any]]:
    response = api.post(f"/api/v1/alerts?key={key}", json=list(alerts))
    assert response.status_code == 202, response.text
    result: list[dict[str, Any]] = response.json()["alerts"]
    return result


def payments_alert(**overrides: Any) -> dict[str, Any]:
    alert = {
        "summary": "card charges failing",
        "severity": "critical",
        "labels": {"service": "payments", "alertname": "ChargeErrors"},
        "dedup_key": "charges",
    }
    return {**alert, **overrides}


def test_rule_opens_incident_with_everything_on_the_timeline(
    api: TestClient, generic_key: str, viewer: dict[str, str], page_requests: list[DomainEvent]
) -> None:
    [result] = fire(api, generic_key, payments_alert())
    assert result["incident"] == "INC-1"
    incident = api.get("/api/v1/incidents/INC-1", headers=viewer).json()
    assert incident["title"] == "Payments: card charges failing (ChargeErrors)"
    assert incident["severity"] == "P0"
    assert incident["services"] == ["api", "payments"]  # the rule's, then the alert's own
    assert incident["created_by"] == "automation"
    assert incident["assessment"]["symptoms"] == ["payment_failure"]
    assert incident["assessment"]["source"] == "monitoring-alert"
    timeline = api.get("/api/v1/incidents/INC-1/timeline", headers=viewer).json()["items"]
    assert {entry["performer"] for entry in timeline} == {"automation"}
    actions = [entry["action"] for entry in timeline]
    assert actions[0].startswith("Incident INC-1 declared at P0")
    assert "by rule payments" in actions[0]
    assert actions[1].startswith("Alert ALR-1 (generic, critical) attached")
    assert "Runbook attached: payments-failover" in actions
    assert "Runbook attached: card-processor-status" in actions
    assert "Page requested: escalation policy payments-escalation" in actions
    assert any(entry["kind"] == "communication" for entry in timeline)
    updates = api.get("/api/v1/incidents/INC-1/updates", headers=viewer).json()
    assert updates[0]["message"] == "INC-1: card charges failing"
    assert updates[0]["sender"] == "automation"
    assert [(p.name, p.incident_id, p.data) for p in page_requests] == [
        ("incident.page_requested", 1, {"policy": "payments-escalation", "rule": "payments"})
    ]
    alert = api.get("/api/v1/alerts/1", headers=viewer).json()
    assert alert["rules"] == ["payments"]
    assert alert["unrouted"] is False


def test_grouping_attaches_to_one_open_incident(
    api: TestClient, generic_key: str, viewer: dict[str, str], page_requests: list[DomainEvent]
) -> None:
    clock.set(datetime(2026, 11, 28, 12, 0, tzinfo=UTC))
    first = fire(api, generic_key, payments_alert(dedup_key="a"))[0]
    clock.advance(timedelta(minutes=5))
    # Same service + alertname, different dedup key: same group, so the same incident.
    second, other = fire(
        api,
        generic_key,
        payments_alert(dedup_key="b", summary="refunds failing"),
        payments_alert(dedup_key="c", labels={"service": "payments", "alertname": "PayoutLag"}),
    )
    assert first["incident"] == second["incident"] == "INC-1"
    assert other["incident"] == "INC-2"
    assert len(page_requests) == 2  # the attach does not page again
    timeline = api.get("/api/v1/incidents/INC-1/timeline", headers=viewer).json()["items"]
    assert any("ALR-2" in e["action"] and "group of rule payments" in e["action"] for e in timeline)
    # Past the window, while its alerts still fire, the group keeps its incident.
    clock.advance(timedelta(minutes=31))
    assert fire(api, generic_key, payments_alert(dedup_key="d"))[0]["incident"] == "INC-1"
    # Once they all resolved and the window passed, the group starts over.
    for dedup_key in "abd":
        fire(api, generic_key, payments_alert(dedup_key=dedup_key, status="resolved"))
    clock.advance(timedelta(minutes=31))
    late = fire(api, generic_key, payments_alert(dedup_key="e"))[0]
    assert late["incident"] == "INC-3"


def test_all_alerts_resolved_moves_incident_to_monitoring(
    api: TestClient, generic_key: str, viewer: dict[str, str]
) -> None:
    fire(api, generic_key, payments_alert(dedup_key="a"), payments_alert(dedup_key="b"))
    fire(api, generic_key, payments_alert(dedup_key="a", status="resolved"))
    assert api.get("/api/v1/incidents/INC-1", headers=viewer).json()["status"] == "investigating"
    fire(api, generic_key, payments_alert(dedup_key="b", status="resolved"))
    incident = api.get("/api/v1/incidents/INC-1", headers=viewer).json()
    assert incident["status"] == "monitoring"
    timeline = api.get("/api/v1/incidents/INC-1/timeline", headers=viewer).json()["items"]
    assert timeline[-1]["action"] == "Status: investigating → monitoring — all alerts resolved"
    assert timeline[-1]["performer"] == "automation"


def test_the_status_change_follows_every_resolve_of_one_delivery(
    api: TestClient, generic_key: str, viewer: dict[str, str]
) -> None:
    """Two alerts of an incident resolved in one POST: both resolves are on the timeline before the move to
    monitoring (which is decided once the whole delivery is applied), and it moves once."""
    fire(api, generic_key, payments_alert(dedup_key="c1"), payments_alert(dedup_key="c2"))
    fire(
        api,
        generic_key,
        payments_alert(dedup_key="c1", status="resolved"),
        payments_alert(dedup_key="c2", status="resolved"),
    )
    assert api.get("/api/v1/incidents/INC-1", headers=viewer).json()["status"] == "monitoring"
    timeline = api.get("/api/v1/incidents/INC-1/timeline", headers=viewer).json()["items"]
    assert [entry["action"] for entry in timeline[-3:]] == [
        "Alert ALR-1 resolved: card charges failing",
        "Alert ALR-2 resolved: card charges failing",
        "Status: investigating → monitoring — all alerts resolved",
    ]
    # A resolve and a fire again of the same key in one delivery: the incident has an open alert after it,
    # so it stays where it is instead of going to monitoring and straight back.
    fire(api, generic_key, payments_alert(dedup_key="d1"))
    assert api.get("/api/v1/incidents/INC-1", headers=viewer).json()["status"] == "investigating"
    before = len(api.get("/api/v1/incidents/INC-1/timeline", headers=viewer).json()["items"])
    fire(
        api,
        generic_key,
        payments_alert(dedup_key="d1", status="resolved"),
        payments_alert(dedup_key="d1", summary="charges failing again"),
    )
    assert api.get("/api/v1/incidents/INC-1", headers=viewer).json()["status"] == "investigating"
    after = api.get("/api/v1/incidents/INC-1/timeline", headers=viewer).json()["items"][before:]
    assert [entry["action"].split(":")[0] for entry in after] == [
        "Alert ALR-3 resolved",
        "Alert ALR-4 (generic, critical) attached",
    ], after


def test_an_alert_firing_again_while_monitoring_reopens_the_investigation(
    api: TestClient, generic_key: str, viewer: dict[str, str]
) -> None:
    fire(api, generic_key, payments_alert(dedup_key="a"))
    fire(api, generic_key, payments_alert(dedup_key="a", status="resolved"))
    assert api.get("/api/v1/incidents/INC-1", headers=viewer).json()["status"] == "monitoring"
    # The same alert fires again (a new alert: its dedup key was freed) and joins its group's incident.
    again = fire(api, generic_key, payments_alert(dedup_key="a"))[0]
    assert again["incident"] == "INC-1"
    assert api.get("/api/v1/incidents/INC-1", headers=viewer).json()["status"] == "investigating"
    timeline = api.get("/api/v1/incidents/INC-1/timeline", headers=viewer).json()["items"]
    assert timeline[-1]["action"] == (
        f"Status: monitoring → investigating — alert ALR-{again['id']} fired while monitoring: "
        "the fix did not hold"
    )
    assert timeline[-1]["performer"] == "automation"
    # Resolved again: back to monitoring; the cycle can repeat.
    fire(api, generic_key, payments_alert(dedup_key="a", status="resolved"))
    assert api.get("/api/v1/incidents/INC-1", headers=viewer).json()["status"] == "monitoring"


def test_a_rule_without_resolve_to_monitoring_leaves_the_status_to_people(
    api: TestClient, generic_key: str, responder: dict[str, str], viewer: dict[str, str]
) -> None:
    """The ``internal`` rule turns the setting off: neither direction is automatic."""
    report = {"description": "search results are stale", "service": "search"}
    first = api.post("/api/v1/reports/internal", json=report, headers=responder).json()
    assert first["incident"] == "INC-1"
    moved = api.patch("/api/v1/incidents/INC-1", json={"status": "monitoring"}, headers=responder)
    assert moved.status_code == 200, moved.text
    second = api.post("/api/v1/reports/internal", json=report, headers=responder).json()
    assert second["incident"] == "INC-1"
    assert api.get("/api/v1/incidents/INC-1", headers=viewer).json()["status"] == "monitoring"


def level(api: TestClient, viewer: dict[str, str]) -> str:
    severity: str = api.get("/api/v1/incidents/INC-1", headers=viewer).json()["severity"]
    return severity


def test_a_more_severe_alert_joining_raises_the_incident(
    api: TestClient, generic_key: str, responder: dict[str, str], viewer: dict[str, str]
) -> None:
    """Prometheus rules often come in pairs: the warning, then the critical alert of the same name. The
    incident the warning opened (P2 by the matrix) rises to P1 when the critical one joins its group."""

    def postgres(dedup_key: str, severity: str) -> dict[str, Any]:
        alert = {"summary": "disk filling", "labels": {"alertname": "PostgresDiskFull"}}
        return {**alert, "dedup_key": dedup_key, "severity": severity}

    assert fire(api, generic_key, postgres("warn", "warning"))[0]["incident"] == "INC-1"
    assert level(api, viewer) == "P2"
    critical = fire(api, generic_key, postgres("crit", "critical"))[0]
    assert critical["incident"] == "INC-1"
    assert level(api, viewer) == "P1"
    timeline = api.get("/api/v1/incidents/INC-1/timeline", headers=viewer).json()["items"]
    assert timeline[-1]["action"] == (
        f"Severity raised: P2 → P1 — alert ALR-{critical['id']} (critical) joined the incident"
    )
    assert timeline[-1]["performer"] == "automation"
    # A less severe alert never lowers it.
    fire(api, generic_key, postgres("info", "info"))
    assert level(api, viewer) == "P1"
    # A person lowers it; another critical alert, no more severe than those already on it, leaves it be.
    lowered = api.patch("/api/v1/incidents/INC-1", json={"severity": "P2"}, headers=responder)
    assert lowered.status_code == 200, lowered.text
    fire(api, generic_key, postgres("crit-2", "critical"))
    assert level(api, viewer) == "P2"


def test_an_alert_repeated_more_severe_raises_its_incident(
    api: TestClient, generic_key: str, responder: dict[str, str], viewer: dict[str, str]
) -> None:
    """PagerDuty's way: one dedup key, sent again as critical when the warning gets worse. The alert's repeat
    raises its incident as a critical alert joining it would; a repeat less severe never lowers it."""

    def disk(severity: str, used: str) -> dict[str, Any]:
        alert = {"summary": f"disk {used} full", "labels": {"alertname": "PostgresDiskFull"}}
        return {**alert, "dedup_key": "disk-1", "severity": severity}

    assert fire(api, generic_key, disk("warning", "85%"))[0]["incident"] == "INC-1"
    assert level(api, viewer) == "P2"
    repeat = fire(api, generic_key, disk("critical", "97%"))[0]
    assert repeat["outcome"] == "updated" and repeat["incident"] == "INC-1"
    assert level(api, viewer) == "P1"
    timeline = api.get("/api/v1/incidents/INC-1/timeline", headers=viewer).json()["items"]
    assert timeline[-1]["action"] == (
        f"Severity raised: P2 → P1 — alert ALR-{repeat['id']} went from warning to critical"
    )
    assert timeline[-1]["performer"] == "automation"
    # Back to warning, then critical again, after a person lowered the incident: the alert called for P1
    # before, so it is the person's call now.
    fire(api, generic_key, disk("warning", "90%"))
    assert level(api, viewer) == "P1"
    lowered = api.patch("/api/v1/incidents/INC-1", json={"severity": "P2"}, headers=responder)
    assert lowered.status_code == 200, lowered.text
    fire(api, generic_key, disk("critical", "98%"))
    assert level(api, viewer) == "P2"


def test_an_incident_the_same_alerts_opened_before_is_marked_recurring(
    api: TestClient, generic_key: str, responder: dict[str, str], viewer: dict[str, str]
) -> None:
    clock.set(datetime(2026, 3, 2, 10, 0, tzinfo=UTC))
    fire(api, generic_key, payments_alert(dedup_key="a"))
    fire(api, generic_key, payments_alert(dedup_key="a", status="resolved"))
    closed = api.patch("/api/v1/incidents/INC-1", json={"status": "resolved"}, headers=responder)
    assert closed.status_code == 200, closed.text
    first = api.get("/api/v1/incidents/INC-1", headers=viewer).json()
    assert first["assessment"]["recurring"] is None
    # A week later the same alert fires again: a new incident (the group window is long past), recurring.
    clock.advance(timedelta(days=7))
    again = fire(api, generic_key, payments_alert(dedup_key="a"))[0]
    assert again["incident"] == "INC-2"
    second = api.get("/api/v1/incidents/INC-2", headers=viewer).json()
    assert second["assessment"]["recurring"] is True
    timeline = api.get("/api/v1/incidents/INC-2/timeline", headers=viewer).json()["items"]
    notes = [e for e in timeline if e["action"].startswith("Recurring:")]
    assert len(notes) == 1 and "INC-1 (2026-03-02, resolved)" in notes[0]["action"]
    assert notes[0]["performer"] == "automation" and notes[0]["data"]["earlier_incidents"] == [1]
    # Another alert group is not a recurrence; nor is the same one past the 30-day window.
    other = fire(
        api, generic_key, payments_alert(dedup_key="b", labels={"service": "payments", "alertname": "X"})
    )
    assert (
        api.get(f"/api/v1/incidents/{other[0]['incident']}", headers=viewer).json()["assessment"]["recurring"]
        is None
    )
    fire(api, generic_key, payments_alert(dedup_key="a", status="resolved"))
    api.patch("/api/v1/incidents/INC-2", json={"status": "resolved"}, headers=responder)
    clock.advance(timedelta(days=31))
    late = fire(api, generic_key, payments_alert(dedup_key="a"))[0]
    assert (
        api.get(f"/api/v1/incidents/{late['incident']}", headers=viewer).json()["assessment"]["recurring"]
        is None
    )


def test_regex_missing_label_and_unrouted(api: TestClient, generic_key: str, viewer: dict[str, str]) -> None:
    routed, silenced, unrouted = fire(
        api,
        generic_key,
        {"summary": "replication lag", "labels": {"alertname": "PostgresReplicationLag"}},
        {"summary": "replication lag 2", "labels": {"alertname": "PostgresDown", "silenced": "yes"}},
        {"summary": "something else", "labels": {"alertname": "Other"}},
    )
    assert routed["incident"] == "INC-1"
    assert silenced["incident"] is None
    assert unrouted["incident"] is None
    listing = api.get("/api/v1/alerts", params={"unrouted": True}, headers=viewer).json()
    assert {a["summary"] for a in listing["items"]} == {"replication lag 2", "something else"}
    incident = api.get("/api/v1/incidents/INC-1", headers=viewer).json()
    assert incident["severity"] == "P2"  # warning maps to P2 by the default map
    assert incident["title"] == "replication lag"


def test_customer_reports_are_public_rate_limited_and_routed(api: TestClient, viewer: dict[str, str]) -> None:
    clock.set(datetime(2026, 11, 28, 12, 0, tzinfo=UTC))
    report = {
        "contact": "ann@example.com",
        "description": "Checkout spins forever\nsince 10am",
        "affected_feature": "payments",
    }
    first = api.post("/api/v1/reports", json=report)
    assert first.status_code == 202, first.text
    # The public answer says the report was taken, and nothing of how it was routed.
    assert first.json() == {"status": "received", "message": "Thank you: your report has reached the team."}
    [stored] = api.get("/api/v1/alerts", params={"source": "customer-report"}, headers=viewer).json()["items"]
    body = api.get(f"/api/v1/alerts/{stored['id']}", headers=viewer).json()
    assert body["summary"] == "Customer report (payments): Checkout spins forever"
    assert body["annotations"]["contact"] == "ann@example.com"
    assert body["incident"] == "INC-1"
    assert api.post("/api/v1/reports", json=report).status_code == 202
    limited = api.post("/api/v1/reports", json=report)
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "60"
    assert limited.json()["error"]["code"] == "rate_limited"
    bad = api.post("/api/v1/reports", json={"contact": "", "description": "x"})
    assert bad.status_code == 422
    blank = api.post("/api/v1/reports", json={**report, "description": " \n ", "affected_feature": " "})
    assert blank.status_code == 422
    fields = {error["field"] for error in blank.json()["error"]["details"]}
    assert fields == {"description", "affected_feature"}
    clock.advance(timedelta(seconds=61))
    assert api.post("/api/v1/reports", json=report).status_code == 202
    incident = api.get("/api/v1/incidents/INC-1", headers=viewer).json()
    assert incident["assessment"]["source"] == "customer-report"
    assert (
        api.get("/api/v1/alerts", params={"source": "customer-report"}, headers=viewer).json()["total"] == 3
    )


def test_internal_report(api: TestClient, responder: dict[str, str], viewer: dict[str, str]) -> None:
    body = {"description": "Search results stale for an hour", "service": "search", "severity": "error"}
    assert api.post("/api/v1/reports/internal", json=body).status_code == 401
    response = api.post("/api/v1/reports/internal", json=body, headers=responder)
    assert response.status_code == 202, response.text
    alert = response.json()
    assert alert["source"] == "internal-discovery"
    assert alert["annotations"]["reporter"] == "responder-user"
    assert alert["incident"] == "INC-1"
    bad = api.post("/api/v1/reports/internal", json={**body, "service": "nope"}, headers=responder)
    assert bad.status_code == 422
    assert bad.json()["error"]["details"][0]["field"] == "service"
    # Found by the API fuzzer: a blank description has no first line to summarise (it was a 500).
    blank = api.post("/api/v1/reports/internal", json={**body, "description": " \n\t"}, headers=responder)
    assert blank.status_code == 422, blank.text
    assert (
        api.get("/api/v1/alerts", params={"source": "internal-discovery"}, headers=viewer).json()["total"]
        == 1
    )


def run_handlers(context: AppContext) -> None:
    """Run the handler jobs, stepping past the waits that keep one alert's handlers in order."""
    from warroom.jobs.models import Job, JobStatus
    from warroom.jobs.worker import Worker

    worker, moment = Worker(context, name="handlers"), clock.now()
    for _ in range(40):
        worker.run_once(moment)
        with context.db.read() as session:
            waiting = session.scalar(
                select(func.count())
                .select_from(Job)
                .where(
                    Job.kind == handlers.HANDLER_KIND, Job.status.in_([JobStatus.pending, JobStatus.running])
                )
            )
        if not waiting:
            return
        moment += timedelta(seconds=2)
    raise AssertionError("handler jobs still waiting")


def test_handlers_run_and_a_failing_one_is_recorded(
    api: TestClient, context: AppContext, generic_key: str, viewer: dict[str, str]
) -> None:
    calls: list[tuple[str, str]] = []

    @alert_handler("ChargeErrors")
    def note(ctx: HandlerContext) -> None:
        calls.append((ctx.alert.ref, ctx.event))
        ctx.log(f"Checked card processor for {ctx.alert.ref}")

    @alert_handler("ChargeErrors")
    def broken(ctx: HandlerContext) -> None:
        ctx.log("this entry is rolled back with the failure")
        raise RuntimeError("processor API down")

    try:
        [result] = fire(api, generic_key, payments_alert())
        assert result["incident"] == "INC-1"
        fire(api, generic_key, payments_alert(status="resolved"))
        assert calls == []  # handlers are jobs: the worker runs them after the alert is stored
        run_handlers(context)
    finally:
        handlers.unregister(note)
        handlers.unregister(broken)
    assert calls == [("ALR-1", "created"), ("ALR-1", "resolved")]
    timeline = api.get("/api/v1/incidents/INC-1/timeline", headers=viewer).json()["items"]
    actions = [e["action"] for e in timeline]
    assert "Checked card processor for ALR-1" in actions
    assert "this entry is rolled back with the failure" not in actions
    failures = [a for a in actions if "failed on ALR-1: RuntimeError: processor API down" in a]
    assert len(failures) == 2
    alert = api.get("/api/v1/alerts/1", headers=viewer).json()
    assert alert["status"] == "resolved"
    assert len(alert["handler_errors"]) == 2
    verify = api.get("/api/v1/incidents/INC-1", headers=viewer)
    assert verify.status_code == 200
    from warroom.incidents import service as incident_service

    with context.db.read() as session:
        _, problems = incident_service.verify_timelines(session)
    assert problems == []


def test_handlers_from_entry_points(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "acme_handlers.py"
    package.write_text(
        "from warroom.alerts.handlers import alert_handler\n"
        "SEEN = []\n"
        "@alert_handler('DiskFull')\n"
        "def grow(ctx):\n"
        "    SEEN.append(ctx)\n"
        "def by_name(ctx):\n"
        "    SEEN.append(ctx)\n"
    )
    dist = tmp_path / "acme_handlers-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-handlers\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[warroom.handlers]\nacme = acme_handlers\nQueueStuck = acme_handlers:by_name\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        loaded = handlers.load_entry_points(force=True)
        assert set(loaded) == {"acme", "QueueStuck"}
        module = sys.modules["acme_handlers"]
        assert module.grow in handlers.handlers_for("DiskFull")
        assert module.by_name in handlers.handlers_for("QueueStuck")
    finally:
        module = sys.modules.pop("acme_handlers", None)
        if module is not None:
            handlers.unregister(module.grow)
            handlers.unregister(module.by_name)


def test_config_reference_checks() -> None:
    text = EXAMPLE_CONFIG.read_text() + "\n"
    bad = text.replace(
        "severity: P0\n        services: [payments, api]",
        "severity: P7\n        services: [payments, nowhere]",
    )
    bad = bad.replace("- audience: internal", "- audience: investors")
    bad = bad.replace("critical: P1, error: P2", "critical: PX, error: P2")
    with pytest.raises(ConfigError) as caught:
        parse_org_config(bad, "bad.yaml")
    messages = [str(p) for p in caught.value.problems]
    assert any(m.startswith("automation.severity_map.critical") for m in messages)
    assert any("automation.rules[0].incident.severity" in m and "'P7'" in m for m in messages)
    assert any("automation.rules[0].incident.services" in m and "'nowhere'" in m for m in messages)
    assert any("automation.rules[0].notify[0].audience" in m for m in messages)
    # Lines are found for cross-reference problems too.
    assert all(p.line for p in caught.value.problems)
    with pytest.raises(ConfigError) as regex:
        parse_org_config(text.replace("labels_missing: [silenced]", "labels_regex: {x: '('}"), "r.yaml")
    assert "bad regex" in str(regex.value)
    with pytest.raises(ConfigError) as template:
        parse_org_config(
            text.replace('title: "Payments: {{ alert.summary }}"', 'title: "{{ alert.summary"'), "t.yaml"
        )
    assert "bad template" in str(template.value)


def test_a_person_resolves_alerts_their_source_will_not(
    api: TestClient, generic_key: str, responder: dict[str, str], viewer: dict[str, str]
) -> None:
    first, second = fire(api, generic_key, payments_alert(dedup_key="a"), payments_alert(dedup_key="b"))
    assert first["incident"] == second["incident"] == "INC-1"

    response = api.post(
        f"/api/v1/alerts/{first['id']}/resolve",
        json={"note": "the probe was decommissioned"},
        headers=responder,
    )
    assert response.status_code == 200, response.text
    resolved = response.json()
    assert resolved["status"] == "resolved" and resolved["resolved_at"] is not None
    assert (resolved["resolved_by"], resolved["resolution_note"]) == (
        "responder-user",
        "the probe was decommissioned",
    )
    timeline = api.get("/api/v1/incidents/INC-1/timeline", headers=viewer).json()["items"]
    assert timeline[-1]["action"] == (
        f"Alert ALR-{first['id']} resolved by hand: card charges failing — the probe was decommissioned"
    )
    assert timeline[-1]["performer"] == "responder-user"
    assert api.get("/api/v1/incidents/INC-1", headers=viewer).json()["status"] == "investigating"  # b fires

    # Its dedup key is free again: the next firing is a new alert (on the same incident, by its group).
    [again] = fire(api, generic_key, payments_alert(dedup_key="a"))
    assert again["outcome"] == "created" and again["id"] != first["id"] and again["incident"] == "INC-1"

    # Resolving the incident's last open alerts by hand moves it to monitoring, as a source's resolve does.
    for alert in (second, again):
        assert api.post(f"/api/v1/alerts/{alert['id']}/resolve", headers=responder).status_code == 200
    incident = api.get("/api/v1/incidents/INC-1", headers=viewer).json()
    assert incident["status"] == "monitoring"
    timeline = api.get("/api/v1/incidents/INC-1/timeline", headers=viewer).json()["items"]
    assert timeline[-1]["performer"] == "automation"
    assert timeline[-2]["action"] == f"Alert ALR-{again['id']} resolved by hand: card charges failing"


def test_resolving_by_hand_refusals_change_nothing(
    api: TestClient, generic_key: str, responder: dict[str, str], viewer: dict[str, str]
) -> None:
    firing, ended = fire(
        api, generic_key, {"summary": "queue backlog", "dedup_key": "q"}, {"summary": "cpu", "dedup_key": "c"}
    )
    fire(api, generic_key, {"summary": "cpu", "dedup_key": "c", "status": "resolved"})

    def snapshot() -> list[dict[str, Any]]:
        return api.get("/api/v1/alerts", headers=viewer).json()["items"]

    before = snapshot()
    url = f"/api/v1/alerts/{firing['id']}/resolve"
    already = api.post(f"/api/v1/alerts/{ended['id']}/resolve", headers=responder)
    assert already.status_code == 409
    assert "already resolved" in already.json()["error"]["message"]
    assert "by its source (generic)" in already.json()["error"]["message"]
    assert api.post(url, headers=viewer).status_code == 403
    assert api.post(url).status_code == 401
    assert api.post("/api/v1/alerts/999/resolve", headers=responder).status_code == 404
    assert api.post("/api/v1/alerts/not-an-id/resolve", headers=responder).status_code == 404
    for body in ({"note": ""}, {"note": "x" * 2001}, {"reason": "typo"}, {"note": 5}):
        refused = api.post(url, json=body, headers=responder)
        assert refused.status_code == 422, (body, refused.text)
    assert snapshot() == before

    assert api.post(url, headers=responder).status_code == 200
    twice = api.post(url, headers=responder)
    assert twice.status_code == 409 and "by responder-user" in twice.json()["error"]["message"]


def test_a_flapping_incident_stays_in_investigating_until_it_calms_down(
    api: TestClient, context: AppContext, generic_key: str, viewer: dict[str, str]
) -> None:
    """flap_count (3) returns to investigating within flap_window (1h): the status stops following the
    alerts, and one timeline entry says why, until 1h passes with no alert firing again."""

    def status() -> str:
        value: str = api.get("/api/v1/incidents/INC-1", headers=viewer).json()["status"]
        return value

    def flapping_notes() -> list[str]:
        timeline = api.get("/api/v1/incidents/INC-1/timeline", headers=viewer).json()["items"]
        return [entry["action"] for entry in timeline if entry["action"].startswith("Flapping")]

    worker = Worker(context, name="w1")
    start = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    clock.set(start)
    fire(api, generic_key, payments_alert(dedup_key="a"))
    for returns in range(1, 4):
        clock.advance(timedelta(minutes=2))
        fire(api, generic_key, payments_alert(dedup_key="a", status="resolved"))
        assert status() == "monitoring"
        clock.advance(timedelta(minutes=2))
        assert fire(api, generic_key, payments_alert(dedup_key="a"))[0]["incident"] == "INC-1"
        assert status() == "investigating"
        assert len(flapping_notes()) == (1 if returns == 3 else 0)
    assert flapping_notes() == [
        "Flapping: its alerts fired again 3 times within 1h of resolving. Automation leaves the incident in "
        "investigating, not monitoring, until 1h pass with no alert firing again (then, its alerts resolved, "
        "it moves to monitoring); a person can move it."
    ]
    # While it flaps, resolving does not move it to monitoring (and a firing notes nothing more).
    fire(api, generic_key, payments_alert(dedup_key="a", status="resolved"))
    assert status() == "investigating"
    clock.advance(timedelta(minutes=25))
    fire(api, generic_key, payments_alert(dedup_key="a"))  # +37m
    clock.advance(timedelta(minutes=25))
    fire(api, generic_key, payments_alert(dedup_key="a", status="resolved"))
    assert status() == "investigating"
    assert len(flapping_notes()) == 1
    # An hour after the last return (+12m), but its alert fired at +37m: still flapping.
    clock.advance(timedelta(minutes=15))  # +77m
    assert fire(api, generic_key, payments_alert(dedup_key="a"))[0]["incident"] == "INC-1"
    fire(api, generic_key, payments_alert(dedup_key="a", status="resolved"))
    assert status() == "investigating"
    # An hour after it last fired, nothing else happening, a job moves it to monitoring.
    run_until(worker, start + timedelta(minutes=137) - timedelta(seconds=1))
    assert status() == "investigating"
    run_until(worker, start + timedelta(minutes=137))
    assert status() == "monitoring"
    timeline = api.get("/api/v1/incidents/INC-1/timeline", headers=viewer).json()["items"]
    assert any(
        "all alerts resolved, and none fired again for 1h: it stopped flapping" in str(entry)
        for entry in timeline
    )


def test_flapping_lasts_while_the_alert_keeps_firing_again(
    api: TestClient, context: AppContext, generic_key: str, viewer: dict[str, str]
) -> None:
    """The flap window counts from the last return and the last firing, not from the oldest return: an
    alert that keeps resolving and firing for an hour after the incident began flapping keeps it flapping."""

    def status() -> str:
        value: str = api.get("/api/v1/incidents/INC-1", headers=viewer).json()["status"]
        return value

    worker = Worker(context, name="w1")
    start = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    clock.set(start)
    fire(api, generic_key, payments_alert(dedup_key="a"))
    for _ in range(3):  # returns at +4m, +8m, +12m: flapping
        clock.advance(timedelta(minutes=2))
        fire(api, generic_key, payments_alert(dedup_key="a", status="resolved"))
        clock.advance(timedelta(minutes=2))
        fire(api, generic_key, payments_alert(dedup_key="a"))
    for _ in range(5):  # resolves and fires every 5 minutes until +62m
        clock.advance(timedelta(minutes=5))
        fire(api, generic_key, payments_alert(dedup_key="a", status="resolved"))
        assert status() == "investigating"
        clock.advance(timedelta(minutes=5))
        fire(api, generic_key, payments_alert(dedup_key="a"))
    clock.advance(timedelta(minutes=6))
    fire(api, generic_key, payments_alert(dedup_key="a"))  # +68m: the alert is still open
    clock.advance(timedelta(minutes=1))
    fire(api, generic_key, payments_alert(dedup_key="a", status="resolved"))  # +69m
    assert status() == "investigating"  # 57 minutes after the last return, 1 after the last firing
    run_until(worker, start + timedelta(minutes=121))
    assert status() == "investigating"
    # The alert first fired at +62m (the +68m delivery repeated it): an hour later it has calmed down.
    run_until(worker, start + timedelta(minutes=122))
    assert status() == "monitoring"


@pytest.mark.parametrize(
    ("setting", "problem"),
    [({"flap_window": "0s"}, "between 1m and 7d"), ({"flap_count": -1}, "greater than or equal to 0")],
)
def test_flapping_settings_are_checked(setting: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        AutomationConfig.model_validate({**RULES, **setting})


def test_concurrent_transactions_put_alerts_of_one_group_on_one_incident(context: AppContext) -> None:
    """PostgreSQL runs intake transactions at once (several processes): the second alert of a group must wait
    for the first one's incident, not open another."""
    if context.db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite runs one write transaction at a time")
    results: list[Any] = []

    def alert(dedup_key: str) -> list[AlertEvent]:
        return from_generic(payments_alert(dedup_key=dedup_key))

    def second() -> None:
        with context.db.write() as session:
            results.append(
                alerts_service.ingest(session, org=context.org, source="generic", events=alert("b"))
            )

    with context.db.write() as session:
        first = alerts_service.ingest(session, org=context.org, source="generic", events=alert("a"))
        assert first.alerts[0].incident == "INC-1"  # not yet committed
        other = threading.Thread(target=second)
        other.start()
        other.join(0.5)
        assert other.is_alive()  # it waits for this transaction's routing of the group
    other.join(10)
    assert results and results[0].alerts[0].incident == "INC-1"
    with context.db.read() as session:
        assert session.scalar(select(func.count()).select_from(Incident)) == 1


def test_rule_templates_cut_text_out_with_regular_expressions() -> None:
    from warroom.alerts.automation import render

    title = (
        "{{ alert.summary | regex_search('on ([a-z0-9-]+)', 1) }}: "
        "{{ alert.summary | regex_replace('[0-9]+%', 'N%') }}"
    )
    alert = Alert(summary="disk 91% full on db-1", labels={}, annotations={}, handler_errors=[])
    assert render(title, alert, "rule disk: incident.title") == "db-1: disk N% full on db-1"


def test_a_rule_template_that_fails_on_an_alert_does_not_lose_it(
    api: TestClient, context: AppContext, generic_key: str, viewer: dict[str, str]
) -> None:
    """A title written for alerts with an ``instance`` label meets one without it: the alert is stored and
    routed, the incident is titled by the alert's summary, and the failure is on the timeline and with
    the alert (as a failing handler's is). Before, the delivery got a 500 and every retry did too."""
    text = EXAMPLE_CONFIG.read_text().replace(
        'title: "Payments: {{ alert.summary }}"', "title: \"{{ labels.instance.split(':')[0] }} is down\""
    )
    text = text.replace(
        'message: "{{ incident.ref }} opened by alert {{ alert.ref }}: {{ alert.summary }}"',
        'message: "{{ incident.ref }}: {{ 1 // (labels.service | length - 8) }}"',
    )
    context.org = parse_org_config(text, "org.yaml")

    def counted(template: str) -> float:
        wanted = f'warroom_rule_template_errors_total{{template="rule payments-down: {template}"}}'
        line = next((x for x in api.get("/metrics").text.splitlines() if x.startswith(wanted)), None)
        return float(line.split()[-1]) if line else 0.0

    before = counted("incident.title"), counted("notify.message")
    [without] = fire(api, generic_key, payments_alert(labels={"service": "payments", "alertname": "B"}))
    assert (counted("incident.title"), counted("notify.message")) == (before[0] + 1, before[1] + 1)
    incident = api.get(f"/api/v1/incidents/{without['incident']}", headers=viewer).json()
    assert incident["title"] == "card charges failing"  # the alert's summary
    timeline = api.get(f"/api/v1/incidents/{without['incident']}/timeline", headers=viewer).json()["items"]
    failed = [entry["action"] for entry in timeline if entry["action"].startswith("Template rule")]
    assert len(failed) == 2, failed  # the title, and the notify message (zero division on every alert)
    assert "rule payments-down: incident.title failed on ALR-1 (UndefinedError" in failed[0]
    assert "notify.message" in failed[1] and "ZeroDivisionError" in failed[1]
    alert = api.get(f"/api/v1/alerts/{without['id']}", headers=viewer).json()
    assert [error["event"] for error in alert["handler_errors"]] == ["template", "template"]
    # The dry run, where people debug templates, names both failures.
    [event] = from_generic(payments_alert(labels={"service": "payments", "alertname": "B"}))
    shown = automation.preview(context.org, "generic", event)
    assert counted("notify.message") == before[1] + 1  # a dry run is not counted
    assert shown.incident is not None and shown.incident.title == "card charges failing"
    assert [failure.split(":")[1].strip() for failure in shown.incident.template_errors] == [
        "incident.title",
        "notify.message",
    ]


def test_a_rule_template_cannot_change_the_alert(
    api: TestClient, context: AppContext, generic_key: str, viewer: dict[str, str]
) -> None:
    """Templates render in a read-only sandbox over copies: a title that calls labels.update() or
    labels.pop() (or changes the incident it is told of) fails, and the alert, its timeline entry and the
    incident keep what the source sent."""
    text = EXAMPLE_CONFIG.read_text().replace(
        'title: "Payments: {{ alert.summary }}"',
        "title: \"{{ labels.update({'injected': 'yes'}) or '' }}{{ labels.pop('host', '') }}Payments\"",
    )
    text = text.replace(
        'message: "{{ incident.ref }} opened by alert {{ alert.ref }}: {{ alert.summary }}"',
        # (Through a name of its own: config check refuses ``incident.update`` written out.)
        "message: \"{{ alert.annotations.pop('runbook', '') }}{% set told = incident %}"
        "{{ told.update({'ref': 'INC-0'}) }}\"",
    )
    context.org = parse_org_config(text, "org.yaml")
    labels = {"service": "payments", "alertname": "ChargeErrors", "host": "pay-1"}
    [result] = fire(api, generic_key, payments_alert(labels=labels, annotations={"runbook": "rb-1"}))
    alert = api.get(f"/api/v1/alerts/{result['id']}", headers=viewer).json()
    assert alert["labels"] == labels and alert["annotations"] == {"runbook": "rb-1"}
    timeline = api.get(f"/api/v1/incidents/{result['incident']}/timeline", headers=viewer).json()["items"]
    [attached] = [entry for entry in timeline if entry["action"].startswith(f"Alert ALR-{result['id']}")]
    assert attached["data"]["labels"] == labels
    failed = [entry["action"] for entry in timeline if entry["action"].startswith("Template rule")]
    assert len(failed) == 2 and all("SecurityError" in action for action in failed), failed
    incident = api.get(f"/api/v1/incidents/{result['incident']}", headers=viewer).json()
    assert incident["title"] == "card charges failing"  # the alert's summary stands in
    with context.db.read() as session:
        stored = session.get(Alert, result["id"])
        assert stored is not None and stored.labels == labels


def test_a_rule_severity_map_leaves_the_severities_it_does_not_list_to_the_automation_map(
    api: TestClient, context: AppContext, generic_key: str, viewer: dict[str, str]
) -> None:
    """The example maps info to P3 (and defaults to P2). A rule's map that only says critical -> P0 must map
    an info alert by the automation block's map, not fall through to the default level."""
    document = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    [rule] = [rule for rule in document["automation"]["rules"] if rule["name"] == "critical-monitoring"]
    rule["match"]["severity"] = ["critical", "info"]
    rule["incident"]["severity_map"] = {"critical": "P0"}
    context.org = parse_org_config(yaml.safe_dump(document))
    [rule_action] = [r.incident for r in context.org.automation.rules if r.name == "critical-monitoring"]
    assert rule_action is not None
    levels = {
        s: automation.mapped_severity(context.org, rule_action, s) for s in ("critical", "info", "error")
    }
    assert levels == {"critical": "P0", "info": "P3", "error": "P2"}
    # With no automation map, the matrix's positions stand in for it, as they do without a rule map.
    by_matrix = context.org.model_copy(
        update={"automation": context.org.automation.model_copy(update={"severity_map": {}})}
    )
    assert automation.mapped_severity(by_matrix, rule_action, "info") == context.org.severity_ids[-1]
    base = {"service": "search", "labels": {"alertname": "SlowQueries"}}
    [info] = fire(api, generic_key, {"summary": "slow queries", "severity": "info", "dedup_key": "i", **base})
    assert api.get(f"/api/v1/incidents/{info['incident']}", headers=viewer).json()["severity"] == "P3"
    [event] = from_generic({"summary": "slow queries", "severity": "info", **base})
    shown = automation.preview(context.org, "generic", event).incident
    assert shown is not None and shown.severity == "P3"


def test_a_private_rule_may_not_tell_people_outside_the_org() -> None:
    text = EXAMPLE_CONFIG.read_text().replace(
        "        severity: P0\n        services: [payments, api]",
        "        severity: P0\n        private: true\n        services: [payments, api]",
    )
    assert "private: true" in text
    assert parse_org_config(text, "ok.yaml")  # its update to the internal audience is fine
    text = text.replace("- audience: internal", "- audience: customers")
    with pytest.raises(ConfigError) as caught:
        parse_org_config(text, "t.yaml")
    assert "'customers' reaches people outside the org, and this rule's incidents are private" in str(
        caught.value
    )


def test_a_rule_template_with_an_unknown_filter_is_refused_by_config_check() -> None:
    text = EXAMPLE_CONFIG.read_text().replace(
        'title: "Payments: {{ alert.summary }}"', 'title: "{{ alert.summary | nosuchfilter }}"'
    )
    with pytest.raises(ConfigError) as caught:
        parse_org_config(text, "t.yaml")
    line = text.splitlines().index('        title: "{{ alert.summary | nosuchfilter }}"') + 1
    assert f"incident.title (line {line}): bad template: No filter named 'nosuchfilter'" in str(caught.value)


def test_an_alert_summary_on_several_lines_titles_its_incident_on_one(
    api: TestClient, generic_key: str, viewer: dict[str, str]
) -> None:
    """Titles are one visible line; an alert's summary need not be, and must still open its incident."""
    [result] = fire(api, generic_key, payments_alert(summary="card charges\nfailing\u202e in EU"))
    incident = api.get(f"/api/v1/incidents/{result['incident']}", headers=viewer).json()
    assert incident["title"] == "Payments: card charges failing in EU (ChargeErrors)"


def test_a_blank_summary_annotation_is_no_summary(
    api: TestClient, am_key: str, viewer: dict[str, str]
) -> None:
    """Alertmanager sent summary "  ": the incident's update then had nothing to say, and the blank update
    failed the whole delivery (500). The next annotation that says something stands in."""
    payload = {
        "version": "4",
        "status": "firing",
        "receiver": "warroom",
        "groupKey": "{}:{}",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "ChargeErrors", "service": "payments", "severity": "critical"},
                "annotations": {"summary": "  ", "description": "card charges failing"},
                "startsAt": "2026-03-02T10:00:00Z",
                "fingerprint": "c0ffee",
            }
        ],
    }
    answer = api.post(f"/api/v1/alerts/alertmanager?key={am_key}", json=payload)
    assert answer.status_code in (200, 202), answer.text
    [alert] = api.get("/api/v1/alerts", headers=viewer).json()["items"]
    assert alert["summary"] == "card charges failing"


DISK_GROUP = '{}/{trunc="yes"}:{alertname="DiskFull", service="payments"}'


def disk_full(status: str, *fingerprints: str, truncated: int) -> dict[str, Any]:
    """An Alertmanager notification of group DiskFull on payments, delivering these alerts and leaving
    ``truncated`` more out (a receiver with ``max_alerts``)."""
    return {
        "receiver": "warroom-trunc",
        "status": status,
        "alerts": [
            {
                "status": status,
                "labels": {
                    "alertname": "DiskFull",
                    "service": "payments",
                    "severity": "critical",
                    "disk": fp,
                },
                "annotations": {"summary": f"disk {fp} full"},
                "startsAt": "2026-11-28T11:00:00Z",
                "endsAt": "2026-11-28T12:00:00Z" if status == "resolved" else "0001-01-01T00:00:00Z",
                "fingerprint": fp,
            }
            for fp in fingerprints
        ],
        "groupLabels": {"alertname": "DiskFull", "service": "payments"},
        "version": "4",
        "groupKey": DISK_GROUP,
        "truncatedAlerts": truncated,
    }


def test_an_incident_stays_out_of_monitoring_while_its_group_arrives_truncated(
    api: TestClient, am_key: str, viewer: dict[str, str]
) -> None:
    """max_alerts 3, six DiskFull alerts: Warroom sees three. When those three resolve in a notification
    that still leaves three out, not every alert of the incident has resolved (the sender says more fire), so
    the incident stays in investigating, and says why once; the others arriving later join it without a
    "fix did not hold". It goes to monitoring when its alerts resolve in a notification that left none out."""
    url = f"/api/v1/alerts/alertmanager?key={am_key}"

    def send(body: dict[str, Any]) -> None:
        clock.advance(timedelta(seconds=22))
        answer = api.post(url, json=body)
        assert answer.status_code == 202, answer.text

    def status() -> str:
        value: str = api.get("/api/v1/incidents/INC-1", headers=viewer).json()["status"]
        return value

    def actions() -> list[str]:
        return [
            e["action"] for e in api.get("/api/v1/incidents/INC-1/timeline", headers=viewer).json()["items"]
        ]

    clock.set(datetime(2026, 11, 28, 11, 0, tzinfo=UTC))
    send(disk_full("firing", "d1", "d2", "d3", truncated=3))
    assert status() == "investigating"
    send(disk_full("resolved", "d1", "d2", "d3", truncated=3))
    assert status() == "investigating"
    kept = [a for a in actions() if a.startswith("All alerts resolved, but")]
    assert kept == [
        f"All alerts resolved, but INC-1 stays investigating: the sender's latest notification of group "
        f"{DISK_GROUP} left 3 alert(s) out (its max_alerts), and those may still fire. It moves to "
        "monitoring when its alerts resolve in a notification that leaves none out; a person can move it."
    ]

    # The three left out arrive (the group is small enough now): they join, and nothing flips.
    send(disk_full("firing", "d4", "d5", "d6", truncated=0))
    assert status() == "investigating"
    assert not any(a.startswith("Status:") for a in actions())
    # Resolved in a notification that again left some out: it stays, and the note is not repeated.
    send(disk_full("resolved", "d4", "d5", "d6", truncated=2))
    assert status() == "investigating"
    assert len([a for a in actions() if a.startswith("All alerts resolved, but")]) == 1

    # The group's latest notification is complete: its alerts resolving moves the incident to monitoring.
    send(disk_full("firing", "d7", truncated=0))
    send(disk_full("resolved", "d7", truncated=0))
    assert status() == "monitoring"
    assert actions()[-1] == "Status: investigating → monitoring — all alerts resolved"
