""" "Recurring" names the incidents opened from an alert of the group (by a rule, or by promoting it), not one
a person declared that got the group's alert later through a merge or ``alerts attach``."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient

from tests.alerts.test_dependency_grouping import fire, incident_of
from tests.alerts.test_routing_cause_recurrence import T0, recurring, resolve_alert, resolve_incident
from warroom.clock import clock
from warroom.context import AppContext


def declare(api: TestClient, responder: dict[str, str], title: str) -> None:
    body = {"title": title, "severity": "P3", "services": ["cache"]}
    answer = api.post("/api/v1/incidents", json=body, headers=responder)
    assert answer.status_code in (200, 201), answer.text


def test_a_declared_incident_the_group_s_alert_was_merged_into_is_no_recurrence(
    api: TestClient, context: AppContext, generic_key: str, responder: dict[str, str]
) -> None:
    clock.set(T0)
    declare(api, responder, "Cache minor")  # INC-1, declared with no alerts
    own = fire(api, generic_key, "cache", "RedisDown")
    assert incident_of(context, own["id"]) == 2  # opened from the alert
    merged = api.post("/api/v1/incidents/INC-2/merge", json={"into": "INC-1"}, headers=responder)
    assert merged.status_code == 200, merged.text
    assert incident_of(context, own["id"]) == 1  # INC-1's first alert now, by the merge
    resolve_alert(api, generic_key, own)
    resolve_incident(api, 1, responder)

    clock.set(T0 + timedelta(hours=2))
    again = fire(api, generic_key, "cache", "RedisDown")
    assert incident_of(context, again["id"]) == 3
    flag, notes = recurring(context, 3)
    assert flag is True and len(notes) == 1, notes
    # INC-2 was opened from it (and merged): the group's. INC-1 was declared by a person: another problem's.
    assert "INC-2 (2026-03-02, resolved)" in notes[0] and "INC-1" not in notes[0], notes


def test_a_declared_incident_the_group_s_alert_was_attached_to_by_hand_is_no_recurrence(
    api: TestClient, context: AppContext, generic_key: str, responder: dict[str, str]
) -> None:
    clock.set(T0)
    first = fire(api, generic_key, "cache", "RedisDown")  # INC-1
    declare(api, responder, "Cache slow")  # INC-2
    attached = api.post(
        f"/api/v1/alerts/ALR-{first['id']}/attach", json={"incident": "INC-2"}, headers=responder
    )
    assert attached.status_code == 200, attached.text
    assert incident_of(context, first["id"]) == 2
    resolve_alert(api, generic_key, first)
    for number in (1, 2):
        resolve_incident(api, number, responder)

    clock.set(T0 + timedelta(hours=2))
    again = fire(api, generic_key, "cache", "RedisDown")
    assert incident_of(context, again["id"]) == 3
    flag, notes = recurring(context, 3)
    assert flag is True and len(notes) == 1, notes
    assert "INC-1 (2026-03-02, resolved)" in notes[0] and "INC-2" not in notes[0], notes
