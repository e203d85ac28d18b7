"""A step whose every page becomes a dead letter (a webhook answering 404, retries used up) hands on to the
next step at once, as a step whose pages are refused when queued does, instead of waiting out a deadline
nobody on it could have acknowledged in."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, text

from tests.oncall.test_paging import T0, escalation, open_incident, pages, run_at, timeline
from tests.peers import Recorder, wait_until
from warroom.clock import clock
from warroom.context import AppContext
from warroom.incidents import service as incident_service
from warroom.jobs.models import Job, JobStatus
from warroom.jobs.worker import Worker
from warroom.notify.config import WebhookChannel, WebhookSettings
from warroom.notify.models import Delivery, DeliveryStatus
from warroom.oncall import paging
from warroom.oncall.config import NotificationRule
from warroom.oncall.models import EscalationState, Page
from warroom.oncall.paging import CHECK_KIND, HANDOVER_KIND

# At T0, platform-escalation's step 1 is carol (platform-primary), step 2 alice (platform-secondary), step 3
# grace (the platform manager). P1: step 1 has its 15-minute response target, steps 2 and 3 10 minutes each.
STEP_1_DEADLINE = T0 + timedelta(minutes=15)


def hook(pager: Recorder, path: str, delay: timedelta = timedelta(0)) -> NotificationRule:
    return NotificationRule(channel="pager", to=pager.url(path), delay=delay)


def page_people_by(context: AppContext, rules: dict[str, list[NotificationRule]]) -> None:
    """Each person named is paged by exactly ``rules`` (a signed webhook channel ``pager``, or the console
    ``email`` of tests/oncall, which always delivers)."""
    channel = WebhookChannel(name="pager", type="webhook", settings=WebhookSettings(secret="pager secret"))
    people = [
        p.model_copy(update={"contact_methods": [], "notification_rules": rules[p.name]})
        if p.name in rules
        else p
        for p in context.org.people
    ]
    context.org = context.org.model_copy(
        update={"people": people, "notification_channels": [*context.org.notification_channels, channel]}
    )


def paged(context: AppContext, incident_id: int) -> list[tuple[str, int, int, str | None]]:
    """(person, cycle, step, what became of the delivery) for each page handed to delivery."""
    with context.db.read() as session:
        rows = session.execute(
            select(Page.person, Page.cycle, Page.step, Delivery.status)
            .join(Delivery, Delivery.id == Page.delivery_id)
            .where(Page.incident_id == incident_id)
            .order_by(Page.id)
        ).all()
    return [(person, cycle, step, str(status)) for person, cycle, step, status in rows]


def actions(context: AppContext, incident_id: int, kind: str) -> list[str]:
    return [e.action for e in timeline(context, incident_id) if e.kind == kind]


def test_a_step_whose_pages_all_dead_letter_hands_on_at_once(context: AppContext, pager: Recorder) -> None:
    """carol's only pager answers 404: alice (step 2) is paged right after, not 15 minutes later, and step 2
    keeps step 1's deadline; at that deadline the escalation goes on to step 3 once."""
    pager.fail("/carol", 10, status=404)
    page_people_by(context, {"carol": [hook(pager, "/carol")], "alice": [hook(pager, "/alice")]})
    clock.set(T0)
    worker = Worker(context, name="w1")
    incident_id = open_incident(context)
    run_at(worker, T0)
    assert len(pager.to("/carol")) == 1
    assert len(pager.to("/alice")) == 1  # at T0, not at T0 + 15m
    assert paged(context, incident_id) == [("carol", 1, 1, "dead"), ("alice", 1, 2, "sent")]
    state = escalation(context, incident_id)
    assert (state.state, state.cycle, state.step) == (EscalationState.active, 1, 2)
    assert state.next_check_at == STEP_1_DEADLINE
    [handed] = [a for a in actions(context, incident_id, "automation") if "could be reached" in a]
    assert handed.startswith(
        "No one on step 1 of platform-escalation could be reached: carol via pager to http://127.0.0.1/… "
        "(dead letter: "
    )
    assert "404" in handed and handed.endswith("; escalating to step 2")
    page_entries = actions(context, incident_id, "page")
    assert page_entries[1].startswith(
        "Escalated to step 2 of platform-escalation (no one on step 1 could be reached): alice"
    )
    with context.db.read() as session:
        checks = session.scalars(
            select(Job.payload).where(Job.kind == CHECK_KIND, Job.status == JobStatus.pending)
        ).all()
    assert [(c["cycle"], c["step"]) for c in checks] == [(1, 2)]  # step 1's check was cancelled

    run_at(worker, STEP_1_DEADLINE - timedelta(seconds=1))
    assert escalation(context, incident_id).step == 2
    run_at(worker, STEP_1_DEADLINE)
    state = escalation(context, incident_id)
    assert (state.cycle, state.step) == (1, 3)
    assert [(p.person, p.step) for p in pages(context, incident_id)] == [
        ("carol", 1),
        ("alice", 2),
        ("grace", 3),
    ]
    assert len(pager.to("/alice")) == 1


def test_a_step_with_one_page_delivered_still_waits_its_deadline(
    context: AppContext, pager: Recorder
) -> None:
    """carol's pager answers 404 but her email went out: she may still acknowledge, so step 2 waits."""
    pager.fail("/carol", 10, status=404)
    page_people_by(
        context,
        {
            "carol": [NotificationRule(channel="email"), hook(pager, "/carol")],
            "alice": [hook(pager, "/alice")],
        },
    )
    clock.set(T0)
    worker = Worker(context, name="w1")
    incident_id = open_incident(context)
    run_at(worker, T0)
    assert sorted(paged(context, incident_id)) == [("carol", 1, 1, "dead"), ("carol", 1, 1, "sent")]
    with context.db.read() as session:
        looks = session.scalars(select(Job.result).where(Job.kind == HANDOVER_KIND)).all()
    assert len(looks) == 1 and "may still be reached" in str(looks[0])  # it looked, and left the step be
    run_at(worker, STEP_1_DEADLINE - timedelta(seconds=1))
    assert escalation(context, incident_id).step == 1 and pager.to("/alice") == []
    run_at(worker, STEP_1_DEADLINE)
    assert escalation(context, incident_id).step == 2 and len(pager.to("/alice")) == 1
    assert not [a for a in actions(context, incident_id, "automation") if "could be reached" in a]
    assert actions(context, incident_id, "page")[-1].startswith(
        "Escalated to step 2 of platform-escalation (not acknowledged within 15m)"
    )


def test_a_step_waits_for_a_delayed_rule_then_hands_on_when_it_dead_letters_too(
    context: AppContext, pager: Recorder
) -> None:
    """carol's first pager dead-letters at once, but her second rule is due in 2 minutes: the step waits for
    it, and hands on when it dead-letters too (not at the 15-minute deadline)."""
    pager.fail("/carol", 10, status=404)
    pager.fail("/carol-phone", 10, status=410)
    page_people_by(
        context,
        {
            "carol": [hook(pager, "/carol"), hook(pager, "/carol-phone", timedelta(minutes=2))],
            "alice": [hook(pager, "/alice")],
        },
    )
    clock.set(T0)
    worker = Worker(context, name="w1")
    incident_id = open_incident(context)
    run_at(worker, T0)
    assert escalation(context, incident_id).step == 1 and pager.to("/alice") == []
    run_at(worker, T0 + timedelta(minutes=2))
    assert len(pager.to("/carol-phone")) == 1 and len(pager.to("/alice")) == 1
    state = escalation(context, incident_id)
    assert (state.step, state.next_check_at) == (2, STEP_1_DEADLINE)
    [handed] = [a for a in actions(context, incident_id, "automation") if "could be reached" in a]
    assert handed.count("carol via pager") == 2 and "410" in handed


def test_pages_that_dead_letter_after_their_retries_hand_on_too(context: AppContext, pager: Recorder) -> None:
    """carol's pager answers 500 every time: once its attempts are used up, alice is paged."""
    context.settings.notify_max_attempts = 3
    pager.fail("/carol", 10, status=500)
    page_people_by(context, {"carol": [hook(pager, "/carol")], "alice": [hook(pager, "/alice")]})
    clock.set(T0)
    worker = Worker(context, name="w1", retry_base=5, retry_cap=600)
    incident_id = open_incident(context)
    run_at(worker, T0)
    run_at(worker, T0 + timedelta(seconds=7))  # the first retry is due 4-6 s after the first attempt
    assert len(pager.to("/carol")) == 2
    assert escalation(context, incident_id).step == 1 and pager.to("/alice") == []
    run_at(worker, T0 + timedelta(seconds=30))  # the second, 8-12 s after that: the last attempt
    assert len(pager.to("/carol")) == 3 and len(pager.to("/alice")) == 1
    assert paged(context, incident_id) == [("carol", 1, 1, "dead"), ("alice", 1, 2, "sent")]
    state = escalation(context, incident_id)
    assert (state.step, state.next_check_at) == (2, STEP_1_DEADLINE)
    [handed] = [a for a in actions(context, incident_id, "automation") if "could be reached" in a]
    assert "500" in handed and handed.endswith("; escalating to step 2")


def test_the_last_step_waits_for_its_deadline_then_repeats_as_the_policy_says(
    context: AppContext, pager: Recorder
) -> None:
    """Every step dead-letters: the escalation hands on to step 3, which has no next step, so it waits for
    its deadline (said once, though both of grace's pages die together), and the check then starts pass 2
    as it would have anyway."""
    for path in ("/carol", "/alice", "/grace", "/grace-phone"):
        pager.fail(path, 10, status=404)
    page_people_by(
        context,
        {
            "carol": [hook(pager, "/carol")],
            "alice": [hook(pager, "/alice")],
            "grace": [hook(pager, "/grace"), hook(pager, "/grace-phone")],
        },
    )
    clock.set(T0)
    worker = Worker(context, name="w1")
    incident_id = open_incident(context)
    run_at(worker, T0)
    assert [(p, s, d) for p, _, s, d in paged(context, incident_id)] == [
        ("carol", 1, "dead"),
        ("alice", 2, "dead"),
        ("grace", 3, "dead"),
        ("grace", 3, "dead"),
    ]
    state = escalation(context, incident_id)
    assert (state.state, state.cycle, state.step, state.next_check_at) == (
        EscalationState.active,
        1,
        3,
        STEP_1_DEADLINE,
    )
    handed = [a for a in actions(context, incident_id, "automation") if "could be reached" in a]
    assert [a.split(":")[0] for a in handed] == [
        "No one on step 1 of platform-escalation could be reached",
        "No one on step 2 of platform-escalation could be reached",
        "No one on step 3 of platform-escalation could be reached",
    ]
    assert handed[2].endswith(
        "it is the last step, so the escalation waits for its deadline (2026-03-02 10:15 UTC), "
        "then pages step 1 again (pass 2)"
    )
    with context.db.read() as session:
        looks = session.scalars(select(Job.result).where(Job.kind == HANDOVER_KIND).order_by(Job.id)).all()
    assert [look for look in looks if look and look.get("skipped") == "already said"] != []
    run_at(worker, STEP_1_DEADLINE)
    state = escalation(context, incident_id)
    assert (state.cycle, state.step) == (2, 3)  # pass 2: step 1 paged, and handed on as in pass 1
    assert len(pager.to("/carol")) == 2
    assert any(
        a.startswith("Escalated to step 1 of platform-escalation, pass 2 (not acknowledged within 15m)")
        for a in actions(context, incident_id, "page")
    )


def test_nothing_is_handed_on_once_someone_acknowledged(context: AppContext, pager: Recorder) -> None:
    """The page dead-letters, and someone acknowledges (through the UI, say) before the hand-over runs."""
    pager.fail("/carol", 10, status=404)
    page_people_by(context, {"carol": [hook(pager, "/carol")], "alice": [hook(pager, "/alice")]})
    clock.set(T0)
    incident_id = open_incident(context)
    worker = Worker(context, name="w1")
    run_at(worker.in_lane("local"), T0)  # pages carol
    run_at(worker.in_lane("network"), T0)  # her pager refuses it
    with context.db.read() as session:
        [look] = session.scalars(select(Job).where(Job.kind == HANDOVER_KIND)).all()
        assert look.status == JobStatus.pending
    with context.db.write() as session:
        incident_service.acknowledge(session, ref=incident_id, performer="bob")
        # The hand-over itself also leaves an acknowledged incident be (as if its job were already running).
        result = paging.hand_over_unreachable_step(
            session, context, escalation_id=look.payload["escalation_id"], cycle=1, step=1
        )
    assert "skipped" in result
    run_at(worker, T0 + timedelta(hours=1))
    assert pager.to("/alice") == []
    assert escalation(context, incident_id).state == EscalationState.acknowledged
    assert not [a for a in actions(context, incident_id, "automation") if "could be reached" in a]


@pytest.mark.parametrize("first", ["hand-over", "deadline"])
def test_the_deadline_and_the_hand_over_escalate_once(
    context: AppContext, pager: Recorder, monkeypatch: pytest.MonkeyPatch, first: str
) -> None:
    """Step 1's page dead-letters just as its deadline comes: the hand-over and the deadline's check run at
    once, in two transactions. The one that takes the escalation second finds it moved on: alice is paged
    once, grace not at all."""
    pager.fail("/carol", 10, status=404)
    page_people_by(context, {"carol": [hook(pager, "/carol")], "alice": [hook(pager, "/alice")]})
    clock.set(T0)
    incident_id = open_incident(context)
    worker = Worker(context, name="w1")
    run_at(worker.in_lane("local"), T0)
    run_at(worker.in_lane("network"), T0)  # dead: the hand-over is queued, not run yet
    clock.set(STEP_1_DEADLINE - timedelta(seconds=1))  # the deadline's check, a second early, say
    with context.db.read() as session:
        escalation_id = session.scalars(select(Job.payload).where(Job.kind == HANDOVER_KIND)).one()[
            "escalation_id"
        ]

    # The first one pages alice and waits there, its transaction open and the escalation locked, until the
    # second has started and is waiting for the lock.
    inside, release = threading.Event(), threading.Event()
    page_step = paging._page_until_reached
    calls: list[str] = []

    def held_page(*args: Any, **kwargs: Any) -> None:
        page_step(*args, **kwargs)
        calls.append(threading.current_thread().name)
        if len(calls) == 1:
            inside.set()
            assert release.wait(20)

    monkeypatch.setattr(paging, "_page_until_reached", held_page)
    outcomes: dict[str, dict[str, Any]] = {}
    errors: list[BaseException] = []

    def run(name: str, step: Callable[..., dict[str, Any]]) -> None:
        try:
            with context.db.write() as session:
                outcomes[name] = step(session, context, escalation_id=escalation_id, cycle=1, step=1)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    steps = {"hand-over": paging.hand_over_unreachable_step, "deadline": paging.check_escalation}
    second = "deadline" if first == "hand-over" else "hand-over"
    one = threading.Thread(target=run, args=(first, steps[first]), name=first)
    one.start()
    assert inside.wait(20)
    two = threading.Thread(target=run, args=(second, steps[second]), name=second)
    two.start()
    two.join(0.5)
    assert two.is_alive()  # waiting for the first to commit
    release.set()
    one.join(20)
    two.join(20)
    assert errors == []
    assert calls == [first]
    assert "skipped" in outcomes[second] and outcomes[first]["step"] == 2
    run_at(worker, STEP_1_DEADLINE)  # the queued hand-over and check find the escalation moved on
    assert [(p.person, p.step) for p in pages(context, incident_id)] == [("carol", 1), ("alice", 2)]
    assert len(pager.to("/alice")) == 1
    state = escalation(context, incident_id)
    assert (state.state, state.cycle, state.step) == (EscalationState.active, 1, 2)
    assert [a for a in actions(context, incident_id, "page") if a.startswith("Escalated to step 2")]
    assert len([a for a in actions(context, incident_id, "page") if a.startswith("Escalated")]) == 1
    with context.db.read() as session:
        checks = session.scalars(
            select(Job.payload).where(Job.kind == CHECK_KIND, Job.status == JobStatus.pending)
        )
        assert [(c["cycle"], c["step"]) for c in checks] == [(1, 2)]
        delivered = session.scalars(select(Delivery.status).where(Delivery.incident_id == incident_id)).all()
    assert sorted(delivered) == sorted([DeliveryStatus.dead, DeliveryStatus.sent])


def test_a_deadline_check_and_an_acknowledgement_take_their_locks_in_one_order(context: AppContext) -> None:
    """An acknowledgement locks the incident, then stops its escalations; the deadline's check (and the
    hand-over) take the same locks in the same order. When the check locked the escalation first, the two
    deadlocked on PostgreSQL and one was aborted. Here the acknowledgement holds the incident while the check
    waits, then stops the escalation and commits; the check then finds it stopped."""
    if context.db.is_sqlite:
        pytest.skip("SQLite takes one write lock for the whole transaction: no row locks to order")
    clock.set(T0)
    incident_id = open_incident(context)
    run_at(Worker(context, name="w1"), T0)
    escalation_id = escalation(context, incident_id).id
    clock.set(STEP_1_DEADLINE)
    outcome: dict[str, Any] = {}
    errors: list[BaseException] = []

    def check() -> None:
        try:
            with context.db.write() as session:
                outcome.update(
                    paging.check_escalation(session, context, escalation_id=escalation_id, cycle=1, step=1)
                )
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    with context.db.write() as session:
        incident_service.get_incident(session, incident_id, for_update=True)
        checking = threading.Thread(target=check)
        checking.start()
        wait_until(lambda: _waiting_for_a_lock(context), timeout=10)
        incident_service.acknowledge(session, ref=incident_id, performer="carol")
    checking.join(20)
    assert errors == []
    assert outcome == {"skipped": "not active"}  # the acknowledgement stopped it as it committed
    assert escalation(context, incident_id).state == EscalationState.acknowledged


def _waiting_for_a_lock(context: AppContext) -> bool:
    """Whether another connection of this database is waiting for a row lock."""
    with context.db.engine.connect() as connection:
        waiting = connection.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'"
            )
        ).scalar_one()
    return bool(waiting)
