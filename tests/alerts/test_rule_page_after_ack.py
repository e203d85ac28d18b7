"""A rule's ``page`` (``incident.page_requested`` from automation) is not sent once the incident is
acknowledged or closed before the worker gets to it, as the incident's own first page is not; a page a
person asks for is sent all the same."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.alerts.test_source_ack import T0, incident, pd, pd_ack, pd_trigger, run_at, sent_pages, timeline
from warroom.clock import clock
from warroom.context import AppContext
from warroom.jobs.models import Job
from warroom.jobs.worker import Worker
from warroom.oncall import paging
from warroom.oncall.models import Escalation
from warroom.oncall.schemas import PageRequest

# The QA report's alert: the example org's rule critical-monitoring opens an incident and pages
# platform-escalation for it (the database service's owner team has no policy of its own).
ALERT = {"summary": "human ack race", "severity": "critical", "service": "database", "dedup_key": "ha1"}
NOT_SENT = "Page of platform-escalation requested by automation not sent: "


def fire(api: TestClient, key: str, *alerts: dict[str, Any]) -> list[dict[str, Any]]:
    response = api.post(f"/api/v1/alerts?key={key}", json=list(alerts))
    assert response.status_code == 202, response.text
    result: list[dict[str, Any]] = response.json()["alerts"]
    return result


def escalations(context: AppContext) -> list[tuple[str, str]]:
    with context.db.read() as session:
        return [(e.policy, e.state) for e in session.scalars(select(Escalation).order_by(Escalation.id))]


def start_results(context: AppContext) -> list[dict[str, Any] | None]:
    with context.db.read() as session:
        jobs = session.scalars(select(Job).where(Job.kind == paging.START_KIND).order_by(Job.id))
        return [job.result for job in jobs]


def acked_by_hand(api: TestClient, context: AppContext, keys: dict[str, str], admin: dict[str, str]) -> str:
    fire(api, keys["generic"], ALERT)
    answer = api.post("/api/v1/incidents/INC-1/ack", headers=admin)
    assert answer.status_code == 200, answer.text
    return "admin-user"


def acked_at_the_source(
    api: TestClient, context: AppContext, keys: dict[str, str], admin: dict[str, str]
) -> str:
    # One delivery: the alert fires, then its source acknowledges it (the incident with it).
    [opened, acked] = fire(api, keys["generic"], ALERT, {**ALERT, "status": "acknowledged"})
    assert (opened["incident"], acked["outcome"]) == ("INC-1", "acknowledged")
    return "automation"


def acked_then_resolved_at_pagerduty(
    api: TestClient, context: AppContext, keys: dict[str, str], admin: dict[str, str]
) -> str:
    pd(api, pd_trigger(keys["pagerduty"], "db-1"))
    pd_ack(api, keys["pagerduty"], "db-1")
    pd(api, {"routing_key": keys["pagerduty"], "event_action": "resolve", "dedup_key": "db-1"})
    assert incident(context).status == "monitoring"
    return "automation"


@pytest.mark.parametrize(
    "acknowledge", [acked_by_hand, acked_at_the_source, acked_then_resolved_at_pagerduty]
)
def test_a_rule_page_is_not_sent_for_an_incident_acknowledged_before_the_worker_ran(
    api: TestClient,
    context: AppContext,
    generic_key: str,
    pd_key: str,
    admin: dict[str, str],
    acknowledge: Callable[[TestClient, AppContext, dict[str, str], dict[str, str]], str],
) -> None:
    clock.set(T0)
    by = acknowledge(api, context, {"generic": generic_key, "pagerduty": pd_key}, admin)
    opened = incident(context)
    assert opened.acknowledged_by == by
    actions = [e.action for e in timeline(context)]
    assert "Page requested: escalation policy platform-escalation" in actions

    run_at(Worker(context, name="w1"), T0 + timedelta(seconds=5))
    assert sent_pages(context) == []
    assert escalations(context) == []
    [note] = [e for e in timeline(context) if e.action.startswith(NOT_SENT)]
    assert note.action == f"{NOT_SENT}INC-1 was acknowledged by {by} before it went out"
    assert (note.kind, note.performer) == ("automation", "warroom")
    assert note.data is not None and note.data["policy"] == "platform-escalation"
    assert {"skipped": f"already acknowledged by {by}"} in start_results(context)

    # Nor is anyone paged later: no escalation runs.
    run_at(Worker(context, name="w1"), T0 + timedelta(hours=3))
    assert sent_pages(context) == []


def test_a_rule_page_is_not_sent_for_an_incident_resolved_before_the_worker_ran(
    api: TestClient, context: AppContext, generic_key: str, responder: dict[str, str]
) -> None:
    clock.set(T0)
    fire(api, generic_key, ALERT)
    answer = api.patch("/api/v1/incidents/INC-1", headers=responder, json={"status": "resolved"})
    assert answer.status_code == 200, answer.text
    run_at(Worker(context, name="w1"), T0 + timedelta(seconds=5))
    assert sent_pages(context) == []
    assert [e.action for e in timeline(context) if e.action.startswith(NOT_SENT)] == [
        f"{NOT_SENT}INC-1 is resolved"
    ]


def test_an_unacknowledged_incident_is_still_paged_by_its_rule(
    api: TestClient, context: AppContext, generic_key: str
) -> None:
    clock.set(T0)
    fire(api, generic_key, ALERT)
    run_at(Worker(context, name="w1"), T0 + timedelta(seconds=5))
    assert sent_pages(context) == [("carol", "email", 1, 1)]
    assert escalations(context) == [("platform-escalation", "active")]
    paged = [e.action for e in timeline(context) if e.action.startswith("Paged")]
    assert any("page requested by automation" in a for a in paged), paged


def test_a_page_a_person_asks_for_is_sent_even_when_acknowledged(
    api: TestClient, context: AppContext, generic_key: str, admin: dict[str, str]
) -> None:
    clock.set(T0)
    fire(api, generic_key, ALERT)
    assert api.post("/api/v1/incidents/INC-1/ack", headers=admin).status_code == 200
    with context.db.write() as session:
        paging.request_page_by_person(
            session,
            context.org,
            ref="INC-1",
            request=PageRequest(policy="database-experts"),
            performer="alice",
        )
    run_at(Worker(context, name="w1"), T0 + timedelta(seconds=5))
    # The rule's page is not sent; the one alice asked for is (carol and frank by email; slack waits 5m).
    assert sorted(p[0] for p in sent_pages(context)) == ["carol", "frank"]
    paged = [e.action for e in timeline(context) if e.action.startswith("Paged")]
    assert paged and all("page requested by alice" in a for a in paged), paged
    assert any(e.action.startswith(NOT_SENT) for e in timeline(context))
    # The incident is acknowledged, so it does not escalate past the step alice asked for.
    run_at(Worker(context, name="w1"), T0 + timedelta(hours=3))
    assert {p[3] for p in sent_pages(context)} == {1}
    assert escalations(context) == [("database-experts", "acknowledged")]
