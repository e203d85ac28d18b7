"""An incident in monitoring (its alerts all resolved, or a person says the fix is in) escalates no further:
its escalation is held, the timeline says so and why, and it goes on from the step it was at if the incident
goes back to investigating."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient

from tests.alerts.conftest import make_key
from tests.oncall.changes import change
from tests.oncall.test_page_request import escalations
from tests.oncall.test_paging import T0, open_incident, run_at, sent, timeline
from warroom.clock import clock
from warroom.context import AppContext
from warroom.incidents.models import IncidentStatus
from warroom.jobs.worker import Worker
from warroom.oncall.models import EscalationState


def fire(api: TestClient, key: str, **fields: Any) -> dict[str, Any]:
    alert = {
        "summary": "api 5xx above 5%",
        "severity": "critical",
        "labels": {"service": "api", "alertname": "Api5xx"},
        "dedup_key": "api-5xx",
        **fields,
    }
    response = api.post(f"/api/v1/alerts?key={key}", json=[alert])
    assert response.status_code == 202, response.text
    result: dict[str, Any] = response.json()["alerts"][0]
    return result


def test_an_incident_whose_alerts_all_resolved_stops_escalating_until_one_fires_again(
    api: TestClient, context: AppContext
) -> None:
    key = make_key(context, "generic", "scripts")
    clock.set(T0)
    worker = Worker(context, name="w1")
    incident_id = int(fire(api, key)["incident"].removeprefix("INC-"))
    run_at(worker, T0)
    assert sent(context, incident_id) == [("carol", "email", 1, 1)]  # platform-escalation, step 1

    clock.set(T0 + timedelta(minutes=5))
    fire(api, key, status="resolved")
    run_at(worker, T0 + timedelta(minutes=5))
    held = escalations(context, incident_id)["platform-escalation"]
    assert (held.state, held.step, held.next_check_at) == (EscalationState.monitoring, 1, None)
    actions = [e.action for e in timeline(context, incident_id)]
    assert (
        f"Escalation stopped (INC-{incident_id} is in monitoring: all its alerts resolved): "
        f"platform-escalation at step 1; it goes on from that step if INC-{incident_id} goes back to "
        "investigating (an alert firing again), and stops if it is acknowledged or resolved"
    ) in actions, actions

    # Its deadline (10:15), and the next ones, pass: nobody else is paged, nothing is exhausted.
    run_at(worker, T0 + timedelta(hours=1))
    assert sent(context, incident_id) == [("carol", "email", 1, 1)]
    actions = [e.action for e in timeline(context, incident_id)]
    assert not any(a.startswith(("Escalated to", "Escalation of")) for a in actions), actions

    # The alert fires again: back to investigating, and the escalation goes on from step 1, in a new pass.
    clock.set(T0 + timedelta(hours=1, minutes=1))
    again = fire(api, key)
    run_at(worker, T0 + timedelta(hours=1, minutes=1))
    assert ("carol", "email", 2, 1) in sent(context, incident_id)
    running = escalations(context, incident_id)["platform-escalation"]
    assert running.state == EscalationState.active
    assert running.next_check_at == T0 + timedelta(hours=1, minutes=11)  # step 1's 10m delay
    actions = [e.action for e in timeline(context, incident_id)]
    assert any(
        a.startswith(
            f"Paged step 1 of platform-escalation (INC-{incident_id} back to investigating: alert "
            f"ALR-{again['id']} fired while monitoring: the fix did not hold): carol"
        )
        for a in actions
    ), actions
    run_at(worker, T0 + timedelta(hours=1, minutes=11))
    assert ("alice", "email", 2, 2) in sent(context, incident_id)


def test_a_person_moving_it_to_monitoring_holds_the_escalation_too(context: AppContext) -> None:
    """carol moves it to monitoring (the fix is in): step 2 is not paged at the deadline. She moves it back to
    investigating: step 1 (carol, who moved it back) is skipped but counted as on it, so step 2 is paged at
    the step's deadline, not at once. Resolving it while held stops it for good."""
    clock.set(T0)
    worker = Worker(context, name="w1")
    incident_id = open_incident(context)
    run_at(worker, T0)
    clock.set(T0 + timedelta(minutes=3))
    change(context, incident_id, status=IncidentStatus.monitoring)  # as carol
    run_at(worker, T0 + timedelta(minutes=30))
    assert sent(context, incident_id) == [("carol", "email", 1, 1)]
    actions = [e.action for e in timeline(context, incident_id)]
    assert (
        f"Escalation stopped (INC-{incident_id} is in monitoring: carol moved it there): platform-escalation "
        "at step 1"
    ) in [a.partition(";")[0] for a in actions], actions

    change(context, incident_id, status=IncidentStatus.investigating)
    run_at(worker, T0 + timedelta(minutes=30))
    assert ("alice", "email", 2, 2) not in sent(context, incident_id)
    run_at(worker, T0 + timedelta(minutes=46))
    assert ("alice", "email", 2, 2) in sent(context, incident_id)
    assert ("carol", "email", 2, 1) not in sent(context, incident_id)
    actions = [e.action for e in timeline(context, incident_id)]
    assert any(
        "carol (on call for platform-primary) skipped as the one who moved it back to investigating" in a
        for a in actions
    ), actions

    change(context, incident_id, status=IncidentStatus.monitoring)
    change(context, incident_id, status=IncidentStatus.resolved)
    assert escalations(context, incident_id)["platform-escalation"].state == EscalationState.resolved
    count = len(sent(context, incident_id))
    run_at(worker, T0 + timedelta(hours=3))
    assert len(sent(context, incident_id)) == count


def test_an_alert_flapping_within_a_step_does_not_page_it_again_each_time(
    api: TestClient, context: AppContext
) -> None:
    """Resolved at 10:02, firing again at 10:04: carol, paged at 10:00, is not paged again for the return; the
    escalation goes on with step 1's deadline as it was (10:15), then step 2."""
    key = make_key(context, "generic", "scripts")
    clock.set(T0)
    worker = Worker(context, name="w1")
    incident_id = int(fire(api, key)["incident"].removeprefix("INC-"))
    run_at(worker, T0)
    clock.set(T0 + timedelta(minutes=2))
    fire(api, key, status="resolved")
    clock.set(T0 + timedelta(minutes=4))
    fire(api, key)
    run_at(worker, T0 + timedelta(minutes=4))
    assert sent(context, incident_id) == [("carol", "email", 1, 1)]
    running = escalations(context, incident_id)["platform-escalation"]
    assert (running.state, running.step, running.next_check_at) == (
        EscalationState.active,
        1,
        T0 + timedelta(minutes=15),
    )
    actions = [e.action for e in timeline(context, incident_id)]
    assert any(
        a.startswith(f"Escalation goes on (INC-{incident_id} back to investigating: alert ")
        and a.endswith(
            "platform-escalation at step 1, paged 4m ago, not paged again; next step due 10:15:00 UTC"
        )
        for a in actions
    ), actions
    run_at(worker, T0 + timedelta(minutes=15))
    assert ("alice", "email", 2, 2) in sent(context, incident_id)
