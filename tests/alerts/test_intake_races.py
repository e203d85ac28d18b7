"""Races between intake transactions and other writers on PostgreSQL (several processes on one database),
made deterministic: a second connection holds a transaction open, and lets it go once the delivery is seen
waiting for it (``pg_blocking_pids``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from warroom.alerts import service as alerts_service
from warroom.alerts.adapters import from_generic
from warroom.alerts.intake import ingest_alone
from warroom.alerts.models import Alert
from warroom.auth import integrations
from warroom.auth.models import IntegrationType
from warroom.context import AppContext
from warroom.db import driver_query, is_retryable, lost_race, unavailable
from warroom.incidents import service as incident_service
from warroom.incidents.models import Incident, IncidentStatus, TimelineEntry
from warroom.orgconfig import OrgConfig


def _needs_postgres(context: AppContext) -> None:
    if context.db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite runs one write transaction at a time")


def _unrouted(dedup_key: str, summary: str) -> dict[str, Any]:
    """An alert no rule of the example org routes: the race is about its row, not an incident. Each writer
    sends its own summary, so that each counts an occurrence (an identical repeat does not)."""
    labels = {"service": "cache", "alertname": "Evictions"}
    return {"summary": summary, "severity": "warning", "labels": labels, "dedup_key": dedup_key}


def _routed(alertname: str, dedup_key: str) -> dict[str, Any]:
    """A critical alert (rule critical-monitoring, grouped by service and alertname) of a service that
    depends on nothing, so that it joins only its own group's incident."""
    labels = {"service": "database", "alertname": alertname}
    return {"summary": alertname, "severity": "critical", "labels": labels, "dedup_key": dedup_key}


def _holding(context: AppContext) -> tuple[Session, int]:
    """A write transaction of its own, kept open by the test, and its backend's pid."""
    session = context.db.write_session()
    session.begin()
    # The test's own setup must never wait for a transaction it holds itself: fail instead of hanging.
    session.execute(text("SET LOCAL lock_timeout = '10s'"))
    return session, int(session.scalar(text("SELECT pg_backend_pid()")) or 0)


def _ingest_held(context: AppContext, session: Session, key: str, *alerts: dict[str, Any]) -> None:
    """Intake's own transaction work in the held transaction (without recording the key's use, which would
    make the holders wait for each other on the integration's row)."""
    integration = integrations.authenticate_integration(
        session, key, IntegrationType.generic, record_use=False
    )
    events = [event for alert in alerts for event in from_generic(alert)]
    alerts_service.ingest(session, org=context.org, source="generic", events=events, integration=integration)


def _waited_for(context: AppContext, holders: Collection[int], waiter: threading.Thread) -> int | None:
    """The holder some other backend (the delivery's) is waiting for, as soon as one is; None if the waiter
    ended first."""
    deadline = time.monotonic() + 20
    with context.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as monitor:
        while time.monotonic() < deadline:
            blocking = monitor.execute(
                text(
                    "SELECT DISTINCT b.pid FROM pg_locks AS l, unnest(pg_blocking_pids(l.pid)) AS b(pid) "
                    "WHERE NOT l.granted"
                )
            ).scalars()
            found = [pid for pid in blocking if pid in holders]
            if found:
                return int(found[0])
            if not waiter.is_alive():
                return None
            time.sleep(0.01)
    raise AssertionError("the delivery never waited for a held transaction")


def _in_thread(target: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(target())
        except BaseException as exc:  # handed to the test to assert on
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def _scope_alerts(context: AppContext) -> dict[str, int]:
    with context.db.read() as session:
        return {key: count for key, count in session.execute(select(Alert.dedup_key, Alert.occurrences))}


def test_a_delivery_that_loses_a_new_dedup_key_to_another_transaction_is_run_again(
    api: TestClient, context: AppContext, generic_key: str
) -> None:
    """Two processes open the same new dedup key at once: the second one's INSERT waits on the first's
    uncommitted row, then fails with psycopg's own UniqueViolation (intake's INSERT is driver SQL, not
    SQLAlchemy's). It lost a race: the delivery is answered 202 and its alerts stored once. Two such races
    here, one per key: the first fails the intake writer's shared transaction, the second the delivery's
    transaction of its own, which before answered 500."""
    _needs_postgres(context)
    holders: dict[int, Session] = {}
    for dedup_key in ("k1", "k2"):
        session, pid = _holding(context)
        _ingest_held(context, session, generic_key, _unrouted(dedup_key, "held"))
        holders[pid] = session
    try:
        body = [_unrouted("k1", "delivered"), _unrouted("k2", "delivered")]
        delivery, answer = _in_thread(lambda: api.post(f"/api/v1/alerts?key={generic_key}", json=body))
        while holders and (pid := _waited_for(context, holders, delivery)) is not None:
            holders.pop(pid).commit()  # the delivery's INSERT of that key now fails
    finally:
        for session in holders.values():
            session.commit()
    delivery.join(20)
    [response] = answer
    assert isinstance(response, httpx.Response)
    assert response.status_code == 202, response.text
    assert [alert["status"] for alert in response.json()["alerts"]] == ["firing", "firing"]
    assert holders == {}  # both races happened: each held key was waited for
    assert _scope_alerts(context) == {"k1": 2, "k2": 2}  # one alert per key, each delivery counted


def test_a_delivery_aborted_by_a_deadlock_is_run_again(context: AppContext, generic_key: str) -> None:
    """Another transaction holds k2's alert and then wants k1's, which the delivery (locking k1, then k2)
    holds: PostgreSQL aborts the delivery with psycopg's own DeadlockDetected (its lookup is driver SQL).
    ``ingest_alone`` runs it again once the other commits, instead of failing."""
    _needs_postgres(context)
    with context.db.write() as session:
        _ingest_held(context, session, generic_key, _unrouted("k1", "first"), _unrouted("k2", "first"))
    holder, pid = _holding(context)
    # The delivery's backend (default deadlock_timeout, 1s) finds the deadlock, not the holder's.
    holder.execute(text("SET LOCAL deadlock_timeout = '60s'"))
    try:
        _ingest_held(context, holder, generic_key, _unrouted("k2", "held"))  # locks k2's alert
        events = [event for key in ("k1", "k2") for event in from_generic(_unrouted(key, "delivered"))]
        delivery, outcome = _in_thread(
            lambda: ingest_alone(context, generic_key, IntegrationType.generic, "generic", events)
        )
        assert _waited_for(context, {pid}, delivery) == pid  # it holds k1 and waits for k2
        # Now the holder waits for k1: a deadlock, which aborts the delivery; the holder then goes on.
        second, done = _in_thread(lambda: _ingest_held(context, holder, generic_key, _unrouted("k1", "held")))
        second.join(20)
        assert done == [None]
    finally:
        holder.commit()
    delivery.join(20)
    [result] = outcome
    assert not isinstance(result, BaseException), repr(result)
    assert [alert.status for alert in result.alerts] == ["firing", "firing"]
    assert _scope_alerts(context) == {"k1": 3, "k2": 3}


def test_driver_errors_are_classified_as_sqlalchemy_errors_are(context: AppContext) -> None:
    """SQL run straight on the driver raises sqlite3's and psycopg's own errors: a duplicate key is a lost
    race there too (not an unavailable database, not a deadlock)."""
    with context.db.engine.connect() as connection, connection.begin():
        connection.exec_driver_sql("CREATE TEMPORARY TABLE race_probe (id integer PRIMARY KEY)")
        insert = "INSERT INTO race_probe (id) VALUES (1) RETURNING id"
        assert list(driver_query(connection, insert, ())) == [(1,)]
        with pytest.raises(Exception) as caught:
            driver_query(connection, insert, ())
    raw = caught.value
    assert type(raw).__module__.split(".")[0] in ("sqlite3", "psycopg")  # the driver's own, unwrapped
    assert lost_race(raw)
    assert not unavailable(raw) and not is_retryable(raw)
    assert not lost_race(ValueError("not a database error"))


def _held_merge(context: AppContext, session: Session, source: int, target: int) -> None:
    alerts_service.merge_incidents(session, org=context.org, ref=source, into=target, performer="tester")


def _held_resolve(context: AppContext, session: Session, source: int, target: int) -> None:
    incident_service.resolve(session, org=context.org, ref=source, performer="tester")


@pytest.mark.parametrize("closing", [_held_merge, _held_resolve], ids=["merged", "resolved"])
def test_a_new_alert_does_not_join_an_incident_closed_while_it_waited_for_it(
    api: TestClient,
    context: AppContext,
    org: OrgConfig,
    generic_key: str,
    closing: Callable[[AppContext, Session, int, int], None],
) -> None:
    """A new alert of incident A's group finds A open, then waits for A's lock while another transaction
    merges A into B (or resolves it). Once that commits, A is closed: the alert is not put on it. Merged,
    its group's alerts are on B, so the alert joins B; resolved, the group opens a new incident."""
    _needs_postgres(context)

    def fire(*alerts: dict[str, Any]) -> dict[str, Any]:
        response = api.post(f"/api/v1/alerts?key={generic_key}", json=list(alerts))
        assert response.status_code == 202, response.text
        [alert] = response.json()["alerts"]
        return dict(alert)

    a_ref, b_ref = (
        fire(_routed("DiskFull", "a1"))["incident"],
        fire(_routed("ReplicationLag", "b1"))["incident"],
    )
    a_id, b_id = (incident_service.parse_ref(ref) for ref in (a_ref, b_ref))
    holder, pid = _holding(context)
    try:
        closing(context, holder, a_id, b_id)
        delivery, answer = _in_thread(lambda: fire(_routed("DiskFull", "a2")))
        assert _waited_for(context, {pid}, delivery) == pid  # it found A open, and waits for A's lock
    finally:
        holder.commit()
    delivery.join(20)
    [joined] = answer
    assert not isinstance(joined, BaseException), repr(joined)
    with context.db.read() as session:
        a = session.get_one(Incident, a_id)
        assert a.status == IncidentStatus.resolved
        on_a = list(session.scalars(select(Alert.dedup_key).where(Alert.incident_id == a_id)))
        attached_to_a = session.scalar(
            select(func.count())
            .select_from(TimelineEntry)
            .where(
                TimelineEntry.incident_id == a_id, TimelineEntry.action.like(f"Alert ALR-{joined['id']} %")
            )
        )
    assert on_a == ([] if closing is _held_merge else ["a1"])
    assert attached_to_a == 0
    if closing is _held_merge:
        assert joined["incident"] == b_ref
    else:
        assert joined["incident"] not in (a_ref, b_ref)
