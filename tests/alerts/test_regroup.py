"""Fixing the grouping by hand: an alert taken out of an incident into its own (``promote`` with ``move``),
and an incident folded into another (``merge``)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.alerts.test_source_ack import T0, generic, incident, pending_escalation_jobs, run_at, timeline
from warroom.alerts.models import Alert
from warroom.clock import clock
from warroom.context import AppContext
from warroom.incidents.models import Incident
from warroom.jobs.worker import Worker
from warroom.oncall.models import Escalation, EscalationState


def placement(context: AppContext) -> list[tuple[int, int | None]]:
    with context.db.read() as session:
        return [(a.id, a.incident_id) for a in session.scalars(select(Alert).order_by(Alert.id))]


def incident_count(context: AppContext) -> int:
    with context.db.read() as session:
        return len(session.scalars(select(Incident.id)).all())


def test_an_alert_taken_out_of_its_group_into_an_incident_of_its_own(
    api: TestClient, context: AppContext, generic_key: str, responder: dict[str, str], viewer: dict[str, str]
) -> None:
    """Two alerts of one group (service and alert name) share INC-1, but the second has another cause."""
    clock.set(T0)
    first = generic(api, generic_key, summary="api 5xx in eu", dedup_key="eu")
    second = generic(api, generic_key, summary="api 5xx in us", dedup_key="us")
    assert first["incident"] == second["incident"] == "INC-1"

    def promote(ref: int, headers: dict[str, str] = responder, **body: Any) -> Any:
        return api.post(f"/api/v1/alerts/{ref}/promote", json=body, headers=headers)

    refused = promote(second["id"])
    assert refused.status_code == 409
    assert "already on INC-1" in refused.text and "move" in refused.text
    [detail] = refused.json()["error"]["details"]
    assert (detail["field"], detail["incident"]) == ("alert", "INC-1")  # not the row id 1
    assert promote(second["id"], viewer, move=True).status_code == 403
    assert promote(second["id"], move=True, severity="P9").status_code == 422
    assert promote(second["id"], move="sideways").status_code == 422
    assert placement(context) == [(1, 1), (2, 1)] and incident_count(context) == 1  # refusals change nothing

    moved = promote(second["id"], move=True, title="US edge is down")
    assert moved.status_code == 201, moved.text
    assert moved.json()["incident"] == "INC-2"
    assert placement(context) == [(1, 1), (2, 2)]
    assert incident(context, 2).title == "US edge is down"
    left = timeline(context, 1)[-1]
    assert (left.action, left.performer) == ("Alert ALR-2 moved to INC-2: api 5xx in us", "responder-user")
    assert timeline(context, 2)[-1].action == (
        "Alert ALR-2 (generic, critical) attached: api 5xx in us (moved from INC-1)"
    )
    assert incident(context, 1).status.value == "investigating"  # INC-1 keeps its other alert and its status

    # The alert's next firing updates it where it now is.
    again = generic(api, generic_key, summary="api 5xx in us", dedup_key="us")
    assert (again["id"], again["incident"]) == (second["id"], "INC-2")
    # An alert that was never on an incident needs no move.
    unrouted = generic(
        api, generic_key, summary="db slow", dedup_key="db", severity="info", labels={"alertname": "DbSlow"}
    )
    assert unrouted["incident"] is None
    assert promote(unrouted["id"], move=True).json()["incident"] == "INC-3"


def test_an_incident_merged_into_another(
    api: TestClient, context: AppContext, generic_key: str, responder: dict[str, str], viewer: dict[str, str]
) -> None:
    """A database outage opens an incident for the api and another for search: search's folds into the
    api's, its escalation ends, and the next alert of its group joins the api's incident."""
    clock.set(T0)
    worker = Worker(context, name="w1")
    api_alert = generic(api, generic_key, summary="api 5xx", dedup_key="api-5xx")
    search_labels = {"alertname": "SearchErrors"}
    search_alerts = [
        generic(
            api,
            generic_key,
            summary=f"search 5xx {n}",
            dedup_key=f"s{n}",
            service="search",
            labels=search_labels,
        )
        for n in (1, 2)
    ]
    assert api_alert["incident"] == "INC-1"
    assert {a["incident"] for a in search_alerts} == {"INC-2"}
    run_at(worker, T0)
    assert pending_escalation_jobs(context, 2)  # INC-2 is being escalated
    api.post("/api/v1/incidents/INC-2/responders", json={"name": "dave", "role": "scribe"}, headers=responder)

    def merge(ref: str, headers: dict[str, str] = responder, **body: Any) -> Any:
        return api.post(f"/api/v1/incidents/{ref}/merge", json=body, headers=headers)

    # Refusals change nothing.
    before = (placement(context), len(timeline(context, 1)), len(timeline(context, 2)))
    assert merge("INC-2", into="INC-1", headers=viewer).status_code == 403
    assert api.post("/api/v1/incidents/INC-2/merge", json={"into": "INC-1"}).status_code == 401
    itself = merge("INC-2", into="inc-2")
    assert itself.status_code == 422 and "into itself" in itself.text
    assert merge("INC-2", into="INC-9").status_code == 404
    assert merge("INC-9", into="INC-1").status_code == 404
    assert merge("INC-2", into="nonsense").status_code == 404
    assert merge("INC-2").status_code == 422
    assert merge("INC-2", into="INC-1", extra=1).status_code == 422
    assert merge("INC-2", into="INC-1", note="").status_code == 422
    assert (placement(context), len(timeline(context, 1)), len(timeline(context, 2))) == before
    assert incident(context, 2).status.value == "investigating"

    clock.set(T0 + timedelta(minutes=4))
    merged = merge("INC-2", into="INC-1", note="the database is the cause")
    assert merged.status_code == 200, merged.text
    assert merged.json() == {"incident": "INC-2", "into": "INC-1", "alerts": ["ALR-2", "ALR-3"]}
    assert placement(context) == [(1, 1), (2, 1), (3, 1)]
    source = incident(context, 2)
    assert source.status.value == "resolved" and source.resolved_at == T0 + timedelta(minutes=4)
    source_entries = timeline(context, 2)
    assert [e.action for e in source_entries[-3:]] == [
        "Merged into INC-1 ('HighErrorRate on api'): its 2 alert(s) moved there — the database is the cause",
        "Status: investigating → resolved — merged into INC-1",
        "Escalation stopped (incident resolved): platform-escalation",
    ]
    assert source_entries[-2].performer == "responder-user"
    target_entries = timeline(context, 1)
    assert [e.action for e in target_entries[-4:-1]] == [
        "Alert ALR-2 (generic, critical) attached: search 5xx 1 (merged from INC-2)",
        "Alert ALR-3 (generic, critical) attached: search 5xx 2 (merged from INC-2)",
        "INC-2 (P1, 'SearchErrors on search') merged into this incident: its 2 alert(s) moved here; its "
        "responders: dave (scribe) — the database is the cause",
    ]
    # One outage: what INC-2 affected, INC-1 affects now, with the merge's note saying why.
    assert target_entries[-1].action == "Affected services: api, search — merged from INC-2"
    assert api.get("/api/v1/incidents/INC-1", headers=viewer).json()["services"] == ["api", "search"]
    assert incident(context, 1).status.value == "investigating"

    # INC-2's escalation ends; INC-1's goes on.
    run_at(worker, T0 + timedelta(minutes=30))
    with context.db.read() as session:
        states = dict(session.execute(select(Escalation.incident_id, Escalation.state)).all())
    assert states[2] == EscalationState.resolved and states[1] != EscalationState.resolved
    assert pending_escalation_jobs(context, 2) == []

    # Search's group now lives on INC-1: its next new alert joins it, and no incident opens.
    third = generic(
        api, generic_key, summary="search 5xx 3", dedup_key="s3", service="search", labels=search_labels
    )
    assert third["incident"] == "INC-1" and incident_count(context) == 2

    # A resolved incident is neither merged nor merged into.
    api.post(
        f"/api/v1/alerts?key={generic_key}",
        json={"summary": "disk", "dedup_key": "disk", "severity": "critical", "service": "database"},
    )
    assert merge("INC-2", into="INC-1").status_code == 409
    into_resolved = merge("INC-3", into="INC-2")
    assert (
        into_resolved.status_code == 409 and "INC-2 was merged into INC-1: only an open" in into_resolved.text
    )
    # An incident without alerts (declared by a person) merges too.
    declared = api.post(
        "/api/v1/incidents", json={"title": "checkout slow", "severity": "P2"}, headers=responder
    ).json()
    result = merge(declared["id"], into="INC-1").json()
    assert result == {"incident": declared["id"], "into": "INC-1", "alerts": []}
    assert timeline(context, 1)[-1].action.endswith("merged into this incident: it had no alerts")


def test_a_merge_after_a_service_was_renamed_still_merges(
    api: TestClient, context: AppContext, generic_key: str, responder: dict[str, str]
) -> None:
    """The org file was reloaded without "api" (renamed): INC-1 still names it. Merging search's incident
    into it moves the alerts and resolves INC-2; only the services are left as they were."""
    clock.set(T0)
    generic(api, generic_key, summary="api 5xx", dedup_key="api-5xx")
    generic(
        api, generic_key, summary="search 5xx", dedup_key="s1", service="search", labels={"alertname": "S"}
    )
    services = [
        s.model_copy(update={"name": "api-v2"}) if s.name == "api" else s for s in context.org.services
    ]
    context.org = context.org.model_copy(update={"services": services})
    merged = api.post("/api/v1/incidents/INC-2/merge", json={"into": "INC-1"}, headers=responder)
    assert merged.status_code == 200, merged.text
    assert placement(context) == [(1, 1), (2, 1)]
    assert incident(context, 2).status.value == "resolved"


def test_a_merge_keeps_the_more_severe_level_and_privacy(
    api: TestClient, context: AppContext, responder: dict[str, str]
) -> None:
    """A live P0 merged into a P3 ticket stays a P0; a private incident is not merged into a public one."""
    clock.set(T0)

    def declare(**fields: Any) -> str:
        body = {"title": "x", "severity": "P3", "services": ["search"], **fields}
        created = api.post("/api/v1/incidents", json=body, headers=responder)
        assert created.status_code == 201, created.text
        return str(created.json()["id"])

    outage, ticket = declare(severity="P0", services=["payments"]), declare()
    merged = api.post(f"/api/v1/incidents/{outage}/merge", json={"into": ticket}, headers=responder)
    assert merged.status_code == 200, merged.text
    assert api.get(f"/api/v1/incidents/{ticket}", headers=responder).json()["severity"] == "P0"
    secret, public = declare(is_private=True, title="breach"), declare()
    refused = api.post(f"/api/v1/incidents/{secret}/merge", json={"into": public}, headers=responder)
    assert refused.status_code == 409 and "private" in refused.json()["error"]["message"]
    assert api.get(f"/api/v1/incidents/{secret}", headers=responder).json()["status"] == "investigating"
    # The other way is fine, but the private incident's title stays off the public one's record.
    folded = api.post(f"/api/v1/incidents/{public}/merge", json={"into": secret}, headers=responder)
    assert folded.status_code == 200, folded.text
    said = api.get(f"/api/v1/incidents/{public}/timeline", headers=responder).json()["items"]
    assert any(entry["action"] == f"Merged into {secret}" for entry in said)
    assert not any("breach" in entry["action"] for entry in said)
