"""Snoozing an alert: acknowledged until a moment; if it still fires then, it fires again and its incident's
first responders are paged as a reminder."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.alerts.test_opsgenie import create, genie_key  # noqa: F401 (a fixture)
from tests.alerts.test_source_ack import T0, incident, pd, pd_trigger, run_at, sent_pages, timeline
from warroom.alerts.models import Alert
from warroom.alerts.service import SNOOZE_KIND
from warroom.clock import clock
from warroom.context import AppContext
from warroom.jobs.models import Job, JobStatus
from warroom.jobs.worker import Worker
from warroom.oncall.models import Escalation, EscalationState


def alert_row(context: AppContext, alert_id: int = 1) -> Alert:
    with context.db.read() as session:
        row = session.get(Alert, alert_id)
        assert row is not None
        return row


def snooze_jobs(context: AppContext) -> list[tuple[JobStatus, dict[str, Any] | None]]:
    with context.db.read() as session:
        jobs = session.scalars(select(Job).where(Job.kind == SNOOZE_KIND).order_by(Job.id))
        return [(job.status, job.result) for job in jobs]


def snooze(api: TestClient, headers: dict[str, str], body: dict[str, Any], ref: str = "ALR-1") -> Any:
    return api.post(f"/api/v1/alerts/{ref}/snooze", json=body, headers=headers)


def test_a_snoozed_alert_that_still_fires_pages_again_when_the_snooze_ends(
    api: TestClient, context: AppContext, pd_key: str, responder: dict[str, str]
) -> None:
    clock.set(T0)
    worker = Worker(context, name="w1")
    pd(api, pd_trigger(pd_key, "api-5xx"))
    run_at(worker, T0)
    assert sent_pages(context) == [("carol", "email", 1, 1)]

    # carol looks, finds it can wait, and snoozes it for two hours: the incident's only alert is acknowledged,
    # so the incident is too, which stops its escalation.
    clock.set(T0 + timedelta(minutes=3))
    answer = snooze(api, responder, {"duration": "2h"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["status"], body["acknowledged_by"], body["snoozed_by"]) == (
        "acknowledged",
        "responder-user",
        "responder-user",
    )
    assert body["snoozed_until"].startswith("2026-03-02T12:03:00")
    assert incident(context).acknowledged_by == "responder-user"
    actions = [e.action for e in timeline(context)]
    assert any(a.startswith("Alert ALR-1 acknowledged by hand") for a in actions)
    assert (
        "Alert ALR-1 snoozed by responder-user until 2026-03-02 12:03 UTC (2h): if it still fires then, it "
        "fires again and the first responders are paged as a reminder"
    ) in actions

    # Before the end, nothing happens; past every escalation deadline, nobody else is paged.
    run_at(worker, T0 + timedelta(minutes=90))
    assert alert_row(context).status == "acknowledged"
    assert sent_pages(context) == [("carol", "email", 1, 1)]

    # At the end it still fires: firing again, on the timeline, and carol is paged again (a new pass).
    run_at(worker, T0 + timedelta(minutes=124))
    woken = alert_row(context)
    assert (woken.status, woken.acknowledged_at, woken.snoozed_until, woken.snoozed_by) == (
        "firing",
        None,
        None,
        None,
    )
    assert snooze_jobs(context) == [(JobStatus.done, {"woke": True, "incident": "INC-1"})]
    entries = timeline(context)
    [over] = [e for e in entries if e.action.startswith("Snooze of alert ALR-1")]
    assert over.performer == "automation"
    assert over.action == (
        "Snooze of alert ALR-1 (by responder-user) is over and it still fires: API 5xx above 5% (api-5xx)"
    )
    assert sent_pages(context) == [("carol", "email", 1, 1), ("carol", "email", 2, 1)]
    # The incident stays acknowledged (someone took it), so the reminder does not escalate further.
    run_at(worker, T0 + timedelta(hours=5))
    assert sent_pages(context) == [("carol", "email", 1, 1), ("carol", "email", 2, 1)]
    with context.db.read() as session:
        states = session.scalars(select(Escalation.state).where(Escalation.incident_id == 1)).all()
    assert list(states) == [EscalationState.acknowledged]


def test_a_snooze_until_a_time_with_an_offset_is_written_in_utc(
    api: TestClient, context: AppContext, pd_key: str, responder: dict[str, str]
) -> None:
    """The timeline said "until 2026-03-02 17:30 UTC" for a snooze until 17:30+05:30: 5½ hours off."""
    clock.set(T0)
    pd(api, pd_trigger(pd_key, "api-5xx"))
    answer = snooze(api, responder, {"until": "2026-03-02T17:30:00+05:30"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["snoozed_until"].startswith("2026-03-02T12:00:00")
    assert any(
        e.action.startswith("Alert ALR-1 snoozed by responder-user until 2026-03-02 12:00 UTC (2h)")
        for e in timeline(context)
    ), [e.action for e in timeline(context)]


def test_a_resolve_an_unacknowledge_or_a_new_snooze_leaves_the_job_nothing_to_do(
    api: TestClient, context: AppContext, pd_key: str, responder: dict[str, str]
) -> None:
    clock.set(T0)
    worker = Worker(context, name="w1")
    for key in ("a", "b", "c"):
        pd(api, pd_trigger(pd_key, key))
    for ref in ("ALR-1", "ALR-2", "ALR-3"):
        assert snooze(api, responder, {"duration": "30m"}, ref).status_code == 200
    # ALR-1 resolves at its source (the snooze goes with it); ALR-2 is unacknowledged by hand; ALR-3 is
    # snoozed again, for longer (its first job is cancelled).
    clock.set(T0 + timedelta(minutes=10))
    pd(api, {"routing_key": pd_key, "event_action": "resolve", "dedup_key": "a"})
    assert (alert_row(context, 1).snoozed_until, alert_row(context, 1).snoozed_by) == (None, None)
    assert api.post("/api/v1/alerts/ALR-2/unacknowledge", headers=responder).status_code == 200
    assert alert_row(context, 2).snoozed_until is None
    again = snooze(api, responder, {"until": "2026-03-02T12:00:00+00:00"}, "ALR-3")
    assert again.status_code == 200 and again.json()["snoozed_until"].startswith("2026-03-02T12:00:00")

    listed = api.get("/api/v1/alerts", params={"snoozed": "true"}, headers=responder).json()
    assert [(a["ref"], a["snoozed_by"]) for a in listed["items"]] == [("ALR-3", "responder-user")]
    run_at(worker, T0 + timedelta(minutes=31))
    assert [alert_row(context, n).status for n in (1, 2, 3)] == ["resolved", "firing", "acknowledged"]
    assert snooze_jobs(context) == [
        (JobStatus.done, {"woke": False, "reason": "it resolved while snoozed"}),
        (JobStatus.done, {"woke": False, "reason": "its snooze was taken back or moved"}),
        (JobStatus.cancelled, None),
        (JobStatus.pending, None),
    ]
    run_at(worker, T0 + timedelta(hours=2, minutes=1))
    assert alert_row(context, 3).status == "firing"


def test_an_alert_on_no_incident_just_fires_again(
    api: TestClient, context: AppContext, generic_key: str, responder: dict[str, str]
) -> None:
    clock.set(T0)
    worker = Worker(context, name="w1")
    answer = api.post(
        f"/api/v1/alerts?key={generic_key}",
        json={"summary": "cert expires in 20 days", "severity": "info", "dedup_key": "cert"},
    )
    assert answer.status_code == 202
    assert snooze(api, responder, {"duration": "1d"}).status_code == 200
    run_at(worker, T0 + timedelta(days=1, minutes=1))
    assert alert_row(context).status == "firing"
    assert snooze_jobs(context) == [(JobStatus.done, {"woke": True, "incident": None})]


def test_bad_snoozes_change_nothing(
    api: TestClient,
    context: AppContext,
    pd_key: str,
    responder: dict[str, str],
    viewer: dict[str, str],
) -> None:
    clock.set(T0)
    pd(api, pd_trigger(pd_key, "api-5xx"))
    refusals = [
        ({}, 422, "give either duration or until"),
        ({"duration": "1h", "until": "2026-03-02T12:00:00Z"}, 422, "give either duration or until"),
        ({"duration": "30s"}, 422, "a snooze lasts at least 1m"),
        ({"duration": "8d"}, 422, "a snooze lasts at most 7d"),
        ({"until": "2026-03-02T09:00:00Z"}, 422, "until is in the past"),
        ({"until": "2026-03-02T10:00:30Z"}, 422, "a snooze lasts at least 1m"),
        ({"duration": "soon"}, 422, ""),
        # A bare number has no unit (the org file reads one as seconds; a snooze of 30 meant minutes).
        ({"duration": 30}, 422, "30 has no unit: write 30s, 30m, 30h or 30d"),
        ({"duration": "90"}, 422, "90 has no unit: write 90s, 90m, 90h or 90d"),
        ({"duration": 1.5}, 422, "1.5 has no unit"),
        ({"duration": "1h", "extra": 1}, 422, ""),
    ]
    for body, status, message in refusals:
        answer = snooze(api, responder, body)
        assert answer.status_code == status, (body, answer.text)
        assert message in answer.text
    assert snooze(api, viewer, {"duration": "1h"}).status_code == 403
    assert api.post("/api/v1/alerts/ALR-1/snooze", json={"duration": "1h"}).status_code == 401
    assert snooze(api, responder, {"duration": "1h"}, "ALR-99").status_code == 404
    untouched = alert_row(context)
    assert (untouched.status, untouched.snoozed_until) == ("firing", None)
    assert snooze_jobs(context) == []
    pd(api, {"routing_key": pd_key, "event_action": "resolve", "dedup_key": "api-5xx"})
    resolved = snooze(api, responder, {"duration": "1h"})
    assert resolved.status_code == 409 and "is resolved" in resolved.text
    assert snooze_jobs(context) == []


def test_opsgenie_snooze_and_unacknowledge_by_alias(
    api: TestClient,
    context: AppContext,
    genie_key: dict[str, str],  # noqa: F811 (the fixture)
) -> None:
    clock.set(T0)
    worker = Worker(context, name="w1")
    assert api.post("/v2/alerts", json=create(), headers=genie_key).status_code == 202
    snoozed = api.post(
        "/v2/alerts/disk-db1/snooze?identifierType=alias",
        json={"endTime": "2026-03-02T11:00:00.000Z", "user": "alice", "note": "after the vacuum"},
        headers=genie_key,
    )
    assert snoozed.status_code == 202, snoozed.text
    alert = alert_row(context)
    alice = "alice (via opsgenie-shaped)"  # a name the sender reported, marked with its integration
    assert (alert.status, alert.snoozed_by, alert.acknowledged_by) == ("acknowledged", alice, alice)
    with context.db.read() as session:
        row = session.get(Alert, 1)
        assert row is not None and [(n.author, n.body) for n in row.notes] == [(alice, "after the vacuum")]

    refusals = [
        ("/v2/alerts/disk-db1/snooze?identifierType=alias", {"user": "alice"}, 422),  # no endTime
        ("/v2/alerts/disk-db1/snooze?identifierType=alias", {"endTime": "2026-03-02T11:00:00"}, 422),
        ("/v2/alerts/disk-db1/snooze?identifierType=alias", {"endTime": "2026-03-20T11:00:00Z"}, 422),
        ("/v2/alerts/nope/snooze?identifierType=alias", {"endTime": "2026-03-02T11:00:00Z"}, 404),
        ("/v2/alerts/disk-db1/snooze?identifierType=id", {"endTime": "2026-03-02T11:00:00Z"}, 422),
    ]
    for path, body, status in refusals:
        answer = api.post(path, json=body, headers=genie_key)
        assert answer.status_code == status, (path, body, answer.text)
    # A refusal of the end itself names endTime in Opsgenie's errors, as a malformed one does (it said
    # "until is in the past", with no errors).
    for end, said in (
        ("2020-01-01T00:00:00Z", "endTime is in the past"),
        ("2026-03-20T11:00:00Z", "at most"),
    ):
        answer = api.post(
            "/v2/alerts/disk-db1/snooze?identifierType=alias", json={"endTime": end}, headers=genie_key
        )
        assert answer.status_code == 422 and said in answer.json()["errors"]["endTime"], answer.text
    wrong_key = api.post(
        "/v2/alerts/disk-db1/unacknowledge?identifierType=alias", headers={"Authorization": "GenieKey nope"}
    )
    assert wrong_key.status_code in (401, 403)
    assert alert_row(context).snoozed_until is not None and alert_row(context).status == "acknowledged"

    # Unacknowledge (no body) ends the snooze now; a second one changes nothing, as in Opsgenie.
    for _ in range(2):
        answer = api.post("/v2/alerts/disk-db1/unacknowledge?identifierType=alias", headers=genie_key)
        assert answer.status_code == 202, answer.text
    alert = alert_row(context)
    assert (alert.status, alert.snoozed_until, alert.acknowledged_at) == ("firing", None, None)
    run_at(worker, T0 + timedelta(hours=2))
    assert snooze_jobs(context) == [
        (JobStatus.done, {"woke": False, "reason": "its snooze was taken back or moved"})
    ]


def test_snoozing_again_to_an_earlier_end_or_the_same_one_keeps_one_end(
    api: TestClient, context: AppContext, pd_key: str, responder: dict[str, str]
) -> None:
    clock.set(T0)
    worker = Worker(context, name="w1")
    pd(api, pd_trigger(pd_key, "api-5xx"))
    for until in (
        "2026-03-02T11:00:00Z",
        "2026-03-02T12:00:00Z",
        "2026-03-02T11:00:00Z",
        "2026-03-02T11:00:00Z",
    ):
        assert snooze(api, responder, {"until": until}).status_code == 200
    assert [status for status, _ in snooze_jobs(context)] == [JobStatus.cancelled] * 3 + [JobStatus.pending]
    run_at(worker, T0 + timedelta(hours=1, minutes=1))
    assert alert_row(context).status == "firing"
    assert snooze_jobs(context)[-1] == (JobStatus.done, {"woke": True, "incident": "INC-1"})


def test_the_reminder_pages_the_policy_a_rule_paged_when_no_policy_covers_the_incident(
    api: TestClient, context: AppContext, generic_key: str, responder: dict[str, str]
) -> None:
    """search has no policy of its own and no team with one: rule critical-monitoring's ``page`` is what paged
    its incident, so that policy is what the reminder pages (not "no escalation policy covers P1")."""
    clock.set(T0)
    worker = Worker(context, name="w1")
    answer = api.post(
        f"/api/v1/alerts?key={generic_key}",
        json={
            "summary": "search shards red",
            "severity": "critical",
            "dedup_key": "idx2",
            "service": "search",
        },
    )
    assert answer.status_code == 202, answer.text
    run_at(worker, T0)
    assert sent_pages(context) == [("carol", "email", 1, 1)]
    actions = [e.action for e in timeline(context)]
    assert any(a.startswith("No escalation policy covers P1 here") for a in actions)
    assert "Page requested: escalation policy platform-escalation" in actions

    clock.set(T0 + timedelta(minutes=2))
    assert snooze(api, responder, {"duration": "1m"}).status_code == 200
    run_at(worker, T0 + timedelta(minutes=3, seconds=1))
    assert alert_row(context).status == "firing"
    assert sent_pages(context) == [("carol", "email", 1, 1), ("carol", "email", 2, 1)]
    after = [e.action for e in timeline(context)][len(actions) :]
    assert not any(a.startswith("No escalation policy covers") for a in after), after
    with context.db.read() as session:
        reminders = session.scalars(
            select(Job).where(
                Job.kind == "oncall.start", Job.payload["trigger"].as_string() == "snooze_ended"
            )
        ).all()
    assert [(job.payload["policy"], job.status) for job in reminders] == [
        ("platform-escalation", JobStatus.done)
    ]


def reminder_results(context: AppContext) -> list[dict[str, Any] | None]:
    with context.db.read() as session:
        jobs = session.scalars(
            select(Job)
            .where(Job.kind == "oncall.start", Job.payload["trigger"].as_string() == "snooze_ended")
            .order_by(Job.id)
        )
        return [job.result for job in jobs]


def run_ticking(worker: Worker, moment: datetime) -> None:
    """Run what is due one job at a time, the clock moving a millisecond between jobs as a real one does."""
    clock.set(moment)
    while worker.run_once():
        clock.advance(timedelta(milliseconds=1))


def test_snoozes_of_one_incident_ending_together_page_one_reminder(
    api: TestClient, context: AppContext, pd_key: str, responder: dict[str, str]
) -> None:
    """``alerts snooze --incident INC-1`` snoozes each alert to the same end: carol is reminded once, not once
    per alert, and the timeline still names every alert that fires again."""
    clock.set(T0)
    worker = Worker(context, name="w1", batch=1)
    for key in ("a", "b", "c"):
        pd(api, pd_trigger(pd_key, key))
    run_at(worker, T0)
    assert sent_pages(context) == [("carol", "email", 1, 1)]
    clock.set(T0 + timedelta(minutes=3))
    for ref in ("ALR-1", "ALR-2", "ALR-3"):
        assert snooze(api, responder, {"until": "2026-03-02T10:30:00Z"}, ref).status_code == 200
    assert incident(context).acknowledged_by == "responder-user"

    run_ticking(worker, T0 + timedelta(minutes=30, seconds=1))
    assert [alert_row(context, n).status for n in (1, 2, 3)] == ["firing"] * 3
    assert sent_pages(context) == [("carol", "email", 1, 1), ("carol", "email", 2, 1)]
    over = [e.action for e in timeline(context) if e.action.startswith("Snooze of alert")]
    assert [action.split(" (by")[0] for action in over] == [
        "Snooze of alert ALR-1",
        "Snooze of alert ALR-2",
        "Snooze of alert ALR-3",
    ]
    results = reminder_results(context)
    assert results[0] is not None and results[0]["policy"] == "platform-escalation"
    assert [r["skipped"] if r else None for r in results[1:]] == [
        "platform-escalation sent a reminder at 10:30:01 UTC (one per 10m, its first step's delay)"
    ] * 2


def test_a_snooze_ending_within_the_first_steps_delay_of_a_reminder_pages_nobody_again(
    api: TestClient, context: AppContext, pd_key: str, responder: dict[str, str]
) -> None:
    """Snoozed apart, ending apart: platform-escalation's first step has 10 minutes to answer, so an end 7
    minutes after a reminder pages nobody and one 25 minutes after pages again."""
    clock.set(T0)
    worker = Worker(context, name="w1")
    for key in ("a", "b", "c"):
        pd(api, pd_trigger(pd_key, key))
    run_at(worker, T0)
    clock.set(T0 + timedelta(minutes=3))
    for ref, until in (("ALR-1", "10:20"), ("ALR-2", "10:27"), ("ALR-3", "10:45")):
        assert snooze(api, responder, {"until": f"2026-03-02T{until}:00Z"}, ref).status_code == 200

    first = [("carol", "email", 1, 1)]
    run_at(worker, T0 + timedelta(minutes=20, seconds=1))
    assert sent_pages(context) == [*first, ("carol", "email", 2, 1)]
    run_at(worker, T0 + timedelta(minutes=27, seconds=1))
    assert alert_row(context, 2).status == "firing"
    assert sent_pages(context) == [*first, ("carol", "email", 2, 1)]
    run_at(worker, T0 + timedelta(minutes=45, seconds=1))
    assert sent_pages(context) == [*first, ("carol", "email", 2, 1), ("carol", "email", 3, 1)]
    assert [sorted(r) if r else None for r in reminder_results(context)] == [
        ["cycle", "deadline", "mode", "policy"],
        ["skipped"],
        ["cycle", "deadline", "mode", "policy"],
    ]
