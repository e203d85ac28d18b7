"""Pages for an acknowledged incident (a raise, a person asking for more hands) chase nobody: they say who
acknowledged and why this page, give no acknowledge-by time, and the person whose own action caused the page
is not paged by it."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from tests.oncall.changes import change
from tests.oncall.test_page_request import escalations
from tests.oncall.test_paging import T0, open_incident, run_at, timeline
from warroom.clock import clock
from warroom.context import AppContext
from warroom.incidents import service as incident_service
from warroom.jobs.worker import Worker
from warroom.notify.models import Delivery
from warroom.oncall import paging
from warroom.oncall.models import EscalationState, Page, PageStatus
from warroom.oncall.schemas import PageRequest


def bodies(context: AppContext, incident_id: int, *, cycle: int) -> dict[str, str]:
    """The text of each page sent in pass ``cycle``, by person."""
    with context.db.read() as session:
        rows = session.execute(
            select(Page.person, Delivery.body)
            .join(Delivery, Delivery.id == Page.delivery_id)
            .where(Page.incident_id == incident_id, Page.cycle == cycle, Page.status == PageStatus.sent)
        ).all()
    return {person: body for person, body in rows}


def paged_in(context: AppContext, incident_id: int, *, cycle: int) -> set[str]:
    with context.db.read() as session:
        return set(
            session.scalars(
                select(Page.person).where(
                    Page.incident_id == incident_id, Page.cycle == cycle, Page.status != PageStatus.cancelled
                )
            )
        )


def acknowledged_p1(context: AppContext, by: str) -> tuple[Worker, int]:
    """A P1 on api, paged (platform-escalation step 1: carol), acknowledged by ``by`` a minute later."""
    clock.set(T0)
    worker = Worker(context, name="w1")
    incident_id = open_incident(context)
    run_at(worker, T0)
    clock.set(T0 + timedelta(minutes=1))
    with context.db.write() as session:
        incident_service.acknowledge(session, ref=incident_id, performer=by)
    return worker, incident_id


def test_a_raise_of_an_acknowledged_incident_informs_and_skips_who_raised_it(context: AppContext) -> None:
    """carol acknowledged, then raised it to P0 (all hands: every step of platform-escalation at once). She is
    not paged for her own raise; alice and grace are, with pages that say carol acknowledged it and raised it,
    and promise no escalation."""
    worker, incident_id = acknowledged_p1(context, by="carol")
    clock.set(T0 + timedelta(minutes=2))
    change(context, incident_id, severity="P0")  # as carol
    run_at(worker, T0 + timedelta(minutes=2))

    texts = bodies(context, incident_id, cycle=2)
    assert {"alice", "grace"} <= set(texts), texts
    for body in texts.values():
        assert "needs a responder" not in body, body
        assert "Acknowledge by" not in body and "escalates" not in body.replace("nothing escalates", ""), body
        assert (
            f"INC-{incident_id} (P0, investigating) is acknowledged by carol (2026-03-02 10:01 UTC); nothing "
            "escalates from this page.\n\n" in body
        ), body
        assert "raised to P0 by carol" in body, body
    assert "carol" not in paged_in(context, incident_id, cycle=2)
    actions = [e.action for e in timeline(context, incident_id)]
    assert any(
        a.startswith("Paged step 1 of platform-escalation (all hands) (severity raised to P0 by carol)")
        and "carol (on call for platform-primary) skipped as the one who raised it to P0" in a
        for a in actions
    ), actions
    assert escalations(context, incident_id)["platform-escalation"].state == EscalationState.acknowledged


def test_a_person_asking_for_a_policy_she_is_on_is_not_paged_by_it(context: AppContext) -> None:
    """frank acknowledged; carol, on call at step 1 of platform-escalation, asks for it again with a note: she
    is skipped, so the step hands on to alice, whose page says frank acknowledged and carol asked, with her
    note, and carries no acknowledge-by time. Nothing chases further."""
    worker, incident_id = acknowledged_p1(context, by="frank")
    clock.set(T0 + timedelta(minutes=3))
    with context.db.write() as session:
        paging.request_page_by_person(
            session,
            context.org,
            ref=f"INC-{incident_id}",
            request=PageRequest(policy="platform-escalation", note="need more hands on the db"),
            performer="carol",
        )
    run_at(worker, T0 + timedelta(minutes=3))

    assert paged_in(context, incident_id, cycle=2) == {"alice"}
    body = bodies(context, incident_id, cycle=2)["alice"]
    assert f"INC-{incident_id} (P1, investigating) is acknowledged by frank (2026-03-02 10:01 UTC)" in body
    assert "needs a responder" not in body and "Acknowledge by" not in body, body
    assert "carol asked for this page: need more hands on the db" in body, body
    actions = [e.action for e in timeline(context, incident_id)]
    assert any(
        "carol (on call for platform-primary) skipped as the one who asked for this page" in a
        for a in actions
    ), actions
    assert any(
        a.startswith("Escalated to step 2 of platform-escalation (step 1 reached nobody)") for a in actions
    )
    assert escalations(context, incident_id)["platform-escalation"].state == EscalationState.acknowledged
    before = paged_in(context, incident_id, cycle=2)
    run_at(worker, T0 + timedelta(hours=2))
    assert paged_in(context, incident_id, cycle=2) == before
    assert paged_in(context, incident_id, cycle=3) == set()


def test_an_unacknowledged_page_still_asks_for_a_responder_by_a_time(context: AppContext) -> None:
    """The first page of an unacknowledged incident keeps its wording: it needs a responder, by a time."""
    clock.set(T0)
    worker = Worker(context, name="w1")
    incident_id = open_incident(context)
    run_at(worker, T0)
    body = bodies(context, incident_id, cycle=1)["carol"]
    assert f"INC-{incident_id} (P1, investigating) needs a responder.\n\nAPI returning 500s\n" in body, body
    assert "Acknowledge by 2026-03-02 10:15 UTC or this escalates." in body
