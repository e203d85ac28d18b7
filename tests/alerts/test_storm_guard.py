"""The storm guard (``automation.storm_guard``): past a cap of new incidents paging one escalation policy
within a window, alerts that would open another join the newest open one instead, so a storm across many
alert groups pages the people on call a few times, not once per group."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from sqlalchemy import func, select

from tests.alerts.test_source_ack import T0, generic, incident, timeline
from tests.conftest import EXAMPLE_CONFIG
from warroom.alerts import retention
from warroom.alerts import service as alerts_service
from warroom.alerts.adapters import AlertEvent, from_generic
from warroom.alerts.config import StormGuard
from warroom.alerts.models import PagedOpening
from warroom.alerts.schemas import Ingested
from warroom.clock import clock
from warroom.context import AppContext
from warroom.incidents.models import Incident
from warroom.orgconfig import ConfigError, OrgConfig, load_org_config, parse_org_config


@pytest.fixture
def org() -> OrgConfig:
    """The example org with a cap of two incidents per policy within 10 minutes (and no joining by service
    dependencies, which would hide what the guard does)."""
    base = load_org_config(EXAMPLE_CONFIG)
    guard = StormGuard(incidents=2, within=timedelta(minutes=10))
    automation = base.automation.model_copy(update={"storm_guard": guard, "dependency_window": timedelta(0)})
    return base.model_copy(update={"automation": automation})


def fire(api: TestClient, key: str, name: str, **alert: Any) -> dict[str, Any]:
    """A critical alert of its own group (the alert name) on the api: the critical-monitoring rule pages
    platform-escalation for it."""
    return generic(
        api,
        key,
        summary=f"{name} on api",
        dedup_key=alert.pop("dedup_key", name),
        labels={"alertname": name},
        **alert,
    )


def incident_count(context: AppContext) -> int:
    with context.db.read() as session:
        return session.scalar(select(func.count()).select_from(Incident)) or 0


def guarded(policy: str) -> float:
    return REGISTRY.get_sample_value("warroom_alerts_storm_guarded_total", {"policy": policy}) or 0.0


def page_requests(context: AppContext, number: int) -> list[str]:
    return [e.action for e in timeline(context, number) if e.action.startswith("Page requested")]


def test_past_the_cap_alerts_join_the_newest_incident_of_the_policy(
    api: TestClient, context: AppContext, generic_key: str, responder: dict[str, str]
) -> None:
    clock.set(T0)
    assert fire(api, generic_key, "DiskFull")["incident"] == "INC-1"
    clock.advance(timedelta(minutes=1))
    assert fire(api, generic_key, "HighLatency")["incident"] == "INC-2"
    assert (
        page_requests(context, 1)
        == page_requests(context, 2)
        == ["Page requested: escalation policy platform-escalation"]
    )

    # The third group within 10 minutes: no incident, no page; it joins INC-2, the newest, which says why.
    clock.advance(timedelta(minutes=1))
    body = {
        "summary": "queue",
        "severity": "critical",
        "service": "api",
        "labels": {"alertname": "QueueBacklog"},
    }
    [preview] = api.post("/api/v1/alerts/preview", json=body, headers=responder).json()
    assert (preview["incident"]["open_incident"], preview["incident"]["storm_guard"]) == ("INC-2", True)
    assert incident_count(context) == 2  # a preview changes nothing
    held_before = guarded("platform-escalation")
    third = fire(api, generic_key, "QueueBacklog")
    assert guarded("platform-escalation") == held_before + 1  # on /metrics, for alerting on storms
    assert third["incident"] == "INC-2" and incident_count(context) == 2
    assert timeline(context, 2)[-1].action == (
        f"Alert ALR-{third['id']} (generic, critical) attached: QueueBacklog on api (storm guard: 2 "
        "incident(s) paging platform-escalation opened within 10m, so it joins this one instead of opening "
        "another by rule critical-monitoring)"
    )
    assert page_requests(context, 2) == ["Page requested: escalation policy platform-escalation"]
    # Its group now lives on INC-2: the group's next alert joins it as any grouped alert does.
    again = fire(api, generic_key, "QueueBacklog", dedup_key="queue-2")
    assert again["incident"] == "INC-2"
    # A policy with room left is paged as usual: payments' alert opens INC-3 for payments-escalation (its
    # rule's, and payments is the service its rule names first). INC-3 does not page platform-escalation, so
    # that policy's newest incident is still INC-2.
    payments = generic(api, generic_key, summary="card auth failing", service="payments", dedup_key="pay")
    assert payments["incident"] == "INC-3"
    assert fire(api, generic_key, "CertExpiry")["incident"] == "INC-2"

    # When the newest of the policy's incidents are over, the next newest open one takes them.
    for ref in ("INC-3", "INC-2"):
        resolved = api.patch(f"/api/v1/incidents/{ref}", json={"status": "resolved"}, headers=responder)
        assert resolved.status_code == 200, resolved.text
    assert fire(api, generic_key, "DiskLatency")["incident"] == "INC-1"
    # When both are over, nothing is left to join: the alert opens an incident and pages.
    api.patch("/api/v1/incidents/INC-1", json={"status": "resolved"}, headers=responder)
    assert fire(api, generic_key, "SlowQueries")["incident"] == "INC-4"
    assert page_requests(context, 4) == ["Page requested: escalation policy platform-escalation"]

    # Once the window has passed them all (the last opened at 10:02), there is room again, up to the cap.
    clock.set(T0 + timedelta(minutes=12, seconds=1))
    assert fire(api, generic_key, "NodeDown")["incident"] == "INC-5"
    assert incident(context, 5).status.value == "investigating"
    assert fire(api, generic_key, "PodCrashLoop")["incident"] == "INC-6"
    assert fire(api, generic_key, "OomKilled")["incident"] == "INC-6"  # INC-5 and INC-6: the cap again

    # What the guard counts is kept a day, then pruned with the rest of the domain's records.
    clock.set(T0 + timedelta(days=1, minutes=30))
    with context.db.read() as session:
        counted = session.scalar(select(func.count()).select_from(PagedOpening))
    assert counted == 6  # INC-1 to INC-6, one policy each
    assert retention.prune(context, clock.now())["paged_openings"] == 6


def test_without_a_guard_every_group_opens_its_incident(
    api: TestClient, context: AppContext, generic_key: str
) -> None:
    """The example org file sets no guard, so nothing changes for those who do not ask for one."""
    context.org = load_org_config(EXAMPLE_CONFIG)
    clock.set(T0)
    refs = [fire(api, generic_key, f"Alert{n}")["incident"] for n in range(4)]
    assert refs == ["INC-1", "INC-2", "INC-3", "INC-4"]


@pytest.mark.parametrize(
    ("guard", "problem"),
    [
        ("{incidents: 0, within: 10m}", "incidents"),
        ("{incidents: 3, within: 30s}", "within must be between 1m and 1d"),
        ("{incidents: 3, within: 2d}", "within must be between 1m and 1d"),
        ("{incidents: 3}", "within"),
        ("{incidents: 3, within: 10m, per: team}", "per"),
    ],
)
def test_a_bad_guard_is_refused(guard: str, problem: str) -> None:
    text = EXAMPLE_CONFIG.read_text().replace(
        "  dependency_window: 30m", f"  dependency_window: 30m\n  storm_guard: {guard}", 1
    )
    with pytest.raises(ConfigError, match=problem):
        parse_org_config(text)


def test_concurrent_transactions_respect_the_cap(context: AppContext) -> None:
    """PostgreSQL runs intake transactions at once (several processes): the alert that would open the
    policy's third incident must wait for the second one's transaction, see the cap reached, and join."""
    if context.db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite runs one write transaction at a time")
    clock.set(T0)
    results: list[Ingested] = []

    def alert(name: str) -> list[AlertEvent]:
        return from_generic(
            {"summary": name, "severity": "critical", "service": "api", "labels": {"alertname": name}}
        )

    def ingest(name: str) -> Ingested:
        with context.db.write() as session:
            return alerts_service.ingest(session, org=context.org, source="generic", events=alert(name))

    assert ingest("DiskFull").alerts[0].incident == "INC-1"
    with context.db.write() as session:
        second = alerts_service.ingest(
            session, org=context.org, source="generic", events=alert("HighLatency")
        )
        assert second.alerts[0].incident == "INC-2"  # not yet committed
        other = threading.Thread(target=lambda: results.append(ingest("QueueBacklog")))
        other.start()
        other.join(0.5)
        assert other.is_alive()  # it waits for this transaction's opening
    other.join(10)
    assert results and results[0].alerts[0].incident == "INC-2"
    assert incident_count(context) == 2
