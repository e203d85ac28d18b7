"""A person asks for a page (``POST /api/v1/incidents/{ref}/pages``, ``warroom oncall page``): another team's
policy, or the incident's own again; bad requests change nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from rich.cells import cell_len
from sqlalchemy import func, select
from typer.testing import CliRunner

from tests.oncall.test_paging import T0, open_incident, run_at, sent, timeline
from warroom.alerts import automation
from warroom.cli.main import app
from warroom.clock import clock
from warroom.context import AppContext
from warroom.incidents import service as incident_service
from warroom.jobs.models import Job
from warroom.jobs.worker import Worker
from warroom.notify.models import Delivery
from warroom.oncall.models import Escalation, Page, PageStatus


def ask(api: TestClient, headers: dict[str, str], ref: str, **body: Any) -> Any:
    return api.post(f"/api/v1/incidents/{ref}/pages", json=body, headers=headers)


def escalations(context: AppContext, incident_id: int) -> dict[str, Escalation]:
    with context.db.read() as session:
        rows = session.scalars(select(Escalation).where(Escalation.incident_id == incident_id))
        return {row.policy: row for row in rows}


def page_reasons(context: AppContext, incident_id: int, policy: str) -> list[str]:
    """The "Why you" line of each delivered page of the policy, as the person reads it."""
    with context.db.read() as session:
        bodies = session.scalars(
            select(Delivery.body)
            .join(Page, Page.delivery_id == Delivery.id)
            .where(
                Page.incident_id == incident_id,
                Page.policy == policy,
                Page.status != PageStatus.duplicate,  # rides on another page's delivery
            )
        ).all()
    return [
        line.removeprefix("Why you: ") for body in bodies for line in body.splitlines() if "Why you" in line
    ]


def paged_p1(context: AppContext) -> tuple[Worker, int]:
    """A P1 on api whose first page (platform-escalation, step 1) has gone out."""
    clock.set(T0)
    worker = Worker(context, name="w1")
    incident_id = open_incident(context)
    run_at(worker, T0)
    return worker, incident_id


def test_a_responder_pages_another_teams_policy_with_a_note(
    api: TestClient, context: AppContext, responder: dict[str, str]
) -> None:
    worker, incident_id = paged_p1(context)
    assert sent(context, incident_id) == [("carol", "email", 1, 1)]  # platform-escalation, step 1

    response = ask(
        api, responder, f"INC-{incident_id}", policy="database-experts", note="replication lag 40s"
    )
    assert response.status_code == 202, response.text
    assert response.json() == {
        "incident": f"INC-{incident_id}",
        "policy": "database-experts",
        "person": None,
        "requested_by": "responder-user",
        "note": "replication lag 40s",
    }
    run_at(worker, T0 + timedelta(seconds=5))
    # database-experts step 1: carol and frank by email (slack waits 5m). carol was paged by
    # platform-escalation 5 seconds before, but this page says who asked and why: she gets it too.
    assert sorted(p for p in sent(context, incident_id) if p[0] == "frank") == [("frank", "email", 1, 1)]
    with context.db.read() as session:
        carols = session.scalars(
            select(Page.status).where(
                Page.incident_id == incident_id, Page.policy == "database-experts", Page.person == "carol"
            )
        ).all()
    assert carols == [PageStatus.sent, PageStatus.scheduled]
    reasons = page_reasons(context, incident_id, "database-experts")
    assert reasons and all(
        r.endswith("(step 1 of database-experts); responder-user asked for this page: replication lag 40s")
        for r in reasons
    ), reasons
    actions = [e.action for e in timeline(context, incident_id)]
    assert (
        "Page requested by responder-user: escalation policy database-experts (replication lag 40s)"
        in actions
    )
    assert any(
        a.startswith(
            "Paged step 1 of database-experts (page requested by responder-user: replication lag 40s)"
        )
        for a in actions
    ), actions
    running = escalations(context, incident_id)
    assert running["database-experts"].requested_by == "responder-user"
    assert running["platform-escalation"].requested_by is None  # the incident's own runs on beside it

    # The request's run escalates like any other: step 2 (the platform team) at step 1's deadline.
    run_at(worker, T0 + timedelta(minutes=16))
    assert escalations(context, incident_id)["database-experts"].step == 2
    step_two = [r for r in page_reasons(context, incident_id, "database-experts") if "step 2" in r]
    assert step_two and all("responder-user asked for this page" in r for r in step_two)

    # Asking again while it still pages nobody who answered: 409, nothing new.
    again = ask(api, responder, f"INC-{incident_id}", policy="database-experts")
    assert again.status_code == 409 and "already paging" in again.json()["error"]["message"], again.text


def test_the_incidents_own_policy_again_after_it_was_acknowledged(
    api: TestClient, context: AppContext, responder: dict[str, str]
) -> None:
    worker, incident_id = paged_p1(context)
    busy = ask(api, responder, f"INC-{incident_id}")
    assert busy.status_code == 409 and "platform-escalation is already paging" in busy.text, busy.text
    with context.db.write() as session:
        # Not carol: whoever acknowledged is not paged by the request (test_paging_carry_acknowledger).
        incident_service.acknowledge(session, ref=incident_id, performer="ic")

    response = ask(api, responder, f"INC-{incident_id}", note="need more hands")
    assert response.status_code == 202 and response.json()["policy"] == "platform-escalation", response.text
    run_at(worker, T0 + timedelta(minutes=1))
    # Paged again from step 1 (a new cycle), and not chased past it: the incident is acknowledged.
    assert sent(context, incident_id)[-1] == ("carol", "email", 2, 1)
    assert escalations(context, incident_id)["platform-escalation"].state == "acknowledged"
    run_at(worker, T0 + timedelta(hours=2))
    assert {(p[2], p[3]) for p in sent(context, incident_id)} == {(1, 1), (2, 1)}


def test_a_second_request_before_the_worker_ran_is_refused(
    api: TestClient, context: AppContext, responder: dict[str, str]
) -> None:
    """Two requests a moment apart: the second was answered 202 and then dropped as "already escalating",
    its note never sent."""
    _, incident_id = paged_p1(context)
    first = ask(api, responder, f"INC-{incident_id}", policy="database-experts", note="n1")
    assert first.status_code == 202, first.text
    second = ask(api, responder, f"INC-{incident_id}", policy="database-experts", note="n2")
    assert second.status_code == 409 and "is about to go out" in second.text, second.text
    actions = [e.action for e in timeline(context, incident_id)]
    assert sum(a.startswith("Page requested by") for a in actions) == 1


def test_no_policy_to_page(api: TestClient, context: AppContext, responder: dict[str, str]) -> None:
    incident_id = open_incident(context, severity="P3", services=[])
    response = ask(api, responder, f"INC-{incident_id}")
    assert response.status_code == 422, response.text
    assert "no escalation policy covers P3" in response.json()["error"]["message"]
    # Named, it pages even at a level that pages nobody by itself.
    assert ask(api, responder, f"INC-{incident_id}", policy="database-experts").status_code == 202


@pytest.mark.parametrize(
    ("headers_of", "ref", "body", "status", "words"),
    [
        ("viewer", None, {"policy": "database-experts"}, 403, ""),
        (None, None, {"policy": "database-experts"}, 401, ""),
        ("responder", None, {"policy": "nope"}, 422, "no escalation policy 'nope'; known:"),
        ("responder", None, {"policy": ""}, 422, "policy"),
        ("responder", None, {"policy": "database-experts", "note": "two\nlines"}, 422, "note"),
        ("responder", None, {"policy": "database-experts", "note": "x" * 301}, 422, "note"),
        ("responder", None, {"policy": "database-experts", "urgent": True}, 422, "urgent"),
        ("responder", None, {"policy": 7}, 422, "policy"),
        ("responder", "INC-99", {"policy": "database-experts"}, 404, "INC-99"),
        ("responder", "resolved", {"policy": "database-experts"}, 409, "is resolved; reopen it"),
        ("responder", "merged", {"policy": "database-experts"}, 409, "was merged into INC-"),
    ],
)
def test_bad_requests_change_nothing(
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
    if ref == "merged":
        target_id = open_incident(context)
        with context.db.write() as session:
            source = incident_service.get_incident(session, incident_id, for_update=True)
            target = incident_service.get_incident(session, target_id, for_update=True)
            automation.merge_into(session, context.org, source, target, performer="tester", note=None)
        words = f"was merged into INC-{target_id}: page INC-{target_id} instead"
    with context.db.read() as session:
        before = (
            len(timeline(context, incident_id)),
            session.scalar(select(func.count()).select_from(Job)),
        )
    headers = {"Authorization": f"Bearer {tokens[headers_of]}"} if headers_of else {}
    response = ask(api, headers, ref if ref and ref.startswith("INC") else f"INC-{incident_id}", **body)
    assert response.status_code == status, response.text
    assert words in response.text
    with context.db.read() as session:
        after = (
            len(timeline(context, incident_id)),
            session.scalar(select(func.count()).select_from(Job)),
        )
    assert after == before


def test_the_cli_refuses_a_policy_or_note_given_twice(
    context: AppContext, oncall_cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Click kept the last ``--policy`` silently: the wrong team was paged."""
    incident_id = open_incident(context)
    before = len(timeline(context, incident_id)), len(escalations(context, incident_id))
    for twice in (
        ["--policy", "database-experts", "--policy", "platform-escalation"],
        ["--policy", "database-experts", "--note", "lag", "--note", "disk"],
    ):
        result = oncall_cli.invoke(
            app, ["oncall", "page", f"INC-{incident_id}", *twice], env={"COLUMNS": "200"}
        )
        assert result.exit_code == 2 and "was given twice; it takes one value" in result.output, result.output
    assert (len(timeline(context, incident_id)), len(escalations(context, incident_id))) == before
    # The other oncall commands refuse the same.
    result = oncall_cli.invoke(
        app, ["oncall", "who", "--at", "2026-03-02T10:00Z", "--at", "2026-03-03T10:00Z"]
    )
    assert result.exit_code == 2 and "--at was given twice" in result.output, result.output


def test_the_pages_table_says_which_policy_paged(context: AppContext, oncall_cli: CliRunner) -> None:
    """With a requested policy paging beside the incident's own, the pages of the two were told apart only
    in --json."""
    worker, incident_id = paged_p1(context)
    # Later than a minute: carol's page of database-experts is not a duplicate of her first.
    clock.set(T0 + timedelta(minutes=2))
    requested = oncall_cli.invoke(
        app, ["oncall", "page", f"INC-{incident_id}", "--policy", "database-experts"]
    )
    assert requested.exit_code == 0, requested.output
    run_at(worker, T0 + timedelta(minutes=2, seconds=5))
    for columns in (200, 80):
        result = oncall_cli.invoke(
            app, ["oncall", "pages", f"INC-{incident_id}"], env={"COLUMNS": str(columns)}
        )
        assert result.exit_code == 0, result.output
        assert max(cell_len(line) for line in result.stdout.splitlines()) <= columns, result.stdout
        escalations, pages = result.stdout.split("Pages", 1)
        if columns == 200:  # what a raise would supersede: only the incident's own run
            runs = [" ".join(line.split()) for line in escalations.splitlines()]
            assert any("platform-escalation │ incident" in run for run in runs), escalations
            assert any("database-experts │ person" in run for run in runs), escalations
        rows = [line for line in pages.splitlines() if " carol " in line or " frank " in line]
        assert any("platform-escalation" in row and " carol " in row for row in rows), pages
        assert any("database-experts" in row and " frank " in row for row in rows), pages
