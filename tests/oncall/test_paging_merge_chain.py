"""Merges in a chain (INC-a into INC-b, then INC-b into INC-c): what is about INC-a (a page asked for it, the
acknowledge link of a page it sent) goes to INC-c, where its alerts and pages are now; and a page a merge
carries over keeps the rule whose ``page`` started it."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.oncall.test_merge_paging import merge
from tests.oncall.test_page_request import ask, escalations
from tests.oncall.test_paging import T0, open_incident, pages, run_at, timeline
from tests.oncall.test_policy_gone import reloaded
from tests.oncall.test_raise_and_duplicates import request_page
from warroom.clock import clock
from warroom.context import AppContext
from warroom.incidents import service as incident_service
from warroom.jobs.models import Job
from warroom.jobs.worker import Worker
from warroom.oncall.links import make_ack_token
from warroom.oncall.models import EscalationState, PageStatus
from warroom.oncall.paging import START_KIND

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


def test_a_page_carried_by_merges_keeps_the_rule_that_started_it(context: AppContext) -> None:
    """Carried over, a rule's page became one that "names no rule": a reload renaming the policy before the
    worker ran paged nobody, and the timeline could not say which rule had asked."""
    _, first, second, third = chain(context)
    for incident_id, merged in ((second, first), (third, second)):
        payloads = start_payloads(context, incident_id, "payments-escalation")
        assert [(p.get("rule"), p.get("merged_from")) for p in payloads] == [(RULE, merged)], payloads
        actions = [e.action for e in timeline(context, incident_id)]
        assert any(
            a.startswith(
                "Paged step 1 of payments-escalation (page requested by automation for rule "
                f"{RULE}, carried over by the merge of INC-{merged})"
            )
            for a in actions
        ), actions
        assert escalations(context, incident_id)["payments-escalation"].origin == "rule"


def test_a_carried_page_follows_its_rule_through_a_reload(context: AppContext) -> None:
    """A reload renames payments-escalation (and changes its repeat, so no policy does what it did) and points
    the rule at the new name, between the merge and the worker's run: the carried page goes where the rule
    pages now."""
    clock.set(T0)
    worker = Worker(context, name="w1")
    source, target = open_incident(context), open_incident(context)
    rule_page(context, source)
    run_at(worker, T0)
    clock.set(T0 + timedelta(minutes=1))
    merge(context, source, target)

    renamed = reloaded(context.org, policies={"payments-escalation": "payments-v2"})
    policies = [
        p.model_copy(update={"repeat": 3}) if p.name == "payments-v2" else p
        for p in renamed.escalation_policies
    ]
    rules = [
        r.model_copy(update={"page": "payments-v2"}) if r.name == RULE else r
        for r in renamed.automation.rules
    ]
    context.org = renamed.model_copy(
        update={
            "escalation_policies": policies,
            "automation": renamed.automation.model_copy(update={"rules": rules}),
        }
    )
    run_at(worker, T0 + timedelta(minutes=1))
    run_at(worker, T0 + timedelta(minutes=1, seconds=1))  # the replacement's start
    actions = [e.action for e in timeline(context, target)]
    assert not any("unknown escalation policy" in a for a in actions), actions
    assert (
        "Escalation policy 'payments-escalation' is no longer in the org file; payments-v2 is paged instead "
        f"(rule {RULE} pages it now)"
    ) in actions
    assert any(p.policy == "payments-v2" and p.status == PageStatus.sent for p in pages(context, target))
