"""An escalation held while its incident was in monitoring, whose policy a reload renamed meanwhile: when the
incident goes back to investigating, the renamed policy goes on from the step the escalation was held at (that
step paged again, in a new pass), as a held escalation does; not from its first step, as if a deadline had
passed ("not acknowledged within 0s")."""

from __future__ import annotations

from datetime import timedelta

from tests.oncall.changes import change
from tests.oncall.test_paging import T0, open_incident, pages, run_at, timeline
from tests.oncall.test_policy_gone import NEW, OLD, escalations, reloaded
from warroom.clock import clock
from warroom.context import AppContext
from warroom.incidents.models import IncidentStatus
from warroom.jobs.worker import Worker
from warroom.oncall.models import EscalationState, PageStatus


def held_at_step_3(context: AppContext) -> tuple[Worker, int]:
    clock.set(T0)
    worker = Worker(context, name="w1")
    incident_id = open_incident(context)
    run_at(worker, T0)
    run_at(worker, T0 + timedelta(minutes=15))
    run_at(worker, T0 + timedelta(minutes=25))
    assert escalations(context, incident_id)[OLD].step == 3
    clock.set(T0 + timedelta(minutes=30))
    change(context, incident_id, status=IncidentStatus.monitoring)
    run_at(worker, T0 + timedelta(minutes=30))
    assert escalations(context, incident_id)[OLD].state == EscalationState.monitoring
    return worker, incident_id


def test_a_held_escalation_whose_policy_was_renamed_goes_on_from_its_step(context: AppContext) -> None:
    worker, incident_id = held_at_step_3(context)
    step_3 = {p.person for p in pages(context, incident_id) if p.step == 3 and p.status == PageStatus.sent}
    assert step_3
    context.org = reloaded(context.org, policies={OLD: NEW})

    clock.set(T0 + timedelta(hours=2))
    change(context, incident_id, status=IncidentStatus.investigating)
    run_at(worker, T0 + timedelta(hours=2))

    again = [p for p in pages(context, incident_id) if p.created_at >= T0 + timedelta(hours=2)]
    assert again and all(p.policy == NEW and p.step == 3 for p in again), [
        (p.person, p.policy, p.step) for p in again
    ]
    assert {p.person for p in again if p.status == PageStatus.sent} == step_3
    rows = escalations(context, incident_id)
    assert rows[OLD].state == EscalationState.superseded and rows[OLD].next_check_at is None
    assert (rows[NEW].state, rows[NEW].step) == (EscalationState.active, 3)
    actions = [e.action for e in timeline(context, incident_id)]
    assert (
        f"Escalation handed over: policy {OLD!r} is no longer in the org file; {NEW}, the same policy "
        "renamed, takes over from step 3" in actions
    ), actions
    assert not any("within 0s" in a for a in actions), actions
    assert any(
        a.startswith(f"Paged step 3 of {NEW} (INC-{incident_id} back to investigating") for a in actions
    ), actions


def test_a_held_escalation_whose_policy_was_removed_hands_over_from_the_first_step(
    context: AppContext,
) -> None:
    """Removed, with another policy covering the incident now: that one starts at its first step, paged for
    the return to investigating, not for a deadline nobody waited."""
    worker, incident_id = held_at_step_3(context)
    other = "payments-escalation"
    context.org = reloaded(context.org, policies={OLD: None}, api={"escalation_policy": other})
    context.org = context.org.model_copy(update={"severity_policies": {}})
    clock.set(T0 + timedelta(hours=2))
    change(context, incident_id, status=IncidentStatus.investigating)
    run_at(worker, T0 + timedelta(hours=2))
    rows = escalations(context, incident_id)
    assert rows[OLD].state == EscalationState.superseded
    assert (rows[other].state, rows[other].step) == (EscalationState.active, 1)
    actions = [e.action for e in timeline(context, incident_id)]
    assert not any("within 0s" in a for a in actions), actions
    assert any(
        a.startswith(f"Paged step 1 of {other} (INC-{incident_id} back to investigating") for a in actions
    ), actions
