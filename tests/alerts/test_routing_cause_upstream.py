"""Among several upstream incidents a dependent service's alert could join, the most severe wins (by the
org's severity order), then the newest: a database warning opened in the same second as the database's
outage does not take the outage's symptoms."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.alerts.test_dependency_grouping import fire, incident_of
from warroom.clock import clock
from warroom.context import AppContext
from warroom.incidents.models import Incident

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def severities(context: AppContext) -> dict[int, str]:
    with context.db.read() as session:
        return {row.id: row.severity for row in session.execute(select(Incident.id, Incident.severity))}


def test_the_most_severe_upstream_incident_takes_the_dependent_alerts(
    api: TestClient, context: AppContext, generic_key: str, viewer: dict[str, str]
) -> None:
    # The example file sets dependency_window: 30m.
    clock.set(T0)
    fire(api, generic_key, "database", "PostgresDown")  # INC-1, P1
    clock.set(T0 + timedelta(milliseconds=400))  # in the same second, a little later
    fire(api, generic_key, "database", "DiskLatencyHigh", severity="error")  # INC-2, P2
    assert severities(context) == {1: "P1", 2: "P2"}
    clock.set(T0 + timedelta(seconds=20))
    symptoms = [fire(api, generic_key, service, "HighErrorRate") for service in ("api", "auth", "search")]
    assert [incident_of(context, alert["id"]) for alert in symptoms] == [1, 1, 1]
    assert severities(context) == {1: "P1", 2: "P2"}  # the warning's incident is not raised to P1
    probe = {
        "summary": "slow pages",
        "severity": "critical",
        "service": "frontend",
        "labels": {"alertname": "Slow"},
    }
    [shown] = api.post("/api/v1/alerts/preview", json=probe, headers=viewer).json()
    assert shown["incident"]["open_incident"] == "INC-1"


def test_among_equally_severe_upstream_incidents_the_newest_wins(
    api: TestClient, context: AppContext, generic_key: str
) -> None:
    clock.set(T0)
    fire(api, generic_key, "database", "PostgresDown")  # INC-1, P1
    clock.set(T0 + timedelta(minutes=1))
    fire(api, generic_key, "cache", "RedisDown")  # INC-2, P1, newer
    # A less severe incident, newer still, is passed over.
    fire(api, generic_key, "database", "DiskLatencyHigh", severity="error")  # INC-3, P2
    clock.set(T0 + timedelta(minutes=2))
    dependent = fire(api, generic_key, "auth", "LoginErrors")  # auth depends on database and cache
    assert incident_of(context, dependent["id"]) == 2
