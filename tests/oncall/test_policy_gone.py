"""An escalation whose policy a reload renamed or removed: the reload names its incidents, and at the next
deadline the policy the incident would get now takes over (or, with none, the escalation stops, said so)
instead of stopping as "exhausted" with nobody else paged."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from tests.oncall.test_paging import T0, open_incident, pages, run_at, timeline
from warroom.clock import clock
from warroom.context import AppContext
from warroom.events import DomainEvent, publish
from warroom.incidents import service as incident_service
from warroom.jobs.worker import Worker
from warroom.oncall import paging
from warroom.oncall.models import Escalation, EscalationState, PageStatus
from warroom.orgconfig import OrgConfig

OLD = "platform-escalation"
NEW = "platform-escalation-v2"


def reloaded(org: OrgConfig, *, policies: dict[str, str | None], **services: dict[str, Any]) -> OrgConfig:
    """``org`` as a reload would give it with ``policies`` renamed (None: removed) wherever they are named,
    and ``services`` changed (name -> fields)."""

    def renamed(name: str | None) -> str | None:
        return policies.get(name, name) if name is not None else None

    return org.model_copy(
        update={
            "escalation_policies": [
                p.model_copy(update={"name": policies.get(p.name, p.name)})
                for p in org.escalation_policies
                if policies.get(p.name, p.name) is not None
            ],
            "services": [
                s.model_copy(
                    update={"escalation_policy": renamed(s.escalation_policy), **services.get(s.name, {})}
                )
                for s in org.services
            ],
            "teams": [
                t.model_copy(update={"escalation_policy": renamed(t.escalation_policy)}) for t in org.teams
            ],
        }
    )


def escalations(context: AppContext, incident_id: int) -> dict[str, Escalation]:
    with context.db.read() as session:
        rows = session.scalars(select(Escalation).where(Escalation.incident_id == incident_id))
        return {row.policy: row for row in rows}


def losing(context: AppContext, org: OrgConfig) -> list[str]:
    with context.db.read() as session:
        return paging.escalations_losing_policy(session, org)


def started(context: AppContext, **fields: Any) -> tuple[Worker, int]:
    """A P1 on api, paged at T0: step 1 of platform-escalation (carol), its deadline at T0 + 15m."""
    clock.set(T0)
    worker = Worker(context, name="w1")
    incident_id = open_incident(context, **fields)
    run_at(worker, T0)
    first = pages(context, incident_id)[0]
    assert (first.person, first.policy, first.step) == ("carol", OLD, 1)
    return worker, incident_id


def test_a_renamed_policy_takes_over_where_the_escalation_was(context: AppContext) -> None:
    worker, incident_id = started(context)
    new = reloaded(context.org, policies={OLD: NEW})
    assert losing(context, new) == [
        f"escalation policy {OLD!r} is not in the new file but escalates 1 unacknowledged incident; at the "
        f"next deadline, INC-{incident_id} (P1): {NEW} takes over (the same policy renamed)"
    ]
    context.org = new
    run_at(worker, T0 + timedelta(minutes=15))
    # Step 1 (carol) was paged under the old name: the renamed policy goes on to its step 2, alice.
    paged = [(p.person, p.policy, p.step) for p in pages(context, incident_id) if p.channel == "email"]
    assert paged == [("carol", OLD, 1), ("alice", NEW, 2)]
    rows = escalations(context, incident_id)
    assert rows[OLD].state == EscalationState.superseded and rows[OLD].next_check_at is None
    assert (rows[NEW].state, rows[NEW].step, rows[NEW].mode) == (EscalationState.active, 2, "escalate")
    assert rows[NEW].next_check_at == T0 + timedelta(minutes=25)  # as the old policy would have had it
    actions = [e.action for e in timeline(context, incident_id)]
    assert (
        f"Escalation handed over: policy {OLD!r} is no longer in the org file; {NEW}, the same policy "
        "renamed, takes over from step 2" in actions
    )
    assert not any("exhausted" in action for action in actions)
    assert losing(context, new) == []

    # It escalates on from there, and acknowledging stops it.
    run_at(worker, T0 + timedelta(minutes=25))
    assert escalations(context, incident_id)[NEW].step == 3
    with context.db.write() as session:
        incident_service.acknowledge(session, ref=incident_id, performer="grace")
    run_at(worker, T0 + timedelta(hours=3))
    rows = escalations(context, incident_id)
    assert rows[NEW].state == EscalationState.acknowledged and rows[OLD].state == EscalationState.superseded


def test_a_renamed_policy_goes_on_where_no_other_covers_the_incident(context: AppContext) -> None:
    """The renamed policy was the only one paging the incident (nothing maps P1 on api to a policy now): it
    used to stop ("nobody more is paged") although the same policy was in the file under its new name."""
    worker, incident_id = started(context)
    new = reloaded(context.org, policies={OLD: NEW}, api={"escalation_policy": None, "owner_team": None})
    context.org = new.model_copy(update={"severity_policies": {}})
    run_at(worker, T0 + timedelta(minutes=15))
    rows = escalations(context, incident_id)
    assert rows[OLD].state == EscalationState.superseded
    assert (rows[NEW].state, rows[NEW].step) == (EscalationState.active, 2)
    paged = [(p.person, p.policy, p.step) for p in pages(context, incident_id) if p.channel == "email"]
    assert paged == [("carol", OLD, 1), ("alice", NEW, 2)]


def test_another_policy_that_covers_the_incident_now_takes_over_from_its_first_step(
    context: AppContext,
) -> None:
    worker, incident_id = started(context)
    # platform-escalation removed; api is now paged through payments-escalation, whose step 1 (payments on
    # call) is not whom step 1 paged (carol): nobody on it has been paged for this, so it starts there.
    context.org = reloaded(
        context.org, policies={OLD: None}, api={"escalation_policy": "payments-escalation"}
    )
    run_at(worker, T0 + timedelta(minutes=15))
    rows = escalations(context, incident_id)
    assert rows[OLD].state == EscalationState.superseded
    assert (rows["payments-escalation"].state, rows["payments-escalation"].step) == ("active", 1)
    handed = [p for p in pages(context, incident_id) if p.policy == "payments-escalation"]
    assert handed and {p.step for p in handed} == {1}
    said = "payments-escalation, the policy for P1 on api now, takes over from step 1"
    assert any(said in e.action for e in timeline(context, incident_id))


def test_a_team_s_generated_policy_takes_over_when_the_named_one_is_gone(context: AppContext) -> None:
    worker, incident_id = started(context)
    new = reloaded(context.org, policies={OLD: None})  # api's owner team, platform, keeps an implied policy
    assert losing(context, new)[0].endswith(f"INC-{incident_id} (P1): platform-default takes over")
    context.org = new
    run_at(worker, T0 + timedelta(minutes=15))
    assert escalations(context, incident_id)["platform-default"].state == EscalationState.active


def test_with_no_policy_for_the_incident_now_the_escalation_stops_and_says_why(context: AppContext) -> None:
    worker, incident_id = started(context)
    new = reloaded(context.org, policies={OLD: None}, api={"escalation_policy": None, "owner_team": None})
    assert losing(context, new)[0].endswith(
        f"INC-{incident_id} (P1): it stops (no escalation policy covers P1 on api now)"
    )
    context.org = new
    run_at(worker, T0 + timedelta(minutes=15))
    row = escalations(context, incident_id)[OLD]
    assert (row.state, row.next_check_at) == (EscalationState.policy_gone, None)
    last = next(e for e in timeline(context, incident_id) if e.action.startswith("Escalation stopped"))
    assert last.action.startswith(
        f"Escalation stopped: policy {OLD!r} is no longer in the org file, and no escalation policy covers "
        "P1 on api now, so nobody more is paged for it"
    )
    assert last.data["reason"] == "policy_gone"
    assert [p.step for p in pages(context, incident_id) if p.status == PageStatus.sent] == [1, 1]  # carol's


def test_a_policy_already_escalating_the_incident_goes_on_as_it_is(context: AppContext) -> None:
    worker, incident_id = started(context)
    with context.db.write() as session:  # a rule asks for database-experts too, alongside
        publish(
            session,
            DomainEvent("incident.page_requested", incident_id, "alerts", {"policy": "database-experts"}),
        )
    run_at(worker, T0 + timedelta(seconds=1))
    context.org = reloaded(context.org, policies={"database-experts": None})
    before = len(pages(context, incident_id))
    run_at(worker, T0 + timedelta(minutes=15, seconds=1))  # both deadlines
    rows = escalations(context, incident_id)
    assert rows["database-experts"].state == EscalationState.superseded
    assert (rows[OLD].state, rows[OLD].step) == (EscalationState.active, 2)  # its own deadline escalated it
    assert all(p.policy == OLD for p in pages(context, incident_id)[before:])
    assert any(
        e.action == "Escalation handed over: policy 'database-experts' is no longer in the org file; "
        f"{OLD}, the policy for P1 on api now, already escalates this incident"
        for e in timeline(context, incident_id)
    )


def test_a_severity_that_pages_nobody_now_stops_it_as_silent(context: AppContext) -> None:
    worker, incident_id = started(context)
    new = reloaded(context.org, policies={OLD: NEW}).model_copy(
        update={"paging_modes": {**context.org.paging_modes, "P1": "none"}}
    )
    assert losing(context, new)[0].endswith(f"INC-{incident_id} (P1): it stops (P1 pages nobody)")
    context.org = new
    run_at(worker, T0 + timedelta(minutes=15))
    assert escalations(context, incident_id)[OLD].state == EscalationState.silent
    assert any(
        e.action == f"Escalation stopped: policy {OLD!r} is no longer in the org file, and P1 pages nobody, "
        "so nobody more is paged for it"
        for e in timeline(context, incident_id)
    )


def test_after_a_rename_the_running_escalation_is_the_policy_it_goes_on_as(context: AppContext) -> None:
    """A reload renamed the policy paging the incident: a person's page of the incident's own policy is
    refused as already paging (it paged carol twice at once), and a snooze's reminder goes to the policy
    under its new name (it paged nobody: "unknown escalation policy")."""
    from fastapi.testclient import TestClient

    from warroom.app import create_app
    from warroom.auth import service as auth_service
    from warroom.auth.models import Role

    worker, incident_id = started(context)
    context.org = reloaded(context.org, policies={OLD: NEW})
    with context.db.write() as session:
        token = auth_service.create_token(session, name="alice", role=Role.responder).token
    with TestClient(create_app(context=context)) as api:
        again = api.post(
            f"/api/v1/incidents/INC-{incident_id}/pages",
            json={},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert again.status_code == 409 and f"{NEW} is already paging" in again.text, again.text

    with context.db.write() as session:
        incident_service.acknowledge(session, ref=incident_id, performer="carol")
    with context.db.write() as session:
        paging.request_reminder(
            session, incident_id=incident_id, trigger="snooze_ended", at=T0 + timedelta(minutes=5)
        )
    run_at(worker, T0 + timedelta(minutes=5))
    reminded = [p for p in pages(context, incident_id) if p.status == PageStatus.sent and p.policy == NEW]
    assert [(p.person, p.step) for p in reminded] == [("carol", 1)]
    assert not any("unknown escalation policy" in e.action for e in timeline(context, incident_id))


def _rule_page_asked_then_renamed(context: AppContext, *, rename_rule: bool) -> list[str]:
    """An error on payments asks for the critical-monitoring rule's page (platform-escalation, beside the
    payments service's own policy); then a reload renames that policy to platform-v2 (the rule pages it,
    renamed too with ``rename_rule``) before the worker runs. The incident's timeline after the run."""
    from fastapi.testclient import TestClient

    from tests.alerts.conftest import make_key
    from warroom.app import create_app

    clock.set(T0)
    key = make_key(context, "generic")
    with TestClient(create_app(context=context)) as api:
        alert = {"summary": "refunds slow", "severity": "error", "service": "payments"}
        answer = api.post(f"/api/v1/alerts?key={key}", json=alert)
        assert answer.status_code == 202, answer.text
    incident_id = int(answer.json()["alerts"][0]["incident"].removeprefix("INC-"))
    renamed = reloaded(context.org, policies={OLD: "platform-v2"})
    rules = [
        rule.model_copy(
            update={"page": "platform-v2", **({"name": f"{rule.name}-v2"} if rename_rule else {})}
        )
        if rule.page == OLD
        else rule
        for rule in renamed.automation.rules
    ]
    context.org = renamed.model_copy(
        update={"automation": renamed.automation.model_copy(update={"rules": rules})}
    )
    worker = Worker(context, name="w1")
    run_at(worker, T0)
    run_at(worker, T0 + timedelta(seconds=1))  # the replacement's start
    paged = {p.policy for p in pages(context, incident_id)}
    assert "platform-v2" in paged and OLD not in paged
    actions = [e.action for e in timeline(context, incident_id)]
    assert not any("unknown escalation policy" in action for action in actions)
    return actions


def test_a_rules_page_renamed_before_the_worker_runs_pages_the_policy_the_rule_names_now(
    context: AppContext,
) -> None:
    """The page goes to the policy under its new name, said on the timeline, instead of to nobody ("unknown
    escalation policy")."""
    actions = _rule_page_asked_then_renamed(context, rename_rule=False)
    assert (
        f"Escalation policy '{OLD}' is no longer in the org file; platform-v2 is paged instead "
        "(rule critical-monitoring pages it now)"
    ) in actions


def test_a_page_of_a_policy_renamed_with_its_rule_goes_to_the_policy_with_the_same_steps(
    context: AppContext,
) -> None:
    """While another server still routes by the old rule, the rule is not found by its old name, but a policy
    doing exactly what the old one did is."""
    actions = _rule_page_asked_then_renamed(context, rename_rule=True)
    assert (
        f"Escalation policy '{OLD}' is no longer in the org file; platform-v2 is paged instead "
        "(it has the same steps)"
    ) in actions
