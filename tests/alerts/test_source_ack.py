"""Alerts acknowledged at their source acknowledge their incident (``acknowledge_incident_with_alerts``)
once every open alert of it is acknowledged; that stops escalation like a person's ack."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text

from tests.conftest import EXAMPLE_CONFIG, job_count
from tests.e2e.server import run_cli
from warroom.alerts import adapters
from warroom.alerts import service as alerts_service
from warroom.alerts.adapters import AlertEvent
from warroom.alerts.intake import ingest_alone
from warroom.alerts.models import Alert, AlertStatus
from warroom.alerts.schemas import Ingested
from warroom.auth import integrations
from warroom.auth.models import IntegrationType
from warroom.clock import clock
from warroom.context import AppContext
from warroom.incidents.models import Incident, TimelineEntry
from warroom.jobs.models import Job, JobStatus
from warroom.jobs.worker import Worker
from warroom.oncall.models import Escalation, EscalationState, Page, PageStatus
from warroom.oncall.paging import CHECK_KIND, NOTIFY_KIND
from warroom.orgconfig import ConfigError, OrgConfig, load_org_config, parse_org_config

# Monday 2 March 2026, 10:00 UTC: carol is on call for platform-primary, alice for platform-secondary.
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


# --- helpers ---------------------------------------------------------------------------------------


def pd_trigger(key: str, dedup_key: str, *, cls: str = "HighErrorRate") -> dict[str, Any]:
    return {
        "routing_key": key,
        "event_action": "trigger",
        "dedup_key": dedup_key,
        "payload": {
            "summary": f"API 5xx above 5% ({dedup_key})",
            "source": "prometheus-1",
            "severity": "critical",
            "component": "api",
            "class": cls,
        },
    }


def pd(api: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    response = api.post("/v2/enqueue", json=body)
    assert response.status_code == 202, response.text
    answer: dict[str, Any] = response.json()
    return answer


def pd_ack(api: TestClient, key: str, dedup_key: str) -> None:
    pd(api, {"routing_key": key, "event_action": "acknowledge", "dedup_key": dedup_key})


def generic(api: TestClient, key: str, **alert: Any) -> dict[str, Any]:
    body = {"severity": "critical", "service": "api", "labels": {"alertname": "HighErrorRate"}, **alert}
    response = api.post(f"/api/v1/alerts?key={key}", json=body)
    assert response.status_code == 202, response.text
    result: dict[str, Any] = response.json()["alerts"][0]
    return result


# An alert of another service and group than ``generic``'s default: it opens an incident of its own.
SEARCH_5XX: dict[str, Any] = {
    "summary": "search 5xx",
    "dedup_key": "search-5xx",
    "service": "search",
    "labels": {"alertname": "S"},
}


def incident(context: AppContext, number: int = 1) -> Incident:
    with context.db.read() as session:
        row = session.get(Incident, number)
        assert row is not None
        return row


def timeline(context: AppContext, number: int = 1) -> list[TimelineEntry]:
    with context.db.read() as session:
        return list(
            session.scalars(
                select(TimelineEntry).where(TimelineEntry.incident_id == number).order_by(TimelineEntry.seq)
            )
        )


def ack_entries(context: AppContext, number: int = 1) -> list[TimelineEntry]:
    return [e for e in timeline(context, number) if e.kind == "acknowledged"]


def sent_pages(context: AppContext, number: int = 1) -> list[tuple[str, str, int, int]]:
    with context.db.read() as session:
        rows = session.scalars(
            select(Page).where(Page.incident_id == number, Page.status == PageStatus.sent).order_by(Page.id)
        )
        return [(p.person, p.channel, p.cycle, p.step) for p in rows]


def pending_escalation_jobs(context: AppContext, number: int = 1) -> list[Job]:
    with context.db.read() as session:
        return list(
            session.scalars(
                select(Job).where(
                    Job.incident_id == number,
                    Job.status == JobStatus.pending,
                    Job.kind.in_([CHECK_KIND, NOTIFY_KIND]),
                )
            )
        )


def run_at(worker: Worker, moment: datetime) -> None:
    clock.set(moment)
    while worker.run_once():
        pass


def with_setting(base: OrgConfig, everywhere: bool, rule: bool | None = None) -> OrgConfig:
    """The example org with the global setting, and the critical-monitoring rule's override."""
    rules = [
        r.model_copy(update={"acknowledge_incident_with_alerts": rule})
        if r.name == "critical-monitoring"
        else r
        for r in base.automation.rules
    ]
    automation = base.automation.model_copy(
        update={"acknowledge_incident_with_alerts": everywhere, "rules": rules}
    )
    return base.model_copy(update={"automation": automation})


@pytest.fixture
def org(request: pytest.FixtureRequest) -> OrgConfig:
    """The example org file, or (indirect parametrization) the example with (global, rule) settings."""
    base = load_org_config(EXAMPLE_CONFIG)
    setting: tuple[bool, bool | None] | None = getattr(request, "param", None)
    return base if setting is None else with_setting(base, *setting)


# --- escalation stops ------------------------------------------------------------------------------


def test_pagerduty_acknowledge_stops_escalation(api: TestClient, context: AppContext, pd_key: str) -> None:
    assert context.org.automation.acknowledge_incident_with_alerts is True  # the default, and the example
    clock.set(T0)
    worker = Worker(context, name="w1")
    answer = pd(api, pd_trigger(pd_key, "api-5xx"))
    assert answer["dedup_key"] == "api-5xx"
    opened = incident(context)
    assert (opened.severity, opened.created_by, opened.acknowledged_at) == ("P1", "automation", None)
    assert any(e.action == "Page requested: escalation policy platform-escalation" for e in timeline(context))

    run_at(worker, T0)
    assert sent_pages(context) == [("carol", "email", 1, 1)]
    assert pending_escalation_jobs(context)  # the ack deadline check, and carol's delayed slack page

    # carol acknowledges in the monitoring tool, which tells Warroom through the Events API.
    clock.set(T0 + timedelta(minutes=3))
    pd_ack(api, pd_key, "api-5xx")
    acknowledged = incident(context)
    assert acknowledged.acknowledged_at == T0 + timedelta(minutes=3)
    assert acknowledged.acknowledged_by == "automation"
    assert acknowledged.status == "investigating"
    entries = timeline(context)
    [alert_entry] = [e for e in entries if e.action.startswith("Alert ALR-1 acknowledged")]
    assert alert_entry.performer == "automation"
    assert alert_entry.action == (
        "Alert ALR-1 acknowledged at its source (pagerduty); every open alert of INC-1 is acknowledged "
        "(ALR-1 (pagerduty)), so automation acknowledges the incident"
    )
    assert alert_entry.data == {"alert": 1, "source": "pagerduty", "acknowledged_alerts": [1]}
    [ack] = ack_entries(context)
    assert (ack.performer, ack.action) == ("automation", "Acknowledged by automation")
    assert ack.seq == alert_entry.seq + 1
    stopped = [e for e in entries if e.action.startswith("Escalation stopped (acknowledged)")]
    assert len(stopped) == 1 and stopped[0].data is not None and stopped[0].data["by"] == "automation"
    assert pending_escalation_jobs(context) == []
    with context.db.read() as session:
        states = session.scalars(select(Escalation.state).where(Escalation.incident_id == 1)).all()
        delayed = session.scalars(select(Page.status).where(Page.channel == "slack")).all()
    assert states and set(states) == {EscalationState.acknowledged}
    assert list(delayed) == [PageStatus.cancelled]  # carol's 5-minute slack page never goes out

    # The clock runs on past every deadline: nobody else is paged.
    for minutes in (5, 15, 25, 60, 180):
        run_at(worker, T0 + timedelta(minutes=minutes))
    assert sent_pages(context) == [("carol", "email", 1, 1)]
    assert [e.id for e in ack_entries(context)] == [ack.id]

    # The alert resolves later: the incident moves to monitoring, as before.
    pd(api, {"routing_key": pd_key, "event_action": "resolve", "dedup_key": "api-5xx"})
    assert incident(context).status == "monitoring"


# --- several alerts --------------------------------------------------------------------------------


def test_every_open_alert_must_be_acknowledged(
    api: TestClient, context: AppContext, pd_key: str, generic_key: str
) -> None:
    first = generic(api, generic_key, summary="5xx on api-a", dedup_key="api-a")
    # The same group (service api, alertname HighErrorRate) from another tool joins INC-1.
    second = pd(api, pd_trigger(pd_key, "api-b"))
    assert first["incident"] == "INC-1"
    with context.db.read() as session:
        assert session.scalars(select(Alert.incident_id).order_by(Alert.id)).all() == [1, 1]
        assert session.scalar(select(func.count()).select_from(Incident)) == 1
    assert second["dedup_key"] == "api-b"

    generic(api, generic_key, summary="5xx on api-a", dedup_key="api-a", status="acknowledged")
    assert incident(context).acknowledged_at is None
    last = timeline(context)[-1]
    assert last.action == (
        "Alert ALR-1 acknowledged at its source (generic); INC-1 stays unacknowledged: ALR-2 still fires"
    )
    assert last.data == {"alert": 1, "source": "generic", "still_firing": [2]}
    assert ack_entries(context) == []

    pd_ack(api, pd_key, "api-b")
    done = incident(context)
    assert done.acknowledged_at is not None and done.acknowledged_by == "automation"
    alert_entry, ack = timeline(context)[-2:]
    assert alert_entry.action == (
        "Alert ALR-2 acknowledged at its source (pagerduty); every open alert of INC-1 is acknowledged "
        "(ALR-1 (generic), ALR-2 (pagerduty)), so automation acknowledges the incident"
    )
    assert (ack.kind, ack.performer) == ("acknowledged", "automation")


def test_resolved_alerts_do_not_hold_the_incident_back(
    api: TestClient, context: AppContext, generic_key: str
) -> None:
    generic(api, generic_key, summary="5xx on api-a", dedup_key="api-a")
    generic(api, generic_key, summary="5xx on api-b", dedup_key="api-b")
    generic(api, generic_key, summary="5xx on api-b", dedup_key="api-b", status="resolved")
    assert incident(context).status == "investigating"  # api-a still fires
    generic(api, generic_key, summary="5xx on api-a", dedup_key="api-a", status="acknowledged")
    assert incident(context).acknowledged_by == "automation"
    assert "every open alert of INC-1 is acknowledged (ALR-1 (generic))" in timeline(context)[-2].action


def test_one_batch_acknowledging_every_alert_acknowledges_once(
    api: TestClient, context: AppContext, generic_key: str
) -> None:
    base = {"severity": "critical", "service": "api", "labels": {"alertname": "HighErrorRate"}}
    alerts = [{**base, "summary": f"5xx on {k}", "dedup_key": k} for k in ("api-a", "api-b", "api-c")]
    response = api.post(f"/api/v1/alerts?key={generic_key}", json=alerts)
    assert [a["incident"] for a in response.json()["alerts"]] == ["INC-1"] * 3
    acks = [{**a, "status": "acknowledged"} for a in alerts]
    response = api.post(f"/api/v1/alerts?key={generic_key}", json=acks)
    assert [a["outcome"] for a in response.json()["alerts"]] == ["acknowledged"] * 3
    assert len(ack_entries(context)) == 1
    alert_lines = [e.action for e in timeline(context) if "acknowledged at its source" in e.action]
    assert alert_lines == [
        "Alert ALR-1 acknowledged at its source (generic); every open alert of INC-1 is acknowledged "
        "(ALR-1 (generic), ALR-2 (generic), ALR-3 (generic)), so automation acknowledges the incident",
        "Alert ALR-2 acknowledged at its source (generic)",
        "Alert ALR-3 acknowledged at its source (generic)",
    ]


def test_two_acknowledgements_racing_still_acknowledge(
    api: TestClient, context: AppContext, generic_key: str
) -> None:
    """Two sources acknowledge the incident's two alerts in concurrent transactions. Each holds the incident
    row while it looks at the other alerts, so the later one sees the earlier one committed and acknowledges
    (on PostgreSQL the second really waits on the first; SQLite serialises the writes anyway)."""
    generic(api, generic_key, summary="5xx on api-a", dedup_key="api-a")
    generic(api, generic_key, summary="5xx on api-b", dedup_key="api-b")

    def ack_events(dedup_key: str) -> list[AlertEvent]:
        return adapters.from_generic({"summary": "5xx", "dedup_key": dedup_key, "status": "acknowledged"})

    outcome: list[Ingested | BaseException] = []

    def second() -> None:
        try:
            outcome.append(
                ingest_alone(context, generic_key, IntegrationType.generic, "generic", ack_events("api-b"))
            )
        except BaseException as exc:  # reported by the assertion below
            outcome.append(exc)

    thread = threading.Thread(target=second)
    with context.db.write() as session:
        identity = integrations.authenticate_integration(session, generic_key, IntegrationType.generic)
        alerts_service.ingest(
            session, org=context.org, source="generic", events=ack_events("api-a"), integration=identity
        )
        thread.start()
        if context.db.engine.dialect.name == "postgresql":
            _wait_until_blocked(context)
    thread.join(timeout=60)
    assert not thread.is_alive()
    [result] = outcome
    assert isinstance(result, Ingested), result
    done = incident(context)
    assert done.acknowledged_by == "automation"
    assert len(ack_entries(context)) == 1
    lines = [e.action for e in timeline(context) if "acknowledged at its source" in e.action]
    assert lines[0].endswith("INC-1 stays unacknowledged: ALR-2 still fires")
    assert "every open alert of INC-1 is acknowledged (ALR-1 (generic), ALR-2 (generic))" in lines[1]


def _wait_until_blocked(context: AppContext) -> None:
    """Until another session of this database waits on a row lock (the incident, held by the caller)."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    deadline = time.monotonic() + 30
    with context.db.engine.connect() as connection:
        while not connection.execute(query).scalar():
            assert time.monotonic() < deadline, "the second acknowledgement never reached the incident lock"
            connection.rollback()  # a fresh snapshot of pg_stat_activity
            time.sleep(0.01)


# --- when it does nothing -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("org", "expected"),
    [
        ((False, None), False),  # off everywhere
        ((True, False), False),  # on, but this rule leaves acknowledging to people
        ((False, True), True),  # off, but this rule turns it on
    ],
    indirect=["org"],
    ids=["off", "rule-off", "rule-on"],
)
def test_setting_and_rule_override(api: TestClient, context: AppContext, pd_key: str, expected: bool) -> None:
    clock.set(T0)
    worker = Worker(context, name="w1")
    pd(api, pd_trigger(pd_key, "api-5xx"))
    run_at(worker, T0)
    pd_ack(api, pd_key, "api-5xx")
    with context.db.read() as session:
        assert session.scalar(select(Alert.status)) == AlertStatus.acknowledged
    assert (incident(context).acknowledged_at is not None) is expected
    assert len(ack_entries(context)) == int(expected)
    if not expected:
        assert timeline(context)[-1].action == "Alert ALR-1 acknowledged at its source (pagerduty)"
        assert pending_escalation_jobs(context)  # escalation goes on until a person acknowledges
        run_at(worker, T0 + timedelta(minutes=15))
        assert ("alice", "email", 1, 2) in sent_pages(context)


def test_already_acknowledged_incident_gets_no_second_ack(
    api: TestClient, context: AppContext, pd_key: str, responder: dict[str, str]
) -> None:
    pd(api, pd_trigger(pd_key, "api-5xx"))
    person = api.post("/api/v1/incidents/INC-1/ack", headers=responder)
    assert person.status_code == 200
    assert person.json()["acknowledged_by"] == "responder-user"
    # The incident's acknowledgement reached its alert; taken back, it fires on an acknowledged incident.
    assert api.post("/api/v1/alerts/ALR-1/unacknowledge", headers=responder).status_code == 200
    pd_ack(api, pd_key, "api-5xx")
    pd_ack(api, pd_key, "api-5xx")  # a redelivered ack changes nothing
    after = incident(context)
    assert after.acknowledged_by == "responder-user"
    assert [e.performer for e in ack_entries(context)] == ["responder-user"]
    lines = [e.action for e in timeline(context) if "acknowledged at its source" in e.action]
    assert lines == ["Alert ALR-1 acknowledged at its source (pagerduty)"]


def test_closed_incident_is_not_acknowledged(
    api: TestClient, context: AppContext, pd_key: str, responder: dict[str, str]
) -> None:
    pd(api, pd_trigger(pd_key, "api-5xx"))
    resolved = api.patch("/api/v1/incidents/INC-1", headers=responder, json={"status": "resolved"})
    assert resolved.status_code == 200, resolved.text
    before = [(e.seq, e.hash) for e in timeline(context)]
    # Its alert resolved with it: the source's acknowledgement finds no open alert, and changes nothing.
    pd_ack(api, pd_key, "api-5xx")
    assert incident(context).acknowledged_at is None
    assert ack_entries(context) == []
    assert [(e.seq, e.hash) for e in timeline(context)] == before
    assert timeline(context)[-1].action == (
        "Alert ALR-1 resolved by hand: API 5xx above 5% (api-5xx) — its incident INC-1 was resolved"
    )


def test_alert_on_no_incident_changes_nothing_else(
    api: TestClient, context: AppContext, generic_key: str
) -> None:
    # A warning matches no rule of the example: stored, unrouted.
    quiet = {"summary": "disk 80%", "severity": "warning", "dedup_key": "disk"}
    assert generic(api, generic_key, **quiet)["incident"] is None
    answer = generic(api, generic_key, **quiet, status="acknowledged")
    assert (answer["outcome"], answer["incident"]) == ("acknowledged", None)
    with context.db.read() as session:
        assert session.scalar(select(func.count()).select_from(Incident)) == 0
        assert session.scalar(select(func.count()).select_from(TimelineEntry)) == 0
        assert job_count(session) == 0


def test_bad_acknowledgements_change_nothing(
    api: TestClient, context: AppContext, pd_key: str, generic_key: str
) -> None:
    pd(api, pd_trigger(pd_key, "api-5xx"))
    before = [(e.seq, e.hash) for e in timeline(context)]

    missing = api.post("/v2/enqueue", json={"routing_key": pd_key, "event_action": "acknowledge"})
    assert missing.status_code == 400
    assert missing.json()["errors"] == ["dedup_key: required for acknowledge"]
    wrong_action = api.post(
        "/v2/enqueue", json={"routing_key": pd_key, "event_action": "ack", "dedup_key": "api-5xx"}
    )
    assert wrong_action.status_code == 400
    bad_key = api.post(
        "/v2/enqueue", json={"routing_key": "nope", "event_action": "acknowledge", "dedup_key": "api-5xx"}
    )
    assert bad_key.status_code in (400, 401, 403)
    other_source = api.post(  # a generic integration's key on the PagerDuty endpoint
        "/v2/enqueue",
        json={"routing_key": generic_key, "event_action": "acknowledge", "dedup_key": "api-5xx"},
    )
    assert other_source.status_code == 403
    bad_status = api.post(
        f"/api/v1/alerts?key={generic_key}", json={"summary": "x", "dedup_key": "api-5xx", "status": "acked"}
    )
    assert bad_status.status_code == 400
    # Well-formed, but for an alert that is not open there: PagerDuty's rule, dropped.
    unknown = pd(api, {"routing_key": pd_key, "event_action": "acknowledge", "dedup_key": "never-fired"})
    assert unknown["dedup_key"] == "never-fired"

    assert incident(context).acknowledged_at is None
    assert [(e.seq, e.hash) for e in timeline(context)] == before
    with context.db.read() as session:
        assert session.scalars(select(Alert.status)).all() == [AlertStatus.firing]


# --- the org file ----------------------------------------------------------------------------------


def test_org_file_accepts_and_validates_the_setting(tmp_path: Path) -> None:
    text = EXAMPLE_CONFIG.read_text()
    assert "acknowledge_incident_with_alerts: true" in text
    off = text.replace("acknowledge_incident_with_alerts: true", "acknowledge_incident_with_alerts: false")
    off = off.replace(
        "      page: platform-escalation\n",
        "      page: platform-escalation\n      acknowledge_incident_with_alerts: true\n",
    )
    org = parse_org_config(off, "off.yaml")
    assert org.automation.acknowledge_incident_with_alerts is False
    rule = next(r for r in org.automation.rules if r.name == "critical-monitoring")
    assert rule.acknowledge_incident_with_alerts is True
    assert (
        next(r for r in org.automation.rules if r.name == "payments-down").acknowledge_incident_with_alerts
        is None
    )
    assert OrgConfig().automation.acknowledge_incident_with_alerts is True

    with pytest.raises(ConfigError) as bad_value:
        parse_org_config(
            text.replace("acknowledge_incident_with_alerts: true", "acknowledge_incident_with_alerts: maybe"),
            "b.yaml",
        )
    [problem] = bad_value.value.problems
    line = text[: text.index("acknowledge_incident_with_alerts")].count("\n") + 1
    assert str(problem).startswith(f"automation.acknowledge_incident_with_alerts (line {line})")
    with pytest.raises(ConfigError) as misspelled:
        parse_org_config(
            text.replace("acknowledge_incident_with_alerts:", "acknowledge_incidents_with_alerts:"), "m.yaml"
        )
    assert any("acknowledge_incidents_with_alerts" in str(p) for p in misspelled.value.problems)

    good = tmp_path / "good.yaml"
    good.write_text(off)
    assert run_cli("config", "check", str(good)).stdout.startswith("ok ")
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        off.replace(
            "      acknowledge_incident_with_alerts: true\n",
            "      acknowledge_incident_with_alerts: [yes]\n",
        )
    )
    checked = run_cli("config", "check", str(bad), check=False)
    assert checked.returncode == 2
    index = [r.name for r in org.automation.rules].index("critical-monitoring")
    assert f"automation.rules[{index}].acknowledge_incident_with_alerts" in checked.stderr


# --- acknowledged by a person --------------------------------------------------------------------------


def test_a_person_acknowledges_an_alert_by_hand(
    api: TestClient, context: AppContext, pd_key: str, responder: dict[str, str]
) -> None:
    clock.set(T0)
    worker = Worker(context, name="w1")
    pd(api, pd_trigger(pd_key, "api-5xx"))
    run_at(worker, T0)
    assert sent_pages(context) == [("carol", "email", 1, 1)]

    clock.set(T0 + timedelta(minutes=2))
    response = api.post("/api/v1/alerts/ALR-1/acknowledge", headers=responder)
    assert response.status_code == 200, response.text
    alert = response.json()
    assert (alert["status"], alert["acknowledged_by"]) == ("acknowledged", "responder-user")
    assert alert["acknowledged_at"].startswith("2026-03-02T10:02")
    # The incident's only alert: the incident is acknowledged by the same person, and escalation stops.
    acknowledged = incident(context)
    assert (acknowledged.acknowledged_by, acknowledged.acknowledged_at) == (
        "responder-user",
        T0 + timedelta(minutes=2),
    )
    alert_entry, ack = timeline(context)[-3:-1]
    assert alert_entry.action == (
        "Alert ALR-1 acknowledged by hand: API 5xx above 5% (api-5xx); every open alert of INC-1 is "
        "acknowledged (ALR-1 (by responder-user)), so responder-user acknowledges the incident"
    )
    assert alert_entry.performer == "responder-user"
    assert alert_entry.data == {"alert": 1, "acknowledged_by": "responder-user", "acknowledged_alerts": [1]}
    assert (ack.kind, ack.performer) == ("acknowledged", "responder-user")
    assert timeline(context)[-1].action.startswith("Escalation stopped (acknowledged)")
    assert pending_escalation_jobs(context) == []
    run_at(worker, T0 + timedelta(minutes=30))
    assert sent_pages(context) == [("carol", "email", 1, 1)]

    # The source keeps sending: the alert counts on and stays acknowledged, by the same person.
    clock.set(T0 + timedelta(minutes=5))
    again = pd(api, {**pd_trigger(pd_key, "api-5xx"), "payload": {**pd_trigger(pd_key, "x")["payload"]}})
    assert again["dedup_key"] == "api-5xx"
    pd_ack(api, pd_key, "api-5xx")  # and its own acknowledgement changes nothing more
    with context.db.read() as session:
        row = session.get_one(Alert, 1)
        assert (row.status, row.acknowledged_by, row.occurrences) == (
            AlertStatus.acknowledged,
            "responder-user",
            2,
        )
    assert len(ack_entries(context)) == 1


def test_acknowledged_by_hand_and_at_the_source_together(
    api: TestClient, context: AppContext, pd_key: str, generic_key: str, responder: dict[str, str]
) -> None:
    generic(api, generic_key, summary="5xx on api-a", dedup_key="api-a")
    pd(api, pd_trigger(pd_key, "api-b"))
    assert api.post("/api/v1/alerts/1/acknowledge", headers=responder).status_code == 200
    assert incident(context).acknowledged_at is None
    assert timeline(context)[-1].action == (
        "Alert ALR-1 acknowledged by hand: 5xx on api-a; INC-1 stays unacknowledged: ALR-2 still fires"
    )
    pd_ack(api, pd_key, "api-b")
    assert incident(context).acknowledged_by == "automation"
    assert timeline(context)[-2].action == (
        "Alert ALR-2 acknowledged at its source (pagerduty); every open alert of INC-1 is acknowledged "
        "(ALR-1 (by responder-user), ALR-2 (pagerduty)), so automation acknowledges the incident"
    )


def test_acknowledging_by_hand_refusals_change_nothing(
    api: TestClient,
    context: AppContext,
    generic_key: str,
    responder: dict[str, str],
    viewer: dict[str, str],
) -> None:
    generic(api, generic_key, summary="5xx on api-a", dedup_key="api-a")
    generic(api, generic_key, summary="5xx on api-b", dedup_key="api-b")
    generic(api, generic_key, summary="5xx on api-b", dedup_key="api-b", status="acknowledged")
    generic(api, generic_key, summary="disk", dedup_key="disk", severity="warning")
    generic(api, generic_key, summary="disk", dedup_key="disk", status="resolved")

    def snapshot() -> tuple[list[dict[str, Any]], list[tuple[int, str]]]:
        alerts = api.get("/api/v1/alerts", headers=viewer).json()["items"]
        return alerts, [(e.seq, e.hash) for e in timeline(context)]

    before = snapshot()
    at_source = api.post("/api/v1/alerts/ALR-2/acknowledge", headers=responder)
    assert at_source.status_code == 409
    assert "already acknowledged" in at_source.json()["error"]["message"]
    assert "at its source (generic)" in at_source.json()["error"]["message"]
    resolved = api.post("/api/v1/alerts/3/acknowledge", headers=responder)
    assert resolved.status_code == 409 and "is resolved" in resolved.json()["error"]["message"]
    assert api.post("/api/v1/alerts/1/acknowledge", headers=viewer).status_code == 403
    assert api.post("/api/v1/alerts/1/acknowledge").status_code == 401
    assert api.post("/api/v1/alerts/999/acknowledge", headers=responder).status_code == 404
    assert api.post("/api/v1/alerts/ALR-x/acknowledge", headers=responder).status_code == 404
    assert snapshot() == before

    assert api.post("/api/v1/alerts/1/acknowledge", headers=responder).status_code == 200
    twice = api.post("/api/v1/alerts/1/acknowledge", headers=responder)
    assert twice.status_code == 409 and "by responder-user" in twice.json()["error"]["message"]
    # An alert on no incident is acknowledged all the same, with nothing written elsewhere.
    quiet = generic(api, generic_key, summary="disk 80%", dedup_key="disk-2", severity="warning")
    assert quiet["incident"] is None
    done = api.post(f"/api/v1/alerts/{quiet['id']}/acknowledge", headers=responder).json()
    assert (done["status"], done["acknowledged_by"], done["incident"]) == (
        "acknowledged",
        "responder-user",
        None,
    )


def test_attaching_alerts_by_hand(
    api: TestClient, context: AppContext, generic_key: str, responder: dict[str, str], viewer: dict[str, str]
) -> None:
    """A database outage opens incidents for the api and for search; the commander puts search's alert on the
    api incident, and an unrouted alert too."""
    clock.set(T0)
    api_alert = generic(api, generic_key, summary="api 5xx", dedup_key="api-5xx")
    search_alert = generic(api, generic_key, **SEARCH_5XX)
    unrouted = generic(
        api,
        generic_key,
        summary="db slow",
        dedup_key="db-slow",
        severity="info",
        labels={"alertname": "DbSlow"},
    )
    assert (api_alert["incident"], search_alert["incident"], unrouted["incident"]) == ("INC-1", "INC-2", None)

    def attach(ref: int, incident: str, headers: dict[str, str] = responder) -> Any:
        return api.post(f"/api/v1/alerts/{ref}/attach", json={"incident": incident}, headers=headers)

    moved = attach(search_alert["id"], "INC-1")
    assert moved.status_code == 200, moved.text
    assert moved.json()["incident"] == "INC-1"
    to_entries = [e.action for e in timeline(context, 1) if "search-5xx" in e.action or "ALR-2" in e.action]
    assert (
        to_entries[-1].startswith("Alert ALR-2 (generic, critical) attached")
        and "moved from INC-2" in to_entries[-1]
    )
    assert timeline(context, 2)[-1].action.startswith("Alert ALR-2 moved to INC-1")
    assert timeline(context, 2)[-1].performer == "responder-user"
    assert attach(unrouted["id"], "inc-1").json()["incident"] == "INC-1"
    assert incident(context, 2).status.value == "investigating"  # attaching changes no status

    # Refusals change nothing.
    api.patch("/api/v1/incidents/INC-2", json={"status": "resolved"}, headers=responder)
    with context.db.read() as session:
        before = [(a.id, a.incident_id) for a in session.scalars(select(Alert).order_by(Alert.id))]
    assert attach(api_alert["id"], "INC-1").status_code == 409  # already there
    assert attach(api_alert["id"], "INC-2").status_code == 409  # not open
    assert attach(api_alert["id"], "INC-99").status_code == 404
    assert attach(api_alert["id"], "nonsense").status_code == 404
    assert attach(99, "INC-1").status_code == 404
    assert attach(api_alert["id"], "INC-1", viewer).status_code == 403
    assert api.post(f"/api/v1/alerts/{api_alert['id']}/attach", json={}, headers=responder).status_code == 422
    with context.db.read() as session:
        assert [(a.id, a.incident_id) for a in session.scalars(select(Alert).order_by(Alert.id))] == before


def test_an_acknowledgement_can_be_taken_back(
    api: TestClient, context: AppContext, pd_key: str, responder: dict[str, str], viewer: dict[str, str]
) -> None:
    clock.set(T0)
    pd(api, pd_trigger(pd_key, "api-5xx"))
    assert api.post("/api/v1/alerts/ALR-1/acknowledge", headers=responder).status_code == 200
    entries = len(timeline(context))

    taken_back = api.post("/api/v1/alerts/ALR-1/unacknowledge", headers=responder)
    assert taken_back.status_code == 200, taken_back.text
    alert = taken_back.json()
    assert (alert["status"], alert["acknowledged_at"], alert["acknowledged_by"]) == ("firing", None, None)
    last = timeline(context)[-1]
    assert len(timeline(context)) == entries + 1 and last.performer == "responder-user"
    assert last.action == (
        "Alert ALR-1 unacknowledged (it was acknowledged by responder-user): it is firing and nobody is on it"
    )
    assert incident(context).acknowledged_by == "responder-user"  # the incident's own decision stands
    # The source acknowledges it again: the usual path, by its source this time.
    pd_ack(api, pd_key, "api-5xx")
    with context.db.read() as session:
        assert session.get_one(Alert, 1).status == AlertStatus.acknowledged

    # Refusals change nothing: a firing or resolved alert, a viewer, no token, an unknown alert.
    before = timeline(context)
    assert api.post("/api/v1/alerts/ALR-1/unacknowledge", headers=viewer).status_code == 403
    assert api.post("/api/v1/alerts/ALR-1/unacknowledge").status_code == 401
    assert api.post("/api/v1/alerts/ALR-9/unacknowledge", headers=responder).status_code == 404
    assert api.post("/api/v1/alerts/ALR-1/unacknowledge", headers=responder).status_code == 200
    refused = api.post("/api/v1/alerts/ALR-1/unacknowledge", headers=responder)
    assert refused.status_code == 409 and "is firing, not acknowledged" in refused.text
    assert len(timeline(context)) == len(before) + 1


def test_an_alert_acknowledged_and_resolved_in_one_delivery_does_not_acknowledge_its_incident(
    api: TestClient, context: AppContext, generic_key: str
) -> None:
    """A delivery that fires, acknowledges and resolves one key: by the time automation looks, the incident
    has no open alert left, so there is nothing its acknowledgement could stand for. Before, the timeline said
    "every open alert of INC-1 is acknowledged ()", listing none, and automation acknowledged the incident."""
    clock.set(T0)
    base = {"summary": "checkout 5xx", "severity": "critical", "service": "api", "dedup_key": "blip"}
    body = [base, {**base, "status": "acknowledged"}, {**base, "status": "resolved"}]
    response = api.post(f"/api/v1/alerts?key={generic_key}", json=body)
    assert response.status_code == 202, response.text
    actions = [entry.action for entry in timeline(context)]
    assert not any("every open alert" in action for action in actions), actions
    assert ack_entries(context) == []
    assert incident(context).acknowledged_at is None
