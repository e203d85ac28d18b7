"""Paging and escalation with an injected clock and the real job worker."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.oncall.changes import change
from warroom.clock import clock
from warroom.context import AppContext
from warroom.db import Database
from warroom.events import DomainEvent, publish
from warroom.incidents import service as incident_service
from warroom.incidents.models import TimelineEntry
from warroom.incidents.schemas import IncidentCreate
from warroom.jobs.models import Job, JobStatus
from warroom.jobs.worker import Worker
from warroom.notify.config import WebhookChannel
from warroom.notify.models import Delivery
from warroom.oncall import paging
from warroom.oncall.config import NotificationRule, TargetConfig
from warroom.oncall.links import make_ack_token
from warroom.oncall.models import Escalation, EscalationState, Page, PageStatus
from warroom.oncall.paging import CHECK_KIND, NOTIFY_KIND, START_KIND
from warroom.orgconfig import OrgConfig
from warroom.settings import Settings

# Monday 2 March 2026, 10:00 UTC (11:00 Berlin, 05:00 New York): week 8 of the Berlin rotations, so
# platform-primary is carol, platform-secondary is alice; the New York office-hours layer is off.
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def open_incident(context: AppContext, **fields: Any) -> int:
    body = {"title": "API returning 500s", "severity": "P1", "services": ["api"], **fields}
    with context.db.write() as session:
        incident = incident_service.create_incident(
            session, org=context.org, data=IncidentCreate(**body), performer="tester"
        )
        return incident.id


def pages(context: AppContext, incident_id: int | None = None) -> list[Page]:
    with context.db.read() as session:
        statement = select(Page).order_by(Page.id)
        if incident_id is not None:
            statement = statement.where(Page.incident_id == incident_id)
        return list(session.scalars(statement))


def sent(context: AppContext, incident_id: int) -> list[tuple[str, str, int, int]]:
    return [
        (p.person, p.channel, p.cycle, p.step)
        for p in pages(context, incident_id)
        if p.status == PageStatus.sent
    ]


def timeline(context: AppContext, incident_id: int) -> list[TimelineEntry]:
    with context.db.read() as session:
        return list(
            session.scalars(
                select(TimelineEntry)
                .where(TimelineEntry.incident_id == incident_id)
                .order_by(TimelineEntry.seq)
            )
        )


def escalation(context: AppContext, incident_id: int) -> Escalation:
    with context.db.read() as session:
        row = session.scalar(select(Escalation).where(Escalation.incident_id == incident_id))
        assert row is not None
        return row


def run_at(worker: Worker, moment: datetime) -> int:
    clock.set(moment)
    total = 0
    while ran := worker.run_once():
        total += ran
    return total


def test_p1_escalates_step_by_step_until_acknowledged(context: AppContext) -> None:
    clock.set(T0)
    worker = Worker(context, name="w1")
    incident_id = open_incident(context)
    run_at(worker, T0)
    # Step 1: carol, on call for platform-primary: email now, slack in 5 minutes.
    assert sent(context, incident_id) == [("carol", "email", 1, 1)]
    state = escalation(context, incident_id)
    assert (state.policy, state.mode, state.cycle, state.step) == ("platform-escalation", "escalate", 1, 1)
    assert state.next_check_at == T0 + timedelta(minutes=15)  # P1's response target

    run_at(worker, T0 + timedelta(minutes=5))
    assert sent(context, incident_id)[-1] == ("carol", "slack", 1, 1)
    run_at(worker, T0 + timedelta(minutes=14, seconds=59))
    assert escalation(context, incident_id).step == 1  # not yet

    run_at(worker, T0 + timedelta(minutes=15))
    assert sent(context, incident_id)[-1] == ("alice", "email", 1, 2)
    state = escalation(context, incident_id)
    assert (state.cycle, state.step) == (1, 2)
    assert state.next_check_at == T0 + timedelta(minutes=25)  # step 1's deadline + its 10m delay
    actions = [e.action for e in timeline(context, incident_id)]
    assert any(a.startswith("Escalated to step 2 of platform-escalation") and "alice" in a for a in actions)

    # alice acknowledges with the link from her page, before her 2-minute webhook rule fires.
    clock.set(T0 + timedelta(minutes=16))
    with context.db.write() as session:
        incident_service.acknowledge(session, ref=incident_id, performer="alice")
    run_at(worker, T0 + timedelta(hours=2))
    assert [p[0:2] for p in sent(context, incident_id)] == [
        ("carol", "email"),
        ("carol", "slack"),
        ("alice", "email"),
    ]
    webhook = [p for p in pages(context, incident_id) if p.channel == "webhook"]
    assert [p.status for p in webhook] == [PageStatus.cancelled]
    assert escalation(context, incident_id).state == EscalationState.acknowledged
    with context.db.read() as session:
        pending = session.scalars(
            select(Job).where(
                Job.incident_id == incident_id,
                Job.status == JobStatus.pending,
                Job.kind.in_([CHECK_KIND, NOTIFY_KIND, START_KIND]),
            )
        ).all()
    assert pending == []
    entries = timeline(context, incident_id)
    assert [e.kind for e in entries].count("page") >= 3
    assert entries[-1].action.startswith("Escalation stopped (acknowledged)")
    assert all(e.performer == "warroom" for e in entries if e.kind in ("page", "automation"))


def test_repeat_then_exhausted(context: AppContext) -> None:
    clock.set(T0)
    worker = Worker(context, name="w1")
    incident_id = open_incident(context)
    run_at(worker, T0)
    # platform-escalation: 3 steps, repeat 2 -> 3 passes; deadlines 15m, then +10m, +10m, +15m ...
    moment = T0
    for _ in range(12):
        state = escalation(context, incident_id)
        if state.next_check_at is None:
            break
        moment = state.next_check_at
        run_at(worker, moment)
    state = escalation(context, incident_id)
    assert state.state == EscalationState.exhausted
    steps = [(p[2], p[3], p[0]) for p in sent(context, incident_id) if p[1] == "email"]
    assert steps == [
        (1, 1, "carol"), (1, 2, "alice"), (1, 3, "grace"),
        (2, 1, "carol"), (2, 2, "alice"), (2, 3, "grace"),
        (3, 1, "carol"), (3, 2, "alice"), (3, 3, "grace"),
    ]  # fmt: skip
    assert any("exhausted" in e.action for e in timeline(context, incident_id))


def test_p0_pages_all_hands_at_once(context: AppContext) -> None:
    clock.set(T0)
    worker = Worker(context, name="w1")
    incident_id = open_incident(context, severity="P0")
    run_at(worker, T0)
    people = {p[0] for p in sent(context, incident_id)}
    assert people == {"carol", "alice", "grace"}
    assert escalation(context, incident_id).next_check_at == T0 + timedelta(minutes=5)
    run_at(worker, T0 + timedelta(minutes=5))
    assert {(p[0], p[2]) for p in sent(context, incident_id) if p[1] == "email"} == {
        (name, cycle) for name in ("carol", "alice", "grace") for cycle in (1, 2)
    }


def test_p2_pages_the_assigned_engineer_only_and_p3_nobody(context: AppContext) -> None:
    clock.set(T0)
    worker = Worker(context, name="w1")
    p2 = open_incident(context, severity="P2")
    p3 = open_incident(context, severity="P3", title="Typo on the pricing page")
    run_at(worker, T0)
    assert sent(context, p2) == [("carol", "email", 1, 1)]
    run_at(worker, T0 + timedelta(hours=2))
    # No acknowledgement within P2's 2h: carol again (first step only, second pass), nobody else.
    assert {p[0] for p in sent(context, p2)} == {"carol"}
    assert ("carol", "email", 2, 1) in sent(context, p2)
    assert pages(context, p3) == []
    with context.db.read() as session:  # decided when the incident opened: no job at all
        assert session.scalars(select(Job).where(Job.incident_id == p3)).all() == []
    assert any("Nobody paged for P3" in e.action for e in timeline(context, p3))


def test_raising_severity_pages_again_and_payments_routing(context: AppContext) -> None:
    clock.set(T0)
    worker = Worker(context, name="w1")
    incident_id = open_incident(context, severity="P2", services=["payments"])
    run_at(worker, T0)
    # payments-primary is daily from 1 January in New York: 2 March 05:00 NY is shift 59 -> frank.
    assert sent(context, incident_id) == [("frank", "email", 1, 1)]
    clock.set(T0 + timedelta(minutes=3))
    change(context, incident_id, severity="P0", performer="tester")
    run_at(worker, T0 + timedelta(minutes=3))
    state = escalation(context, incident_id)
    assert (state.mode, state.cycle, state.severity) == ("all_hands", 2, "P0")
    assert state.next_check_at == T0 + timedelta(minutes=8)
    # All hands for payments: frank, heidi (manager) and the platform on-call (carol).
    assert {p[0] for p in sent(context, incident_id) if p[2] == 2} == {"frank", "heidi", "carol"}
    # Lowering pages nobody new.
    change(context, incident_id, severity="P1", performer="tester")
    before = len(pages(context, incident_id))
    run_at(worker, T0 + timedelta(minutes=4))
    assert len(pages(context, incident_id)) == before
    # The restarted run has its own repeat count (payments-escalation repeats once): one more pass, now
    # step by step (P1) from the first step, not all hands again.
    run_at(worker, T0 + timedelta(minutes=8))
    assert {p[0] for p in sent(context, incident_id) if p[2] == 3} == {"frank"}
    for _ in range(6):
        deadline = escalation(context, incident_id).next_check_at
        if deadline is None:
            break
        run_at(worker, deadline)
    assert escalation(context, incident_id).state == EscalationState.exhausted
    assert {p[0] for p in sent(context, incident_id) if p[2] == 3} == {"frank", "heidi", "carol"}


@pytest.mark.parametrize("raise_runs_first", [False, True])
def test_a_raise_before_the_first_page_pages_once(context: AppContext, raise_runs_first: bool) -> None:
    """A P2 incident raised to P1 before the worker ran its first page: one page, at P1, saying both levels
    (it paged the same person twice in one second, the first time naming P1 as the opening level). On
    PostgreSQL a worker runs a batch's jobs at once, and the raise's job may take the incident before the
    opening page's (``raise_runs_first``; a CI run saw its page say only "severity raised to P1")."""
    clock.set(T0)
    worker = Worker(context, name="w1", concurrency=1)
    incident_id = open_incident(context, severity="P2")
    change(context, incident_id, severity="P1", performer="tester")
    if raise_runs_first:
        with context.db.write() as session:
            raise_job = session.scalars(
                select(Job).where(
                    Job.kind == START_KIND, Job.payload["trigger"].as_string() == "severity_raised"
                )
            ).one()
            paging.start_paging(session, context, incident_id=incident_id, trigger="severity_raised", at=T0)
            raise_job.status = JobStatus.done  # as the worker would mark it
    run_at(worker, T0)
    assert sent(context, incident_id) == [("carol", "email", 1, 1)]
    state = escalation(context, incident_id)
    assert (state.cycle, state.severity) == (1, "P1")
    paged = [e.action for e in timeline(context, incident_id) if e.action.startswith("Paged")]
    assert len(paged) == 1 and f"INC-{incident_id} opened at P2, since raised to P1" in paged[0], paged


def test_a_raise_lowered_again_before_the_first_page_says_lowered(context: AppContext) -> None:
    """Opened at P1, raised to P0 and lowered to P2 before the worker ran: the one page is at P2, and its
    reason said "opened at P1, since raised to P2"."""
    clock.set(T0)
    worker = Worker(context, name="w1", concurrency=1)
    incident_id = open_incident(context, severity="P1")
    for severity in ("P0", "P2"):
        change(context, incident_id, severity=severity, performer="t")
    run_at(worker, T0)
    paged = [e.action for e in timeline(context, incident_id) if e.action.startswith("Paged")]
    assert paged and all("raised" not in line for line in paged), paged
    assert f"INC-{incident_id} opened at P1, since lowered to P2" in paged[0], paged


def test_page_requested_by_automation(context: AppContext) -> None:
    clock.set(T0)
    worker = Worker(context, name="w1")
    incident_id = open_incident(context, severity="P3", services=[])
    run_at(worker, T0)
    assert pages(context, incident_id) == []
    for _ in range(2):  # a second request while it escalates pages nobody twice
        with context.db.write() as session:
            publish(
                session,
                DomainEvent(
                    "incident.page_requested", incident_id, "automation", {"policy": "database-experts"}
                ),
            )
        run_at(worker, T0 + timedelta(seconds=1))
    assert sorted(p[0] for p in sent(context, incident_id)) == ["carol", "frank"]  # slack waits 5m
    with context.db.write() as session:
        publish(
            session, DomainEvent("incident.page_requested", incident_id, "automation", {"policy": "nope"})
        )
    run_at(worker, T0 + timedelta(seconds=2))
    assert "unknown escalation policy 'nope'" in timeline(context, incident_id)[-1].action


def test_resolving_stops_escalation(context: AppContext) -> None:
    clock.set(T0)
    worker = Worker(context, name="w1")
    incident_id = open_incident(context)
    run_at(worker, T0)
    with context.db.write() as session:
        incident_service.resolve(session, org=context.org, ref=incident_id, performer="tester")
    run_at(worker, T0 + timedelta(hours=3))
    assert {p[0] for p in sent(context, incident_id)} == {"carol"}
    assert escalation(context, incident_id).state == EscalationState.resolved


def test_escalation_continues_on_time_after_a_restart(settings: Settings, org: OrgConfig) -> None:
    clock.set(T0)
    first = AppContext(settings=settings, db=Database(settings.resolved_database_url), org=org)
    incident_id = open_incident(first)
    run_at(Worker(first, name="before"), T0)
    first.db.dispose()  # the server goes away mid-escalation

    second = AppContext(settings=settings, db=Database(settings.resolved_database_url), org=org)
    try:
        worker = Worker(second, name="after")
        run_at(worker, T0 + timedelta(minutes=14))
        assert escalation(second, incident_id).step == 1
        run_at(worker, T0 + timedelta(minutes=15))
        assert sent(second, incident_id)[-1] == ("alice", "email", 1, 2)
    finally:
        second.db.dispose()


def test_ack_link(context: AppContext, api: TestClient) -> None:
    clock.set(T0)
    incident_id = open_incident(context)
    run_at(Worker(context, name="w1"), T0)
    key = context.settings.resolved_secret_key()
    token = make_ack_token(key, incident_id=incident_id, person="carol")

    tampered = make_ack_token(key, incident_id=incident_id, person="carol<script>")
    parts = tampered.split(".")
    forged = ".".join([parts[0], token.split(".")[1], parts[2], parts[3]])
    for bad in (
        forged,
        token[:-2] + "xx",
        "1.2.3",
        "not-a-token",
        "².eA.³.eA",  # digits to str.isdigit(), not to int()
        "1" * 5000 + ".YWxpY2U.1796620370.AAAA",  # past int()'s digit limit: was a 500
        f"0{token}",  # the same signed bytes, spelt another way
        token + "=",
        "1.YWxpY2U." + "1" * 5000 + ".AAAA",
        token.replace(f"{incident_id}.", "999.", 1),
    ):
        for method in ("GET", "POST"):
            response = api.request(method, f"/api/v1/ack/{bad}")
            assert response.status_code == 403, (method, bad, response.text)
            assert "<form" not in response.text
    expired = make_ack_token(
        key, incident_id=incident_id, person="carol", expires_at=T0 - timedelta(seconds=1)
    )
    assert api.get(f"/api/v1/ack/{expired}").status_code == 410
    assert api.post(f"/api/v1/ack/{expired}").status_code == 410
    with context.db.read() as session:
        assert incident_service.get_incident(session, incident_id).acknowledged_at is None

    # Opening the link (what a mail scanner or link preview does) only asks; nothing changes.
    for _ in range(2):
        page = api.get(f"/api/v1/ack/{token}")
        assert page.status_code == 200
        assert "text/html" in page.headers["content-type"]
        assert f"Acknowledge INC-{incident_id}?" in page.text
        assert '<form method="post">' in page.text and "as carol" in page.text
    with context.db.read() as session:
        assert incident_service.get_incident(session, incident_id).acknowledged_at is None
    assert escalation(context, incident_id).state != EscalationState.acknowledged

    # The button POSTs to the same address.
    response = api.post(f"/api/v1/ack/{token}")
    assert response.status_code == 200
    assert "text/html" in response.headers["content-type"]
    assert f"INC-{incident_id} acknowledged" in response.text
    with context.db.read() as session:
        incident = incident_service.get_incident(session, incident_id)
        assert incident.acknowledged_by == "carol"
    again = api.post(f"/api/v1/ack/{token}")
    assert again.status_code == 200 and "already acknowledged" in again.text
    opened = api.get(f"/api/v1/ack/{token}")
    assert "already acknowledged" in opened.text and "<form" not in opened.text
    assert escalation(context, incident_id).state == EscalationState.acknowledged


def test_ack_page_escapes_html(context: AppContext, api: TestClient) -> None:
    clock.set(T0)
    incident_id = open_incident(context, title="<script>alert(1)</script>")
    token = make_ack_token(context.settings.resolved_secret_key(), incident_id=incident_id, person="bob")
    for response in (api.get(f"/api/v1/ack/{token}"), api.post(f"/api/v1/ack/{token}")):
        assert response.status_code == 200
        assert "<script>" not in response.text and "&lt;script&gt;" in response.text


def test_secret_key_is_generated_once(tmp_path: Any) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    key = settings.resolved_secret_key()
    assert len(key) > 40
    assert Settings(data_dir=tmp_path / "data").resolved_secret_key() == key
    assert (tmp_path / "data" / "secret_key").stat().st_mode & 0o077 == 0
    assert Settings(data_dir=tmp_path, secret_key="given").resolved_secret_key() == b"given"


def test_two_workers_page_each_person_exactly_once(
    settings: Settings, org: OrgConfig, context: AppContext
) -> None:
    if context.db.is_sqlite:
        pytest.skip("SQLite serialises writers; the race is a PostgreSQL concern")
    clock.set(T0)
    incidents = [open_incident(context, severity=["P0", "P1"][n % 2]) for n in range(12)]
    contexts = [
        AppContext(settings=settings, db=Database(settings.resolved_database_url), org=org) for _ in range(2)
    ]
    workers = [Worker(c, name=f"w{n}", batch=3) for n, c in enumerate(contexts)]
    errors: list[BaseException] = []

    def drain(worker: Worker) -> None:
        try:
            while worker.run_once():
                pass
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    try:
        for moment in (T0, T0 + timedelta(minutes=5), T0 + timedelta(minutes=15)):
            clock.set(moment)
            threads = [threading.Thread(target=drain, args=(w,)) for w in workers]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
    finally:
        for c in contexts:
            c.db.dispose()
    assert errors == []
    counted = Counter((p.incident_id, p.cycle, p.step, p.person, p.rule) for p in pages(context))
    assert counted and max(counted.values()) == 1
    for incident_id in incidents:
        assert sent(context, incident_id), incident_id
    with context.db.read() as session:
        deliveries = session.scalars(select(Delivery)).all()
        page_keys = [p.key for p in pages(context) if p.status == PageStatus.sent]
    # One delivery per page sent, each handed to its channel by exactly one worker.
    assert sorted(d.idempotency_key or "" for d in deliveries) == sorted(page_keys)
    assert {(d.status.value, d.attempts) for d in deliveries} == {("sent", 1)}


def test_severity_policy_takes_over_and_requested_policy_runs_alongside(context: AppContext) -> None:
    context.org.severity_policies = {"P0": "database-experts"}
    clock.set(T0)
    worker = Worker(context, name="w1")
    incident_id = open_incident(context, severity="P2")
    run_at(worker, T0)
    with context.db.write() as session:
        publish(
            session,
            DomainEvent(
                "incident.page_requested", incident_id, "automation", {"policy": "payments-escalation"}
            ),
        )
    run_at(worker, T0 + timedelta(seconds=1))
    with context.db.read() as session:
        states = {e.policy: e.state for e in session.scalars(select(Escalation))}
    assert states == {"platform-escalation": "active", "payments-escalation": "active"}
    change(context, incident_id, severity="P0", performer="tester")
    run_at(worker, T0 + timedelta(seconds=2))
    with context.db.read() as session:
        states = {e.policy: e.state for e in session.scalars(select(Escalation))}
    # The raise hands the incident's own paging (platform-escalation) over; the policy automation asked for
    # goes on beside it.
    assert states == {
        "platform-escalation": "superseded",
        "payments-escalation": "active",
        "database-experts": "active",
    }
    # All hands of database-experts: carol and frank, then the platform team.
    assert {p[0] for p in sent(context, incident_id) if p[2] == 1 and p[3] in (1, 2)} >= {
        "carol",
        "frank",
        "bob",
    }
    # database-experts runs out after its one pass; payments-escalation, asked for at P2, pages its first
    # step again at its 2-hour deadline; the superseded platform-escalation pages nobody more.
    run_at(worker, T0 + timedelta(hours=3))
    assert {p.policy for p in pages(context, incident_id) if p.created_at > T0 + timedelta(seconds=2)} == {
        "payments-escalation"
    }


def test_acknowledged_before_the_worker_ran_pages_nobody(context: AppContext) -> None:
    clock.set(T0)
    incident_id = open_incident(context)
    with context.db.write() as session:
        incident_service.acknowledge(session, ref=incident_id, performer="carol")
    run_at(Worker(context, name="w1"), T0 + timedelta(seconds=1))
    assert pages(context, incident_id) == []
    with context.db.read() as session:
        assert session.scalars(select(Escalation)).all() == []


def test_pages_not_out_yet_are_withdrawn_when_someone_acknowledges(context: AppContext) -> None:
    """carol's page waits in the delivery queue (a mail server down would keep it retrying for minutes); bob
    acknowledges meanwhile. The page must not reach carol later saying the incident needs her."""
    clock.set(T0)
    worker = Worker(context, name="w1")
    incident_id = open_incident(context)
    assert worker.run_once() == 1  # the start of paging: carol's page is handed to delivery, not sent yet
    with context.db.read() as session:
        page = session.scalars(
            select(Page).where(Page.incident_id == incident_id, Page.channel == "email").order_by(Page.id)
        ).first()
        assert page is not None and page.delivery_id is not None
        delivery = session.get_one(Delivery, page.delivery_id)
        assert delivery.status.value == "pending"
    with context.db.write() as session:
        incident_service.acknowledge(session, ref=incident_id, performer="bob")
    run_at(worker, T0 + timedelta(hours=1))
    with context.db.read() as session:
        delivery = session.get_one(Delivery, page.delivery_id)
        assert delivery.status.value == "withdrawn"
        assert delivery.last_error == "not sent: escalation stopped (acknowledged)"
        deliver_jobs = session.scalars(
            select(Job).where(Job.kind == "notify.deliver", Job.incident_id == incident_id)
        ).all()
        assert {job.status for job in deliver_jobs} <= {JobStatus.cancelled, JobStatus.done}


def test_lowering_to_a_level_that_pages_nobody_stops_the_escalation(context: AppContext) -> None:
    """A P1 turned out to be a P3 (it pages nobody): alice, step 2, is not woken for a ticket."""
    clock.set(T0)
    worker = Worker(context, name="w1")
    incident_id = open_incident(context)
    run_at(worker, T0)
    assert sent(context, incident_id) == [("carol", "email", 1, 1)]
    clock.set(T0 + timedelta(minutes=2))
    change(context, incident_id, severity="P3", note="false alarm")  # as carol
    run_at(worker, T0 + timedelta(minutes=30))
    assert [p[0] for p in sent(context, incident_id)] == ["carol"]
    assert escalation(context, incident_id).state == EscalationState.silent
    assert any(
        e.action == "Escalation stopped (P3 pages nobody): platform-escalation"
        for e in timeline(context, incident_id)
    )


def test_lowering_to_a_level_that_pages_its_first_step_stops_escalating_past_it(context: AppContext) -> None:
    """A P1 lowered to P2 goes on paging the assigned engineer, not on to alice (step 2) and the manager."""
    clock.set(T0)
    worker = Worker(context, name="w1")
    incident_id = open_incident(context)
    run_at(worker, T0)
    clock.set(T0 + timedelta(minutes=2))
    change(context, incident_id, severity="P2")
    state = escalation(context, incident_id)
    assert (state.mode, state.severity, state.state) == (
        "first_step",
        "P1",
        EscalationState.active,
    )  # paged at P1
    assert timeline(context, incident_id)[-1].action == (
        "Escalation goes on first step only for P2: platform-escalation"
    )
    run_at(worker, T0 + timedelta(minutes=15))  # the deadline the P1 page gave carol
    assert [(p[0], p[2], p[3]) for p in sent(context, incident_id) if p[1] == "email"] == [
        ("carol", 1, 1),
        ("carol", 2, 1),
    ]


def test_lowering_from_all_hands_goes_on_step_by_step(context: AppContext) -> None:
    """A P0 lowered to P1: everyone was paged at once; at the next deadline the policy starts over from its
    first step instead of paging all three again."""
    clock.set(T0)
    worker = Worker(context, name="w1")
    incident_id = open_incident(context, severity="P0")
    run_at(worker, T0)
    assert {p[0] for p in sent(context, incident_id)} == {"carol", "alice", "grace"}
    clock.set(T0 + timedelta(minutes=1))
    change(context, incident_id, severity="P1")
    run_at(worker, T0 + timedelta(minutes=5))  # P0's deadline
    emails = [(p[0], p[2], p[3]) for p in sent(context, incident_id) if p[1] == "email"]
    assert sorted(emails[3:]) == [("carol", 2, 1)]
    state = escalation(context, incident_id)
    assert (state.mode, state.cycle, state.step) == ("escalate", 2, 1)
    run_at(worker, state.next_check_at or T0)
    assert [(p[0], p[2], p[3]) for p in sent(context, incident_id) if p[1] == "email"][-1] == ("alice", 2, 2)


def test_the_first_service_named_chooses_the_policy(context: AppContext, api: TestClient) -> None:
    """The README tour's outage is on payments first, api second: payments' policy pages (frank), not api's
    (carol). The services were read back sorted by name, so api's policy paged."""
    clock.set(T0)
    incident_id = open_incident(context, services=["payments", "api"])
    run_at(Worker(context, name="w1"), T0)
    assert sent(context, incident_id) == [("frank", "email", 1, 1)]
    assert escalation(context, incident_id).policy == "payments-escalation"
    with context.db.read() as session:
        assert incident_service.get_incident(session, incident_id).service_names == ["payments", "api"]


def test_a_reopened_incident_raised_escalates_until_someone_acknowledges_again(context: AppContext) -> None:
    clock.set(T0)
    worker = Worker(context, name="w1")
    incident_id = open_incident(context, severity="P2")
    run_at(worker, T0)
    with context.db.write() as session:
        incident_service.acknowledge(session, ref=incident_id, performer="carol")
    for status in ("resolved", "investigating"):
        change(context, incident_id, status=status)
    clock.set(T0 + timedelta(minutes=30))
    change(context, incident_id, severity="P0")  # a raise, through the same call
    run_at(worker, T0 + timedelta(minutes=30))
    state = escalation(context, incident_id)
    assert (state.state, state.mode) == (EscalationState.active, "all_hands")
    assert state.next_check_at == T0 + timedelta(minutes=35)
    with context.db.read() as session:
        [shown] = paging.incident_paging(session, ref=str(incident_id)).escalations
    assert (shown.cycle, shown.pass_number) == (2, 1)  # the raise started a new run: its first pass
    run_at(worker, T0 + timedelta(minutes=35))
    assert {(p[0], p[2]) for p in sent(context, incident_id) if p[1] == "email" and p[2] > 2} == {
        ("carol", 3),
        ("alice", 3),
        ("grace", 3),
    }


@pytest.mark.parametrize(
    ("severity", "deadline"), [("P1", timedelta(minutes=15)), ("P2", timedelta(hours=2))]
)
def test_a_step_that_reaches_nobody_hands_on_at_once(
    context: AppContext, severity: str, deadline: timedelta
) -> None:
    """Step 1 is a schedule with nobody on call (New York office hours, at 05:00 there): step 2 is paged
    now, not after the deadline nobody could have acknowledged in; for a P2 (first step only) too, which
    otherwise paged nobody at all."""
    primary = next(s for s in context.org.schedules if s.name == "platform-primary")
    office = primary.model_copy(update={"name": "new-york-office", "layers": primary.layers[1:]})
    platform = next(p for p in context.org.escalation_policies if p.name == "platform-escalation")
    office_first = platform.model_copy(
        update={"name": "office-first", "steps": [s.model_copy() for s in platform.steps]}
    )
    office_first.steps[0] = office_first.steps[0].model_copy(
        update={"targets": [TargetConfig(schedule="new-york-office")]}
    )
    services = [
        s.model_copy(update={"escalation_policy": "office-first"}) if s.name == "api" else s
        for s in context.org.services
    ]
    context.org = context.org.model_copy(
        update={
            "schedules": [*context.org.schedules, office],
            "escalation_policies": [*context.org.escalation_policies, office_first],
            "services": services,
        }
    )
    clock.set(T0)
    worker = Worker(context, name="w1")
    incident_id = open_incident(context, severity=severity)
    run_at(worker, T0)
    assert sent(context, incident_id) == [("alice", "email", 1, 2)]  # platform-secondary, at once
    state = escalation(context, incident_id)
    assert (state.policy, state.step, state.next_check_at) == ("office-first", 2, T0 + deadline)
    actions = [e.action for e in timeline(context, incident_id) if e.kind == "page"]
    assert actions[0].endswith("nobody to page (on call for new-york-office: no one to reach)")
    assert actions[1].startswith("Escalated to step 2 of office-first (step 1 reached nobody): alice")


def test_a_raise_then_a_lower_before_the_worker_runs_still_pages_the_net_raise(context: AppContext) -> None:
    """P2, raised to P0, lowered to P1, all before the worker ran: a net raise, paged at P1."""
    clock.set(T0)
    worker = Worker(context, name="w1")
    incident_id = open_incident(context, severity="P2")
    run_at(worker, T0)
    clock.set(T0 + timedelta(minutes=2))
    change(context, incident_id, severity="P0")
    change(context, incident_id, severity="P1")
    run_at(worker, T0 + timedelta(minutes=2))
    state = escalation(context, incident_id)
    assert (state.severity, state.mode, state.cycle) == ("P1", "escalate", 2)
    assert state.next_check_at == T0 + timedelta(minutes=17)  # P1's 15 minutes, from the raise
    # carol, on call at step 1, raised it herself: she is not paged by her own raise, and is on it, so step 2
    # waits for the step's deadline as it would had she been paged.
    assert ("carol", "email", 2, 1) not in sent(context, incident_id)
    assert ("alice", "email", 2, 2) not in sent(context, incident_id)
    assert state.step == 1
    run_at(worker, T0 + timedelta(minutes=17))
    assert ("alice", "email", 2, 2) in sent(context, incident_id)
    actions = [e.action for e in timeline(context, incident_id) if e.kind == "page"]
    assert any(
        "carol (on call for platform-primary) skipped as the one who raised it to P1" in a for a in actions
    )


def test_a_person_whose_page_is_refused_at_once_is_not_counted_as_reached(context: AppContext) -> None:
    """carol's only way to be paged is a webhook without a URL: her step reached nobody, so the next is
    paged at once (it waited out the step with nobody paged)."""
    pager = WebhookChannel(name="pager", type="webhook")
    rule = NotificationRule(channel="pager", to="carol-pager")
    people = [
        p.model_copy(update={"contact_methods": [], "notification_rules": [rule]}) if p.name == "carol" else p
        for p in context.org.people
    ]
    context.org = context.org.model_copy(
        update={"people": people, "notification_channels": [*context.org.notification_channels, pager]}
    )
    clock.set(T0)
    incident_id = open_incident(context)
    run_at(Worker(context, name="w1"), T0)
    assert sent(context, incident_id) == [("alice", "email", 1, 2)]
    actions = [e.action for e in timeline(context, incident_id) if e.kind == "page"]
    assert "FAILED" in actions[0] and actions[1].startswith("Escalated to step 2")
