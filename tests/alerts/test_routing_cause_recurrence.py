""" "Recurring" names only the incidents an alert group opened (their first alert was of the group), not those
its alerts joined by a service dependency, a merge or by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

from tests.alerts.test_dependency_grouping import fire, incident_of
from tests.alerts.test_source_ack import timeline
from warroom.clock import clock
from warroom.context import AppContext
from warroom.incidents.models import Incident

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def resolve_incident(api: TestClient, number: int, responder: dict[str, str]) -> None:
    answer = api.patch(f"/api/v1/incidents/INC-{number}", json={"status": "resolved"}, headers=responder)
    assert answer.status_code == 200, answer.text


def resolve_alert(api: TestClient, key: str, alert: dict[str, Any]) -> None:
    body = {"summary": "over", "dedup_key": alert["dedup_key"], "status": "resolved"}
    assert api.post(f"/api/v1/alerts?key={key}", json=body).status_code == 202


def recurring(context: AppContext, number: int) -> tuple[Any, list[str]]:
    with context.db.read() as session:
        assessment = session.get_one(Incident, number).assessment
    notes = [entry.action for entry in timeline(context, number) if entry.action.startswith("Recurring")]
    return assessment.get("recurring"), notes


def test_an_incident_the_group_only_joined_is_no_recurrence(
    api: TestClient, context: AppContext, generic_key: str, responder: dict[str, str]
) -> None:
    clock.set(T0)
    root = fire(api, generic_key, "database", "PostgresDown")
    joined = fire(api, generic_key, "api", "APISaturation")
    assert incident_of(context, joined["id"]) == 1  # by dependency: INC-1 was PostgresDown's
    for alert in (root, joined):
        resolve_alert(api, generic_key, alert)
    resolve_incident(api, 1, responder)

    clock.set(T0 + timedelta(hours=3))
    first = fire(api, generic_key, "api", "APISaturation")
    assert incident_of(context, first["id"]) == 2
    assert recurring(context, 2) == (None, [])  # new: the group opened nothing before

    # Once the group has opened one, the next is recurring, naming that one only.
    resolve_alert(api, generic_key, first)
    resolve_incident(api, 2, responder)
    clock.set(T0 + timedelta(hours=6))
    again = fire(api, generic_key, "api", "APISaturation")
    assert incident_of(context, again["id"]) == 3
    flag, notes = recurring(context, 3)
    assert flag is True and len(notes) == 1, notes
    assert notes[0].startswith("Recurring: the same alerts opened INC-2 (2026-03-02, resolved) in the last")
    assert "INC-1" not in notes[0]


def test_an_incident_merged_into_another_is_the_group_s_own_and_the_target_is_not(
    api: TestClient, context: AppContext, generic_key: str, responder: dict[str, str]
) -> None:
    clock.set(T0)
    fire(api, generic_key, "queue", "QueueBacklog")  # INC-1
    own = fire(api, generic_key, "cache", "RedisDown")  # INC-2: RedisDown's, merged into INC-1
    merged = api.post("/api/v1/incidents/INC-2/merge", json={"into": "INC-1"}, headers=responder)
    assert merged.status_code == 200, merged.text
    assert incident_of(context, own["id"]) == 1
    resolve_alert(api, generic_key, own)
    clock.set(T0 + timedelta(hours=2))
    again = fire(api, generic_key, "cache", "RedisDown")
    assert incident_of(context, again["id"]) == 3
    flag, notes = recurring(context, 3)
    assert flag is True and len(notes) == 1, notes
    assert "INC-2 (2026-03-02, resolved)" in notes[0] and "INC-1" not in notes[0]
