"""Alert routing, second QA round: an incident the storm guard moved back to investigating settles by its own
rule, and an alert that got worse while snoozed is routed when its snooze is taken back or moved."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.alerts.test_routing_gaps import incidents, send, status_of
from tests.alerts.test_rule_delay import T0
from tests.alerts.test_source_ack import run_at, timeline
from warroom.alerts.config import AutomationRule, StormGuard
from warroom.alerts.models import Alert
from warroom.alerts.service import SNOOZE_KIND
from warroom.clock import clock
from warroom.context import AppContext
from warroom.events import DomainEvent
from warroom.jobs.models import Job
from warroom.jobs.worker import Worker

# --- the storm guard, resolve_to_monitoring and the incident's own rule -----------------------------------


def team_rule(team: str, **settings: Any) -> AutomationRule:
    return AutomationRule.model_validate(
        {
            "name": f"rule-{team}",
            "match": {"labels": {"team": team}},
            "incident": {},
            "page": "platform-escalation",
            **settings,
        }
    )


def storm_guard_of_one(context: AppContext, *rules: AutomationRule) -> None:
    """The example org with ``rules`` first and a storm guard of one incident per policy in 10 minutes (no
    dependency joins): a second team's alert joins the first team's incident."""
    automation = context.org.automation.model_copy(
        update={
            "storm_guard": StormGuard(incidents=1, within=timedelta(minutes=10)),
            "dependency_window": timedelta(0),
            "rules": [*rules, *context.org.automation.rules],
        }
    )
    context.org = context.org.model_copy(update={"automation": automation})


def team_alert(api: TestClient, key: str, team: str, **fields: Any) -> dict[str, Any]:
    labels = {"alertname": f"Down-{team}", "team": team}
    return send(api, key, severity="warning", labels=labels, dedup_key=f"{team}1", **fields)


def test_an_incident_the_storm_guard_moved_back_settles_by_its_own_rule(
    api: TestClient, context: AppContext, generic_key: str
) -> None:
    """INC-1 (rule-a, resolve_to_monitoring on, resolve_after 30m) went to monitoring; the storm guard folded
    a rule-b alert (setting off) into it, which moved it back to investigating. When that alert resolved,
    rule-b decided: INC-1 stayed investigating with every alert resolved, for ever. Its own rule decides the
    move to monitoring, the move back when b's group fires again, and resolve_after."""
    storm_guard_of_one(
        context, team_rule("a", resolve_after="30m"), team_rule("b", resolve_to_monitoring=False)
    )
    worker = Worker(context, name="w1")
    clock.set(T0)
    assert team_alert(api, generic_key, "a")["incident"] == "INC-1"
    team_alert(api, generic_key, "a", status="resolved")
    assert status_of(context, 1) == "monitoring"
    clock.set(T0 + timedelta(minutes=1))
    assert team_alert(api, generic_key, "b")["incident"] == "INC-1"
    assert status_of(context, 1) == "investigating"
    clock.set(T0 + timedelta(minutes=2))
    team_alert(api, generic_key, "b", status="resolved")
    assert status_of(context, 1) == "monitoring"
    assert timeline(context, 1)[-1].action == "Status: investigating → monitoring — all alerts resolved"

    # b's group fires again (a new alert of its group, which follows it to INC-1): back to investigating.
    clock.set(T0 + timedelta(minutes=3))
    again = team_alert(api, generic_key, "b")
    assert again["incident"] == "INC-1"
    assert status_of(context, 1) == "investigating"
    clock.set(T0 + timedelta(minutes=4))
    team_alert(api, generic_key, "b", status="resolved")
    assert status_of(context, 1) == "monitoring"
    # rule-a's resolve_after, not rule-b's (none): resolved after 30 quiet minutes in monitoring.
    run_at(worker, T0 + timedelta(minutes=34))
    assert status_of(context, 1) == "resolved"


def test_an_incident_whose_rule_leaves_statuses_to_people_is_not_moved_by_a_storm_guarded_alert(
    api: TestClient, context: AppContext, generic_key: str
) -> None:
    """The reverse: INC-1's rule-a leaves its status to people; a rule-b alert (setting on) joined by the
    storm guard resolved last, and rule-b moved INC-1 to monitoring."""
    storm_guard_of_one(context, team_rule("a", resolve_to_monitoring=False), team_rule("b"))
    clock.set(T0)
    assert team_alert(api, generic_key, "a")["incident"] == "INC-1"
    team_alert(api, generic_key, "a", status="resolved")
    assert status_of(context, 1) == "investigating"
    clock.set(T0 + timedelta(minutes=1))
    assert team_alert(api, generic_key, "b")["incident"] == "INC-1"
    team_alert(api, generic_key, "b", status="resolved")
    assert status_of(context, 1) == "investigating"
    assert not any(entry.kind == "status_change" for entry in timeline(context, 1))


def test_the_incidents_rule_is_that_of_the_alert_that_opened_it_not_an_older_one_joined_later(
    api: TestClient, context: AppContext, generic_key: str
) -> None:
    """b1 (rule-b, setting off) waits out its rule's 5 minutes; a1 (rule-a) opens INC-1 meanwhile and
    resolves. When b1's wait is over the storm guard puts it on INC-1: b1 is the incident's oldest alert, but
    a1 opened it, so rule-a moves it back to investigating and, once b1 resolves, to monitoring."""
    waiting_b = team_rule("b", resolve_to_monitoring=False, incident={"delay": "5m"})
    storm_guard_of_one(context, team_rule("a"), waiting_b)
    worker = Worker(context, name="w1")
    clock.set(T0)
    b1 = team_alert(api, generic_key, "b")
    assert b1["incident"] is None
    clock.set(T0 + timedelta(minutes=1))
    a1 = team_alert(api, generic_key, "a")
    assert a1["incident"] == "INC-1" and b1["id"] < a1["id"]
    team_alert(api, generic_key, "a", status="resolved")
    assert status_of(context, 1) == "monitoring"
    run_at(worker, T0 + timedelta(minutes=5))
    with context.db.read() as session:
        assert session.get_one(Alert, b1["id"]).incident_id == 1
    assert status_of(context, 1) == "investigating"
    clock.set(T0 + timedelta(minutes=6))
    team_alert(api, generic_key, "b", status="resolved")
    assert status_of(context, 1) == "monitoring"


# --- a snooze of an alert that got worse, taken back or moved ---------------------------------------------


def snooze(api: TestClient, alert_id: int, headers: dict[str, str], duration: str = "1m") -> None:
    answer = api.post(f"/api/v1/alerts/{alert_id}/snooze", json={"duration": duration}, headers=headers)
    assert answer.status_code == 200, answer.text


def snooze_results(context: AppContext) -> list[tuple[str, dict[str, Any] | None]]:
    with context.db.read() as session:
        jobs = session.scalars(select(Job).where(Job.kind == SNOOZE_KIND).order_by(Job.id))
        return [(job.status.value, job.result) for job in jobs]


def alert_row(context: AppContext, alert_id: int) -> Alert:
    with context.db.read() as session:
        return session.get_one(Alert, alert_id)


ROUTED = (
    "went from warning to critical while snoozed by responder-user, on no incident (no rule had routed it); "
    "the snooze is over and it still fires: the rules took it as a new critical alert"
)


def test_unacknowledging_a_snoozed_alert_that_got_worse_routes_it(
    api: TestClient,
    context: AppContext,
    generic_key: str,
    responder: dict[str, str],
    page_requests: list[DomainEvent],
) -> None:
    """An unrouted warning, snoozed for a minute, comes again as critical (its note promises the rules a look
    when the snooze ends); `alerts unack` ends the snooze now. It stayed firing, critical and unrouted for
    good: its snooze's job then found the snooze taken back."""
    worker = Worker(context, name="w1")
    clock.set(T0)
    alert = send(api, generic_key, severity="warning", dedup_key="s1")
    snooze(api, alert["id"], responder)
    clock.set(T0 + timedelta(seconds=20))
    assert send(api, generic_key, severity="critical", dedup_key="s1")["incident"] is None
    answer = api.post(f"/api/v1/alerts/{alert['id']}/unacknowledge", headers=responder)
    assert answer.status_code == 200, answer.text
    assert answer.json()["incident"] == "INC-1"
    [opened] = incidents(context)
    assert opened.severity == "P1"
    assert [event.data["policy"] for event in page_requests] == ["platform-escalation"]
    assert f"Alert ALR-{alert['id']} {ROUTED}" in [entry.action for entry in timeline(context, 1)]
    row = alert_row(context, alert["id"])
    assert (row.status.value, row.snoozed_until, row.rules) == ("firing", None, ["critical-monitoring"])
    run_at(worker, T0 + timedelta(minutes=5))
    assert snooze_results(context) == [
        ("done", {"woke": False, "reason": "its snooze was taken back or moved"})
    ]
    assert len(incidents(context)) == 1 and len(page_requests) == 1


def test_unacknowledging_a_snoozed_alert_no_worse_leaves_it_unrouted(
    api: TestClient, context: AppContext, generic_key: str, responder: dict[str, str]
) -> None:
    """A snoozed warning that stayed a warning: the rules took no warning, and unack routes nothing."""
    clock.set(T0)
    alert = send(api, generic_key, severity="warning", dedup_key="s1")
    snooze(api, alert["id"], responder)
    answer = api.post(f"/api/v1/alerts/{alert['id']}/unacknowledge", headers=responder)
    assert answer.status_code == 200, answer.text
    assert answer.json()["incident"] is None and incidents(context) == []


def test_unacknowledging_a_plainly_acknowledged_alert_that_got_worse_leaves_it_unrouted(
    api: TestClient, context: AppContext, generic_key: str, responder: dict[str, str]
) -> None:
    """Decided: an acknowledgement (no snooze) promised the rules nothing, and the note on the alert says how
    to open its incident; the unack makes it fire again, unrouted (the unrouted list and digest show it)."""
    clock.set(T0)
    alert = send(api, generic_key, severity="warning", dedup_key="s1")
    assert api.post(f"/api/v1/alerts/{alert['id']}/acknowledge", headers=responder).status_code == 200
    send(api, generic_key, severity="critical", dedup_key="s1")
    answer = api.post(f"/api/v1/alerts/{alert['id']}/unacknowledge", headers=responder)
    assert answer.status_code == 200, answer.text
    assert (answer.json()["status"], answer.json()["incident"]) == ("firing", None)
    assert incidents(context) == []


def test_snoozing_again_after_a_rise_keeps_the_severity_it_was_snoozed_at(
    api: TestClient,
    context: AppContext,
    generic_key: str,
    responder: dict[str, str],
    page_requests: list[DomainEvent],
) -> None:
    """Snoozed as a warning, critical meanwhile, snoozed again: the new end's job took the critical as the
    severity it was snoozed at, so it saw no rise and left the alert firing, critical and unrouted."""
    worker = Worker(context, name="w1")
    clock.set(T0)
    alert = send(api, generic_key, severity="warning", dedup_key="s1")
    snooze(api, alert["id"], responder)
    clock.set(T0 + timedelta(seconds=20))
    send(api, generic_key, severity="critical", dedup_key="s1")
    clock.set(T0 + timedelta(seconds=40))
    snooze(api, alert["id"], responder)
    run_at(worker, T0 + timedelta(minutes=1, seconds=40))
    [opened] = incidents(context)
    assert opened.severity == "P1" and alert_row(context, alert["id"]).incident_id == opened.id
    assert [event.data["policy"] for event in page_requests] == ["platform-escalation"]
    assert snooze_results(context) == [
        ("cancelled", None),
        ("done", {"woke": True, "incident": "INC-1", "routed": "warning to critical"}),
    ]
    assert f"Alert ALR-{alert['id']} {ROUTED}" in [entry.action for entry in timeline(context, 1)]
