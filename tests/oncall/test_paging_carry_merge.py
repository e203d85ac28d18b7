"""A run a merge carried on (its pages until the merge were sent on the merged incident) is the same run
everywhere it looks at its own pages: a rename's handover goes on from the step after the one it was at, and
a return from monitoring does not page its step again within its delay. A run held in monitoring is carried
too, held or going on as the incident it joins is."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from tests.oncall.test_merge_paging import set_status
from tests.oncall.test_page_request import escalations
from tests.oncall.test_paging import T0, pages, run_at, timeline
from tests.oncall.test_paging_noise_merge import deadline_of, merge, two_paged
from tests.oncall.test_policy_gone import reloaded
from warroom.clock import clock
from warroom.context import AppContext
from warroom.incidents.models import IncidentStatus
from warroom.jobs.models import Job, JobStatus
from warroom.oncall import paging
from warroom.oncall.models import EscalationState, PageStatus
from warroom.oncall.paging import incident_paging

NEW = "payments-v2"


def paged_for(context: AppContext, incident_id: int, policy: str) -> list[str]:
    return [
        p.person
        for p in pages(context, incident_id)
        if p.policy == policy and p.status in (PageStatus.sent, PageStatus.duplicate)
    ]


def checks_waiting(context: AppContext, incident_id: int) -> int:
    with context.db.read() as session:
        return len(
            list(
                session.scalars(
                    select(Job.id).where(
                        Job.incident_id == incident_id,
                        Job.kind == paging.CHECK_KIND,
                        Job.status == JobStatus.pending,
                    )
                )
            )
        )


def test_a_carried_run_handed_over_by_a_rename_goes_on_from_the_next_step(context: AppContext) -> None:
    """The payments on-call (step 1 of payments-escalation) merged; a reload renames the policy. At the
    deadline the renamed policy takes over from step 2 (step 1 was paged, on the merged incident), not from
    step 1 again, the merger is not paged, and the run still says where it came from."""
    worker, target, source, on_call = two_paged(context)
    clock.set(T0 + timedelta(minutes=2))
    merge(context, source, target, performer=on_call)
    run_at(worker, T0 + timedelta(minutes=2))
    context.org = reloaded(context.org, policies={"payments-escalation": NEW})

    run_at(worker, T0 + timedelta(minutes=15))
    actions = [e.action for e in timeline(context, target)]
    assert any(
        a.startswith("Escalation handed over: policy 'payments-escalation' is no longer in the org file")
        and a.endswith("the same policy renamed, takes over from step 2")
        for a in actions
    ), actions
    paged = paged_for(context, target, NEW)
    assert "heidi" in paged and on_call not in paged, paged
    runs = escalations(context, target)
    assert (runs[NEW].step, runs[NEW].origin) == (2, "merge")
    with context.db.read() as session:
        shown = {e.policy: e for e in incident_paging(session, ref=f"INC-{target}").escalations}
    assert shown[NEW].merged_from == f"INC-{source}"


def test_a_carried_run_back_from_monitoring_does_not_page_its_step_again(context: AppContext) -> None:
    """Carried at 10:01; its incident goes to monitoring at 10:01:10 and back at 10:01:13: the payments
    on-call, paged at 10:00 on the merged incident, is not paged again, and the deadline stays 10:15."""
    worker, target, source, _ = two_paged(context)
    deadline = deadline_of(context, source, "payments-escalation")
    clock.set(T0 + timedelta(minutes=1))
    merge(context, source, target, performer="ic")
    run_at(worker, T0 + timedelta(minutes=1))
    clock.set(T0 + timedelta(seconds=70))
    set_status(context, target, IncidentStatus.monitoring)
    clock.set(T0 + timedelta(seconds=73))
    set_status(context, target, IncidentStatus.investigating)
    run_at(worker, T0 + timedelta(seconds=73))

    assert paged_for(context, target, "payments-escalation") == []
    carried = escalations(context, target)["payments-escalation"]
    assert (carried.state, carried.step, carried.next_check_at) == (EscalationState.active, 1, deadline)
    actions = [e.action for e in timeline(context, target)]
    assert any(
        "payments-escalation at step 1, paged 1m ago, not paged again; next step due 10:15:00 UTC" in a
        for a in actions
    ), actions
    run_at(worker, T0 + timedelta(minutes=15))
    assert "heidi" in paged_for(context, target, "payments-escalation")


def test_a_run_carried_onto_an_incident_in_monitoring_is_held_and_says_so(context: AppContext) -> None:
    worker, target, source, _ = two_paged(context)
    clock.set(T0 + timedelta(minutes=1))
    set_status(context, target, IncidentStatus.monitoring)
    clock.set(T0 + timedelta(minutes=2))
    merge(context, source, target, performer="ic")
    run_at(worker, T0 + timedelta(minutes=2))

    carried = escalations(context, target)["payments-escalation"]
    assert (carried.state, carried.step, carried.next_check_at) == (EscalationState.monitoring, 1, None)
    assert checks_waiting(context, target) == 0
    actions = [e.action for e in timeline(context, target)]
    assert (
        f"Escalation carried over: payments-escalation was paging INC-{source} (unacknowledged) and is held "
        f"here at step 1: INC-{target} is in monitoring; it goes on from that step if INC-{target} goes back "
        "to investigating. Nobody is paged for the merge"
    ) in actions, actions
    assert not any("goes on here at step 1, next step due" in a for a in actions), actions
    run_at(worker, T0 + timedelta(hours=1))
    assert paged_for(context, target, "payments-escalation") == []


def test_a_run_held_in_monitoring_is_carried_and_goes_on_on_an_incident_still_investigating(
    context: AppContext,
) -> None:
    """The merged incident was in monitoring (its run held at step 1, paged at 10:00): merged at 10:03 into
    one still investigating, the run goes on there with step 1's deadline (10:15), paging nobody now."""
    worker, target, source, _ = two_paged(context)
    clock.set(T0 + timedelta(minutes=2))
    set_status(context, source, IncidentStatus.monitoring)
    assert escalations(context, source)["payments-escalation"].state == EscalationState.monitoring
    clock.set(T0 + timedelta(minutes=3))
    merge(context, source, target, performer="ic")
    run_at(worker, T0 + timedelta(minutes=3))

    carried = escalations(context, target)["payments-escalation"]
    assert (carried.state, carried.step, carried.next_check_at) == (
        EscalationState.active,
        1,
        T0 + timedelta(minutes=15),
    )
    assert paged_for(context, target, "payments-escalation") == []
    actions = [e.action for e in timeline(context, target)]
    assert (
        f"Escalation carried over: payments-escalation was held on INC-{source} (in monitoring, "
        f"unacknowledged) and goes on here at step 1, as when an incident leaves monitoring (INC-{target} "
        "is investigating); nobody is paged for the merge itself"
    ) in actions, actions
    run_at(worker, T0 + timedelta(minutes=15))
    assert "heidi" in paged_for(context, target, "payments-escalation")


def test_a_run_held_in_monitoring_stays_held_on_an_incident_in_monitoring(context: AppContext) -> None:
    worker, target, source, _ = two_paged(context)
    clock.set(T0 + timedelta(minutes=2))
    set_status(context, source, IncidentStatus.monitoring)
    set_status(context, target, IncidentStatus.monitoring)
    clock.set(T0 + timedelta(minutes=3))
    merge(context, source, target, performer="ic")
    run_at(worker, T0 + timedelta(minutes=3))
    carried = escalations(context, target)["payments-escalation"]
    assert (carried.state, carried.step, carried.next_check_at) == (EscalationState.monitoring, 1, None)
    actions = [e.action for e in timeline(context, target)]
    assert any(
        a.startswith(
            f"Escalation carried over: payments-escalation was held on INC-{source} (in monitoring, "
            f"unacknowledged) and is held here at step 1: INC-{target} is in monitoring"
        )
        for a in actions
    ), actions
    # Back to investigating at 10:05: step 1, paged at 10:00, has until 10:15.
    clock.set(T0 + timedelta(minutes=5))
    set_status(context, target, IncidentStatus.investigating)
    run_at(worker, T0 + timedelta(minutes=5))
    assert paged_for(context, target, "payments-escalation") == []
    carried = escalations(context, target)["payments-escalation"]
    assert (carried.state, carried.next_check_at) == (EscalationState.active, T0 + timedelta(minutes=15))
