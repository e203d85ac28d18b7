"""A merge carries the merged incident's running escalation over as it was: the same step and deadline, no
page for the merge itself, an origin that says it came with the merge (and from which incident), and never a
page for the person who merged."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from typer.testing import CliRunner

from tests.oncall.test_page_request import escalations, page_reasons
from tests.oncall.test_paging import T0, open_incident, pages, run_at, timeline
from warroom.alerts import service as alert_service
from warroom.cli.main import app
from warroom.clock import clock
from warroom.context import AppContext
from warroom.jobs.worker import Worker
from warroom.oncall.models import Escalation, EscalationState, PageStatus
from warroom.oncall.paging import incident_paging


def merge(context: AppContext, source: int, target: int, performer: str) -> None:
    with context.db.write() as session:
        alert_service.merge_incidents(session, org=context.org, ref=source, into=target, performer=performer)


def two_paged(context: AppContext) -> tuple[Worker, int, int, str]:
    """A P1 on api (platform-escalation: carol) and a P1 on payments (payments-escalation: its on-call),
    both paged at T0; returns the payments on-call paged for the second."""
    clock.set(T0)
    worker = Worker(context, name="w1")
    target = open_incident(context)
    source = open_incident(context, title="Card charges failing", services=["payments"])
    run_at(worker, T0)
    paged = [p.person for p in pages(context, source) if p.policy == "payments-escalation"]
    assert len(paged) == 1, paged
    return worker, target, source, paged[0]


def deadline_of(context: AppContext, incident_id: int, policy: str) -> object:
    with context.db.read() as session:
        return session.scalar(
            select(Escalation.next_check_at).where(
                Escalation.incident_id == incident_id, Escalation.policy == policy
            )
        )


def test_the_paged_person_merging_is_not_paged_again_and_the_deadline_stands(
    context: AppContext, oncall_cli: CliRunner
) -> None:
    worker, target, source, on_call = two_paged(context)
    deadline = deadline_of(context, source, "payments-escalation")
    assert deadline == T0 + timedelta(minutes=15)

    clock.set(T0 + timedelta(seconds=21))
    merge(context, source, target, performer=on_call)
    run_at(worker, T0 + timedelta(seconds=22))

    assert not any(p.policy == "payments-escalation" for p in pages(context, target))  # nobody paged
    carried = escalations(context, target)["payments-escalation"]
    assert (carried.state, carried.step, carried.next_check_at) == (EscalationState.active, 1, deadline)
    with context.db.read() as session:
        shown = next(
            e for e in incident_paging(session, ref=f"INC-{target}").escalations if e.origin == "merge"
        )
    assert (shown.policy, shown.merged_from) == ("payments-escalation", f"INC-{source}")
    table = oncall_cli.invoke(app, ["oncall", "pages", f"INC-{target}"], env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    runs = [" ".join(line.split()) for line in table.stdout.split("Pages", 1)[0].splitlines()]
    assert any(f"payments-escalation │ merge INC-{source} │" in run for run in runs), table.stdout
    actions = [e.action for e in timeline(context, target)]
    assert (
        f"Escalation carried over: payments-escalation was paging INC-{source} (unacknowledged) and goes on "
        "here at step 1, next step due 10:15:00 UTC; nobody is paged again for the merge"
    ) in actions, actions
    assert not any(a.startswith("Paged step 1 of payments-escalation") for a in actions), actions

    # At the deadline it escalates from there, and its pages say it came with the merge.
    run_at(worker, T0 + timedelta(minutes=15))
    step_two = {p.person for p in pages(context, target) if p.policy == "payments-escalation"}
    assert "heidi" in step_two and on_call not in step_two, step_two
    reasons = page_reasons(context, target, "payments-escalation")
    assert reasons and all(
        r.endswith(
            f"(step 2 of payments-escalation); it came with the merge of INC-{source} into "
            f"INC-{target} by {on_call}"
        )
        for r in reasons
    ), reasons


def test_the_person_who_merged_is_skipped_at_the_carried_runs_later_steps(context: AppContext) -> None:
    """heidi (manager of payments, step 2 of payments-escalation) merged: at the deadline step 2 pages carol,
    not her, and the timeline says why."""
    worker, target, source, _ = two_paged(context)
    clock.set(T0 + timedelta(minutes=2))
    merge(context, source, target, performer="heidi")
    run_at(worker, T0 + timedelta(minutes=15))
    step_two = [
        p for p in pages(context, target) if p.policy == "payments-escalation" and p.status == PageStatus.sent
    ]
    assert {p.person for p in step_two} == {"carol"}, step_two
    actions = [e.action for e in timeline(context, target)]
    assert any(
        a.startswith("Escalated to step 2 of payments-escalation (not acknowledged within 15m)")
        and f"heidi (manager of payments) skipped as the one who merged INC-{source} into INC-{target}" in a
        for a in actions
    ), actions
