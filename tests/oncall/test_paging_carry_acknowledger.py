"""Whoever acknowledged an incident is not paged by a later page of it (a person asking for more hands, a
raise): they are on it. A request for more hands hands on past them; a raise counts them as on its step."""

from __future__ import annotations

from datetime import timedelta

from tests.oncall.changes import change
from tests.oncall.test_paging import T0, run_at, timeline
from tests.oncall.test_paging_noise_acknowledged import acknowledged_p1, paged_in
from warroom.clock import clock
from warroom.context import AppContext
from warroom.oncall import paging
from warroom.oncall.schemas import PageRequest


def test_a_request_for_more_hands_does_not_page_the_acknowledger(context: AppContext) -> None:
    """carol (on call at step 1 of platform-escalation) acknowledged; bob asks for the policy with a note:
    carol is skipped, and the step hands on to alice."""
    worker, incident_id = acknowledged_p1(context, by="carol")
    clock.set(T0 + timedelta(minutes=3))
    with context.db.write() as session:
        paging.request_page_by_person(
            session,
            context.org,
            ref=f"INC-{incident_id}",
            request=PageRequest(policy="platform-escalation", note="need more"),
            performer="bob",
        )
    run_at(worker, T0 + timedelta(minutes=3))

    assert paged_in(context, incident_id, cycle=2) == {"alice"}
    actions = [e.action for e in timeline(context, incident_id)]
    assert any(
        "carol (on call for platform-primary) skipped as the one who acknowledged it" in a for a in actions
    ), actions
    assert any(
        a.startswith("Escalated to step 2 of platform-escalation (step 1 reached nobody)") for a in actions
    ), actions


def test_a_raise_after_an_acknowledgement_does_not_page_the_acknowledger(context: AppContext) -> None:
    """alice acknowledged; carol raises it to P0 (all hands): alice is skipped as the one who acknowledged
    it (carol as the one who raised it); grace is paged."""
    worker, incident_id = acknowledged_p1(context, by="alice")
    clock.set(T0 + timedelta(minutes=2))
    change(context, incident_id, severity="P0")  # as carol
    run_at(worker, T0 + timedelta(minutes=2))

    paged = paged_in(context, incident_id, cycle=2)
    assert "alice" not in paged and "carol" not in paged and "grace" in paged, paged
    actions = [e.action for e in timeline(context, incident_id)]
    assert any("alice (" in a and "skipped as the one who acknowledged it" in a for a in actions), actions
