"""Pages a person asks for by hand: one person by name (``warroom oncall page INC-7 --person frank``), and a
policy's page asked for moments after another page reached the same people. Either carries who asked and why,
so neither is held back as a duplicate; an automatic page right after one rides on it as ever."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from tests.oncall.test_page_request import ask, escalations, paged_p1
from tests.oncall.test_paging import T0, open_incident, pages, run_at, timeline
from tests.oncall.test_raise_and_duplicates import deliveries_to, request_page
from warroom.cli.main import app
from warroom.clock import clock
from warroom.context import AppContext
from warroom.incidents import service as incident_service
from warroom.jobs.models import Job
from warroom.jobs.worker import Worker
from warroom.oncall.models import Escalation, PageStatus
from warroom.oncall.paging import BY_HAND


def why_lines(context: AppContext, incident_id: int, person: str, channel: str) -> list[str]:
    """The "Why you" line of each delivery to ``person`` on ``channel``, as they read it."""
    return [
        line.removeprefix("Why you: ")
        for delivery in deliveries_to(context, incident_id, person, channel)
        for line in delivery.body.splitlines()
        if line.startswith("Why you: ")
    ]


def test_a_responder_pages_one_person_by_name_from_the_cli(
    context: AppContext, oncall_cli: CliRunner, tokens: dict[str, str]
) -> None:
    """frank, a payments engineer, for a platform incident: no policy has him first, so he could only be
    reached through database-experts (with carol) or by his team's whole policy."""
    worker, incident_id = paged_p1(context)
    clock.set(T0 + timedelta(minutes=1))
    result = oncall_cli.invoke(
        app,
        ["oncall", "page", f"INC-{incident_id}", "--person", "frank", "--note", "card payments failing too"],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert f"page of frank requested for INC-{incident_id}" in result.output
    actions = [e.action for e in timeline(context, incident_id)]
    assert "Page requested by responder-user: frank (card payments failing too)" in actions

    run_at(worker, T0 + timedelta(minutes=1))
    franks = [p for p in pages(context, incident_id) if p.person == "frank"]
    assert [(p.policy, p.cycle, p.step, p.channel, p.status) for p in franks] == [
        (BY_HAND, 0, 0, "email", PageStatus.sent)
    ]
    assert franks[0].via == "paged by hand by responder-user"
    assert why_lines(context, incident_id, "frank", "email") == [
        "paged by hand by responder-user: card payments failing too"
    ]
    body = deliveries_to(context, incident_id, "frank", "email")[0].body
    assert "/api/v1/ack/" in body and "or this escalates" not in body  # no policy, no deadline
    actions = [e.action for e in timeline(context, incident_id)]
    assert (
        "Paged frank by hand (requested by responder-user: card payments failing too): email to "
        "frank@acme.example"
    ) in actions
    # No escalation of its own: the incident's policy goes on as it was, and nothing chases frank further.
    assert set(escalations(context, incident_id)) == {"platform-escalation"}
    run_at(worker, T0 + timedelta(hours=2))
    assert len(deliveries_to(context, incident_id, "frank", "email")) == 1

    listed = oncall_cli.invoke(app, ["oncall", "pages", f"INC-{incident_id}"], env={"COLUMNS": "200"})
    assert listed.exit_code == 0, listed.output
    assert any(BY_HAND in line and " frank " in line for line in listed.stdout.splitlines()), listed.stdout

    both = oncall_cli.invoke(
        app, ["oncall", "page", f"INC-{incident_id}", "--person", "frank", "--policy", "database-experts"]
    )
    assert both.exit_code == 2 and "give --policy or --person, not both" in both.output, both.output


def test_a_person_paged_by_hand_moments_after_an_automatic_page_gets_the_note(
    api: TestClient, context: AppContext, responder: dict[str, str]
) -> None:
    """carol, paged by platform-escalation 20 seconds before, was recorded a duplicate: the requester's note
    stayed on the timeline. Her delayed rule (slack in 5 minutes) carries it too; a rule's page of a policy
    she is on, seconds after the page by hand, rides on it."""
    worker, incident_id = paged_p1(context)
    clock.set(T0 + timedelta(seconds=20))
    answer = ask(api, responder, f"INC-{incident_id}", person="carol", note="you know this cache")
    assert answer.status_code == 202, answer.text
    assert answer.json() == {
        "incident": f"INC-{incident_id}",
        "policy": None,
        "person": "carol",
        "requested_by": "responder-user",
        "note": "you know this cache",
    }
    run_at(worker, T0 + timedelta(seconds=20))
    assert why_lines(context, incident_id, "carol", "email") == [
        "on call for platform-primary (step 1 of platform-escalation)",
        "paged by hand by responder-user: you know this cache",
    ]

    # A page of database-experts (carol is on its step 1) asked for by a rule 70 seconds after her first page
    # and 50 after the one by hand: the page by hand reached her moments ago, so this one rides on it.
    clock.set(T0 + timedelta(seconds=70))
    with context.db.write() as session:
        request_page(session, incident_id, "automation", policy="database-experts", rule="storage")
    run_at(worker, T0 + timedelta(seconds=70))
    carols = [
        p for p in pages(context, incident_id) if p.person == "carol" and p.policy == "database-experts"
    ]
    assert [p.status for p in carols] == [PageStatus.duplicate, PageStatus.duplicate]
    assert carols[0].error == (
        f"not sent: carol already paged for INC-{incident_id} by a page by hand by responder-user 50.0s ago, "
        "not sent again"
    )

    # Her slack rule, 5 minutes on (the incident still unacknowledged): the page by hand's one says why too.
    run_at(worker, T0 + timedelta(minutes=5, seconds=21))
    assert "paged by hand by responder-user: you know this cache" in why_lines(
        context, incident_id, "carol", "slack"
    )
    actions = [e.action for e in timeline(context, incident_id)]
    assert any(
        a.startswith("Paged carol via slack") and "(personal rule 2, a page by hand by responder-user)" in a
        for a in actions
    ), actions


def test_a_persons_delayed_rules_stop_when_someone_acknowledges(
    api: TestClient, context: AppContext, responder: dict[str, str]
) -> None:
    worker, incident_id = paged_p1(context)
    assert ask(api, responder, f"INC-{incident_id}", person="carol").status_code == 202
    run_at(worker, T0)
    clock.set(T0 + timedelta(minutes=1))
    with context.db.write() as session:
        incident_service.acknowledge(session, ref=incident_id, performer="carol")
    run_at(worker, T0 + timedelta(minutes=10))
    assert deliveries_to(context, incident_id, "carol", "slack") == []
    by_hand = [p for p in pages(context, incident_id) if p.policy == BY_HAND]
    assert [(p.channel, p.status) for p in by_hand] == [
        ("email", PageStatus.sent),
        ("slack", PageStatus.cancelled),
    ]
    # Acknowledged, a person may still be asked for (to join): their immediate rules go out.
    clock.set(T0 + timedelta(minutes=11))
    assert ask(api, responder, f"INC-{incident_id}", person="frank", note="join us").status_code == 202
    run_at(worker, T0 + timedelta(minutes=11))
    assert len(deliveries_to(context, incident_id, "frank", "email")) == 1


def test_a_policy_a_person_asks_for_reaches_someone_paged_moments_before_once_per_pass(
    api: TestClient, context: AppContext, responder: dict[str, str]
) -> None:
    """A P0 (all hands) pages carol through platform-escalation; 10 seconds on, a responder asks for
    database-experts, all hands too, with carol on its step 1 and (with the platform team) its step 2. She
    gets the request's page, with its note, once."""
    clock.set(T0)
    worker = Worker(context, name="w1")
    incident_id = open_incident(context, severity="P0")
    run_at(worker, T0)
    clock.set(T0 + timedelta(seconds=10))
    answer = ask(api, responder, f"INC-{incident_id}", policy="database-experts", note="disk full on db-2")
    assert answer.status_code == 202, answer.text
    run_at(worker, T0 + timedelta(seconds=10))
    carols = [
        (p.step, p.channel, p.status)
        for p in pages(context, incident_id)
        if p.person == "carol" and p.policy == "database-experts"
    ]
    assert carols == [
        (1, "email", PageStatus.sent),
        (1, "slack", PageStatus.scheduled),
        (2, "email", PageStatus.duplicate),
        (2, "slack", PageStatus.duplicate),
    ]
    reasons = why_lines(context, incident_id, "carol", "email")
    assert len(reasons) == 2 and reasons[1].endswith(
        "(step 1 of database-experts); responder-user asked for this page: disk full on db-2"
    ), reasons


@pytest.mark.parametrize(
    ("headers_of", "ref", "body", "status", "words"),
    [
        ("viewer", None, {"person": "frank"}, 403, ""),
        (None, None, {"person": "frank"}, 401, ""),
        ("responder", None, {"person": "zed"}, 422, "no person 'zed'; known: alice, bob"),
        ("responder", None, {"person": ""}, 422, "person"),
        ("responder", None, {"person": "frank", "policy": "database-experts"}, 422, "not both"),
        ("responder", None, {"person": "frank", "note": "two\nlines"}, 422, "note"),
        ("responder", None, {"person": ["frank"]}, 422, "person"),
        ("responder", "INC-99", {"person": "frank"}, 404, "INC-99"),
        ("responder", "resolved", {"person": "frank"}, 409, "is resolved; reopen it"),
        ("responder", "twice", {"person": "frank"}, 409, "a page of frank for INC-"),
    ],
)
def test_bad_requests_for_a_person_change_nothing(
    api: TestClient,
    context: AppContext,
    tokens: dict[str, str],
    headers_of: str | None,
    ref: str | None,
    body: dict[str, Any],
    status: int,
    words: str,
) -> None:
    incident_id = open_incident(context)
    if ref == "resolved":
        with context.db.write() as session:
            incident_service.resolve(session, org=context.org, ref=incident_id, performer="tester")
    headers = {"Authorization": f"Bearer {tokens[headers_of]}"} if headers_of else {}
    target = ref if ref and ref.startswith("INC") else f"INC-{incident_id}"
    if ref == "twice":  # a double click: the first is about to go out
        assert ask(api, headers, target, **body).status_code == 202
    with context.db.read() as session:
        before = (
            len(timeline(context, incident_id)),
            session.scalar(select(func.count()).select_from(Job)),
            session.scalar(select(func.count()).select_from(Escalation)),
        )
    response = ask(api, headers, target, **body)
    assert response.status_code == status, response.text
    assert words in response.text
    with context.db.read() as session:
        after = (
            len(timeline(context, incident_id)),
            session.scalar(select(func.count()).select_from(Job)),
            session.scalar(select(func.count()).select_from(Escalation)),
        )
    assert after == before
