"""A delivery's new alerts are routed together, in runs that share one savepoint and one flush, and what
routing learns once for the delivery (the incident each group went to, the firings people moved out of a
group) is reused for each alert. These tests hold the results to what routing alert by alert gives."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.alerts.test_rule_templates_strict import org_with_rules
from warroom.alerts import automation
from warroom.alerts.models import Alert
from warroom.context import AppContext
from warroom.incidents.models import Incident, TimelineEntry

CATCH_ALL: dict[str, Any] = {"name": "everything", "incident": {}}


def alert(dedup_key: str, **fields: Any) -> dict[str, Any]:
    return {
        "summary": f"queue {dedup_key} backing up",
        "severity": "critical",
        "service": "api",
        "dedup_key": dedup_key,
        "labels": {"alertname": "QueueBacklog"},
        **fields,
    }


def post(api: TestClient, key: str, delivery: list[dict[str, Any]]) -> list[dict[str, Any]]:
    response = api.post(f"/api/v1/alerts?key={key}", json=delivery)
    assert response.status_code == 202, response.text
    answers: list[dict[str, Any]] = response.json()["alerts"]
    return answers


def test_a_group_larger_than_a_run_with_one_alert_the_rules_fail_on(
    api: TestClient, context: AppContext, generic_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """600 new alerts of one group, one of which the rules fail on after writing: its run is undone and routed
    again alert by alert. Every other alert is on the group's one incident, attached once; the failing one is
    kept unrouted with the failure, and nothing it did is left."""
    context.org = org_with_rules(CATCH_ALL)
    routed = automation.on_created

    def failing_on_one(session: Any, org: Any, new_alert: Alert, **options: Any) -> None:
        routed(session, org, new_alert, **options)
        if new_alert.dedup_key == "q-300":
            raise RuntimeError("the rules tripped over this alert")

    monkeypatch.setattr(automation, "on_created", failing_on_one)
    answers = post(api, generic_key, [alert(f"q-{n}") for n in range(600)])
    incidents = {answer["incident"] for answer in answers}
    assert incidents == {"INC-1", None}
    [poison] = [answer for answer in answers if answer["incident"] is None]
    with context.db.read() as session:
        kept = session.get_one(Alert, poison["id"])
        assert kept.dedup_key == "q-300" and kept.incident_id is None
        assert [failure["error"] for failure in kept.handler_errors or []] == [
            "RuntimeError: the rules tripped over this alert"
        ]
        assert session.scalar(select(func.count()).select_from(Incident)) == 1
        on_incident = session.scalar(select(func.count()).select_from(Alert).where(Alert.incident_id == 1))
        assert on_incident == 599
        attached = list(
            session.scalars(
                select(TimelineEntry.data).where(
                    TimelineEntry.incident_id == 1, TimelineEntry.action.contains(" attached: ")
                )
            )
        )
        # Each alert once (the opening alert's entry included), the failing one never.
        assert sorted(entry["alert"] for entry in attached) == sorted(
            answer["id"] for answer in answers if answer["incident"] == "INC-1"
        )


def test_a_firing_moved_out_of_its_group_is_found_inside_a_big_delivery(
    api: TestClient, context: AppContext, generic_key: str, responder: dict[str, str]
) -> None:
    """Alert q-2 was moved by a person into an incident of its own. Its next firing, in the middle of a
    delivery of the group's new alerts, follows it there, while the alerts before and after it join the
    group's incident; once that incident is over, its next firing opens one of its own again."""
    context.org = org_with_rules(CATCH_ALL)
    first = post(api, generic_key, [alert("q-1"), alert("q-2")])
    assert [answer["incident"] for answer in first] == ["INC-1", "INC-1"]
    moved = api.post(
        f"/api/v1/alerts/{first[1]['id']}/promote",
        json={"move": True, "title": "q-2 apart"},
        headers=responder,
    )
    assert moved.status_code == 201, moved.text
    assert moved.json()["incident"] == "INC-2"
    post(api, generic_key, [alert("q-2", status="resolved")])

    delivery = (
        [alert(f"before-{n}") for n in range(60)] + [alert("q-2")] + [alert(f"after-{n}") for n in range(60)]
    )
    answers = post(api, generic_key, delivery)
    by_key = {entry["dedup_key"]: answer["incident"] for entry, answer in zip(delivery, answers, strict=True)}
    assert by_key.pop("q-2") == "INC-2"
    assert set(by_key.values()) == {"INC-1"}

    resolved = api.patch("/api/v1/incidents/INC-2", headers=responder, json={"status": "resolved"})
    assert resolved.status_code == 200, resolved.text
    post(api, generic_key, [alert("q-2", status="resolved")])
    delivery = (
        [alert(f"more-{n}") for n in range(60)] + [alert("q-2")] + [alert(f"last-{n}") for n in range(3)]
    )
    answers = post(api, generic_key, delivery)
    by_key = {entry["dedup_key"]: answer["incident"] for entry, answer in zip(delivery, answers, strict=True)}
    assert by_key.pop("q-2") == "INC-3"
    assert set(by_key.values()) == {"INC-1"}
    with context.db.read() as session:
        groups = set(session.scalars(select(Alert.group_key).where(Alert.dedup_key == "q-2")))
        assert len(groups) == 1 and "|moved:" in groups.pop()


def test_two_firings_moved_out_of_one_group_in_one_delivery_each_follow_their_own(
    api: TestClient, context: AppContext, generic_key: str, responder: dict[str, str]
) -> None:
    """QA: x1 and y1 were each split out of the group. A delivery of x1, a new alert and y1 sent y1 back to
    the group's incident: x1's routing had noted its own group and hidden y1's from the delivery's lookup."""
    context.org = org_with_rules(CATCH_ALL)
    first = post(api, generic_key, [alert("a0"), alert("x1"), alert("y1")])
    assert {answer["incident"] for answer in first} == {"INC-1"}
    for answer, into in ((first[1], "INC-2"), (first[2], "INC-3")):
        moved = api.post(f"/api/v1/alerts/{answer['id']}/promote", json={"move": True}, headers=responder)
        assert moved.status_code == 201, moved.text
        assert moved.json()["incident"] == into
    post(api, generic_key, [alert("x1", status="resolved"), alert("y1", status="resolved")])
    answers = post(api, generic_key, [alert("x1"), alert("a1"), alert("y1")])
    assert [answer["incident"] for answer in answers] == ["INC-2", "INC-1", "INC-3"]
