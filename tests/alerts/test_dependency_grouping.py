"""automation.dependency_window: an alert whose service depends on a service an open incident affects joins
that incident instead of opening its own (the database's outage, not one incident per service on it)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.alerts.test_source_ack import run_at, sent_pages, timeline
from tests.conftest import EXAMPLE_CONFIG
from warroom.alerts.automation import dependency_chains, depends_text
from warroom.alerts.models import Alert
from warroom.clock import clock
from warroom.context import AppContext
from warroom.incidents.models import Incident
from warroom.jobs.worker import Worker
from warroom.oncall.models import Escalation
from warroom.orgconfig import ConfigError, load_org_config, parse_org_config

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


@pytest.fixture
def grouped(context: AppContext) -> AppContext:
    automation = context.org.automation.model_copy(update={"dependency_window": timedelta(minutes=30)})
    context.org = context.org.model_copy(update={"automation": automation})
    return context


def fire(api: TestClient, key: str, service: str, alertname: str, **fields: Any) -> dict[str, Any]:
    body = {"summary": f"{alertname} on {service}", "severity": "critical", "service": service}
    body |= {"labels": {"alertname": alertname}, **fields}
    answer = api.post(f"/api/v1/alerts?key={key}", json=body)
    assert answer.status_code == 202, answer.text
    return answer.json()["alerts"][0]  # type: ignore[no-any-return]


def incidents(context: AppContext) -> list[tuple[int, list[str]]]:
    with context.db.read() as session:
        return [(i.id, i.service_names) for i in session.scalars(select(Incident).order_by(Incident.id))]


def incident_of(context: AppContext, alert_id: int) -> int | None:
    with context.db.read() as session:
        return session.get_one(Alert, alert_id).incident_id


def test_the_chains_of_the_example_file() -> None:
    org = load_org_config(EXAMPLE_CONFIG)
    chains = dependency_chains(org, "frontend")
    assert chains["api"] == ["frontend", "api"]
    assert chains["database"] == ["frontend", "api", "database"]  # the shortest chain, the first found
    assert dependency_chains(org, "database") == {}
    assert depends_text(chains["database"]) == "frontend depends on database (through api)"
    assert depends_text(chains["api"]) == "frontend depends on api"


def test_alerts_of_dependent_services_join_the_upstream_incident(
    api: TestClient, grouped: AppContext, generic_key: str, viewer: dict[str, str]
) -> None:
    clock.set(T0)
    root = fire(api, generic_key, "database", "PostgresDown")
    assert incidents(grouped) == [(1, ["database"])]
    clock.set(T0 + timedelta(minutes=5))
    dependent = fire(api, generic_key, "api", "HighErrorRate")
    assert incident_of(grouped, dependent["id"]) == 1 and incident_of(grouped, root["id"]) == 1
    assert incidents(grouped) == [(1, ["database", "api"])]  # its blast radius grew, the cause still first
    actions = [entry.action for entry in timeline(grouped, 1)]
    assert any("api depends on database, which INC-1 affects" in action for action in actions), actions
    assert sum(action.startswith("Page requested") for action in actions) == 1  # nobody paged again
    # Through others, and a service that depends on none of it opens its own.
    fire(api, generic_key, "frontend", "SlowPages")
    assert incidents(grouped) == [(1, ["database", "api", "frontend"])]
    fire(api, generic_key, "cache", "CacheEvictions")
    assert incidents(grouped)[-1] == (2, ["cache"])

    # The server's dry run says so too.
    probe = {
        "summary": "auth 5xx",
        "severity": "critical",
        "service": "auth",
        "labels": {"alertname": "Auth5xx"},
    }
    [shown] = api.post("/api/v1/alerts/preview", json=probe, headers=viewer).json()
    assert (
        shown["incident"]["open_incident"] == "INC-2"
    )  # auth depends on cache (INC-2 is newer) and database
    assert shown["incident"]["depends_on"] == ["auth", "cache"]


def test_old_closed_or_switched_off_upstream_incidents_are_left_alone(
    api: TestClient, grouped: AppContext, generic_key: str, responder: dict[str, str]
) -> None:
    clock.set(T0)
    fire(api, generic_key, "database", "PostgresDown")
    clock.set(T0 + timedelta(minutes=31))  # opened longer ago than the window
    fire(api, generic_key, "api", "HighErrorRate")
    assert [number for number, _ in incidents(grouped)] == [1, 2]
    resolved = api.patch("/api/v1/incidents/INC-2", json={"status": "resolved"}, headers=responder)
    assert resolved.status_code == 200, resolved.text
    fire(api, generic_key, "database", "ReplicaLag")  # INC-3, just opened
    api.patch("/api/v1/incidents/INC-3", json={"status": "resolved"}, headers=responder)
    fire(api, generic_key, "search", "IndexStale")  # search depends on database, whose incident is resolved
    assert [number for number, _ in incidents(grouped)] == [1, 2, 3, 4]
    # Off (the default): every service's alert opens its own incident.
    grouped.org = grouped.org.model_copy(
        update={"automation": grouped.org.automation.model_copy(update={"dependency_window": timedelta(0)})}
    )
    fire(api, generic_key, "database", "DiskFull")
    fire(api, generic_key, "api", "Latency")
    assert [number for number, _ in incidents(grouped)] == [1, 2, 3, 4, 5, 6]


def test_an_upstream_incident_takes_dependents_only_while_it_is_ongoing(
    api: TestClient, grouped: AppContext, generic_key: str, responder: dict[str, str]
) -> None:
    """QA's report: the nightly backup's failure on the database resolved and its incident went to monitoring;
    alerts of api, payments and search within the window all joined it, moved it back to investigating as
    though "the fix did not hold", and raised its P3 to P0. An incident in monitoring whose alerts have all
    resolved is not an ongoing outage: a dependent's alert opens its own incident. One in monitoring with an
    alert still open is, and takes it, but only its own alerts firing again say the fix did not hold."""
    clock.set(T0)
    fire(api, generic_key, "database", "BackupFailed", severity="error")
    fire(api, generic_key, "database", "BackupFailed", severity="error", status="resolved")
    assert _status(grouped, 1) == "monitoring"
    clock.set(T0 + timedelta(minutes=10))
    api_alert = fire(api, generic_key, "api", "HighErrorRate")
    assert incident_of(grouped, api_alert["id"]) == 2  # its own incident
    assert (_status(grouped, 1), incidents(grouped)[0]) == ("monitoring", (1, ["database"]))
    assert not any("fix did not hold" in entry.action for entry in timeline(grouped, 1))
    # Payments depends on api, whose incident is ongoing: that is the outage it joins.
    assert incident_of(grouped, fire(api, generic_key, "payments", "CheckoutDown")["id"]) == 2

    # A person moves INC-2 to monitoring while its alerts still fire: ongoing, so a dependent joins, and its
    # status stays the person's to move; nothing says its fix did not hold.
    moved = api.patch("/api/v1/incidents/INC-2", json={"status": "monitoring"}, headers=responder)
    assert moved.status_code == 200, moved.text
    frontend = fire(api, generic_key, "frontend", "SlowPages")
    assert incident_of(grouped, frontend["id"]) == 2 and _status(grouped, 2) == "monitoring"
    assert not any("fix did not hold" in entry.action for entry in timeline(grouped, 2))
    # Its own group firing again does say so, as before.
    fire(api, generic_key, "database", "BackupFailed", severity="error")
    assert _status(grouped, 1) == "investigating"
    assert any(
        "fired while monitoring: the fix did not hold" in entry.action
        for entry in timeline(grouped, 1)
        if entry.kind == "status_change"
    )


def _status(context: AppContext, number: int) -> str:
    with context.db.read() as session:
        return str(session.get_one(Incident, number).status.value)


@pytest.mark.parametrize("window", ["2d", "-1m", "soon"])
def test_a_bad_dependency_window_is_refused(window: str) -> None:
    document = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    document["automation"]["dependency_window"] = window
    with pytest.raises(ConfigError) as error:
        parse_org_config(yaml.safe_dump(document))
    assert "dependency_window" in str(error.value)


def test_an_alert_joining_by_dependency_raises_the_level_its_own_rule_calls_for(
    api: TestClient, grouped: AppContext, generic_key: str
) -> None:
    """The queue's critical alert opened INC-1 at P1 (critical-monitoring maps critical to P1). Payments
    depends on the queue, and its critical alert calls for P0 (payments-down fixes that level): it joins
    INC-1 and raises it. The earlier alert is judged by its own rule, not by payments-down's fixed P0."""
    clock.set(T0)
    fire(api, generic_key, "queue", "QueueMemory")
    with grouped.db.read() as session:
        assert session.get_one(Incident, 1).severity == "P1"
    clock.set(T0 + timedelta(minutes=2))
    joined = fire(api, generic_key, "payments", "CheckoutDown")
    assert incident_of(grouped, joined["id"]) == 1
    with grouped.db.read() as session:
        assert session.get_one(Incident, 1).severity == "P0"
    actions = [entry.action for entry in timeline(grouped, 1)]
    assert any("P1 → P0" in action or "to P0" in action for action in actions), actions


def test_a_critical_alert_joining_an_incident_nobody_was_paged_for_pages_its_rules_policy(
    api: TestClient, grouped: AppContext, generic_key: str, viewer: dict[str, str]
) -> None:
    """A low-urgency warning on the database opened a P3 (nobody paged). Auth depends on the database: its
    critical alert joins that incident and raises it to P1, and its rule's page (critical-monitoring:
    platform-escalation) is asked for, as when it opens an incident. It paged nobody before the fix: the
    raise found no policy for P1, and the rule's page belonged to an opening that never happened."""
    clock.set(T0)
    worker = Worker(grouped, name="w1")
    fire(api, generic_key, "database", "SlowQueries", severity="warning", labels={"urgency": "low"})
    run_at(worker, T0)
    with grouped.db.read() as session:
        assert session.get_one(Incident, 1).severity == "P3"
    assert sent_pages(grouped) == []
    probe = {"summary": "auth 5xx", "severity": "critical", "service": "auth", "labels": {"alertname": "A"}}
    [shown] = api.post("/api/v1/alerts/preview", json=probe, headers=viewer).json()
    assert (shown["incident"]["open_incident"], shown["incident"]["pages_on_join"]) == (
        "INC-1",
        ["platform-escalation"],
    )

    clock.set(T0 + timedelta(minutes=2))
    joined = fire(api, generic_key, "auth", "AuthErrors")
    assert incident_of(grouped, joined["id"]) == 1
    run_at(worker, T0 + timedelta(minutes=2))
    assert ("carol", "email", 1, 1) in sent_pages(grouped)  # platform-escalation, step 1
    actions = [entry.action for entry in timeline(grouped, 1)]
    assert (
        "Page requested: escalation policy platform-escalation (rule critical-monitoring; "
        f"ALR-{joined['id']} joined INC-1, which it had not paged)" in actions
    ), actions

    # Another critical alert of the same kind joins too, and asks for nothing more: the policy is paging.
    fire(api, generic_key, "frontend", "FrontendErrors")
    run_at(worker, T0 + timedelta(minutes=3))
    with grouped.db.read() as session:
        assert [e.policy for e in session.scalars(select(Escalation))] == ["platform-escalation"]
    assert sum("Page requested" in entry.action for entry in timeline(grouped, 1)) == 1
    [shown] = api.post("/api/v1/alerts/preview", json=probe, headers=viewer).json()
    assert shown["incident"]["pages_on_join"] == []


def test_after_a_rename_a_joining_alert_pages_nobody_twice(
    api: TestClient, grouped: AppContext, generic_key: str
) -> None:
    """INC-1 is paged by platform-escalation; a reload renames it (the rule's page too). The next alert of the
    group joins INC-1: the running escalation is the renamed policy's, so nothing new is asked for (it paged
    carol a second time at once)."""
    from tests.oncall.test_policy_gone import reloaded

    clock.set(T0)
    worker = Worker(grouped, name="w1")
    fire(api, generic_key, "api", "HighErrorRate", dedup_key="e1")
    run_at(worker, T0)
    assert sent_pages(grouped) == [("carol", "email", 1, 1)]
    renamed = reloaded(grouped.org, policies={"platform-escalation": "platform-escalation-v2"})
    rules = [
        rule.model_copy(update={"page": "platform-escalation-v2"})
        if rule.page == "platform-escalation"
        else rule
        for rule in renamed.automation.rules
    ]
    grouped.org = renamed.model_copy(
        update={"automation": renamed.automation.model_copy(update={"rules": rules})}
    )
    clock.set(T0 + timedelta(minutes=1))
    joined = fire(api, generic_key, "api", "HighErrorRate", dedup_key="e2")
    assert incident_of(grouped, joined["id"]) == 1
    run_at(worker, T0 + timedelta(minutes=1))
    assert sent_pages(grouped) == [("carol", "email", 1, 1)]
    assert sum("Page requested" in entry.action for entry in timeline(grouped, 1)) == 1
