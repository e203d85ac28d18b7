"""The war-room update cadence: a severity's update_every reminds the commander when no update went out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from warroom.clock import clock
from warroom.comms.service import UPDATE_DUE_KIND, follow_cadences, next_update_due, start_cadence
from warroom.context import AppContext
from warroom.incidents import service as incident_service
from warroom.incidents.models import TimelineEntry
from warroom.incidents.schemas import CommunicationCreate, IncidentCreate, IncidentUpdate
from warroom.jobs.models import Job, JobStatus
from warroom.jobs.worker import Worker
from warroom.notify.models import Delivery

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def declare(context: AppContext, **fields: Any) -> int:
    body = {"title": "Checkout failing", "severity": "P0", "services": ["api"], **fields}
    with context.db.write() as session:
        return incident_service.create_incident(
            session, org=context.org, data=IncidentCreate(**body), performer="tester"
        ).id


def change(context: AppContext, incident_id: int, **fields: Any) -> None:
    with context.db.write() as session:
        incident_service.update_incident(
            session, org=context.org, ref=incident_id, data=IncidentUpdate(**fields), performer="tester"
        )


def post_update(context: AppContext, incident_id: int, message: str) -> None:
    with context.db.write() as session:
        incident_service.send_communication(
            session,
            org=context.org,
            ref=incident_id,
            data=CommunicationCreate(audience="internal", message=message),
            performer="alice",
        )


def run_until(worker: Worker, moment: datetime) -> None:
    clock.set(moment)
    while worker.run_once():
        pass


def overdue_entries(context: AppContext, incident_id: int) -> list[TimelineEntry]:
    with context.db.read() as session:
        return [
            entry
            for entry in session.scalars(
                select(TimelineEntry)
                .where(TimelineEntry.incident_id == incident_id)
                .order_by(TimelineEntry.seq)
            )
            if (entry.data or {}).get("update_due")
        ]


def reminders_sent(context: AppContext, incident_id: int) -> list[tuple[str, str]]:
    with context.db.read() as session:
        return [
            (row.recipient, row.subject)
            for row in session.scalars(
                select(Delivery)
                .where(Delivery.incident_id == incident_id, Delivery.template == "update_due")
                .order_by(Delivery.id)
            )
        ]


def pending_reminders(context: AppContext, incident_id: int) -> list[datetime]:
    with context.db.read() as session:
        return list(
            session.scalars(
                select(Job.run_at).where(
                    Job.kind == UPDATE_DUE_KIND,
                    Job.incident_id == incident_id,
                    Job.status == JobStatus.pending,
                )
            )
        )


def test_the_commander_is_reminded_when_no_update_went_out_and_again_a_cadence_later(
    context: AppContext,
) -> None:
    clock.set(T0)
    worker = Worker(context, name="w1")
    incident_id = declare(context, commander="alice")
    assert pending_reminders(context, incident_id) == [T0 + timedelta(minutes=15)]  # P0: every 15m

    run_until(worker, T0 + timedelta(minutes=14, seconds=59))
    assert overdue_entries(context, incident_id) == []

    run_until(worker, T0 + timedelta(minutes=15))
    [entry] = overdue_entries(context, incident_id)
    assert entry.performer == "warroom"
    assert entry.action.startswith(
        "Update overdue: no update since it was declared 15m ago (P0 asks for one every 15m); reminded alice"
    )
    assert "email to alice@acme.example" in entry.action
    # Only her immediate rule: her 2-minute pager hook is for pages that wait for an acknowledgement.
    assert reminders_sent(context, incident_id) == [
        ("alice@acme.example", f"[P0] INC-{incident_id}: an update is due (15m without one)")
    ]
    assert pending_reminders(context, incident_id) == [T0 + timedelta(minutes=30)]
    with context.db.read() as session:
        # Shown as due when it was due: in the past, so overdue (the next reminder is not the due time).
        assert next_update_due(session, incident_id) == T0 + timedelta(minutes=15)

    run_until(worker, T0 + timedelta(minutes=30))
    assert [e.data["quiet_for"] for e in overdue_entries(context, incident_id)] == ["15m", "30m"]


def test_an_update_starts_the_cadence_again(context: AppContext) -> None:
    clock.set(T0)
    worker = Worker(context, name="w1")
    incident_id = declare(context, commander="alice")
    clock.set(T0 + timedelta(minutes=10))
    post_update(context, incident_id, "Payments fail for some cards; we are rolling back.")
    assert pending_reminders(context, incident_id) == [T0 + timedelta(minutes=25)]

    run_until(worker, T0 + timedelta(minutes=24))
    assert overdue_entries(context, incident_id) == []
    run_until(worker, T0 + timedelta(minutes=25))
    [entry] = overdue_entries(context, incident_id)
    assert entry.data["quiet_for"] == "15m"
    assert entry.action.startswith("Update overdue: no update for 15m (P0 asks for one every 15m)")
    with context.db.read() as session:
        [delivery] = session.scalars(select(Delivery).where(Delivery.template == "update_due"))
    assert "Last update: 2026-03-02T10:10:00+00:00" in delivery.body


def test_no_commander_no_cadence_until_someone_takes_command(context: AppContext, api: TestClient) -> None:
    clock.set(T0)
    incident_id = declare(context)
    assert pending_reminders(context, incident_id) == []
    clock.set(T0 + timedelta(minutes=40))
    change(context, incident_id, commander="carol")
    assert pending_reminders(context, incident_id) == [T0 + timedelta(minutes=55)]


def test_the_cadence_follows_severity_and_stops_when_resolved(context: AppContext) -> None:
    clock.set(T0)
    worker = Worker(context, name="w1")
    incident_id = declare(context, commander="alice")
    clock.set(T0 + timedelta(minutes=5))
    change(context, incident_id, severity="P2")  # every 2h, from the change
    assert pending_reminders(context, incident_id) == [T0 + timedelta(hours=2, minutes=5)]
    change(context, incident_id, severity="P3")  # P3 sets no cadence
    assert pending_reminders(context, incident_id) == []
    change(context, incident_id, severity="P1")
    assert pending_reminders(context, incident_id) == [T0 + timedelta(minutes=35)]

    clock.set(T0 + timedelta(minutes=20))
    change(context, incident_id, status="resolved")
    assert pending_reminders(context, incident_id) == []
    run_until(worker, T0 + timedelta(hours=3))
    assert overdue_entries(context, incident_id) == []

    clock.set(T0 + timedelta(hours=3))
    change(context, incident_id, status="investigating")  # reopened
    assert pending_reminders(context, incident_id) == [T0 + timedelta(hours=3, minutes=30)]


def test_a_commander_outside_the_org_file_is_named_on_the_timeline_once(context: AppContext) -> None:
    clock.set(T0)
    worker = Worker(context, name="w1")
    incident_id = declare(context, commander="Zed from the vendor")
    run_until(worker, T0 + timedelta(minutes=15))
    run_until(worker, T0 + timedelta(hours=2))
    [entry] = overdue_entries(context, incident_id)  # once, not every cadence
    assert "Zed from the vendor is not in the org file, so nobody was reminded" in entry.action
    assert reminders_sent(context, incident_id) == []


def test_the_api_says_when_the_next_update_is_due(
    context: AppContext, api: TestClient, tokens: dict[str, str]
) -> None:
    clock.set(T0)
    incident_id = declare(context, commander="alice")
    viewer = {"Authorization": f"Bearer {tokens['viewer']}"}
    shown = api.get(f"/api/v1/incidents/INC-{incident_id}", headers=viewer).json()
    assert datetime.fromisoformat(shown["update_due_at"]) == T0 + timedelta(minutes=15)
    change(context, incident_id, status="resolved")
    assert api.get(f"/api/v1/incidents/INC-{incident_id}", headers=viewer).json()["update_due_at"] is None


def test_a_hand_over_restarts_the_cadence_but_the_reminder_counts_from_the_last_update(
    context: AppContext,
) -> None:
    clock.set(T0)
    worker = Worker(context, name="w1")
    incident_id = declare(context, commander="alice")
    clock.set(T0 + timedelta(minutes=10))
    change(context, incident_id, commander="carol")  # carol gets a whole cadence
    run_until(worker, T0 + timedelta(minutes=24))
    assert overdue_entries(context, incident_id) == []
    run_until(worker, T0 + timedelta(minutes=25))
    [entry] = overdue_entries(context, incident_id)
    # The war room has heard nothing since the declaration, 25 minutes ago, not 15.
    assert entry.action.startswith("Update overdue: no update since it was declared 25m ago")
    assert "reminded carol" in entry.action


def test_a_reload_follows_the_new_cadences(context: AppContext) -> None:
    clock.set(T0)
    p0_with_alice = declare(context, commander="alice")  # P0: due T0+15m
    p3_with_carol = declare(context, commander="carol", severity="P3")  # P3: no cadence
    assert pending_reminders(context, p3_with_carol) == []
    levels = [
        level.model_copy(update={"update_every": timedelta(minutes=5) if level.id in ("P0", "P3") else None})
        if level.id in ("P0", "P3")
        else level
        for level in context.org.severities
    ]
    context.org = context.org.model_copy(update={"severities": levels})
    clock.set(T0 + timedelta(minutes=2))
    with context.db.write() as session:
        assert follow_cadences(session, context.org) == 2
    assert pending_reminders(context, p0_with_alice) == [T0 + timedelta(minutes=5)]
    assert pending_reminders(context, p3_with_carol) == [T0 + timedelta(minutes=7)]  # gained one: from now
    with context.db.write() as session:
        assert follow_cadences(session, context.org) == 0  # again: nothing to change


def test_a_reminder_running_while_the_cadence_restarts_leaves_one_chain(context: AppContext) -> None:
    """The cadence restarted (an update, a hand-over) while the reminder's job ran: its own next reminder is
    not added beside the new one, or every later reminder would go out twice."""
    clock.set(T0)
    worker = Worker(context, name="w1")
    incident_id = declare(context, commander="alice")
    clock.set(T0 + timedelta(minutes=15))
    with context.db.write() as session:
        [job] = session.scalars(select(Job).where(Job.kind == UPDATE_DUE_KIND)).all()
        job.status = JobStatus.running  # claimed by a worker: a restart's cancel leaves it alone
        incident = incident_service.get_incident(session, incident_id)
        start_cadence(session, context.org, incident, since=T0 + timedelta(minutes=15))
        job.status = JobStatus.pending  # ... and the worker runs it now
    run_until(worker, T0 + timedelta(minutes=15))
    assert len(pending_reminders(context, incident_id)) == 1
