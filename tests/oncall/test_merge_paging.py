"""Merging incidents and paging: the merged incident's pages follow its alerts to the incident it is merged
into, and "merged into" holds only while the merge's resolve does (a reopen ends it)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.oncall.test_page_request import ask, escalations
from tests.oncall.test_paging import T0, open_incident, run_at, timeline
from warroom.alerts import service as alert_service
from warroom.clock import clock
from warroom.context import AppContext
from warroom.incidents import service as incident_service
from warroom.incidents.models import IncidentStatus
from warroom.incidents.schemas import IncidentUpdate
from warroom.jobs.worker import Worker
from warroom.oncall.models import EscalationState, Page, PageStatus

CAME_WITH_MERGE = "Escalation carried over: payments-escalation was paging INC-{source}"


def merge(context: AppContext, source: int, target: int) -> None:
    with context.db.write() as session:
        alert_service.merge_incidents(session, org=context.org, ref=source, into=target, performer="ic")


def set_status(context: AppContext, incident_id: int, status: IncidentStatus) -> None:
    with context.db.write() as session:
        incident_service.update_incident(
            session, org=context.org, ref=incident_id, data=IncidentUpdate(status=status), performer="ic"
        )


def pages_of(context: AppContext, incident_id: int) -> list[Page]:
    with context.db.read() as session:
        return list(session.scalars(select(Page).where(Page.incident_id == incident_id)))


def paged_policies(context: AppContext, incident_id: int) -> set[str]:
    with context.db.read() as session:
        return set(session.scalars(select(Page.policy).where(Page.incident_id == incident_id)))


@pytest.mark.parametrize(
    # api names platform-escalation itself, so the raise to P0 pages that; queue only through its team, so
    # the raise pages payments' own policy, payments-escalation (the first service that names one).
    "target_services",
    [["api"], ["queue"]],
)
def test_a_merge_carries_the_merged_incidents_escalation(
    context: AppContext, target_services: list[str]
) -> None:
    """A P0 on payments, paging payments-escalation, nobody acknowledging, merged into a P1 paged by
    platform-escalation: the P0 stopped, and the raise paged payments-escalation only when the services'
    order made it the P0's policy."""
    clock.set(T0)
    worker = Worker(context, name="w1")
    target = open_incident(context, severity="P1", services=target_services)
    source = open_incident(context, title="Payments failing", severity="P0", services=["payments"])
    run_at(worker, T0)
    assert escalations(context, source)["payments-escalation"].state == EscalationState.active
    assert set(escalations(context, target)) == {"platform-escalation"}

    before = escalations(context, source)["payments-escalation"]
    clock.set(T0 + timedelta(minutes=2))
    merge(context, source, target)
    run_at(worker, T0 + timedelta(minutes=2, seconds=5))

    stopped = [e.action for e in timeline(context, source) if e.action.startswith("Escalation stopped")]
    assert stopped == ["Escalation stopped (incident resolved): payments-escalation"]
    running = escalations(context, target)
    carried_run = running["payments-escalation"]
    assert carried_run.state == EscalationState.active
    assert carried_run.severity == "P0"
    # It goes on where it was (same step, same deadline): nobody is paged for the merge itself.
    assert (carried_run.step, carried_run.next_check_at) == (before.step, before.next_check_at)
    assert carried_run.origin == "merge"
    # Only its step's delayed personal rules, still waiting, came with it.
    assert {p.status for p in pages_of(context, target) if p.policy == "payments-escalation"} <= {
        PageStatus.scheduled
    }
    actions = [e.action for e in timeline(context, target)]
    carried = [a for a in actions if a.startswith(CAME_WITH_MERGE.format(source=source))]
    assert carried == [
        f"Escalation carried over: payments-escalation was paging INC-{source} (unacknowledged) and goes on "
        f"here at step 1, next step due {before.next_check_at:%H:%M:%S} UTC; nobody is paged again for the "
        "merge"
    ], actions
    # The target's own policy is never asked for again: it was paging the target already.
    assert not any(a.startswith("Page requested: escalation policy platform-escalation") for a in actions)


@pytest.mark.parametrize("acknowledged", ["source", "target"])
def test_nothing_is_carried_once_someone_acknowledged(context: AppContext, acknowledged: str) -> None:
    clock.set(T0)
    worker = Worker(context, name="w1")
    target = open_incident(context, severity="P1", services=["api"])
    source = open_incident(context, title="Payments failing", severity="P0", services=["payments"])
    run_at(worker, T0)
    clock.set(T0 + timedelta(minutes=1))
    with context.db.write() as session:
        incident_service.acknowledge(
            session, ref=source if acknowledged == "source" else target, performer="frank"
        )
    clock.set(T0 + timedelta(minutes=2))
    merge(context, source, target)
    run_at(worker, T0 + timedelta(minutes=2, seconds=5))
    assert "payments-escalation" not in escalations(context, target)
    actions = [e.action for e in timeline(context, target)]
    assert not any(a.startswith(CAME_WITH_MERGE.format(source=source)) for a in actions), actions


def test_a_reopen_ends_the_merge_and_paging_points_in_no_circle(
    api: TestClient, context: AppContext, responder: dict[str, str]
) -> None:
    """INC-a merged into INC-b, INC-a reopened, INC-b merged into INC-a, INC-a resolved by hand: INC-a said
    "merged into INC-b" and INC-b "merged into INC-a"."""
    first = open_incident(context)
    second = open_incident(context)
    merge(context, second, first)
    with context.db.read() as session:
        assert incident_service.merged_into(session, incident_service.get_incident(session, second)) == first
    set_status(context, second, IncidentStatus.investigating)  # reopened: not merged any more
    with context.db.read() as session:
        assert incident_service.merged_into(session, incident_service.get_incident(session, second)) is None
    merge(context, first, second)
    set_status(context, second, IncidentStatus.resolved)

    plain = ask(api, responder, f"INC-{second}", policy="database-experts")
    assert plain.status_code == 409, plain.text
    assert f"INC-{second} is resolved; reopen it before paging" in plain.json()["error"]["message"]
    merged = ask(api, responder, f"INC-{first}", policy="database-experts")
    assert merged.status_code == 409, merged.text
    message = merged.json()["error"]["message"]
    # INC-b, where the merge took INC-a's pages, was resolved since: the answer says so rather than send the
    # caller there for a second 409.
    assert message == (
        f"INC-{first} was merged into INC-{second}: INC-{second} is resolved; reopen it before paging anyone "
        "for it"
    )

    # Closed after the merge's resolve, an incident is still merged.
    set_status(context, first, IncidentStatus.closed)
    set_status(context, second, IncidentStatus.investigating)
    closed = ask(api, responder, f"INC-{first}", policy="database-experts")
    assert closed.status_code == 409 and f"page INC-{second} instead" in closed.text, closed.text
