"""An incident acknowledged or resolved by a person while its alert is acknowledged or resolved (at its
source, or by hand) in another transaction: both take the incident's row before its alert's, so on PostgreSQL
one waits for the other instead of the two deadlocking (which answered the person 503 "database
unavailable").

Made deterministic: the alert's transaction stops just before it goes to the incident, until the incident's
transaction is seen waiting for it (``pg_blocking_pids``). Taking the alert first, the alert's transaction
then waited for the incident, whose transaction waited for the alert: a deadlock every time."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from warroom.alerts import adapters, automation
from warroom.alerts import service as alerts_service
from warroom.alerts.models import Alert, AlertStatus
from warroom.auth import integrations
from warroom.auth.models import IntegrationType
from warroom.context import AppContext
from warroom.incidents import service as incident_service
from warroom.incidents.models import Incident, IncidentStatus

AlertChange = Callable[[AppContext, Session, str, int], None]
IncidentChange = Callable[[AppContext, Session, int], None]


def _from_source(status: str) -> AlertChange:
    def change(context: AppContext, session: Session, key: str, alert_id: int) -> None:
        integration = integrations.authenticate_integration(
            session, key, IntegrationType.generic, record_use=False
        )
        events = adapters.from_generic({"summary": "5xx", "dedup_key": "api-5xx", "status": status})
        alerts_service.ingest(
            session, org=context.org, source="generic", events=events, integration=integration
        )

    return change


def _acknowledged_by_hand(context: AppContext, session: Session, key: str, alert_id: int) -> None:
    alerts_service.acknowledge(session, org=context.org, ref=alert_id, performer="bob")


def _resolved_by_hand(context: AppContext, session: Session, key: str, alert_id: int) -> None:
    alerts_service.resolve(session, org=context.org, ref=alert_id, performer="bob")


def _acknowledge_incident(context: AppContext, session: Session, incident_id: int) -> None:
    incident_service.acknowledge(session, ref=incident_id, performer="carol")


def _resolve_incident(context: AppContext, session: Session, incident_id: int) -> None:
    incident_service.resolve(session, org=context.org, ref=incident_id, performer="carol")


def waits_for_lock(context: AppContext, holder: int, deadline: float) -> None:
    """Until another backend waits for a lock ``holder`` holds."""
    query = text(
        "SELECT count(*) FROM pg_locks AS l, unnest(pg_blocking_pids(l.pid)) AS b(pid) "
        "WHERE NOT l.granted AND b.pid = :holder"
    )
    with context.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as monitor:
        while not monitor.execute(query, {"holder": holder}).scalar():
            assert time.monotonic() < deadline, "the other transaction never waited for the lock"
            time.sleep(0.01)


@pytest.mark.parametrize(
    ("alert_change", "hook", "incident_change"),
    [
        (_from_source("acknowledged"), "on_acknowledged", _acknowledge_incident),
        (_from_source("resolved"), "on_resolved", _resolve_incident),
        (_from_source("resolved"), "on_resolved", _acknowledge_incident),
        (_from_source("acknowledged"), "on_acknowledged", _resolve_incident),
        (_acknowledged_by_hand, "on_acknowledged", _resolve_incident),
        (_resolved_by_hand, "on_resolved", _acknowledge_incident),
    ],
    ids=[
        "source-ack/incident-ack",
        "source-resolve/incident-resolve",
        "source-resolve/incident-ack",
        "source-ack/incident-resolve",
        "hand-ack/incident-resolve",
        "hand-resolve/incident-ack",
    ],
)
def test_an_incident_and_its_alert_changed_at_once_do_not_deadlock(
    request: pytest.FixtureRequest,
    context: AppContext,
    monkeypatch: pytest.MonkeyPatch,
    alert_change: AlertChange,
    hook: str,
    incident_change: IncidentChange,
) -> None:
    if context.db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite runs one write transaction at a time: no deadlocks")
    # Only now: an app and a key for nothing on SQLite cost a second per case.
    api: TestClient = request.getfixturevalue("api")
    generic_key: str = request.getfixturevalue("generic_key")
    body = {
        "summary": "5xx",
        "dedup_key": "api-5xx",
        "severity": "critical",
        "service": "api",
        "labels": {"alertname": "HighErrorRate"},
    }
    response = api.post(f"/api/v1/alerts?key={generic_key}", json=body)
    assert response.status_code == 202, response.text
    [opened] = response.json()["alerts"]
    alert_id, incident_id = opened["id"], int(opened["incident"].removeprefix("INC-"))

    deadline = time.monotonic() + 8
    alert_side = threading.current_thread()  # replaced by the alert's thread below
    alert_pid: list[int] = []
    before_incident = threading.Event()
    original = getattr(automation, hook)

    def paused(*args: Any, **kwargs: Any) -> Any:
        # The alert's transaction has its alert; before it goes to the incident, the incident's transaction
        # starts and must wait for it (taking the incident first, for the incident's row).
        if threading.current_thread() is alert_side:
            before_incident.set()
            waits_for_lock(context, alert_pid[0], deadline)
        return original(*args, **kwargs)

    monkeypatch.setattr(automation, hook, paused)
    outcomes: dict[str, BaseException | None] = {}

    def alert_transaction() -> None:
        try:
            with context.db.write() as session:
                # Found by the incident's transaction (its timeout is shorter): it would be the one aborted,
                # as the person's request was.
                session.execute(text("SET LOCAL deadlock_timeout = '30s'"))
                alert_pid.append(int(session.scalar(text("SELECT pg_backend_pid()")) or 0))
                alert_change(context, session, generic_key, alert_id)
            outcomes["alert"] = None
        except BaseException as exc:  # asserted on below
            outcomes["alert"] = exc
        finally:
            before_incident.set()

    def incident_transaction() -> None:
        try:
            with context.db.write() as session:
                session.execute(text("SET LOCAL deadlock_timeout = '100ms'"))
                incident_change(context, session, incident_id)
            outcomes["incident"] = None
        except BaseException as exc:  # asserted on below
            outcomes["incident"] = exc

    alert_side = threading.Thread(target=alert_transaction)
    alert_side.start()
    assert before_incident.wait(8)
    incident_side = threading.Thread(target=incident_transaction)
    incident_side.start()
    alert_side.join(10)
    incident_side.join(10)
    assert not alert_side.is_alive() and not incident_side.is_alive()
    assert outcomes == {"alert": None, "incident": None}

    with context.db.read() as session:
        incident = session.get_one(Incident, incident_id)
        alert = session.get_one(Alert, alert_id)
        if incident_change is _resolve_incident:
            assert incident.status == IncidentStatus.resolved
            assert alert.status == AlertStatus.resolved
        else:
            assert incident.acknowledged_at is not None
        if alert_change is _resolved_by_hand or hook == "on_resolved":
            assert alert.status == AlertStatus.resolved
        else:
            assert alert.status in (AlertStatus.acknowledged, AlertStatus.resolved)
