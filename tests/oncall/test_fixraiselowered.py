"""A raise lowered again before the worker paged for it, to the level the incident's escalation already pages
at or below: a P1 paging carol, raised to P0 by dave and lowered to P2 (or back to P1) by erin before the
worker ran the raise's job. Nothing restarts: the P1 escalation goes on as it was, nobody is paged again, and
the timeline says the raise's page was not sent because the incident was lowered again. Before, the raise's
job restarted the escalation at P2 (carol paged again at once, a new pass, a new deadline), or, lowered back
to P1, dropped it without a word. A raise that still stands above the running level pages as before."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.oncall.changes import change
from tests.oncall.test_paging import T0, escalation, open_incident, run_at, timeline
from tests.peers import Recorder
from warroom.clock import clock
from warroom.context import AppContext
from warroom.jobs.worker import Worker
from warroom.notify.config import WebhookChannel, WebhookSettings
from warroom.oncall.config import NotificationRule
from warroom.oncall.models import EscalationState

# platform-escalation on api at T0: carol (platform-primary), then alice (platform-secondary), then grace
# (platform's manager).
PAGED_PEOPLE = ("carol", "alice", "grace")


def paged_by_webhook(context: AppContext, pager: Recorder) -> None:
    """carol, alice and grace are paged only by a webhook to ``pager`` (``/carol``, …), at once."""
    channel = WebhookChannel(name="pager", type="webhook", settings=WebhookSettings(secret="pager secret"))
    people = [
        p.model_copy(
            update={
                "contact_methods": [],
                "notification_rules": [NotificationRule(channel="pager", to=pager.url(f"/{p.name}"))],
            }
        )
        if p.name in PAGED_PEOPLE
        else p
        for p in context.org.people
    ]
    context.org = context.org.model_copy(
        update={"people": people, "notification_channels": [*context.org.notification_channels, channel]}
    )


def paged(pager: Recorder) -> dict[str, int]:
    """How many pages each of them got."""
    return {name: len(pager.to(f"/{name}")) for name in PAGED_PEOPLE}


def page_actions(context: AppContext, incident_id: int) -> list[str]:
    return [e.action for e in timeline(context, incident_id) if e.kind == "page"]


@pytest.mark.parametrize(
    ("lowered_to", "mode", "at_deadline"),
    [
        # P2 pages the first step only: at the P1 page's deadline carol is paged again, in the next pass.
        ("P2", "first_step", {"carol": 2, "alice": 0, "grace": 0}),
        # Back to P1: step by step, as before the raise; at the deadline alice (step 2) is paged.
        ("P1", "escalate", {"carol": 1, "alice": 1, "grace": 0}),
    ],
)
def test_a_raise_lowered_to_the_running_level_or_below_restarts_nothing(
    context: AppContext, pager: Recorder, lowered_to: str, mode: str, at_deadline: dict[str, int]
) -> None:
    paged_by_webhook(context, pager)
    clock.set(T0)
    worker = Worker(context, name="w1")
    incident_id = open_incident(context)  # P1 on api
    run_at(worker, T0)
    assert paged(pager) == {"carol": 1, "alice": 0, "grace": 0}
    before = page_actions(context, incident_id)

    clock.set(T0 + timedelta(minutes=2))
    change(context, incident_id, severity="P0", performer="dave")
    change(context, incident_id, severity=lowered_to, performer="erin")
    run_at(worker, T0 + timedelta(minutes=2))

    assert paged(pager) == {"carol": 1, "alice": 0, "grace": 0}  # nobody paged again
    assert page_actions(context, incident_id) == before
    state = escalation(context, incident_id)
    assert (state.policy, state.state, state.severity, state.mode, state.cycle, state.step) == (
        "platform-escalation",
        EscalationState.active,
        "P1",
        mode,
        1,
        1,
    )
    assert state.next_check_at == T0 + timedelta(minutes=15)  # the P1 page's deadline, kept
    assert timeline(context, incident_id)[-1].action == (
        f"Page for the raise to P0 by dave not sent: INC-{incident_id} was lowered again (to {lowered_to} by "
        "erin) before it went out, and its escalation pages at P1 already: platform-escalation goes on as it "
        "was, at step 1, next deadline 10:15:00 UTC"
    )

    # At that deadline it goes on in the level's mode, from where it was.
    run_at(worker, T0 + timedelta(minutes=15))
    assert paged(pager) == at_deadline


def test_a_raise_still_above_the_running_level_pages_as_before(context: AppContext, pager: Recorder) -> None:
    """A P2 paging carol, raised to P0 by dave and lowered to P1 by erin before the worker ran: P1 is above
    the P2 it pages at, so the raise re-pages step 1 at P1, in a new pass (nobody raised it to P1: nobody is
    skipped)."""
    paged_by_webhook(context, pager)
    clock.set(T0)
    worker = Worker(context, name="w1")
    incident_id = open_incident(context, severity="P2")
    run_at(worker, T0)
    assert paged(pager) == {"carol": 1, "alice": 0, "grace": 0}

    clock.set(T0 + timedelta(minutes=2))
    change(context, incident_id, severity="P0", performer="dave")
    change(context, incident_id, severity="P1", performer="erin")
    run_at(worker, T0 + timedelta(minutes=2))

    assert paged(pager) == {"carol": 2, "alice": 0, "grace": 0}
    state = escalation(context, incident_id)
    assert (state.severity, state.mode, state.cycle, state.step) == ("P1", "escalate", 2, 1)
    assert page_actions(context, incident_id)[-1].startswith(
        "Paged step 1 of platform-escalation (severity raised to P0 by dave, since lowered to P1 by erin): "
        "carol (on call for platform-primary) via pager"
    )
    assert not any("not sent" in e.action for e in timeline(context, incident_id))


def test_a_raise_paged_by_the_opening_and_lowered_since_restarts_nothing(
    context: AppContext, pager: Recorder
) -> None:
    """A P2 raised to P0 by dave before the worker paged for its opening: the opening's job pages all hands
    at P0. erin lowers it to P1 before the raise's own job runs: that job finds the P0 escalation, now step by
    step, and pages nobody (the raise was paged for, by the opening). Before, it restarted it at P1 and paged
    carol again."""
    paged_by_webhook(context, pager)
    clock.set(T0)
    worker = Worker(context, name="w1")
    incident_id = open_incident(context, severity="P2")
    change(context, incident_id, severity="P0", performer="dave")
    (opening,) = worker.claim(T0, limit=1)  # the opening's job, queued first
    assert worker.run_job(opening, T0)
    state = escalation(context, incident_id)
    assert (state.severity, state.mode, state.cycle) == ("P0", "all_hands", 1)

    change(context, incident_id, severity="P1", performer="erin")
    actions = len(timeline(context, incident_id))
    run_at(worker, T0 + timedelta(seconds=10))  # the raise's job, and the opening's pages

    assert paged(pager) == {"carol": 1, "alice": 1, "grace": 1}  # all hands once, at P0
    state = escalation(context, incident_id)
    assert (state.state, state.severity, state.mode, state.cycle) == (
        EscalationState.active,
        "P0",
        "escalate",
        1,
    )
    assert not [
        e.action for e in timeline(context, incident_id)[actions:] if e.kind in ("page", "automation")
    ]
