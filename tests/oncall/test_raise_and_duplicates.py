"""A severity raise and a rule's page arriving together; one person reached through two policies at once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.oncall.test_paging import T0, open_incident, pages, run_at, timeline
from warroom.clock import clock
from warroom.context import AppContext
from warroom.events import DomainEvent, publish
from warroom.incidents import service as incident_service
from warroom.incidents.schemas import IncidentUpdate
from warroom.jobs.models import Job, JobStatus
from warroom.jobs.worker import Worker
from warroom.notify.models import Delivery
from warroom.oncall.models import Escalation, PageStatus
from warroom.oncall.paging import START_KIND


def request_page(session: Session, incident_id: int, performer: str, **requested: str) -> None:
    """A page of a policy asked for, as a rule's ``page`` (``rule=``) or a person (``requested_by=``) asks."""
    publish(session, DomainEvent("incident.page_requested", incident_id, performer, dict(requested)))


def states(context: AppContext, incident_id: int) -> dict[str, tuple[str, bool]]:
    """Each policy's escalation state, and whether a deadline is still ahead of it."""
    with context.db.read() as session:
        return {
            e.policy: (e.state.value, e.next_check_at is not None)
            for e in session.scalars(select(Escalation).where(Escalation.incident_id == incident_id))
        }


@pytest.mark.parametrize("raise_first", [True, False], ids=["raise-first", "rule-page-first"])
@pytest.mark.parametrize(
    ("p0_policy", "expected"),
    [
        # P0 on api is still platform-escalation: the raise re-pages it, all hands.
        (None, {"platform-escalation": ("active", True), "payments-escalation": ("active", True)}),
        # P0 has a policy of its own: it takes over from the P1 run; the rule's page goes on beside it.
        (
            "database-experts",
            {
                "platform-escalation": ("superseded", False),
                "database-experts": ("active", True),
                "payments-escalation": ("active", True),
            },
        ),
        # P0's policy is the one the rule asked for: one run of it, and the P1 run is superseded either way.
        (
            "payments-escalation",
            {"platform-escalation": ("superseded", False), "payments-escalation": ("active", True)},
        ),
    ],
    ids=["same-policy", "own-p0-policy", "p0-policy-is-the-rules"],
)
def test_a_raise_does_not_supersede_the_policy_a_rule_asked_for(
    context: AppContext, raise_first: bool, p0_policy: str | None, expected: dict[str, tuple[str, bool]]
) -> None:
    """QA's INC-43: a P1 paged by platform-escalation; a payments alert joins, its rule raises to P0 and pages
    payments-escalation. Whichever job the worker runs first, the rule's policy keeps escalating."""
    if p0_policy is not None:
        context.org.severity_policies = {"P0": p0_policy}
    clock.set(T0)
    worker = Worker(context, name="w1")
    incident_id = open_incident(context)
    run_at(worker, T0)
    assert states(context, incident_id) == {"platform-escalation": ("active", True)}
    moment = T0 + timedelta(minutes=2)
    clock.set(moment)
    # As alert automation does it: the raise and the rule's page in one transaction.
    with context.db.write() as session:
        incident_service.update_incident(
            session, org=context.org, ref=incident_id, data=IncidentUpdate(severity="P0"), performer="tester"
        )
        request_page(session, incident_id, "automation", policy="payments-escalation", rule="payments-down")
    # The worker may take either start first: make it the one the case is about.
    with context.db.write() as session:
        starts = session.scalars(
            select(Job).where(
                Job.kind == START_KIND, Job.status == JobStatus.pending, Job.incident_id == incident_id
            )
        ).all()
        assert sorted(str(job.payload["trigger"]) for job in starts) == ["requested", "severity_raised"]
        for job in starts:
            if (job.payload["trigger"] == "severity_raised") != raise_first:
                job.run_at = moment + timedelta(seconds=1)
    assert run_at(worker, moment) >= 1
    assert run_at(worker, moment + timedelta(seconds=1)) >= 1
    assert states(context, incident_id) == expected
    # Still escalating afterwards: payments-escalation pages again after its deadline (P0: 5 minutes).
    run_at(worker, moment + timedelta(minutes=6, seconds=1))
    later = {p.policy for p in pages(context, incident_id) if p.created_at > moment}
    assert "payments-escalation" in later
    assert not any(
        "payments-escalation" in e.action and "superseded" in e.action for e in timeline(context, incident_id)
    )
    assert all(p.status != PageStatus.failed for p in pages(context, incident_id))


def deliveries_to(context: AppContext, incident_id: int, person: str, channel: str) -> list[Delivery]:
    """What was handed to notification delivery for ``person`` on ``channel`` (a page's delivery is keyed
    by the page)."""
    with context.db.read() as session:
        keys = [p.key for p in pages(context, incident_id) if p.person == person and p.channel == channel]
        return list(
            session.scalars(select(Delivery).where(Delivery.idempotency_key.in_(keys)).order_by(Delivery.id))
        )


def test_a_person_two_policies_reach_at_once_is_notified_once(context: AppContext) -> None:
    """QA's INC-2: a P0 payments-down incident pages payments-escalation (all hands: carol is on its step 2);
    a critical-monitoring alert joins and its rule pages platform-escalation (carol is on its step 1). carol
    gets one email, and one Slack message 5 minutes on, not two of each; each policy's next pass pages her
    again."""
    clock.set(T0)
    worker = Worker(context, name="w1")
    incident_id = open_incident(context, severity="P0", services=["payments", "api"])
    run_at(worker, T0)
    moment = T0 + timedelta(milliseconds=200)
    clock.set(moment)
    with context.db.write() as session:
        request_page(
            session, incident_id, "automation", policy="platform-escalation", rule="critical-monitoring"
        )
    run_at(worker, moment)
    ref = f"INC-{incident_id}"
    carol = [p for p in pages(context, incident_id) if p.person == "carol"]
    assert [(p.policy, p.step, p.channel, p.status.value) for p in carol] == [
        ("payments-escalation", 2, "email", "sent"),
        ("payments-escalation", 2, "slack", "scheduled"),
        ("platform-escalation", 1, "email", "duplicate"),
        ("platform-escalation", 1, "slack", "duplicate"),
    ]
    assert carol[2].delivery_id == carol[0].delivery_id  # its delivery is the page that reached her
    assert carol[2].error == (
        f"not sent: carol already paged for {ref} by step 2 of payments-escalation 0.2s ago, not sent again"
    )
    entry = next(
        e.action for e in timeline(context, incident_id) if e.action.startswith("Paged step 1 of platform")
    )
    assert f"carol (on call for platform-primary) via email: already paged for {ref} by step 2" in entry
    # The others on platform-escalation are paged as ever, and both policies keep their deadlines.
    assert {p.person for p in pages(context, incident_id) if p.status == PageStatus.sent} >= {
        "alice",
        "grace",
    }
    assert states(context, incident_id) == {
        "payments-escalation": ("active", True),
        "platform-escalation": ("active", True),
    }
    run_at(worker, T0 + timedelta(minutes=4, seconds=59))
    assert len(deliveries_to(context, incident_id, "carol", "email")) == 1
    assert deliveries_to(context, incident_id, "carol", "slack") == []  # her 5-minute rule, not yet
    # The deadlines (P0: 5 minutes) repeat both policies: a re-page minutes later goes out, once.
    run_at(worker, T0 + timedelta(minutes=5, seconds=1))
    assert len(deliveries_to(context, incident_id, "carol", "email")) == 2
    assert len(deliveries_to(context, incident_id, "carol", "slack")) == 1  # the 5-minute rule, once
    assert [p.status.value for p in pages(context, incident_id) if p.person == "carol" and p.cycle == 2] == [
        "sent",
        "scheduled",
        "duplicate",
        "duplicate",
    ]
    # One acknowledgement stops both.
    with context.db.write() as session:
        incident_service.acknowledge(session, ref=incident_id, performer="carol")
    run_at(worker, T0 + timedelta(hours=2))
    assert len(deliveries_to(context, incident_id, "carol", "slack")) == 1
    assert {state for state, _ in states(context, incident_id).values()} == {"acknowledged"}


def test_a_person_asked_for_after_an_acknowledgement_is_paged_again(context: AppContext) -> None:
    """bob acknowledges seconds after carol was paged, then asks for database-experts (carol is on it):
    that is a new request, and carol gets it."""
    clock.set(T0)
    worker = Worker(context, name="w1")
    incident_id = open_incident(context)
    run_at(worker, T0)
    clock.set(T0 + timedelta(seconds=10))
    with context.db.write() as session:
        incident_service.acknowledge(session, ref=incident_id, performer="bob")
        request_page(
            session, incident_id, "bob", policy="database-experts", requested_by="bob", note="replication lag"
        )
    run_at(worker, T0 + timedelta(seconds=10))
    assert len(deliveries_to(context, incident_id, "carol", "email")) == 2
