"""Alert routing around a snooze, a rule's delay, the storm guard, flapping and promotion: an alert that got
worse while snoozed, one delay job per alert, a storm-guard join into a monitored incident, what restarts a
flapping incident's calm-down clock, and a forced promotion of a resolved alert."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.alerts.test_rule_delay import T0
from tests.alerts.test_source_ack import run_at, sent_pages, timeline
from warroom.alerts.automation import DELAY_KIND
from warroom.alerts.config import AutomationRule, StormGuard
from warroom.alerts.models import Alert, AlertNote
from warroom.alerts.service import SNOOZE_KIND
from warroom.clock import clock
from warroom.context import AppContext
from warroom.events import DomainEvent
from warroom.incidents.models import Incident
from warroom.jobs.models import Job, JobStatus
from warroom.jobs.worker import Worker


def send(api: TestClient, key: str, **fields: Any) -> dict[str, Any]:
    body = {"summary": "search failing", "service": "search", "labels": {"alertname": "SearchDown"}, **fields}
    answer = api.post(f"/api/v1/alerts?key={key}", json=body)
    assert answer.status_code == 202, answer.text
    alert: dict[str, Any] = answer.json()["alerts"][0]
    return alert


def delay_jobs(context: AppContext, alert_id: int) -> list[Job]:
    with context.db.read() as session:
        return list(
            session.scalars(
                select(Job)
                .where(Job.kind == DELAY_KIND, Job.payload["alert_id"].as_integer() == alert_id)
                .order_by(Job.id)
            )
        )


def delay_critical(context: AppContext, *first: AutomationRule) -> AppContext:
    """The example org with a 5-minute delay on critical-monitoring, and the rules ``first`` before it."""
    rules = [
        rule.model_copy(update={"incident": rule.incident.model_copy(update={"delay": timedelta(minutes=5)})})
        if rule.name == "critical-monitoring" and rule.incident is not None
        else rule
        for rule in context.org.automation.rules
    ]
    automation = context.org.automation.model_copy(update={"rules": [*first, *rules]})
    context.org = context.org.model_copy(update={"automation": automation})
    return context


def incidents(context: AppContext) -> list[Incident]:
    with context.db.read() as session:
        return list(session.scalars(select(Incident).order_by(Incident.id)))


# --- a rise while waiting out a rule's delay ---------------------------------------------------------------


def test_a_rise_while_waiting_out_a_delay_keeps_one_job(
    api: TestClient, context: AppContext, generic_key: str, page_requests: list[DomainEvent]
) -> None:
    """An error waits out critical-monitoring's 5 minutes; turning critical meant a second job of its own
    (the rules ran twice when the delay was over). One job per alert: it stays where it was, as the
    rise's own delay would end later."""
    delayed = delay_critical(context)
    clock.set(T0)
    worker = Worker(delayed, name="w1")
    alert = send(api, generic_key, severity="error", dedup_key="s1")
    clock.set(T0 + timedelta(minutes=1))
    assert send(api, generic_key, severity="critical", dedup_key="s1")["incident"] is None  # still waiting
    [job] = delay_jobs(delayed, alert["id"])
    assert (job.status, job.run_at) == (JobStatus.pending, T0 + timedelta(minutes=5))
    run_at(worker, T0 + timedelta(minutes=5))
    [opened] = incidents(delayed)
    assert opened.severity == "P1" and opened.created_at == T0 + timedelta(minutes=5)
    assert [event.data["policy"] for event in page_requests] == ["platform-escalation"]
    run_at(worker, T0 + timedelta(minutes=30))
    assert [job.result for job in delay_jobs(delayed, alert["id"])] == [
        {"opened": True, "incident": "INC-1", "joined": []}
    ]


def test_a_rise_onto_a_shorter_delay_moves_the_one_job_sooner(
    api: TestClient, context: AppContext, generic_key: str, page_requests: list[DomainEvent]
) -> None:
    """A search warning waits 30 minutes (rule slow-warnings), turns critical after one: critical-monitoring
    waits 5. The alert's one job runs then, by the rule it waits for now; nothing is left for +30m."""
    slow = AutomationRule.model_validate(
        {"name": "slow-warnings", "match": {"severity": ["warning"]}, "incident": {"delay": "30m"}}
    )
    delayed = delay_critical(context, slow)
    clock.set(T0)
    worker = Worker(delayed, name="w1")
    alert = send(api, generic_key, severity="warning", dedup_key="s1")
    clock.set(T0 + timedelta(minutes=1))
    send(api, generic_key, severity="critical", dedup_key="s1")
    [job] = delay_jobs(delayed, alert["id"])
    assert job.run_at == T0 + timedelta(minutes=6)
    assert job.payload == {"alert_id": alert["id"], "rule": "critical-monitoring", "delay": "5m"}
    run_at(worker, T0 + timedelta(minutes=6))
    [opened] = incidents(delayed)
    assert opened.severity == "P1" and [event.data["policy"] for event in page_requests] == [
        "platform-escalation"
    ]
    assert f"ALR-{alert['id']} fired at 2026-03-02 10:00 UTC; its rule waited (5m) and it was still open" in [
        entry.action for entry in timeline(delayed, 1)
    ]


# --- an alert that got worse while snoozed ------------------------------------------------------------


def alert_notes(context: AppContext, alert_id: int) -> list[str]:
    with context.db.read() as session:
        return list(session.scalars(select(AlertNote.body).where(AlertNote.alert_id == alert_id)))


def test_an_unrouted_alert_that_got_worse_while_snoozed_is_routed_when_the_snooze_ends(
    api: TestClient,
    context: AppContext,
    generic_key: str,
    responder: dict[str, str],
    page_requests: list[DomainEvent],
) -> None:
    """A warning no rule takes is snoozed for an hour; it turns critical meanwhile, which the rules would have
    routed (a P1, paged) had nobody had it snoozed. When the snooze ends it still fires, critical: it was
    left as it was, on no incident, paging nobody, for ever."""
    clock.set(T0)
    worker = Worker(context, name="w1")
    worse = send(api, generic_key, severity="warning", dedup_key="s1")
    same = send(api, generic_key, severity="warning", dedup_key="s2", labels={"alertname": "SearchSlow"})
    for alert in (worse, same):
        answer = api.post(f"/api/v1/alerts/{alert['id']}/snooze", json={"duration": "1h"}, headers=responder)
        assert answer.status_code == 200, answer.text
    clock.set(T0 + timedelta(minutes=10))
    assert send(api, generic_key, severity="critical", dedup_key="s1")["incident"] is None  # snoozed
    # The other turns critical and back: no worse than when snoozed.
    send(api, generic_key, severity="critical", dedup_key="s2", labels={"alertname": "SearchSlow"})
    send(api, generic_key, severity="warning", dedup_key="s2", labels={"alertname": "SearchSlow"})
    assert page_requests == [] and incidents(context) == []
    assert alert_notes(context, worse["id"])[0] == (
        "Went from warning to critical while snoozed by responder-user, on no incident: not routed while it "
        "is snoozed. If it still fires when the snooze ends (2026-03-02 11:00 UTC), the rules see it then as "
        f"a new critical alert. To open an incident now: warroom alerts promote ALR-{worse['id']}"
    )

    run_at(worker, T0 + timedelta(hours=1))
    [opened] = incidents(context)
    assert opened.severity == "P1"
    assert [event.data["policy"] for event in page_requests] == ["platform-escalation"]
    actions = [entry.action for entry in timeline(context, opened.id)]
    assert (
        f"Alert ALR-{worse['id']} went from warning to critical while snoozed by responder-user, on no "
        "incident (no rule had routed it); the snooze is over and it still fires: the rules took it as a new "
        "critical alert"
    ) in actions, actions
    with context.db.read() as session:
        rows = {alert.id: alert for alert in session.scalars(select(Alert))}
        results = [job.result for job in session.scalars(select(Job).where(Job.kind == SNOOZE_KIND))]
    assert (rows[worse["id"]].incident_id, rows[worse["id"]].rules) == (opened.id, ["critical-monitoring"])
    assert (rows[same["id"]].status, rows[same["id"]].incident_id) == ("firing", None)
    assert {"woke": True, "incident": f"INC-{opened.id}", "routed": "warning to critical"} in results


# --- the storm guard and an incident in monitoring --------------------------------------------------------


def storm_guarded(context: AppContext, *first: AutomationRule, incident_rule: dict[str, Any]) -> None:
    """The example org with a storm guard of two incidents per policy in 10 minutes, no dependency joins,
    the rules ``first`` before its own, and critical-monitoring updated with ``incident_rule``."""
    rules = [
        rule.model_copy(update=incident_rule) if rule.name == "critical-monitoring" else rule
        for rule in context.org.automation.rules
    ]
    automation = context.org.automation.model_copy(
        update={
            "storm_guard": StormGuard(incidents=2, within=timedelta(minutes=10)),
            "dependency_window": timedelta(0),
            "rules": [*first, *rules],
        }
    )
    context.org = context.org.model_copy(update={"automation": automation})


# Batch jobs' alerts page the platform team too, but their rule leaves the status to people.
BATCH = AutomationRule.model_validate(
    {
        "name": "batch-jobs",
        "match": {"labels": {"team": "batch"}},
        "incident": {},
        "page": "platform-escalation",
        "resolve_to_monitoring": False,
    }
)


def status_of(context: AppContext, number: int) -> str:
    with context.db.read() as session:
        return session.get_one(Incident, number).status.value


def test_a_storm_guarded_alert_moves_a_monitored_incident_back_by_the_incidents_rule(
    api: TestClient, context: AppContext, generic_key: str, responder: dict[str, str]
) -> None:
    """INC-2 (critical-monitoring, resolve_to_monitoring on) went to monitoring when its alert resolved; the
    storm guard folds a batch-jobs alert into it. Its own rule leaves statuses to people, so INC-2 stayed in
    monitoring with a firing alert, and nothing moved it again: the incident's rule decides, as for its
    group's alerts."""
    storm_guarded(context, BATCH, incident_rule={})
    clock.set(T0)
    assert send(api, generic_key, severity="critical", labels={"alertname": "A"}, dedup_key="a")["incident"]
    assert send(api, generic_key, severity="critical", labels={"alertname": "B"}, dedup_key="b")["incident"]
    send(api, generic_key, severity="critical", labels={"alertname": "B"}, dedup_key="b", status="resolved")
    assert status_of(context, 2) == "monitoring"
    clock.set(T0 + timedelta(minutes=1))
    batch = send(api, generic_key, severity="critical", labels={"alertname": "Backup", "team": "batch"})
    assert batch["incident"] == "INC-2"
    assert status_of(context, 2) == "investigating"
    moved = timeline(context, 2)[-1]
    assert (moved.performer, moved.action) == (
        "automation",
        f"Status: monitoring → investigating — alert ALR-{batch['id']} of another group joined by the storm "
        "guard and fires while monitoring",
    )


def test_a_storm_guarded_alert_leaves_a_monitored_incident_to_people_when_its_rule_says_so(
    api: TestClient, context: AppContext, generic_key: str, responder: dict[str, str]
) -> None:
    """The other way round: INC-2's rule leaves its status to people, one of whom moved it to monitoring. A
    storm-guarded alert of a rule with the setting on leaves it there, as an alert of its own group would."""
    search_team = BATCH.model_copy(
        update={
            "name": "search-team",
            "match": BATCH.match.model_copy(update={"labels": {"team": "search"}}),
            "resolve_to_monitoring": None,
        }
    )
    storm_guarded(context, search_team, incident_rule={"resolve_to_monitoring": False})
    clock.set(T0)
    send(api, generic_key, severity="critical", labels={"alertname": "A"}, dedup_key="a")
    send(api, generic_key, severity="critical", labels={"alertname": "B"}, dedup_key="b")
    moved = api.patch("/api/v1/incidents/INC-2", json={"status": "monitoring"}, headers=responder)
    assert moved.status_code == 200, moved.text
    searching = send(api, generic_key, severity="critical", labels={"alertname": "C", "team": "search"})
    assert searching["incident"] == "INC-2"
    assert status_of(context, 2) == "monitoring"


# --- what restarts a flapping incident's calm-down clock ---------------------------------------------------


def payments(**fields: Any) -> dict[str, Any]:
    labels = {"service": "payments", "alertname": "ChargeErrors"}
    return {
        "summary": "card charges failing",
        "severity": "critical",
        "dedup_key": "charges",
        "labels": labels,
    } | (fields)


def post(api: TestClient, key: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = api.post(f"/api/v1/alerts?key={key}", json=body)
    assert answer.status_code == 202, answer.text
    alert: dict[str, Any] = answer.json()["alerts"][0]
    return alert


def test_a_dependency_join_does_not_restart_a_flapping_incidents_calm_down(
    api: TestClient, context: AppContext, generic_key: str
) -> None:
    """INC-1 (payments and api) flaps: its alert fired again three times (returns at +4, +8 and +12 minutes)
    and resolved at +14, so it calms down an hour after +12. A frontend alert joins it at +20 by a service
    dependency (frontend depends on api) and resolves at +25: not one of its own alerts firing again, so it
    moved the calm-down to +80. Its own group's next firing still does (below)."""
    worker = Worker(context, name="w1")
    clock.set(T0)
    assert post(api, generic_key, payments())["incident"] == "INC-1"
    for _ in range(3):
        clock.advance(timedelta(minutes=2))
        post(api, generic_key, payments(status="resolved"))
        clock.advance(timedelta(minutes=2))
        post(api, generic_key, payments())
    assert any(entry.action.startswith("Flapping") for entry in timeline(context, 1))
    clock.set(T0 + timedelta(minutes=14))
    post(api, generic_key, payments(status="resolved"))
    assert status_of(context, 1) == "investigating"
    clock.set(T0 + timedelta(minutes=20))
    frontend = {"summary": "frontend 5xx", "severity": "critical", "dedup_key": "fe", "service": "frontend"}
    assert post(api, generic_key, frontend)["incident"] == "INC-1"
    assert any("(frontend depends on api, which INC-1 affects)" in e.action for e in timeline(context, 1))
    clock.set(T0 + timedelta(minutes=25))
    post(api, generic_key, frontend | {"status": "resolved"})
    run_at(worker, T0 + timedelta(minutes=72) - timedelta(seconds=1))
    assert status_of(context, 1) == "investigating"
    run_at(worker, T0 + timedelta(minutes=72))
    assert status_of(context, 1) == "monitoring"
    # The move to monitoring (then the escalation it holds) is the last thing the calm-down did.
    moved = [
        entry.action for entry in timeline(context, 1) if not entry.action.startswith("Escalation stopped")
    ]
    assert "it stopped flapping" in moved[-1]


def test_the_flapping_groups_own_firing_still_restarts_the_calm_down(
    api: TestClient, context: AppContext, generic_key: str
) -> None:
    """The same flapping INC-1; another payments alert of its group (another dedup key) fires at +20 and
    resolves at +25: it is the incident's own group firing again, so the calm-down is an hour after +20."""
    worker = Worker(context, name="w1")
    clock.set(T0)
    post(api, generic_key, payments())
    for _ in range(3):
        clock.advance(timedelta(minutes=2))
        post(api, generic_key, payments(status="resolved"))
        clock.advance(timedelta(minutes=2))
        post(api, generic_key, payments())
    clock.set(T0 + timedelta(minutes=14))
    post(api, generic_key, payments(status="resolved"))
    clock.set(T0 + timedelta(minutes=20))
    assert post(api, generic_key, payments(dedup_key="charges-eu"))["incident"] == "INC-1"
    clock.set(T0 + timedelta(minutes=25))
    post(api, generic_key, payments(dedup_key="charges-eu", status="resolved"))
    run_at(worker, T0 + timedelta(minutes=80) - timedelta(seconds=1))
    assert status_of(context, 1) == "investigating"
    run_at(worker, T0 + timedelta(minutes=80))
    assert status_of(context, 1) == "monitoring"


# --- a forced promotion of a resolved alert ----------------------------------------------------------------


def test_a_forced_promotion_of_a_resolved_alert_opens_a_resolved_incident_for_the_record(
    api: TestClient, context: AppContext, generic_key: str, responder: dict[str, str]
) -> None:
    """A database warning that resolved is promoted with --force, at P1, for its post-mortem. The incident
    opened as investigating: it paged the on-call for a problem that was over, and a live api alert (api
    depends on database) joined it by the dependency instead of opening its own."""
    clock.set(T0)
    disk = {"summary": "db disk 85%", "severity": "warning", "dedup_key": "db-disk", "service": "database"}
    alert = post(api, generic_key, disk)
    assert alert["incident"] is None  # no rule takes a warning
    clock.set(T0 + timedelta(minutes=5))
    post(api, generic_key, disk | {"status": "resolved"})
    promoted = api.post(
        f"/api/v1/alerts/{alert['id']}/promote", json={"force": True, "severity": "P1"}, headers=responder
    )
    assert promoted.status_code == 201, promoted.text
    [record] = incidents(context)
    assert (record.status.value, record.severity) == ("resolved", "P1")
    assert timeline(context, 1)[-1].action == (
        f"Status: investigating → resolved — opened for the record: ALR-{alert['id']} had resolved at "
        "2026-03-02 10:05 UTC by its source (generic); reopen it if the problem is back"
    )
    assert timeline(context, 1)[-1].performer == "responder-user"
    run_at(Worker(context, name="w1"), T0 + timedelta(minutes=30))
    assert sent_pages(context, 1) == []
    clock.set(T0 + timedelta(minutes=6))
    api_down = {"summary": "api 5xx", "severity": "critical", "dedup_key": "api-5xx", "service": "api"}
    assert post(api, generic_key, api_down)["incident"] == "INC-2"
    # A person who finds the problem back reopens it, as any resolved incident.
    reopened = api.patch("/api/v1/incidents/INC-1", json={"status": "investigating"}, headers=responder)
    assert reopened.status_code == 200, reopened.text
