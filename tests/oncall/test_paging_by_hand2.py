"""A person paged by hand on an incident someone has acknowledged: only their immediate rules go out, and the
delayed ones are neither announced nor left waiting."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from tests.oncall.test_page_request import ask, paged_p1
from tests.oncall.test_paging import T0, pages, run_at, timeline
from tests.oncall.test_raise_and_duplicates import deliveries_to
from warroom.cli.main import app
from warroom.clock import clock
from warroom.context import AppContext
from warroom.incidents import service as incident_service
from warroom.jobs.models import Job, JobStatus
from warroom.oncall.models import PageStatus
from warroom.oncall.paging import BY_HAND, NOTIFY_KIND


def test_a_person_paged_by_hand_on_an_acknowledged_incident_is_promised_no_delayed_page(
    api: TestClient, context: AppContext, responder: dict[str, str], oncall_cli: CliRunner
) -> None:
    """carol's rules: email now, Slack after 5 minutes unless acknowledged. Asked for by hand on an
    acknowledged incident, the timeline said "slack in 5m unless acknowledged", `oncall pages` listed it
    scheduled, and its job then cancelled it: it never could go out."""
    worker, incident_id = paged_p1(context)
    ref = f"INC-{incident_id}"
    clock.set(T0 + timedelta(minutes=1))
    with context.db.write() as session:
        incident_service.acknowledge(session, ref=incident_id, performer="dan")
    clock.set(T0 + timedelta(minutes=2))
    assert ask(api, responder, ref, person="carol", note="x").status_code == 202
    run_at(worker, T0 + timedelta(minutes=2))

    [said] = [e.action for e in timeline(context, incident_id) if e.action.startswith("Paged carol by hand")]
    assert said == (
        f"Paged carol by hand (requested by responder-user: x): email to carol; slack after 5m skipped "
        f"({ref} is acknowledged)"
    )
    by_hand = [(p.channel, p.status) for p in pages(context, incident_id) if p.policy == BY_HAND]
    assert by_hand == [("email", PageStatus.sent), ("slack", PageStatus.cancelled)]
    with context.db.read() as session:
        waiting = session.scalars(
            select(Job.idempotency_key).where(Job.kind == NOTIFY_KIND, Job.status == JobStatus.pending)
        ).all()
    assert not any(key and ":by-hand:" in key for key in waiting), waiting
    listed = oncall_cli.invoke(app, ["oncall", "pages", ref], env={"COLUMNS": "200"})
    assert listed.exit_code == 0, listed.output
    assert not any("scheduled" in line for line in listed.stdout.splitlines() if BY_HAND in line), (
        listed.stdout
    )

    run_at(worker, T0 + timedelta(minutes=10))
    assert deliveries_to(context, incident_id, "carol", "slack") == []
