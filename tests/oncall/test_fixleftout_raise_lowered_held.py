"""A raise lowered again before the worker paged for it, on an incident with no escalation running: one
acknowledged (carol took the P1), or in monitoring (its escalation held). The raise's job pages nobody and the
timeline says the raise was lowered again before it went out, as it does for a running escalation. Before,
it paged the lower level once (carol paged again for a P1 she had acknowledged). A raise that still stands
above the level the incident was raised from pages as before."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.oncall.changes import change
from tests.oncall.test_fixraiselowered import page_actions, paged, paged_by_webhook
from tests.oncall.test_paging import T0, escalation, open_incident, run_at, timeline
from tests.peers import Recorder
from warroom.clock import clock
from warroom.context import AppContext
from warroom.incidents import service as incident_service
from warroom.jobs.worker import Worker
from warroom.oncall.models import EscalationState


def paged_at_p1_then(context: AppContext, pager: Recorder, held: str) -> tuple[Worker, int]:
    """A P1 on api paging carol at T0, then acknowledged by her or moved to monitoring by her."""
    paged_by_webhook(context, pager)
    clock.set(T0)
    worker = Worker(context, name="w1")
    incident_id = open_incident(context)
    run_at(worker, T0)
    assert paged(pager) == {"carol": 1, "alice": 0, "grace": 0}
    clock.set(T0 + timedelta(minutes=1))
    if held == "acknowledged":
        with context.db.write() as session:
            incident_service.acknowledge(session, ref=incident_id, performer="carol")
    else:
        change(context, incident_id, status="monitoring")
    run_at(worker, T0 + timedelta(minutes=1))
    return worker, incident_id


@pytest.mark.parametrize("held", ["acknowledged", "monitoring"])
@pytest.mark.parametrize("lowered_to", ["P1", "P2"])
def test_a_raise_lowered_again_pages_nobody_on_an_incident_not_escalating(
    context: AppContext, pager: Recorder, held: str, lowered_to: str
) -> None:
    worker, incident_id = paged_at_p1_then(context, pager, held)
    state_before = escalation(context, incident_id)
    before = page_actions(context, incident_id)

    clock.set(T0 + timedelta(minutes=2))
    change(context, incident_id, severity="P0", performer="dave")
    change(context, incident_id, severity=lowered_to, performer="erin")
    run_at(worker, T0 + timedelta(minutes=2))

    assert paged(pager) == {"carol": 1, "alice": 0, "grace": 0}  # nobody paged again
    assert page_actions(context, incident_id) == before
    state = escalation(context, incident_id)
    assert (state.state, state.cycle, state.step) == (state_before.state, 1, 1)
    assert state.state == (
        EscalationState.acknowledged if held == "acknowledged" else EscalationState.monitoring
    )
    why = "carol acknowledged it" if held == "acknowledged" else "it is in monitoring"
    assert timeline(context, incident_id)[-1].action == (
        f"Page for the raise to P0 by dave not sent: INC-{incident_id} was lowered again (to {lowered_to} by "
        f"erin) before it went out, to no higher than the P1 it was raised from, and {why}"
    )
    # Nothing is left to page for it later either.
    run_at(worker, T0 + timedelta(hours=3))
    assert paged(pager) == {"carol": 1, "alice": 0, "grace": 0}


@pytest.mark.parametrize("held", ["acknowledged", "monitoring"])
def test_a_raise_still_above_where_it_was_raised_from_pages_as_before(
    context: AppContext, pager: Recorder, held: str
) -> None:
    """P2 raised to P0 by dave and lowered to P1 by erin: still above the P2 it was raised
    from, so it pages at P1 (the raise on an acknowledged or monitoring incident pages, as any raise does)."""
    paged_by_webhook(context, pager)
    clock.set(T0)
    worker = Worker(context, name="w1")
    incident_id = open_incident(context, severity="P2")
    run_at(worker, T0)
    clock.set(T0 + timedelta(minutes=1))
    if held == "acknowledged":
        with context.db.write() as session:
            incident_service.acknowledge(session, ref=incident_id, performer="carol")
    else:
        change(context, incident_id, status="monitoring")
    run_at(worker, T0 + timedelta(minutes=1))

    clock.set(T0 + timedelta(minutes=2))
    change(context, incident_id, severity="P0", performer="dave")
    change(context, incident_id, severity="P1", performer="erin")
    run_at(worker, T0 + timedelta(minutes=2))

    # carol, who acknowledged it, is skipped; in monitoring she is paged.
    assert paged(pager)["carol"] == (1 if held == "acknowledged" else 2)
    assert page_actions(context, incident_id)[-1].startswith(
        "Paged step 1 of platform-escalation (severity raised to P0 by dave, since lowered to P1 by erin): "
        "carol (on call for platform-primary) "
    )
    assert not any("not sent" in e.action for e in timeline(context, incident_id))
