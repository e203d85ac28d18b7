"""An alert an inhibit rule muted knows its cause: when its inhibitor resolves, it joins the inhibitor's
incident while that is open, rather than an unrelated incident a service dependency points at."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.alerts.test_source_ack import timeline
from tests.conftest import EXAMPLE_CONFIG
from warroom.alerts.models import Alert
from warroom.context import AppContext
from warroom.events import DomainEvent
from warroom.incidents.models import Incident
from warroom.orgconfig import OrgConfig, parse_org_config


@pytest.fixture
def org() -> OrgConfig:
    data: dict[str, Any] = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    data["automation"]["inhibit_rules"] = [
        {
            "name": "database-down",
            "source": {"type": ["PostgresDown"]},
            "target": {"type": ["DBConnectionPoolSaturated"]},
        }
    ]
    # Warnings open incidents too (P2), info ones P3.
    data["automation"]["rules"].insert(
        0,
        {
            "name": "everything",
            "match": {"source": ["generic"]},
            "incident": {"title": "{{ alert.summary }}"},
        },
    )
    return parse_org_config(yaml.safe_dump(data))


def send(
    api: TestClient, key: str, alertname: str, service: str, severity: str, **fields: Any
) -> dict[str, Any]:
    body = {
        "summary": f"{alertname} on {service}",
        "severity": severity,
        "service": service,
        "dedup_key": f"{alertname}/{service}/{fields.pop('instance', '1')}",
        "type": alertname,
        "labels": {"alertname": alertname},
        **fields,
    }
    answer = api.post(f"/api/v1/alerts?key={key}", json=body)
    assert answer.status_code == 202, answer.text
    return answer.json()["alerts"][0]  # type: ignore[no-any-return]


def stored(context: AppContext, alert_id: int) -> Alert:
    with context.db.read() as session:
        return session.get_one(Alert, alert_id)


def severities(context: AppContext) -> dict[int, str]:
    with context.db.read() as session:
        return {row.id: row.severity for row in session.execute(select(Incident.id, Incident.severity))}


def outage(
    api: TestClient, key: str, responder: dict[str, str]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """PostgresDown opens INC-1 (acknowledged), mutes the api's pool alerts; cache's evictions open INC-2."""
    root = send(api, key, "PostgresDown", "database", "critical")
    assert root["incident"] == "INC-1"
    assert api.post("/api/v1/incidents/INC-1/ack", headers=responder).status_code == 200
    muted = [send(api, key, "DBConnectionPoolSaturated", "api", "warning", instance=str(n)) for n in range(3)]
    assert [alert["incident"] for alert in muted] == [None, None, None]
    unrelated = send(api, key, "RedisEvictionsHigh", "cache", "info")
    assert unrelated["incident"] == "INC-2"
    return root, muted


def test_a_released_symptom_joins_its_inhibitor_s_open_incident(
    api: TestClient,
    context: AppContext,
    generic_key: str,
    responder: dict[str, str],
    page_requests: list[DomainEvent],
) -> None:
    root, muted = outage(api, generic_key, responder)
    assert severities(context) == {1: "P1", 2: "P3"}
    paged_before = len(page_requests)
    send(api, generic_key, "PostgresDown", "database", "critical", status="resolved")
    # INC-1 is still open: the pool alerts go there, not to the cache's incident the api depends on.
    assert [stored(context, alert["id"]).incident_id for alert in muted] == [1, 1, 1]
    assert severities(context) == {1: "P1", 2: "P3"}  # INC-2 not raised
    assert [event.incident_id for event in page_requests[paged_before:]] == []  # nobody paged
    actions = [entry.action for entry in timeline(context, 1)]
    first = f"ALR-{muted[0]['id']}"
    assert any(
        f"Alert {first} (generic, warning) attached: DBConnectionPoolSaturated on api (a symptom of "
        f"ALR-{root['id']}, PostgresDown on database, which inhibited it; ALR-{root['id']} is on INC-1)"
        in action
        for action in actions
    ), actions
    assert any(f"{first} was inhibited by ALR-{root['id']}" in action for action in actions), actions
    assert not any("api depends on cache" in entry.action for entry in timeline(context, 2))
    with context.db.read() as session:
        incident = session.get_one(Incident, 1)
        assert incident.service_names == ["database", "api"]
        # Its symptoms still fire though the database is back: nothing to watch yet.
        assert incident.status.value == "investigating"
    # Later alerts of their group follow them there.
    later = send(api, generic_key, "DBConnectionPoolSaturated", "api", "warning", instance="9")
    assert later["incident"] == "INC-1"


def test_with_its_inhibitor_s_incident_over_a_released_alert_is_routed_as_before(
    api: TestClient, context: AppContext, generic_key: str, responder: dict[str, str]
) -> None:
    _, muted = outage(api, generic_key, responder)
    resolved = api.patch("/api/v1/incidents/INC-1", json={"status": "resolved"}, headers=responder)
    assert resolved.status_code == 200, resolved.text
    send(api, generic_key, "PostgresDown", "database", "critical", status="resolved")
    # Its cause's incident is over: it is a problem of its own, and the dependency decides.
    assert [stored(context, alert["id"]).incident_id for alert in muted] == [2, 2, 2]
    assert any("api depends on cache, which INC-2 affects" in entry.action for entry in timeline(context, 2))


def test_a_symptom_still_firing_takes_its_cause_s_incident_out_of_monitoring(
    api: TestClient, context: AppContext, generic_key: str, responder: dict[str, str]
) -> None:
    """A person moved INC-1 to monitoring (the database fix is in); PostgresDown resolves, and the pool alerts
    it muted still fire: the outage is not over, so INC-1 is investigated again, saying why."""
    root, muted = outage(api, generic_key, responder)
    moved = api.patch("/api/v1/incidents/INC-1", json={"status": "monitoring"}, headers=responder)
    assert moved.status_code == 200, moved.text
    send(api, generic_key, "PostgresDown", "database", "critical", status="resolved")
    assert [stored(context, alert["id"]).incident_id for alert in muted] == [1, 1, 1]
    with context.db.read() as session:
        assert session.get_one(Incident, 1).status.value == "investigating"
    first, cause = f"ALR-{muted[0]['id']}", f"ALR-{root['id']}"
    assert any(
        f"alert {first}, a symptom of {cause}, still fires now that {cause} resolved" in entry.action
        for entry in timeline(context, 1)
    )
