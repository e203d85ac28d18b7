"""A rule's ``incident.delay``: the incident opens only when the delay is over and the alert is still open,
so a blip that clears within it pages nobody."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.alerts.test_source_ack import run_at, timeline
from tests.conftest import EXAMPLE_CONFIG
from warroom import reload
from warroom.alerts import digest, retention
from warroom.alerts.automation import DELAY_KIND
from warroom.alerts.models import Alert
from warroom.clock import clock
from warroom.context import AppContext
from warroom.incidents.models import Incident
from warroom.jobs.models import Job
from warroom.jobs.worker import Worker
from warroom.orgconfig import ConfigError, parse_org_config

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


@pytest.fixture
def delayed(context: AppContext) -> AppContext:
    """The example org, with a 5-minute delay on the critical-monitoring rule."""
    rules = [
        rule.model_copy(update={"incident": rule.incident.model_copy(update={"delay": timedelta(minutes=5)})})
        if rule.name == "critical-monitoring" and rule.incident is not None
        else rule
        for rule in context.org.automation.rules
    ]
    automation = context.org.automation.model_copy(update={"rules": rules})
    context.org = context.org.model_copy(update={"automation": automation})
    return context


def fire(api: TestClient, key: str, dedup_key: str, status: str = "firing", **fields: Any) -> int:
    body = {
        "summary": f"{dedup_key} failing",
        "severity": "critical",
        "dedup_key": dedup_key,
        "status": status,
    }
    body |= {"service": "search", "labels": {"alertname": "SearchDown"}, **fields}
    answer = api.post(f"/api/v1/alerts?key={key}", json=body)
    assert answer.status_code == 202, answer.text
    alert_id: int = answer.json()["alerts"][0]["id"]
    return alert_id


def incident_ids(context: AppContext) -> list[int | None]:
    with context.db.read() as session:
        return list(session.scalars(select(Alert.incident_id).order_by(Alert.id)))


def incident_count(context: AppContext) -> int:
    with context.db.read() as session:
        return session.scalar(select(func.count()).select_from(Incident)) or 0


def test_a_blip_that_clears_within_the_delay_opens_nothing(
    api: TestClient, delayed: AppContext, generic_key: str
) -> None:
    clock.set(T0)
    worker = Worker(delayed, name="w1")
    fire(api, generic_key, "search-1")
    assert incident_ids(delayed) == [None]  # stored and routed, waiting
    clock.set(T0 + timedelta(minutes=2))
    fire(api, generic_key, "search-1", status="resolved")
    run_at(worker, T0 + timedelta(minutes=6))
    assert incident_count(delayed) == 0
    with delayed.db.read() as session:
        job = session.scalars(select(Job).where(Job.kind == DELAY_KIND)).one()
        assert job.result == {"opened": False, "reason": "it resolved while it waited (5m)"}
    # Its finished job is pruned with the other scheduled runs.
    assert retention.prune(delayed, T0 + timedelta(days=8))["recurring_job_runs"] >= 1


def test_an_alert_still_open_after_the_delay_opens_the_incident_and_its_group_joins(
    api: TestClient, delayed: AppContext, generic_key: str, responder: dict[str, str]
) -> None:
    clock.set(T0)
    worker = Worker(delayed, name="w1")
    first = fire(api, generic_key, "search-1")
    clock.set(T0 + timedelta(minutes=1))
    second = fire(api, generic_key, "search-2")  # same group (service, alertname), waiting too
    assert api.post(f"/api/v1/alerts/{second}/acknowledge", headers=responder).status_code == 200
    run_at(worker, T0 + timedelta(minutes=4))
    assert incident_count(delayed) == 0
    run_at(worker, T0 + timedelta(minutes=5, seconds=1))
    assert incident_ids(delayed) == [1, 1]  # the second joined when the first's delay was over
    actions = [entry.action for entry in timeline(delayed, 1)]
    assert sum(action.startswith("Page requested") for action in actions) == 1
    assert any("(its group's delay was over)" in action for action in actions), actions
    assert f"ALR-{first} fired at 2026-03-02 10:00 UTC; its rule waited (5m) and it was still open" in actions
    # Once the group's incident is open, another alert of it joins at once.
    clock.set(T0 + timedelta(minutes=7))
    third = fire(api, generic_key, "search-3")
    assert incident_ids(delayed)[-1] == 1
    run_at(worker, T0 + timedelta(minutes=13))  # the second's job ran, found it on INC-1, did nothing
    assert incident_count(delayed) == 1
    with delayed.db.read() as session:
        results = [job.result for job in session.scalars(select(Job).where(Job.kind == DELAY_KIND))]
    assert {"opened": False, "reason": "it joined INC-1 meanwhile"} in results
    assert first and third


def test_the_preview_says_it_waits(delayed: AppContext, api: TestClient, viewer: dict[str, str]) -> None:
    probe = {"summary": "search down", "severity": "critical", "service": "search"}
    [shown] = api.post("/api/v1/alerts/preview", json=probe, headers=viewer).json()
    assert shown["incident"]["rule"] == "critical-monitoring" and shown["incident"]["delay"] == "5m"


@pytest.mark.parametrize("delay", ["2d", "-5m"])
def test_a_bad_delay_is_refused(delay: str) -> None:
    document = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    document["automation"]["rules"][0]["incident"]["delay"] = delay
    with pytest.raises(ConfigError) as error:
        parse_org_config(yaml.safe_dump(document))
    assert "delay" in str(error.value)


def test_a_group_member_locked_by_its_own_job_is_left_to_it(
    api: TestClient, delayed: AppContext, generic_key: str
) -> None:
    """PostgreSQL: two delay jobs of one group run at once. The second has locked its alert and waits for the
    group's lock; the first, opening the incident, must not wait for that alert's row (a deadlock, found
    with eight alerts over two servers). It leaves it, and the second joins once the first commits."""
    if delayed.db.is_sqlite:
        pytest.skip("SQLite runs one write transaction at a time")
    clock.set(T0)
    first = fire(api, generic_key, "search-1")
    second = fire(api, generic_key, "search-2")
    clock.set(T0 + timedelta(minutes=5, seconds=1))
    with delayed.db.write() as holder:  # the second's job, holding its alert's row
        holder.get(Alert, second, with_for_update=True)
        worker = Worker(delayed, name="w1")
        with delayed.db.read() as session:
            first_job = session.scalars(
                select(Job.id).where(Job.kind == DELAY_KIND, Job.payload["alert_id"].as_integer() == first)
            ).one()
        worker.claim(limit=1)
        assert worker.run_job(first_job) is True  # did not wait for the held row
    assert incident_ids(delayed) == [1, None]
    run_at(Worker(delayed, name="w2"), T0 + timedelta(minutes=5, seconds=2))
    assert incident_ids(delayed) == [1, 1]


def test_an_alert_whose_rule_a_reload_removed_while_it_waited_is_unrouted(
    api: TestClient, context: AppContext, generic_key: str, viewer: dict[str, str]
) -> None:
    """Rule ``delayed`` (30s) is in the org file when the alert comes, gone after a reload when its delay is
    over: no rule routes the alert now, so it counts as unrouted everywhere (not "routed" by a rule that is
    no more, on no incident), and its note says why."""
    document = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    rule = {"name": "delayed", "match": {"type": ["DelayTest"]}, "incident": {"delay": "30s"}}
    document["automation"]["rules"].insert(0, rule)
    context.org = parse_org_config(yaml.safe_dump(document))
    clock.set(T0)
    worker = Worker(context, name="w1")
    body = {"summary": "delay one", "severity": "warning", "type": "DelayTest", "dedup_key": "d1"}
    answer = api.post(f"/api/v1/alerts?key={generic_key}", json=body)
    assert answer.status_code == 202, answer.text
    alert_id = answer.json()["alerts"][0]["id"]

    def unrouted() -> tuple[list[int], int, list[str], int]:
        listed = api.get("/api/v1/alerts", params={"unrouted": "true"}, headers=viewer).json()["items"]
        shown = api.get("/api/v1/alerts/overview", headers=viewer).json()["unrouted"]
        metric = [
            line for line in api.get("/metrics").text.splitlines() if line.startswith("warroom_alerts_unr")
        ]
        with context.db.read() as session:
            in_digest = digest.summary(session, T0 - timedelta(hours=1), T0 + timedelta(hours=1))["total"]
        return [alert["id"] for alert in listed], shown, metric, in_digest

    assert unrouted() == ([], 0, ['warroom_alerts_unrouted{severity="warning",source="generic"} 0.0'], 0)

    reload.reload_org(context)  # the example org file: no rule delayed
    run_at(worker, T0 + timedelta(seconds=31))
    assert incident_count(context) == 0
    with context.db.read() as session:
        job = session.scalars(select(Job).where(Job.kind == DELAY_KIND)).one()
        alert = session.get_one(Alert, alert_id)
        assert (alert.status, alert.rules, alert.incident_id) == ("firing", None, None)
    why = (
        "its rule delayed is no longer in the org file (reloaded while it waited), "
        "and no other rule routes it"
    )
    assert job.result == {"opened": False, "reason": f"{why}: unrouted"}
    assert unrouted() == (
        [alert_id],
        1,
        ['warroom_alerts_unrouted{severity="warning",source="generic"} 1.0'],
        1,
    )
    detail = api.get(f"/api/v1/alerts/{alert_id}", headers=viewer).json()
    assert detail["unrouted"] is True
    assert [(note["author"], note["body"]) for note in detail["notes"]] == [
        ("automation", f"Not routed after its delay: {why}: unrouted")
    ]
