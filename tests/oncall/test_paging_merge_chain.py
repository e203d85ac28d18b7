"""Merges in a chain (INC-a into INC-b, then INC-b into INC-c): what is about INC-a (a page asked for it, the
acknowledge link of a page it sent) goes to INC-c, where its alerts and pages are now; and a page a merge
carries over goes on there where it was."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.oncall.test_merge_paging import merge
from tests.oncall.test_page_request import ask, escalations, page_reasons
from tests.oncall.test_paging import T0, open_incident, pages, run_at, timeline
from tests.oncall.test_policy_gone import reloaded
from tests.oncall.test_raise_and_duplicates import request_page
from warroom.clock import clock
from warroom.context import AppContext
from warroom.incidents import service as incident_service
from warroom.jobs.models import Job
from warroom.jobs.worker import Worker
from warroom.oncall.links import make_ack_token
from warroom.oncall.models import EscalationState
from warroom.oncall.paging import START_KIND, incident_paging

RULE = "payments-down"  # the example's rule that pages payments-escalation


def rule_page(context: AppContext, incident_id: int) -> None:
    """payments-escalation asked for by rule payments-down, as alert automation asks."""
    with context.db.write() as session:
        request_page(session, incident_id, "automation", policy="payments-escalation", rule=RULE)


def start_payloads(context: AppContext, incident_id: int, policy: str) -> list[dict[str, object]]:
    with context.db.read() as session:
        payloads = session.scalars(
            select(Job.payload).where(Job.kind == START_KIND, Job.incident_id == incident_id).order_by(Job.id)
        )
        return [payload for payload in payloads if payload.get("policy") == policy]


def chain(context: AppContext) -> tuple[Worker, int, int, int]:
    """Three P1s on api; payments-escalation asked for on the first by its rule; the first merged into the
    second, the second into the third, the worker running after each."""
    clock.set(T0)
    worker = Worker(context, name="w1")
    first, second, third = (open_incident(context, title=f"API errors {n}") for n in (1, 2, 3))
    rule_page(context, first)
    run_at(worker, T0)
    clock.set(T0 + timedelta(minutes=1))
    merge(context, first, second)
    run_at(worker, T0 + timedelta(minutes=1))
    clock.set(T0 + timedelta(minutes=2))
    merge(context, second, third)
    run_at(worker, T0 + timedelta(minutes=2))
    return worker, first, second, third


def test_a_page_asked_for_an_incident_merged_twice_names_the_last(
    api: TestClient, context: AppContext, responder: dict[str, str]
) -> None:
    """It said "page INC-b instead", and INC-b answered that it was merged too."""
    _, first, second, third = chain(context)
    for body in ({"policy": "database-experts"}, {"person": "frank"}):
        answer = ask(api, responder, f"INC-{first}", **body)
        assert answer.status_code == 409, answer.text
        error = answer.json()["error"]
        assert error["message"] == (
            f"INC-{first} was merged into INC-{second}, since merged into INC-{third}: "
            f"page INC-{third} instead"
        )
        assert error["details"][0]["merged_into"] == f"INC-{third}"
        assert error["details"][0]["merged_through"] == [f"INC-{second}", f"INC-{third}"]
    # Asked there, it pages.
    assert ask(api, responder, f"INC-{third}", policy="database-experts").status_code == 202


def test_the_ack_link_of_a_page_for_an_incident_merged_twice_acknowledges_the_last(
    api: TestClient, context: AppContext
) -> None:
    """The first incident's page still chased its people from the third (the merges carried it), but the link
    in the page they got answered that the first was resolved: nothing to acknowledge."""
    worker, first, _, third = chain(context)
    assert escalations(context, third)["payments-escalation"].state == EscalationState.active
    paged = next(p for p in pages(context, first) if p.policy == "payments-escalation")
    token = make_ack_token(context.settings.resolved_secret_key(), incident_id=first, person=paged.person)

    opened = api.get(f"/api/v1/ack/{token}")
    assert opened.status_code == 200, opened.text
    assert f"Acknowledge INC-{third}?" in opened.text
    assert f"you were paged as {paged.person} for INC-{first}, since merged into INC-{third}" in opened.text
    assert "API errors 3" in opened.text and '<form method="post">' in opened.text

    done = api.post(f"/api/v1/ack/{token}")
    assert done.status_code == 200 and f"INC-{third} acknowledged" in done.text, done.text
    with context.db.read() as session:
        assert incident_service.get_incident(session, third).acknowledged_by == paged.person
    running = escalations(context, third)
    assert {e.state for e in running.values()} == {EscalationState.acknowledged}
    actions = [e.action for e in timeline(context, third)]
    assert f"Acknowledged by {paged.person}" in actions
    assert (
        f"{paged.person} acknowledged with the link of a page for INC-{first}, which was merged into this "
        "incident"
    ) in actions
    again = api.get(f"/api/v1/ack/{token}")
    assert f"INC-{third} was already acknowledged" in again.text and "<form" not in again.text
    # Nothing more pages anyone.
    count = len(pages(context, third))
    run_at(worker, T0 + timedelta(hours=1))
    assert len(pages(context, third)) == count


def test_a_private_incident_merged_into_keeps_its_title_off_a_public_incidents_link(
    api: TestClient, context: AppContext
) -> None:
    clock.set(T0)
    public = open_incident(context, title="Checkout slow")
    private = open_incident(context, title="Fraud ring on checkout", is_private=True)
    merge(context, public, private)
    token = make_ack_token(context.settings.resolved_secret_key(), incident_id=public, person="carol")
    opened = api.get(f"/api/v1/ack/{token}")
    assert f"Acknowledge INC-{private}?" in opened.text
    assert "Checkout slow" in opened.text and "Fraud ring" not in opened.text


def test_a_run_carried_by_merges_goes_on_where_it_was(context: AppContext) -> None:
    """A rule's run of payments-escalation, carried by two merges: each time it goes on at the same step with
    the same deadline (it used to start again at step 1, paging its first step again), its origin says the
    merge and from which incident, and its next step is paged from the last incident at that deadline."""
    worker, first, second, third = chain(context)
    deadline = T0 + timedelta(minutes=15)  # the first incident's step 1 deadline (P1: 15 minutes)
    for incident_id, merged in ((second, first), (third, second)):
        assert start_payloads(context, incident_id, "payments-escalation") == []
        actions = [e.action for e in timeline(context, incident_id)]
        assert (
            f"Escalation carried over: payments-escalation was paging INC-{merged} (unacknowledged) and goes "
            f"on here at step 1, next step due {deadline:%H:%M:%S} UTC; nobody is paged again for the merge"
        ) in actions, actions
        assert not any(a.startswith("Paged step 1 of payments-escalation") for a in actions), actions
    with context.db.read() as session:
        paging = incident_paging(session, ref=f"INC-{third}")
    carried = next(e for e in paging.escalations if e.policy == "payments-escalation")
    assert (carried.origin, carried.merged_from, carried.step) == ("merge", f"INC-{second}", 1)
    assert carried.next_check_at == deadline

    run_at(worker, deadline)
    actions = [e.action for e in timeline(context, third)]
    assert any(
        a.startswith("Escalated to step 2 of payments-escalation (not acknowledged within 15m)")
        for a in actions
    ), actions
    reasons = [r for r in page_reasons(context, third, "payments-escalation") if "step 2" in r]
    assert reasons and all(
        r.endswith(f"it came with the merge of INC-{second} into INC-{third} by ic") for r in reasons
    ), reasons


def test_a_carried_run_whose_policy_a_reload_renamed_is_handed_over_at_its_deadline(
    context: AppContext,
) -> None:
    """A reload renames payments-escalation (and changes its repeat, so no policy does what it did) between
    the merge and the carried run's deadline: at the deadline it is handed over as any running escalation
    is."""
    clock.set(T0)
    worker = Worker(context, name="w1")
    source, target = open_incident(context), open_incident(context)
    rule_page(context, source)
    run_at(worker, T0)
    clock.set(T0 + timedelta(minutes=1))
    merge(context, source, target)
    run_at(worker, T0 + timedelta(minutes=1))

    renamed = reloaded(context.org, policies={"payments-escalation": "payments-v2"})
    policies = [
        p.model_copy(update={"repeat": 3}) if p.name == "payments-v2" else p
        for p in renamed.escalation_policies
    ]
    context.org = renamed.model_copy(update={"escalation_policies": policies})
    run_at(worker, T0 + timedelta(minutes=15))
    actions = [e.action for e in timeline(context, target)]
    assert any(
        a.startswith("Escalation handed over: policy 'payments-escalation' is no longer in the org file")
        for a in actions
    ), actions
    assert escalations(context, target)["payments-escalation"].state == EscalationState.superseded


def test_the_ack_link_of_a_merged_incident_already_acknowledged_names_the_incident_of_the_page(
    api: TestClient, context: AppContext
) -> None:
    """QA: opening the link answered only "INC-c was already acknowledged", never that the page was for INC-a,
    merged since."""
    _, first, _, third = chain(context)
    paged = next(p for p in pages(context, first) if p.policy == "payments-escalation")
    token = make_ack_token(context.settings.resolved_secret_key(), incident_id=first, person=paged.person)
    assert api.post(f"/api/v1/ack/{token}").status_code == 200
    for answer in (api.get(f"/api/v1/ack/{token}"), api.post(f"/api/v1/ack/{token}")):
        assert answer.status_code == 200, answer.text
        assert f"INC-{third} was already acknowledged" in answer.text
        assert f"your page was for INC-{first}, since merged into INC-{third}" in answer.text
