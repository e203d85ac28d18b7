"""automation.inhibit_rules: while an open alert matches a rule's source, new alerts matching its target with
the same ``equal`` labels are recorded but not acted on; when it resolves, those still open are routed."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from tests.alerts.test_intake import alerts
from tests.alerts.test_maintenance import T0, start_window
from tests.alerts.test_source_ack import run_at, timeline
from tests.conftest import EXAMPLE_CONFIG
from warroom.alerts import service as alerts_service
from warroom.alerts.adapters import from_generic
from warroom.alerts.models import Alert
from warroom.cli.main import app
from warroom.clock import clock
from warroom.context import AppContext
from warroom.incidents.models import Incident
from warroom.jobs.worker import Worker
from warroom.orgconfig import ConfigError, OrgConfig, parse_org_config

HOST_DOWN = {
    "name": "host-down",
    "source": {"type": ["HostDown"]},
    "target": {"labels_regex": {"instance": ".+"}},
    "equal": ["instance"],
}
CRITICAL_MUTES_WARNING = {
    "name": "critical-mutes-warning",
    "source": {"severity": ["critical"]},
    "target": {"severity": ["warning"]},
    "equal": ["alertname", "instance"],
}


def org_data(*inhibit_rules: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    data["automation"]["inhibit_rules"] = list(inhibit_rules)
    # A warning opens an incident here too, so that a muted one shows.
    data["automation"]["rules"].insert(
        0,
        {
            "name": "everything",
            "match": {"source": ["generic"]},
            "incident": {"title": "{{ labels.alertname }} on {{ labels.instance }}"},
        },
    )
    return data


@pytest.fixture
def org() -> OrgConfig:
    return parse_org_config(yaml.safe_dump(org_data(HOST_DOWN, CRITICAL_MUTES_WARNING)))


def send(api: TestClient, key: str, alertname: str, instance: str, **fields: Any) -> dict[str, Any]:
    body = {
        "summary": f"{alertname} on {instance}",
        "severity": "critical",
        "dedup_key": f"{alertname}/{instance}",
        "type": alertname,
        "labels": {"alertname": alertname, "instance": instance},
        **fields,
    }
    response = api.post(f"/api/v1/alerts?key={key}", json=body)
    assert response.status_code == 202, response.text
    result: dict[str, Any] = response.json()["alerts"][0]
    return result


def alert(context: AppContext, alert_id: int) -> Alert:
    with context.db.read() as session:
        return session.get_one(Alert, alert_id)


def incident_titles(context: AppContext) -> list[str]:
    with context.db.read() as session:
        return list(session.scalars(select(Incident.title).order_by(Incident.id)))


def test_a_host_down_mutes_its_services_until_it_resolves(
    api: TestClient, context: AppContext, generic_key: str
) -> None:
    host = send(api, generic_key, "HostDown", "web-1")
    assert host["incident"] == "INC-1"
    muted = send(api, generic_key, "ApiErrors", "web-1")
    also_muted = send(api, generic_key, "DiskFull", "web-1", status="firing")
    elsewhere = send(api, generic_key, "ApiErrors", "web-2")
    assert (muted["incident"], also_muted["incident"]) == (None, None)
    assert elsewhere["incident"] is not None  # another instance: not inhibited
    stored = alert(context, muted["id"])
    assert (stored.inhibited_by_id, stored.rules) == (host["id"], None)
    assert incident_titles(context) == ["HostDown on web-1", "ApiErrors on web-2"]
    # One of them ends while the host is still down: it stays recorded, on no incident.
    send(api, generic_key, "DiskFull", "web-1", status="resolved")
    # The host comes back; the API errors go on: routed now.
    send(api, generic_key, "HostDown", "web-1", status="resolved")
    # A symptom of the host's outage: it joins the host's incident (still open, in monitoring), not its
    # group's (ApiErrors, opened for web-2), and the timeline says why it comes late.
    routed = alert(context, muted["id"])
    assert routed.incident_id == 1 and routed.rules == ["everything"]
    assert any(
        f"ALR-{muted['id']} was inhibited by ALR-{host['id']}" in entry.action
        for entry in timeline(context, 1)
    )
    assert alert(context, also_muted["id"]).incident_id is None  # it had resolved
    # The API reports both, the list marks the muted one.
    shown = api.get(f"/api/v1/alerts/ALR-{muted['id']}", headers=_viewer(api, context)).json()
    assert shown["inhibited_by"] == f"ALR-{host['id']}"


def _viewer(api: TestClient, context: AppContext) -> dict[str, str]:
    from warroom.auth import service as auth_service
    from warroom.auth.models import Role

    with context.db.write() as session:
        token = auth_service.create_token(session, name="viewer", role=Role.viewer).token
    return {"Authorization": f"Bearer {token}"}


def test_a_critical_mutes_the_warning_of_the_same_alert_and_the_next_inhibitor_takes_over(
    api: TestClient, context: AppContext, generic_key: str
) -> None:
    critical = send(api, generic_key, "Latency", "db-1", dedup_key="latency-critical")
    warning = send(api, generic_key, "Latency", "db-1", severity="warning", dedup_key="latency-warning")
    assert warning["incident"] is None
    # A host alert also covers it; when the critical one ends, the host alert holds the warning instead.
    host = send(api, generic_key, "HostDown", "db-1")
    send(api, generic_key, "Latency", "db-1", dedup_key="latency-critical", status="resolved")
    assert alert(context, warning["id"]).inhibited_by_id == host["id"]
    assert alert(context, warning["id"]).incident_id is None
    send(api, generic_key, "HostDown", "db-1", status="resolved")
    assert alert(context, warning["id"]).incident_id is not None
    assert critical["incident"] is not None


def test_an_acknowledged_inhibitor_still_mutes_and_a_muted_alert_acknowledged_meanwhile_stays_so(
    api: TestClient, context: AppContext, generic_key: str
) -> None:
    host = send(api, generic_key, "HostDown", "web-1")
    send(api, generic_key, "HostDown", "web-1", status="acknowledged")
    muted = send(api, generic_key, "ApiErrors", "web-1")
    assert muted["incident"] is None
    send(api, generic_key, "ApiErrors", "web-1", status="acknowledged")
    send(api, generic_key, "HostDown", "web-1", status="resolved")
    routed = alert(context, muted["id"])
    assert routed.incident_id is not None and routed.inhibited_by_id == host["id"]
    with context.db.read() as session:
        incident = session.get_one(Incident, routed.incident_id)
        assert incident.acknowledged_at is not None  # its only alert was acknowledged at its source


def test_preview_shows_the_inhibitor(
    api: TestClient, context: AppContext, generic_key: str, responder: dict[str, str]
) -> None:
    host = send(api, generic_key, "HostDown", "web-1")
    body = {"summary": "5xx", "type": "ApiErrors", "labels": {"alertname": "ApiErrors", "instance": "web-1"}}
    [shown] = api.post("/api/v1/alerts/preview", json=body, headers=responder).json()
    assert (shown["inhibited_by"], shown["inhibit_rule"]) == (f"ALR-{host['id']}", "host-down")
    body["labels"]["instance"] = "web-9"
    [other] = api.post("/api/v1/alerts/preview", json=body, headers=responder).json()
    assert other["inhibited_by"] is None
    assert len(alerts(context)) == 1


def test_the_org_file_refuses_inhibit_rules_that_would_mute_everything_or_name_unknown_services(
    tmp_path: Path,
) -> None:
    for rule, problem in [
        ({**HOST_DOWN, "source": {}}, "source and target each need a condition"),
        ({**HOST_DOWN, "target": {"service": ["nope"]}}, "inhibit_rules[0].target.service"),
        ({**HOST_DOWN, "name": "Host Down"}, "inhibit_rules"),
    ]:
        with pytest.raises(ConfigError) as refused:
            parse_org_config(yaml.safe_dump(org_data(rule)))
        assert any(problem in str(p) for p in refused.value.problems), refused.value.problems
    with pytest.raises(ConfigError) as duplicate:
        parse_org_config(yaml.safe_dump(org_data(HOST_DOWN, HOST_DOWN)))
    assert any("inhibit_rules" in str(p) for p in duplicate.value.problems)
    config = tmp_path / "org.yaml"
    config.write_text(yaml.safe_dump(org_data(HOST_DOWN)))
    checked = CliRunner().invoke(app, ["config", "check", str(config)])
    assert checked.exit_code == 0, checked.output


def test_alerts_list_marks_the_muted(
    api: TestClient, context: AppContext, generic_key: str, tmp_path: Path
) -> None:
    send(api, generic_key, "HostDown", "web-1")
    muted = send(api, generic_key, "ApiErrors", "web-1")
    listed = api.get("/api/v1/alerts", headers=_viewer(api, context)).json()["items"]
    by_id = {row["id"]: row for row in listed}
    assert by_id[muted["id"]]["inhibited_by"] == "ALR-1"
    assert json.loads(json.dumps(by_id[1]))["inhibited_by"] is None


def _events(alertname: str, status: str = "firing") -> list[Any]:
    return from_generic(
        {
            "summary": f"{alertname} on web-1",
            "severity": "critical",
            "status": status,
            "dedup_key": alertname,
            "type": alertname,
            "labels": {"alertname": alertname, "instance": "web-1"},
        }
    )


def _ingest(context: AppContext, alertname: str, status: str = "firing") -> Any:
    with context.db.write() as session:
        return alerts_service.ingest(
            session, org=context.org, source="generic", events=_events(alertname, status)
        )


def test_the_inhibitor_resolving_waits_for_intake_that_is_muting_an_alert_by_it(context: AppContext) -> None:
    """PostgreSQL runs intakes at once: an alert muted by a transaction that has not committed yet must not be
    missed when its inhibitor resolves (it would be muted for ever)."""
    _ingest(context, "HostDown")
    resolved = threading.Event()

    def resolve_host() -> None:
        _ingest(context, "HostDown", "resolved")
        resolved.set()

    with context.db.write() as session:
        result = alerts_service.ingest(
            session, org=context.org, source="generic", events=_events("ApiErrors")
        )
        assert result.alerts[0].incident is None  # muted, not yet committed
        resolver = threading.Thread(target=resolve_host)
        resolver.start()
        assert not resolved.wait(0.5)  # the resolve waits for the muting transaction
    resolver.join(10)
    assert resolved.is_set()
    assert alert(context, result.alerts[0].id).incident_id is not None  # released, not muted for ever


def test_intake_while_the_inhibitor_is_resolving_waits_and_then_routes(context: AppContext) -> None:
    """The other order: the inhibitor is resolving (not yet committed) when a new alert arrives. Intake must
    wait, then route the alert rather than mute it by an alert that has resolved."""
    _ingest(context, "HostDown")
    results: list[Any] = []

    def send_it() -> None:
        results.append(_ingest(context, "ApiErrors"))

    with context.db.write() as session:
        alerts_service.ingest(
            session, org=context.org, source="generic", events=_events("HostDown", "resolved")
        )
        sender = threading.Thread(target=send_it)
        sender.start()
        sender.join(0.5)
        assert sender.is_alive()  # intake waits for the resolve to commit
    sender.join(10)
    assert results and results[0].alerts[0].incident is not None


def test_the_inhibitor_is_found_however_many_alerts_opened_after_it(
    api: TestClient, context: AppContext, generic_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only the newest 5 qualifying open alerts are looked at here (1,000 in production). The rules' source
    # conditions and the target's equal labels narrow them in SQL first, so alerts of other hosts and of
    # other severities never crowd out the inhibitor.
    monkeypatch.setattr("warroom.alerts.inhibition.CANDIDATES", 5)
    host = send(api, generic_key, "HostDown", "web-1")
    storm = [
        {
            "summary": f"errors on web-{n}",
            "severity": "critical",
            "dedup_key": f"ApiErrors/web-{n}",
            "type": "ApiErrors",
            "labels": {"alertname": "ApiErrors", "instance": f"web-{n}"},
        }
        for n in range(2, 30)
    ]
    assert api.post(f"/api/v1/alerts?key={generic_key}", json=storm).status_code == 202
    for n in range(2, 12):
        send(api, generic_key, "HostDown", f"web-{n}")  # other hosts down too: HostDown, other instances
    muted = send(api, generic_key, "ApiErrors", "web-1")
    assert muted["incident"] is None
    assert alert(context, muted["id"]).inhibited_by_id == host["id"]
    # A warning of that host is muted by its critical alert (critical-mutes-warning), by alertname too.
    warning = send(api, generic_key, "ApiErrors", "web-1", severity="warning", dedup_key="warn")
    assert alert(context, warning["id"]).inhibited_by_id in (host["id"], muted["id"])


def test_an_inhibitor_that_fires_late_tells_the_incidents_of_its_symptoms(
    api: TestClient, context: AppContext, generic_key: str
) -> None:
    # The services' alerts fire first (the host's own alert waits out its "for"): they open an incident.
    first = send(api, generic_key, "ApiErrors", "web-1")
    other_host = send(api, generic_key, "ApiErrors", "web-2")
    assert first["incident"] == other_host["incident"] == "INC-1"  # one group
    host = send(api, generic_key, "HostDown", "web-1")
    assert host["incident"] == "INC-2"
    # Nothing is moved or muted after the fact; both incidents say how the alerts relate.
    assert (
        alert(context, first["id"]).incident_id == 1 and alert(context, first["id"]).inhibited_by_id is None
    )
    [told] = [e for e in timeline(context, 1) if "symptom" in e.action]
    assert told.action == (
        f"Alert ALR-{host['id']} fired (on INC-2): HostDown on web-1. By inhibit rule host-down, "
        f"ALR-{first['id']} here is a symptom of it (had it fired first, it would have been muted)"
    )
    assert told.performer == "automation" and told.data == {"alert": host["id"], "symptoms": [first["id"]]}
    [own] = [e for e in timeline(context, 2) if "symptoms" in e.action]
    assert own.action == (
        f"Alerts already open elsewhere are symptoms of ALR-{host['id']} (inhibit rules): "
        f"ALR-{first['id']} (INC-1)"
    )
    # Another host's alert fires: it is a symptom of nothing open, and nothing is said.
    send(api, generic_key, "HostDown", "web-9")
    assert len([e for e in timeline(context, 1) if "symptom" in e.action]) == 1


def test_merge_late_folds_incidents_of_nothing_but_symptoms_into_the_inhibitor_s(
    api: TestClient, context: AppContext, generic_key: str
) -> None:
    context.org = parse_org_config(yaml.safe_dump(org_data({**HOST_DOWN, "merge_late": True})))
    first = send(api, generic_key, "ApiErrors", "web-1")
    other_host = send(api, generic_key, "ApiErrors", "web-2")  # the same group: INC-1 holds another cause
    disk = send(api, generic_key, "DiskSlow", "web-1")  # a group of its own: INC-2 holds only web-1's
    assert (first["incident"], other_host["incident"], disk["incident"]) == ("INC-1", "INC-1", "INC-2")

    host = send(api, generic_key, "HostDown", "web-1")
    assert host["incident"] == "INC-3"
    # INC-2 had nothing but a symptom: merged into the host's incident, and resolved as merged.
    assert alert(context, disk["id"]).incident_id == 3
    with context.db.read() as session:
        statuses = {i.id: i.status.value for i in session.scalars(select(Incident))}
    assert statuses == {1: "investigating", 2: "resolved", 3: "investigating"}
    merged = [e.action for e in timeline(context, 2)]
    [moved] = [action for action in merged if action.startswith("Merged into")]
    assert moved == (
        f"Merged into INC-3 ('HostDown on web-1'): its 1 alert(s) moved there — by inhibit rule host-down, "
        f"its alerts (ALR-{disk['id']}) are symptoms of ALR-{host['id']}: HostDown on web-1"
    )
    assert "Status: investigating → resolved — merged into INC-3" in merged
    merged_in = [e.action for e in timeline(context, 3) if "merged into this incident" in e.action]
    assert len(merged_in) == 1 and merged_in[0].startswith("INC-2 (")
    # INC-1 also holds web-2's alert, of another cause: it is only told, and keeps both.
    [told] = [e for e in timeline(context, 1) if "symptom" in e.action]
    assert f"ALR-{first['id']} here is a symptom of it" in told.action
    assert alert(context, first["id"]).incident_id == 1
    [own] = [e for e in timeline(context, 3) if e.action.startswith("Alerts already open elsewhere")]
    assert own.action.endswith(f"ALR-{first['id']} (INC-1)")  # the merged one is not listed again


@pytest.mark.parametrize("by_hand", [False, True], ids=["by-its-source", "by-hand"])
def test_an_inhibitor_muted_in_turn_hands_what_it_muted_on_when_it_resolves(
    api: TestClient, context: AppContext, generic_key: str, responder: dict[str, str], by_hand: bool
) -> None:
    """An alert muted by a HostDown that is itself muted (by the host's first HostDown): when that inhibitor
    resolves, what it muted is looked at again, though nothing was done for the inhibitor itself."""
    first = send(api, generic_key, "HostDown", "web-9")
    assert first["incident"] is not None
    second = send(
        api,
        generic_key,
        "HostDown",
        "web-9",
        dedup_key="host-down-again",
        labels={"alertname": "HostDown", "instance": "web-9", "probe": "icmp"},
    )
    nginx = send(api, generic_key, "NginxDown", "web-9")
    assert (second["incident"], nginx["incident"]) == (None, None)
    assert alert(context, second["id"]).inhibited_by_id == first["id"]
    assert alert(context, nginx["id"]).inhibited_by_id == second["id"]  # the newest inhibitor

    if by_hand:
        response = api.post(f"/api/v1/alerts/{second['id']}/resolve", headers=responder)
        assert response.status_code == 200, response.text
    else:
        send(api, generic_key, "HostDown", "web-9", dedup_key="host-down-again", status="resolved")
    # The first HostDown still mutes it; the second, resolved, stays on no incident.
    assert alert(context, nginx["id"]).inhibited_by_id == first["id"]
    assert alert(context, nginx["id"]).incident_id is None
    assert alert(context, second["id"]).incident_id is None

    send(api, generic_key, "HostDown", "web-9", status="resolved")
    routed = alert(context, nginx["id"])
    assert routed.incident_id is not None and routed.rules == ["everything"]
    assert any(
        f"ALR-{nginx['id']} was inhibited by ALR-{first['id']}" in entry.action
        for entry in timeline(context, routed.incident_id)
    )
    assert alert(context, second["id"]).incident_id is None  # it resolved while muted: nothing to route


def test_an_inhibitor_held_by_a_maintenance_window_releases_what_it_muted_when_it_resolves(
    api: TestClient, context: AppContext, generic_key: str, responder: dict[str, str]
) -> None:
    """The host's own alert is held by a window; its services' alerts are muted by it all the same. When it
    resolves during the window, each of them is routed, or held by a window that covers it, at once."""
    clock.set(T0)
    worker = Worker(context, name="w1")
    start_window(api, responder, match={"type": ["HostDown"]}, duration="1h")
    host = send(api, generic_key, "HostDown", "web-1")
    api_errors = send(api, generic_key, "ApiErrors", "web-1")
    disk = send(api, generic_key, "DiskFull", "web-1")
    assert (host["incident"], api_errors["incident"], disk["incident"]) == (None, None, None)
    assert alert(context, host["id"]).maintenance_window_id == 1
    assert alert(context, api_errors["id"]).inhibited_by_id == host["id"]
    # A window for the disk work starts after its alert fired (so it did not hold it as it arrived).
    start_window(api, responder, labels={"alertname": "DiskFull"}, duration="2h")

    send(api, generic_key, "HostDown", "web-1", status="resolved")
    # The API errors go on: routed now, not when the host's window ends.
    routed = alert(context, api_errors["id"])
    assert routed.incident_id is not None and routed.maintenance_window_id is None
    assert any(
        f"ALR-{api_errors['id']} was inhibited by ALR-{host['id']}" in entry.action
        for entry in timeline(context, routed.incident_id)
    )
    # The disk alert is covered by the running window: it is held there, as if it had just fired.
    held = alert(context, disk["id"])
    assert (held.incident_id, held.maintenance_window_id) == (None, 2)
    assert incident_titles(context) == ["ApiErrors on web-1"]

    # The host's window ends: its alert resolved, nothing to route; the API errors stay where they are.
    run_at(worker, T0 + timedelta(hours=1, seconds=1))
    assert alert(context, host["id"]).incident_id is None
    assert alert(context, api_errors["id"]).incident_id == routed.incident_id
    assert alert(context, disk["id"]).incident_id is None
    # The disk window ends: the disk alert, still firing, is routed.
    run_at(worker, T0 + timedelta(hours=2, seconds=1))
    assert alert(context, disk["id"]).incident_id is not None
    assert incident_titles(context) == ["ApiErrors on web-1", "DiskFull on web-1"]


def _batch_event(alertname: str, instance: str, **fields: Any) -> dict[str, Any]:
    return {
        "summary": f"{alertname} on {instance}",
        "severity": "critical",
        "dedup_key": f"{alertname}/{instance}",
        "type": alertname,
        "labels": {"alertname": alertname, "instance": instance},
        **fields,
    }


@pytest.mark.parametrize("looked_up", ["alert-by-alert", "once"])
@pytest.mark.parametrize("host_first", [True, False], ids=["host-first", "host-last"])
def test_within_one_delivery_the_host_mutes_its_services_in_either_order(
    api: TestClient,
    context: AppContext,
    generic_key: str,
    monkeypatch: pytest.MonkeyPatch,
    host_first: bool,
    looked_up: str,
) -> None:
    """A storm's group is stored whole before any of its alerts is routed: a host's alert mutes its services'
    alerts of the same delivery wherever it stands in it, and each muted alert names the newest inhibitor.
    The same whether the inhibitors are looked up alert by alert (a small delivery) or once (a big one)."""
    monkeypatch.setattr("warroom.alerts.inhibition.BATCH_FROM", 1 if looked_up == "once" else 10_000)
    services = [_batch_event(name, f"web-{n}") for n in (1, 2) for name in ("ApiErrors", "DiskFull")]
    hosts = [_batch_event("HostDown", "web-1"), _batch_event("HostDown", "web-3")]
    batch = [*hosts, *services] if host_first else [*services, *hosts]
    response = api.post(f"/api/v1/alerts?key={generic_key}", json=batch)
    assert response.status_code == 202, response.text
    by_key = {row["dedup_key"]: row for row in response.json()["alerts"]}
    host = by_key["HostDown/web-1"]
    for name in ("ApiErrors", "DiskFull"):
        muted = alert(context, by_key[f"{name}/web-1"]["id"])
        assert (muted.inhibited_by_id, muted.incident_id) == (host["id"], None)
        other = alert(context, by_key[f"{name}/web-2"]["id"])
        assert (other.inhibited_by_id, other.incident_id is not None) == (None, True)
    assert host["incident"] is not None
    # web-3's host alert joins web-1's (one group: HostDown).
    assert sorted(incident_titles(context)) == [
        "ApiErrors on web-2",
        "DiskFull on web-2",
        "HostDown on web-1",
    ]
    # A second HostDown of web-1 in a later delivery is muted by the first; a service alert of web-1 then is
    # muted by the newest of the two, as one looked up alone is.
    again = send(api, generic_key, "HostDown", "web-1", dedup_key="again", labels={"instance": "web-1"})
    assert alert(context, again["id"]).inhibited_by_id == host["id"]
    late = send(api, generic_key, "NginxDown", "web-1")
    assert alert(context, late["id"]).inhibited_by_id == again["id"]


def test_a_big_group_costs_the_same_statements_per_alert_however_many_came_before(
    api: TestClient, context: AppContext, generic_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One delivery of many new alerts of one group, with inhibit rules: the inhibitors are looked up once
    for the delivery and the group's incident is found once, so each further alert costs a fixed handful of
    statements, none of them a lookup of its inhibitor (which scanned the labels of the open alerts, the
    delivery's own included, for every alert) or of its group's incident (which read the whole group)."""
    from sqlalchemy import event

    monkeypatch.setattr("warroom.alerts.inhibition.BATCH_FROM", 1, raising=False)  # both deliveries
    send(api, generic_key, "HostDown", "db-1")
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    def deliver(first: int, count_: int) -> int:
        storm = [_batch_event("ApiErrors", f"web-{n}") for n in range(first, first + count_)]
        statements.clear()
        event.listen(context.db.engine, "before_cursor_execute", count)
        try:
            assert api.post(f"/api/v1/alerts?key={generic_key}", json=storm).status_code == 202
        finally:
            event.remove(context.db.engine, "before_cursor_execute", count)
        return len(statements)

    small, big = deliver(0, 10), deliver(100, 60)
    per_alert = (big - small) / 50
    # Now 9: its row, the group's moved-firing check, its updates and timeline entry, its savepoint, and the
    # look for symptoms (critical-mutes-warning makes every critical alert an inhibitor). Before: 17.
    assert per_alert <= 10, (small, big)
    assert len(incident_titles(context)) == 2  # the host's, and one for the whole group
    with context.db.read() as session:
        assert session.scalar(select(func.count()).where(Alert.inhibited_by_id.is_not(None))) == 0


def test_the_inhibitor_lookup_seeks_the_sources_type_by_index(context: AppContext) -> None:
    """QA: with thousands of alerts open, each new alert's lookup read every open one (2 ms more per new alert
    for each 1,000 open). The source's types narrow it through ix_alerts_type_status_id (0038)."""
    from sqlalchemy import text

    from warroom.alerts import inhibition
    from warroom.alerts.config import AlertFacts

    # host-down: source {type: [HostDown]}, equal [instance]
    rule = next(rule for rule in context.org.automation.inhibit_rules if rule.name == "host-down")
    target = AlertFacts("alertmanager", "warning", "DiskFull", None, {"instance": "db-1"})
    statement = (
        select(*inhibition._CANDIDATE_COLUMNS)
        .where(Alert.status.in_(inhibition._OPEN), inhibition._narrowing(rule.source, rule.equal, target))
        .order_by(Alert.id.desc())
        .limit(inhibition.CANDIDATES)
    )
    with context.db.read() as session:
        dialect = session.get_bind().dialect
        sql = str(statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
        if dialect.name == "sqlite":
            plan = " ".join(str(row[-1]) for row in session.execute(text(f"EXPLAIN QUERY PLAN {sql}")))
        else:
            session.execute(text("SET LOCAL enable_seqscan = off"))  # an empty table would be scanned anyway
            plan = " ".join(str(row[0]) for row in session.execute(text(f"EXPLAIN {sql}")))
    assert "ix_alerts_type_status_id" in plan, plan
