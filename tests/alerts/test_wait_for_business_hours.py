"""A rule's ``incident.wait_for_business_hours``: outside the org's business hours, the incident opens when
they begin, if the alert is still open then (the example's low-urgency rule)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.alerts.test_rule_delay import incident_ids
from warroom.alerts.automation import DELAY_KIND
from warroom.alerts.config import AutomationRule
from warroom.alerts.models import Alert
from warroom.clock import clock
from warroom.context import AppContext
from warroom.incidents.models import Incident
from warroom.jobs.models import Job
from warroom.jobs.worker import Worker

SATURDAY_NIGHT = datetime(2026, 12, 5, 3, 0, tzinfo=UTC)  # 04:00 in Berlin
MONDAY_MORNING = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)  # 09:00 in Berlin


def fire(api: TestClient, key: str, dedup_key: str, status: str = "firing", **fields: Any) -> None:
    body = {
        "summary": f"{dedup_key}: certificate expires in 20 days",
        "severity": "warning",
        "dedup_key": dedup_key,
        "status": status,
        "labels": {"alertname": "CertExpiry", "urgency": "low", "host": dedup_key},
        **fields,
    }
    answer = api.post(f"/api/v1/alerts?key={key}", json=body)
    assert answer.status_code == 202, answer.text


def waiting_jobs(context: AppContext) -> list[tuple[datetime, str]]:
    with context.db.read() as session:
        jobs = session.scalars(select(Job).where(Job.kind == DELAY_KIND).order_by(Job.id))
        return [(job.run_at, job.payload["delay"]) for job in jobs]


def run_until(worker: Worker, moment: datetime) -> None:
    clock.set(moment)
    while worker.run_once():
        pass


def test_at_night_the_incident_opens_in_the_morning_if_still_open(
    api: TestClient, context: AppContext, generic_key: str
) -> None:
    worker = Worker(context, name="w1")
    clock.set(SATURDAY_NIGHT)
    fire(api, generic_key, "web-1")
    fire(api, generic_key, "web-2")
    assert incident_ids(context) == [None, None]
    assert waiting_jobs(context) == [(MONDAY_MORNING, "business hours")] * 2
    # web-2 is fixed on Sunday: it opens nothing.
    clock.set(SATURDAY_NIGHT + timedelta(days=1))
    fire(api, generic_key, "web-2", status="resolved")
    run_until(worker, MONDAY_MORNING - timedelta(minutes=1))
    assert incident_ids(context) == [None, None]
    run_until(worker, MONDAY_MORNING + timedelta(seconds=1))
    assert incident_ids(context)[0] is not None and incident_ids(context)[1] is None
    with context.db.read() as session:
        incident = session.scalars(select(Incident)).one()
        assert (incident.severity, incident.title) == ("P3", "web-1: certificate expires in 20 days")


def test_within_business_hours_it_opens_at_once(
    api: TestClient, context: AppContext, generic_key: str, responder: dict[str, str]
) -> None:
    clock.set(MONDAY_MORNING + timedelta(hours=2))
    fire(api, generic_key, "web-1")
    assert incident_ids(context)[0] is not None
    assert waiting_jobs(context) == []


def test_preview_says_when_it_would_open(
    api: TestClient, context: AppContext, responder: dict[str, str]
) -> None:
    body = {"summary": "cert", "severity": "warning", "labels": {"urgency": "low"}}
    clock.set(SATURDAY_NIGHT)
    [at_night] = api.post("/api/v1/alerts/preview", json=body, headers=responder).json()
    assert at_night["incident"]["rule"] == "low-urgency"
    assert at_night["incident"]["waits_for_business_hours"] == "2026-12-07T08:00:00Z"
    clock.set(MONDAY_MORNING + timedelta(hours=1))
    [by_day] = api.post("/api/v1/alerts/preview", json=body, headers=responder).json()
    assert by_day["incident"]["waits_for_business_hours"] is None


def test_a_delay_that_ends_after_hours_waits_for_the_next_morning(
    api: TestClient, context: AppContext, generic_key: str
) -> None:
    rules = [
        rule.model_copy(update={"incident": rule.incident.model_copy(update={"delay": timedelta(minutes=5)})})
        if rule.name == "low-urgency" and rule.incident is not None
        else rule
        for rule in context.org.automation.rules
    ]
    context.org = context.org.model_copy(
        update={"automation": context.org.automation.model_copy(update={"rules": rules})}
    )
    clock.set(datetime(2026, 12, 2, 16, 58, tzinfo=UTC))  # Wednesday 17:58 in Berlin
    fire(api, generic_key, "web-1")
    assert waiting_jobs(context) == [(datetime(2026, 12, 3, 8, 0, tzinfo=UTC), "5m and business hours")]


def test_a_rule_during_business_hours_or_outside_them(
    api: TestClient, context: AppContext, generic_key: str, responder: dict[str, str]
) -> None:
    by_day = AutomationRule.model_validate(
        {
            "name": "web-by-day",
            "during": "business_hours",
            "match": {"labels": {"team": "web"}},
            "incident": {"title": "{{ alert.summary }}", "severity": "P2"},
        }
    )
    at_night = AutomationRule.model_validate(
        {"name": "web-at-night", "during": "outside_business_hours", "match": {"labels": {"team": "web"}}}
    )
    rules = [by_day, at_night, *context.org.automation.rules]
    context.org = context.org.model_copy(
        update={"automation": context.org.automation.model_copy(update={"rules": rules})}
    )
    body = {"summary": "5xx on /cart", "severity": "warning", "labels": {"team": "web"}}
    clock.set(SATURDAY_NIGHT)
    [shown] = api.post("/api/v1/alerts/preview", json=body, headers=responder).json()
    verdicts = {verdict["rule"]: verdict for verdict in shown["rules"]}
    assert verdicts["web-by-day"]["why_not"] == "outside business hours now (the rule is for business hours)"
    assert verdicts["web-at-night"]["applied"] is True
    answer = api.post(f"/api/v1/alerts?key={generic_key}", json={**body, "dedup_key": "night"})
    assert answer.json()["alerts"][0]["incident"] is None  # recorded by the night rule, nobody paged
    clock.set(MONDAY_MORNING + timedelta(hours=1))
    answer = api.post(f"/api/v1/alerts?key={generic_key}", json={**body, "dedup_key": "day"})
    assert answer.json()["alerts"][0]["incident"] is not None
    with context.db.read() as session:
        assert session.scalars(select(Alert.rules).order_by(Alert.id)).all() == [
            ["web-at-night"],
            ["web-by-day"],
        ]


# The example's payments team keeps New York hours (08:00-17:00, US holidays): for its service, rules wait
# for those, not for Berlin's.
MONDAY_NEW_YORK = datetime(2026, 12, 7, 13, 0, tzinfo=UTC)  # 08:00 in New York, 14:00 in Berlin


def test_a_service_whose_team_keeps_its_own_hours_waits_for_them(
    api: TestClient, context: AppContext, generic_key: str, viewer: dict[str, str]
) -> None:
    worker = Worker(context, name="w1")
    clock.set(SATURDAY_NIGHT)
    fire(api, generic_key, "web-1")
    fire(api, generic_key, "checkout-1", service="payments")
    assert waiting_jobs(context) == [(MONDAY_MORNING, "business hours"), (MONDAY_NEW_YORK, "business hours")]
    run_until(worker, MONDAY_MORNING + timedelta(seconds=1))
    assert incident_ids(context)[0] is not None and incident_ids(context)[1] is None
    # Monday 10:00 in Berlin is 04:00 in New York: the payments alert still waits.
    run_until(worker, MONDAY_NEW_YORK + timedelta(seconds=1))
    assert incident_ids(context)[1] is not None
    # In Berlin's hours but before New York's, a new payments alert waits too; the preview says until when.
    clock.set(MONDAY_NEW_YORK + timedelta(days=1) - timedelta(hours=3))
    body = {"summary": "refunds slow", "service": "payments", "labels": {"urgency": "low"}}
    [preview] = api.post("/api/v1/alerts/preview?source=generic", json=body, headers=viewer).json()
    assert preview["incident"]["waits_for_business_hours"] == "2026-12-08T13:00:00Z"
    body["service"] = "search"
    [preview] = api.post("/api/v1/alerts/preview?source=generic", json=body, headers=viewer).json()
    assert preview["incident"]["waits_for_business_hours"] is None
