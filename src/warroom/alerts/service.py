"""Alert intake (dedup, then automation), reads, promotion, and reports from people."""

from __future__ import annotations

import functools
import json
import logging
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, NoReturn, get_args

from sqlalchemy import Connection, Table, Text, bindparam, cast, func, insert, or_, select, update
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, load_only
from sqlalchemy.orm.interfaces import ORMOption
from sqlalchemy.sql import ColumnElement, and_, case, literal_column

from warroom import textsearch
from warroom.alerts import automation, enrichment, handlers, holds, inhibition, maintenance, reports, scrub
from warroom.alerts import metrics as alert_metrics
from warroom.alerts.adapters import AlertEvent, SourceChange, apply_default_service
from warroom.alerts.config import (
    ALERT_SEVERITIES,
    ALERT_SOURCES,
    STORED_CONDITIONS,
    AlertFacts,
    AlertSeverity,
)
from warroom.alerts.handlers import failure_text, schedule_handlers
from warroom.alerts.models import Alert, AlertNote, AlertStatus
from warroom.alerts.schemas import (
    AlertDetail,
    AlertNoteRead,
    AlertOverview,
    AlertPage,
    AlertRead,
    ArrivalBucket,
    CustomerReport,
    Ingested,
    IngestedAlert,
    InternalReport,
    LoudType,
    MaintenanceDetail,
    NoiseGroup,
    NoiseReport,
    OpenIncident,
    PromoteRequest,
    RoutingPreview,
    SeverityCounts,
    snooze_end,
)
from warroom.auth import integrations
from warroom.auth.integrations import IntegrationIdentity
from warroom.auth.models import IntegrationKey, IntegrationType
from warroom.db import (
    DriverStatement,
    driver_query,
    drop_on_commit_after,
    get_by_ref,
    json_text,
    on_commit_mark,
    parse_row_ref,
    utcnow,
)
from warroom.durations import check_period, format_duration
from warroom.errors import Conflict, Forbidden, InvalidInput, NotFound
from warroom.incidents import service as incident_service
from warroom.incidents.models import OPEN_STATUSES, Incident, IncidentStatus, TimelineKind
from warroom.jobs import service as job_service
from warroom.jobs.models import Job, JobStatus
from warroom.orgconfig import OrgConfig
from warroom.severity import service as severity_service

# Label filters of one query (each is a condition; a thousand passed SQLite's expression depth).
MAX_LABEL_FILTERS = 50
Outcome = Literal["created", "updated", "unchanged", "acknowledged", "resolved", "ignored"]
# Intake writes through the table (SQL Core), not the ORM unit of work.
_ALERTS: Table = Alert.__table__  # type: ignore[assignment]

log = logging.getLogger(__name__)


@dataclass
class _Open:
    """An open alert as intake sees it: a few columns, plus what this batch will write."""

    id: int | None
    status: AlertStatus
    event_hash: str
    incident_id: int | None
    last_seen: Any = None  # as the driver returns it (SQLite: text); read only for an identical repeat
    severity: str | None = None
    # Set when a repeat of an alert came more severe: the severity it had before.
    raised_from: str | None = None
    insert: dict[str, Any] | None = None  # a new alert's row, still to be inserted
    update: dict[str, Any] = field(default_factory=dict)  # changes to an existing row

    @property
    def insert_key(self) -> str | None:
        """The open dedup key of a new alert's row; None if it resolved within the batch."""
        assert self.insert is not None
        key: str | None = self.insert["open_dedup_key"]
        return key


# The open-alert lookup takes the whole key list as one parameter, so its SQL never changes with the batch.
_LOOKUP = {
    "sqlite": (
        "SELECT id, dedup_key, status, event_hash, incident_id, last_seen_at, severity FROM alerts "
        "WHERE scope = ? AND open_dedup_key IN (SELECT value FROM json_each(?))"
    ),
    # Row locks so concurrent deliveries count every occurrence (SQLite has BEGIN IMMEDIATE instead). One
    # probe of the unique index per key, in the keys' order: with "open_dedup_key = ANY(keys)" the planner,
    # on stale statistics, scanned every alert of the scope (resolved ones included) and filtered them.
    "postgresql": (
        "SELECT a.id, a.dedup_key, a.status, a.event_hash, a.incident_id, a.last_seen_at, a.severity "
        "FROM unnest(%(keys)s::text[]) AS k(key) CROSS JOIN LATERAL ("
        "SELECT id, dedup_key, status, event_hash, incident_id, last_seen_at, severity FROM alerts "
        "WHERE scope = %(scope)s AND open_dedup_key = k.key FOR UPDATE) AS a"
    ),
}
_STATUSES = {status.value: status for status in AlertStatus}
_SEVERITY_RANK = {severity: rank for rank, severity in enumerate(ALERT_SEVERITIES)}  # 0: critical
_STATEMENTS: dict[tuple[str, str, tuple[str, ...]], DriverStatement] = {}


def _open_alerts(connection: Connection, scope: str, keys: list[str]) -> Sequence[Any]:
    """(id, dedup_key, status, event_hash, incident_id, last_seen_at, severity) of the open alerts with these
    keys."""
    if connection.dialect.name == "sqlite":
        return driver_query(connection, _LOOKUP["sqlite"], (scope, json_text(keys)))
    # Sorted, so concurrent batches lock shared rows in the same order and never deadlock.
    return driver_query(connection, _LOOKUP["postgresql"], {"scope": scope, "keys": sorted(keys)})


# The incidents of the open alerts with these keys, locked in id order. Taken before the alerts themselves:
# an incident's acknowledge or resolve holds the incident and then locks its alerts, so a source's
# acknowledge or resolve that took the alert first, then its incident, deadlocked with it.
_LOCK_INCIDENTS = (
    "SELECT id FROM incidents WHERE id IN ("
    "SELECT a.incident_id FROM unnest(%(keys)s::text[]) AS k(key) CROSS JOIN LATERAL ("
    "SELECT incident_id FROM alerts WHERE scope = %(scope)s AND open_dedup_key = k.key) AS a) "
    "ORDER BY id FOR UPDATE"
)


def _lock_incidents_first(connection: Connection, scope: str, events: Sequence[AlertEvent]) -> None:
    """PostgreSQL: lock the incidents of the alerts this batch acknowledges or resolves, before the alerts
    (``lock_alert``'s order). SQLite's BEGIN IMMEDIATE serialises writers already; a batch of triggers only
    locks an incident after its alert for a severity raise (rare; a deadlock there is run again)."""
    if connection.dialect.name == "sqlite":
        return
    keys = sorted({event.dedup_key for event in events if event.action != "trigger"})
    if keys:
        driver_query(connection, _LOCK_INCIDENTS, {"scope": scope, "keys": keys})


def _statement(connection: Connection, kind: str, columns: tuple[str, ...]) -> DriverStatement:
    """The intake's INSERT, or its UPDATE of these columns, compiled once per dialect."""
    cache_key = (connection.dialect.name, kind, columns)
    statement = _STATEMENTS.get(cache_key)
    if statement is None:
        if kind == "insert":
            core: Any = insert(_ALERTS)
        elif kind == "insert_returning":
            core = insert(_ALERTS).returning(_ALERTS.c.id)
        else:
            core = (
                update(_ALERTS)
                .where(_ALERTS.c.id == bindparam("_id"))
                .values(occurrences=_ALERTS.c.occurrences + bindparam("_occurrences"))
            )
        statement = _STATEMENTS[cache_key] = DriverStatement.compile(
            core, connection.dialect, column_keys=list(columns)
        )
    return statement


# The columns intake changes on an existing alert. On PostgreSQL their new values are copied into a
# temporary table (COPY: one stream, rows formatted in C) and applied by one UPDATE ... FROM per set of
# changed columns, instead of one pipelined statement per row: psycopg's per-row work in Python cost
# three times as much, and the storm ran 15-20% faster (bench/README.md).
_CHANGED = (
    "last_seen_at",
    "last_raw",
    "event_hash",
    "summary",
    "severity",
    "status",
    "acknowledged_at",
    "resolved_at",
    "open_dedup_key",
    "snoozed_until",
    "snoozed_by",
    "annotations",
    "labels",
)
_CHANGES_TABLE = "warroom_alert_changes"
# Below this many updated alerts in a batch, one pipelined statement per row costs less than the table's
# extra round trips (single-alert deliveries arrive in batches of tens).
_COPY_FROM_ROWS = 64


@functools.cache
def _changes_table_ddl(dialect: Dialect) -> str:
    """The temporary table's columns take their types from ``alerts`` (compiled once per dialect)."""
    columns = ", ".join(f"{name} {_ALERTS.c[name].type.compile(dialect)}" for name in _CHANGED)
    return (
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {_CHANGES_TABLE} "
        f"(change_set integer, id integer, occurrences integer, {columns}) ON COMMIT DELETE ROWS"
    )


def _copy_updates(connection: Connection, by_columns: dict[tuple[str, ...], list[dict[str, Any]]]) -> None:
    cursor = connection.connection.cursor()
    try:
        cursor.execute(_changes_table_ddl(connection.dialect))
        sets = list(by_columns.items())
        with cursor.copy(
            f"COPY {_CHANGES_TABLE} (change_set, id, occurrences, {', '.join(_CHANGED)}) FROM STDIN"
        ) as copy:
            for number, (columns, rows) in enumerate(sets):
                statement = _statement(connection, "update", columns)
                for row in rows:
                    values = statement.parameters(row)
                    assert isinstance(values, dict)
                    changed = (values.get(name) for name in _CHANGED)
                    copy.write_row((number, values["_id"], values["_occurrences"], *changed))
        for number, (columns, _) in enumerate(sets):
            assignments = ", ".join(f"{name} = c.{name}" for name in columns)
            # Each set's rows are taken out as they are applied, not only at commit: one transaction may
            # apply several batches (the intake writer applies each integration's deliveries in turn).
            cursor.execute(
                f"WITH c AS (DELETE FROM {_CHANGES_TABLE} WHERE change_set = {number} RETURNING *) "
                f"UPDATE alerts SET occurrences = alerts.occurrences + c.occurrences, {assignments} "
                "FROM c WHERE alerts.id = c.id"
            )
    finally:
        cursor.close()


def ingest(
    session: Session,
    *,
    org: OrgConfig,
    source: str,
    events: Sequence[AlertEvent],
    integration: IntegrationIdentity | None = None,
) -> Ingested:
    """Apply a batch of events in the caller's transaction: all of them or, on any error, none.

    The hot path is driver SQL: one lookup of the open alerts for every dedup key in the batch, one
    executemany of updates per set of changed columns, one executemany of inserts (and the same lookup for
    the new ids). Full ORM rows are loaded only for alerts that automation acts on.
    """
    scope = f"i:{integration.id}" if integration is not None else source
    if integration is not None:
        apply_default_service(events, integration.service)
    for event in events:  # viewers read what a sender wrote: no tokens, keys or passwords in it (``scrub``)
        scrub.scrub_event(event)
    connection = session.connection()  # driver SQL on the session's transaction: no ORM layer per statement
    if org.automation.enrich:
        failed = enrichment.enrich(
            org.automation, source, events, integration.name if integration is not None else None
        )
        alert_metrics.count_enrichment_errors(connection, failed)
    keys = list(dict.fromkeys(event.dedup_key for event in events))
    _lock_incidents_first(connection, scope, events)
    open_alerts: dict[str, _Open] = {
        row[1]: _Open(row[0], _STATUSES[row[2]], row[3], row[4], row[5], row[6])
        # id, dedup_key, status, event_hash, incident, seen, severity
        for row in _open_alerts(connection, scope, keys)
    }
    now = utcnow()
    integration_id = integration.id if integration is not None else None
    inserts: list[_Open] = []
    updated: list[_Open] = []
    applied: list[tuple[Outcome, _Open | None, AlertEvent]] = []
    # Each event's answer gives the alert's status right after it, not after the whole batch.
    statuses: list[AlertStatus | None] = []
    for event in events:
        current = open_alerts.get(event.dedup_key)
        outcome: Outcome
        if event.action == "trigger":
            if current is None:
                current = _Open(None, AlertStatus.firing, event.event_hash, None)
                current.insert = {
                    "source": source,
                    "integration_id": integration_id,
                    "scope": scope,
                    "dedup_key": event.dedup_key,
                    "open_dedup_key": event.dedup_key,
                    "alert_type": event.alert_type,
                    "status": AlertStatus.firing,
                    "summary": event.summary,
                    "severity": event.severity,
                    "service": event.service,
                    "labels": event.labels,
                    "annotations": event.annotations,
                    "links": event.links,
                    "first_seen_at": now,
                    "source_started_at": event.started_at,
                    "last_seen_at": now,
                    "acknowledged_at": None,
                    "resolved_at": None,
                    "occurrences": 1,
                    "raw": event.raw,
                    "last_raw": None,
                    "event_hash": event.event_hash,
                    "incident_id": None,
                    "group_key": None,
                    "rules": None,
                    "handler_errors": [],
                    "maintenance_window_id": None,
                }
                inserts.append(current)
                open_alerts[event.dedup_key] = current
                outcome = "created"
            elif current.event_hash == event.event_hash:
                # The same delivery again. Soon after, a retry: nothing changes. Later, the sender repeating
                # a firing alert (Alertmanager's repeat_interval, a cron job's same failure): it was seen
                # again, which auto-resolve goes by, though no occurrence is counted.
                outcome = "unchanged"
                if current.insert is None and not current.update and _seen_long_ago(current.last_seen, now):
                    _change(current, updated, {"last_seen_at": now, "event_hash": event.event_hash})
            else:
                # Labels, annotations and links stay as first seen (unless the event says its latest ones
                # matter more); the latest ones are in last_raw.
                changes = {
                    "last_seen_at": now,
                    "last_raw": event.raw,
                    "event_hash": event.event_hash,
                    "summary": event.summary,
                    "severity": event.severity,
                }
                if event.latest_annotations:
                    changes["annotations"] = event.annotations
                if event.latest_labels:
                    changes["labels"] = event.labels
                if (
                    event.severity != current.severity
                    and current.severity is not None
                    and current.insert is None  # one new in this batch is routed at its latest severity
                    and _SEVERITY_RANK.get(event.severity, 0) < _SEVERITY_RANK.get(current.severity, 0)
                ):
                    # More severe than it was: it raises its incident, or one on none is routed again
                    # (``_automate``). Only a repeat whose severity changed pays for the rank lookups.
                    current.raised_from = current.raised_from or current.severity
                current.severity = event.severity
                _change(current, updated, changes, occurrences=1)
                outcome = "updated"
        elif current is None:
            # PagerDuty's rule: acknowledge or resolve with no open alert is dropped.
            outcome = "ignored"
        elif event.action == "acknowledge":
            if current.status == AlertStatus.firing:
                changes = {
                    "status": AlertStatus.acknowledged,
                    "acknowledged_at": now,
                    "last_seen_at": now,
                    "event_hash": event.event_hash,
                }
                _change(current, updated, changes)
                outcome = "acknowledged"
            else:
                outcome = "unchanged"
        else:
            changes = {
                "status": AlertStatus.resolved,
                "resolved_at": now,
                "last_seen_at": now,
                "open_dedup_key": None,
                "last_raw": event.raw,
                "event_hash": event.event_hash,
                # A snooze ends with the alert (its job finds it resolved).
                "snoozed_until": None,
                "snoozed_by": None,
            }
            _change(current, updated, changes)
            del open_alerts[event.dedup_key]
            outcome = "resolved"
        applied.append((outcome, current, event))
        statuses.append(current.status if current is not None else None)

    # Updates first: a resolve frees its dedup key before a new alert with the same key is inserted.
    by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for target in updated:
        params = {"_id": target.id, "_occurrences": target.update.pop("_occurrences", 0), **target.update}
        by_columns.setdefault(tuple(sorted(target.update)), []).append(params)
    if connection.dialect.name == "postgresql" and len(updated) >= _COPY_FROM_ROWS:
        _copy_updates(connection, by_columns)
    else:
        for columns, rows in by_columns.items():
            _statement(connection, "update", columns).execute_many(connection, rows)
    if inserts:
        rows = [target.insert for target in inserts if target.insert is not None]
        _hold_for_maintenance(connection, now, rows, integration.name if integration is not None else None)
        # An alert that fired and resolved within the batch has no open key to find its id by: it is
        # inserted on its own, returning its id (rare: a flapping alert, or two deliveries in one batch).
        closed = [target for target in inserts if target.insert_key is None]
        for target in closed:
            assert target.insert is not None
            [(target.id,)] = _statement(connection, "insert_returning", tuple(target.insert)).query(
                connection, target.insert
            )
        still_open = {key: target for target in inserts if (key := target.insert_key) is not None}
        if still_open:
            open_rows = [target.insert for target in still_open.values() if target.insert is not None]
            _statement(connection, "insert", tuple(open_rows[0])).execute_many(connection, open_rows)
            for alert_id, dedup_key, *_ in _open_alerts(connection, scope, list(still_open)):
                still_open[dedup_key].id = alert_id

    if any(outcome != "unchanged" and outcome != "ignored" for outcome, _, _ in applied):
        _automate(session, org, applied, integration.name if integration is not None else source)
    truncated = [
        (target.incident_id, target.id, event)
        for _, target, event in applied
        if event.truncated_alerts and target is not None and target.incident_id and target.id
    ]
    if truncated:
        automation.note_truncations(session, source, truncated)
    alert_metrics.count_received(connection, source, [outcome for outcome, _, _ in applied])
    return Ingested(
        accepted=len(events),
        alerts=[
            IngestedAlert(
                target.id if target is not None else None,
                event.dedup_key,
                status,
                outcome,
                f"INC-{target.incident_id}" if target is not None and target.incident_id else None,
            )
            for (outcome, target, event), status in zip(applied, statuses, strict=True)
        ],
    )


def preview(
    session: Session,
    *,
    org: OrgConfig,
    source: str,
    events: Sequence[AlertEvent],
    integration_id: int | None = None,
) -> list[RoutingPreview]:
    """``config test-alert`` asked of the server: the dry run of the rules, plus what is open now (the alert
    the delivery would update, the group's incident it would join, the window that would hold it).

    With ``integration_id``, the open alert is looked up among that integration's alerts only, as intake
    dedups them; without it, among all alerts of the source (two Alertmanagers could share a fingerprint)."""
    scope = integration_name = None
    if integration_id is not None:
        integration = integrations.get_integration(session, integration_id)
        integration_name = integration.name
        if integration.type.value != source:
            raise InvalidInput(
                f"integration {integration_id} ({integration.name}) takes {integration.type.value} "
                f"deliveries; this one is {source}",
                {"field": "integration"},
            )
        if integration.revoked_at is not None:
            raise InvalidInput(
                f"integration {integration_id} ({integration.name}) is revoked: its deliveries are refused",
                {"field": "integration"},
            )
        scope = f"i:{integration_id}"
        apply_default_service(events, integration.service)
    now = utcnow()
    windows = maintenance.active_windows(session.connection(), now)
    previews = []
    for event in events:
        shown = automation.preview(org, source, event, session, scope=scope, integration=integration_name)
        for schedule in org.automation.maintenance_schedules:
            if schedule.name in shown.maintenance_schedules:
                shown.maintenance_schedules[schedule.name] = maintenance.next_occurrence(
                    session, schedule, now
                )
        facts = AlertFacts(
            source, event.severity, event.alert_type, event.service, event.labels, integration_name
        )
        if shown.open_alert is not None:
            _preview_raise(session, org, shown, event)
        held = maintenance.holding_window(windows, facts)
        shown.maintenance_window = f"MW-{held}" if held is not None else None
        routed = shown.open_alert is None or shown.rules_run_again
        inhibiting = inhibition.inhibitor(session, org, facts) if routed else None
        if inhibiting is not None:
            shown.inhibited_by = f"ALR-{inhibiting[0]}"
            shown.inhibit_rule = inhibiting[1]
        previews.append(shown)
    return previews


def _preview_raise(session: Session, org: OrgConfig, shown: RoutingPreview, event: AlertEvent) -> None:
    """The open alert a delivery would update: its severity, and whether the rules would see it again, as
    intake decides (``_severity_raised``): a firing repeat more severe than the alert, which is on no
    incident and held by nothing (no maintenance window, no inhibiting alert, nobody's acknowledgement)."""
    assert shown.open_alert is not None
    alert = session.get(Alert, int(shown.open_alert.removeprefix("ALR-")))
    if alert is None:
        return
    shown.open_alert_severity = alert.severity
    shown.rules_run_again = (
        event.action == "trigger"
        and not shown.open_alert_unchanged
        and alert.incident_id is None
        and alert.status == AlertStatus.firing
        and _SEVERITY_RANK.get(event.severity, 0) < _SEVERITY_RANK.get(alert.severity, 0)
        and automation.needs_work(org, session)
        and not held(session, alert)
    )


def _hold_for_maintenance(
    connection: Connection, now: datetime, rows: list[dict[str, Any]], integration: str | None
) -> None:
    """Tag new alerts that arrive during a maintenance window covering them: automation leaves them
    alone until the window ends (one lookup per batch that opens alerts; updates never need it)."""
    windows = maintenance.active_windows(connection, now)
    if windows:
        for row in rows:
            facts = AlertFacts(
                row["source"], row["severity"], row["alert_type"], row["service"], row["labels"], integration
            )
            row["maintenance_window_id"] = maintenance.holding_window(windows, facts)


# An identical delivery this long after the alert was last seen is a repeat, not a retry.
REPEAT_AFTER = timedelta(minutes=1)


def _seen_long_ago(last_seen: Any, now: datetime) -> bool:
    seen = datetime.fromisoformat(last_seen) if isinstance(last_seen, str) else last_seen  # SQLite: text
    if not isinstance(seen, datetime):
        return False
    return now - (seen if seen.tzinfo is not None else seen.replace(tzinfo=UTC)) >= REPEAT_AFTER


def _change(target: _Open, updated: list[_Open], changes: dict[str, Any], occurrences: int = 0) -> None:
    if "status" in changes:
        target.status = changes["status"]
    target.event_hash = changes["event_hash"]
    if target.insert is not None:
        target.insert.update(changes)
        target.insert["occurrences"] += occurrences
        return
    if not target.update:
        updated.append(target)
    target.update["_occurrences"] = target.update.get("_occurrences", 0) + occurrences
    target.update.update(changes)


def _automate(
    session: Session,
    org: OrgConfig,
    applied: list[tuple[Outcome, _Open | None, AlertEvent]],
    sender: str,
) -> None:
    """``sender``: the integration's name (else the source), which a note the source sends is marked with."""
    needs_work = automation.needs_work(org, session)
    loaded: dict[int, Alert] = {}
    # The incidents this delivery resolved alerts of, with the last such alert: whether all their alerts are
    # resolved is asked once the whole delivery is applied, so their timelines read every alert's resolve,
    # then the status change.
    resolved_on: dict[int, Alert] = {}
    # What routing the delivery's new alerts learns once (their inhibitors, their groups' incidents).
    created = [
        target
        for outcome, target, _ in applied
        if outcome == "created" and target is not None and target.id is not None and target.insert is not None
    ]
    batch = automation.Batch(
        session,
        org,
        [(target.insert["scope"], target.insert["dedup_key"]) for target in created if target.insert],
    )
    if needs_work and len(created) > 1:
        # A group's new alerts are all routed: their rows are read in a few queries, not one each.
        ids = [
            target.id
            for target in created
            if target.id is not None and target.insert and not target.insert["maintenance_window_id"]
        ]
        for start in range(0, len(ids), 500):
            statement = select(Alert).where(Alert.id.in_(ids[start : start + 500]))
            for row in session.scalars(statement.execution_options(populate_existing=True)):
                loaded[row.id] = row
    run: list[tuple[_Open, Alert]] = []  # new alerts still to route, in the delivery's order

    def route_run() -> None:
        if run:
            _route_new(session, org, run, batch)
            run.clear()

    for outcome, target, event in applied:
        if target is None or target.id is None:
            continue
        if outcome == "created" and target.insert is not None and target.insert["maintenance_window_id"]:
            continue  # held by a maintenance window until it ends
        act = outcome == "created" and needs_work
        act = act or (
            outcome in ("resolved", "acknowledged") and (needs_work or target.incident_id is not None)
        )
        act = act or (outcome == "updated" and target.raised_from is not None)
        # Opsgenie's close or acknowledge with a note: kept as a note on the alert (never on a retry, which
        # changes no state), as its notes request would add it.
        note = event.source_note if outcome in ("resolved", "acknowledged") else None
        if not act and note is None:
            continue
        alert = loaded.get(target.id)
        if alert is None:
            alert = loaded[target.id] = session.get_one(Alert, target.id, populate_existing=True)
        if outcome == "created":  # acted on: a new alert carries no note
            run.append((target, alert))
            if len(run) >= _ROUTED_TOGETHER:
                route_run()
            continue
        route_run()  # what came before this event is routed before it is applied
        if outcome == "updated":
            # Acted on once per delivery, with the severity the whole delivery left the alert at.
            was, target.raised_from = target.raised_from, None
            if was is not None:
                with _kept_if_routing_fails(session, alert, "severity raised"):
                    _severity_raised(session, org, alert, was=was, route=needs_work)
        elif outcome == "resolved" and act:
            _on_resolved(session, org, alert, performer=automation.PERFORMER, settle=False)
            if alert.incident_id is not None:
                resolved_on[alert.incident_id] = alert
        elif act and not held(session, alert):  # acknowledged while still held: nothing was done for it
            automation.on_acknowledged(session, org, alert, at_source_by=event.source_user)
        if note is not None:
            add_note(session, ref=alert.id, body=note, author=source_person(event.source_user, sender))
        session.flush()
        target.incident_id = alert.incident_id
    route_run()
    for alert in resolved_on.values():
        automation.settle_resolved(session, org, alert)


# New alerts routed in one savepoint (and one flush) at most: a failure routes them again one by one.
_ROUTED_TOGETHER = 256


def _route_new(
    session: Session, org: OrgConfig, run: list[tuple[_Open, Alert]], batch: automation.Batch
) -> None:
    """Route a run of a delivery's new alerts by the rules. Together, in one savepoint flushed once: a storm's
    group of thousands of new alerts would otherwise pay a savepoint and a flush of its own for each. If the
    rules fail on any of them, what the run did is undone, and each is routed again in a savepoint of its own
    (``_kept_if_routing_fails``), so that only the alert they fail on is kept unrouted."""
    if len(run) > 1:
        mark = on_commit_mark(session.connection())
        try:
            with session.begin_nested():
                for _, alert in run:
                    automation.on_created(session, org, alert, batch=batch)
        except SQLAlchemyError:
            raise  # the database's trouble: the whole delivery is retried or refused
        except Exception:
            batch.forget()  # the savepoint's locks went with it
            drop_on_commit_after(session.connection(), mark)
        else:
            for target, alert in run:
                target.incident_id = alert.incident_id
            return
    for target, alert in run:
        with _kept_if_routing_fails(session, alert, "created", batch):
            automation.on_created(session, org, alert, batch=batch)
        session.flush()
        target.incident_id = alert.incident_id


@contextmanager
def _kept_if_routing_fails(
    session: Session, alert: Alert, event: str, batch: automation.Batch | None = None
) -> Iterator[None]:
    """Routing ``alert`` in a savepoint: if the rules fail on it for anything but the database (a fault in
    Warroom, or in what the org file makes of this alert's data), what they did is undone and the alert is
    kept unrouted with the failure, for people to see and promote. Refusing the delivery would lose every
    alert in it, and its sender would retry the same failure for ever."""
    mark = on_commit_mark(session.connection())
    try:
        with session.begin_nested():
            yield
    except SQLAlchemyError:
        raise  # the database's trouble: the whole delivery is retried or refused (a deadlock is re-run)
    except Exception as exc:
        drop_on_commit_after(session.connection(), mark)  # e.g. metrics of what was undone
        if batch is not None:
            batch.forget()  # the savepoint's locks went with it
        error = failure_text(exc)
        log.exception("routing %s (%s) failed; the alert is kept unrouted: %s", alert.ref, event, error)
        failure = {"handler": "automation", "event": event, "error": error, "at": utcnow().isoformat()}
        alert.handler_errors = [*(alert.handler_errors or []), failure]


def _severity_raised(
    session: Session, org: OrgConfig, alert: Alert, *, was: str, route: bool, snoozed_by: str | None = None
) -> None:
    """A repeat came more severe than the alert was (``was``). On an incident, it raises the incident. On
    none, unless something keeps it off one, the rules see it again as a new alert of its severity would be
    seen: a warning no rule took that turns critical opens (or joins) an incident and pages.

    What keeps it off one: a maintenance window or an inhibiting alert that holds it (it is routed, with the
    severity it has then, when released; a running window that covers it only now holds it from now, as it
    would hold a new alert), an acknowledgement (someone took it on without an incident: a note on the alert
    says it got worse), and a delivery that left it no more severe than it was, or resolved it. ``route``:
    False when no rule and no handler could act (``automation.needs_work``). ``snoozed_by``: it got worse
    while that person had it snoozed, and the snooze is over (``route_worse_after_snooze``)."""
    if held(session, alert):
        return
    if alert.incident_id is not None:
        automation.on_severity_raised(session, org, alert, was=was)
        return
    if not route or _SEVERITY_RANK.get(alert.severity, 0) >= _SEVERITY_RANK.get(was, 0):
        return
    if alert.status == AlertStatus.acknowledged:
        automation.note_raised_while_acknowledged(alert, was=was)
    elif alert.status == AlertStatus.firing and maintenance.hold_if_covered(session, [alert]):
        automation.route_raised(session, org, alert, was=was, snoozed_by=snoozed_by)


def route_worse_after_snooze(
    session: Session, org: OrgConfig, alert: Alert, *, was: str, snoozed_by: str | None
) -> None:
    """The snooze of an alert on no incident is over and it fires again: if it got more severe than it was
    when snoozed (``was``), the rules see it now as they would have seen that rise had nobody had it snoozed
    (a note on the alert said it got worse, and left it to them meanwhile). What holds it (a maintenance
    window, an inhibiting alert) keeps it off an incident as for any rise."""
    _severity_raised(
        session, org, alert, was=was, route=automation.needs_work(org, session), snoozed_by=snoozed_by
    )


def _on_resolved(
    session: Session, org: OrgConfig, alert: Alert, *, performer: str, settle: bool = True
) -> None:
    """What an alert's resolve sets off. Automation acts only on an alert nothing holds (nothing was done for
    a held one, so there is nothing to undo), but the alerts it muted are released either way: a held alert
    mutes like any other open one, and no alert stays muted by one that has resolved. ``settle``: see
    ``automation.on_resolved``."""
    if not held(session, alert):
        automation.on_resolved(session, org, alert, performer=performer, settle=settle)
    else:
        # Its handlers still hear of it (created first, with no incident), as for one a rule's delay held.
        schedule_handlers(session, alert, "resolved")
    release_muted(session, org, alert)


def release_muted(session: Session, org: OrgConfig, inhibitor: Alert) -> None:
    """The alerts ``inhibitor`` muted that are still open, now that it has resolved: each is held by a running
    maintenance window that covers it, as a new alert would be, or else routed (where another open alert may
    mute it in turn)."""
    muted = automation.muted_by(session, inhibitor)
    automation.release_inhibited(session, org, inhibitor, maintenance.hold_if_covered(session, muted))


def held(session: Session, alert: Alert) -> bool:
    """Whether automation leaves the alert alone for now: a maintenance window or an inhibiting alert holds
    it (reads ask ``holds.hold_states``, the same test for many alerts at once)."""
    return (
        alert.maintenance_window_id is not None
        and alert.incident_id is None
        and maintenance.holds(session, alert.maintenance_window_id)
    ) or inhibition.inhibited_now(session, alert)


# --- reads -------------------------------------------------------------------------------------------


def to_read(alert: Alert, *, held_by: str | None, unrouted: bool) -> AlertRead:
    """``held_by``: what holds the alert now, if anything; ``unrouted``: as ``holds.unrouted`` says (both from
    ``holds.hold_states``)."""
    return AlertRead(
        id=alert.id,
        ref=alert.ref,
        source=alert.source,
        integration_id=alert.integration_id,
        dedup_key=alert.dedup_key,
        alert_type=alert.alert_type,
        status=alert.status,
        summary=alert.summary,
        severity=alert.severity,
        service=alert.service,
        labels=alert.labels,
        annotations=alert.annotations,
        links=alert.links,
        first_seen_at=alert.first_seen_at,
        started_at=alert.source_started_at,
        last_seen_at=alert.last_seen_at,
        acknowledged_at=alert.acknowledged_at,
        acknowledged_by=alert.acknowledged_by,
        snoozed_until=alert.snoozed_until,
        snoozed_by=alert.snoozed_by,
        resolved_at=alert.resolved_at,
        resolved_by=alert.resolved_by,
        resolution_note=alert.resolution_note,
        occurrences=alert.occurrences,
        incident=f"INC-{alert.incident_id}" if alert.incident_id else None,
        rules=alert.rules or [],
        unrouted=unrouted,
        maintenance=f"MW-{alert.maintenance_window_id}" if alert.maintenance_window_id else None,
        inhibited_by=f"ALR-{alert.inhibited_by_id}" if alert.inhibited_by_id else None,
        held_by=held_by,
    )


def to_reads(session: Session, alerts: Sequence[Alert]) -> list[AlertRead]:
    """Alerts as read, each with what holds it now (two lookups for them all)."""
    states = holds.hold_states(session, alerts)
    return [
        to_read(alert, held_by=states.held_by.get(alert.id), unrouted=states.unrouted(alert))
        for alert in alerts
    ]


def to_detail(session: Session, alert: Alert) -> AlertDetail:
    return AlertDetail(
        **to_reads(session, [alert])[0].model_dump(),
        # Kept whole as evidence, shown without the secrets a sender put in it (``scrub``).
        raw=scrub.scrub_value(alert.raw),
        last_raw=scrub.scrub_value(alert.last_raw),
        handler_errors=alert.handler_errors,
        notes=[AlertNoteRead.model_validate(note) for note in alert.notes],
    )


def maintenance_detail(session: Session, ref: str | int) -> MaintenanceDetail:
    """A maintenance window with the alerts that arrived during it."""
    window = maintenance.get_window(session, ref)
    return MaintenanceDetail.model_validate(
        {
            **maintenance.to_read(window).model_dump(),
            "alerts": to_reads(session, maintenance.window_alerts(session, window)),
        },
        context=STORED_CONDITIONS,  # a stored window's match is shown as it is (``window_match``)
    )


def get_alert(session: Session, ref: str | int, *, for_update: bool = False) -> Alert:
    try:
        return get_by_ref(session, Alert, ref, "ALR", "alert", for_update=for_update)
    except NotFound as missing:
        # An id below the newest existed: retention deleted it (a timeline may still name it).
        newest = session.scalar(select(func.max(Alert.id)))
        if newest is not None and parse_row_ref(ref, "ALR", "alert") < newest:
            raise NotFound(
                f"{missing.message}: it was deleted by retention (resolved alerts on no incident are kept "
                "for automation.retention.alerts)",
                missing.details,
            ) from None
        raise


def lock_alert(session: Session, ref: str | int) -> Alert:
    """The alert, locked for update after its incident's row (when it is on one): the order an incident's
    acknowledge or resolve takes (the incident, then its alerts), so that changing an alert at that moment
    waits for it on PostgreSQL instead of deadlocking with it. For a change that goes on to the incident."""
    alert_id = parse_row_ref(ref, "ALR", "alert")
    incident_id = session.scalar(select(Alert.incident_id).where(Alert.id == alert_id))
    if incident_id is not None:
        # Moved to another incident meanwhile (rare): that one is locked after the alert, as before.
        incident_service.get_incident(session, incident_id, for_update=True)
    return get_alert(session, ref, for_update=True)  # named as given: "no alert ALR-9", as `show` says


_LONGEST_SINCE = timedelta(days=366)


def period_start(since: timedelta) -> datetime:
    """The start of a period of ``since`` that ends now (a list's or a report's ``since``)."""
    if not timedelta(0) < since <= _LONGEST_SINCE:
        raise InvalidInput("since must be between 1s and 366d", {"field": "since"})
    return utcnow() - since


def _label_holds(session: Session, text: str) -> ColumnElement[bool]:
    """An alert with a label whose name or value holds ``text`` (any case, any Unicode form: ``textsearch``).
    Each label is read out of the JSON (SQLite ``json_each``, PostgreSQL ``json_each_text``), so the search
    sees its name and value as written, not the JSON around them: ``{``, ``"`` or ``:`` matched nearly every
    alert when it ran over the labels' JSON text. Still one query: a subquery per alert."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        # json_each_text refuses anything but an object; the labels are one, but a search is no place for
        # an error.
        labels = case(
            (func.json_typeof(Alert.labels) == "object", Alert.labels), else_=literal_column("'{}'::json")
        )
        each = func.json_each_text(labels).table_valued("key", "value")
        value: ColumnElement[Any] = each.c.value
    else:
        each = func.json_each(Alert.labels).table_valued("key", "value")
        value = cast(each.c.value, Text)  # a number as LIKE read it: SQLite's text of it
    holds = (
        select(each.c.key)
        .where(or_(textsearch.holds(each.c.key, text, dialect), textsearch.holds(value, text, dialect)))
        .exists()
    )
    # A name or value without a character JSON escapes is in the labels' JSON text as it is, between quotes
    # (which fold and NFKC leave alone), so a search over that text first passes over most alerts without
    # reading their labels one by one (the search takes about as long as it did). Labels with an escape (a
    # quote, a backslash, a control character, or \uXXXX as databases written before 2026-11-28 may hold)
    # are read one by one.
    labels_text = cast(Alert.labels, Text)
    return and_(
        or_(textsearch.holds(labels_text, text, dialect), labels_text.contains("\\", autoescape=True)), holds
    )


def list_alerts(
    session: Session,
    *,
    status: Sequence[AlertStatus] = (),
    firing: bool = False,
    unrouted: bool = False,
    snoozed: bool = False,
    source: Sequence[str] = (),
    integration: Sequence[str] = (),
    incident: Sequence[str] = (),
    service: Sequence[str] = (),
    known_services: Sequence[str] = (),
    severity: Sequence[str] = (),
    labels: Sequence[str] = (),
    since: datetime | None = None,
    until: datetime | None = None,
    search: str | None = None,
    limit: int = 50,
    offset: int = 0,
    before_id: int | None = None,
) -> AlertPage:
    """``labels``: ``name=value`` each, all carried by the alert; ``since``/``until``: seen in that period
    (last seen since, first seen by until); ``search``: text in the summary, type, dedup key, service or
    labels (names and values), in any case and Unicode form (``warroom.textsearch``). Several values of one
    other filter (sources, integrations, incidents, services, severities) match any of them. A service must
    be one of ``known_services`` (the org file's) or one an alert has had; an incident that does not exist
    is NotFound. ``before_id``: the alerts older than that one (keyset paging), counted in ``total`` as any
    filter."""
    check_period(since, until)
    statement = select(Alert)
    if search is not None and search.strip():
        text = search.strip()
        dialect = session.get_bind().dialect.name
        statement = statement.where(
            or_(
                *(
                    textsearch.holds(column, text, dialect)
                    for column in (Alert.summary, Alert.alert_type, Alert.dedup_key, Alert.service)
                ),
                _label_holds(session, text),
            )
        )
    if len(labels) > MAX_LABEL_FILTERS:
        raise InvalidInput(
            f"at most {MAX_LABEL_FILTERS} label filters (given {len(labels)})", {"field": "label"}
        )
    for label in labels:
        name, sep, value = label.partition("=")
        if not sep or not name.strip():
            raise InvalidInput(f"label filter {label!r}: write it as name=value", {"field": "label"})
        statement = statement.where(Alert.labels[name.strip()].as_string() == value)
    if since is not None:
        statement = statement.where(Alert.last_seen_at >= since)
    if until is not None:
        statement = statement.where(Alert.first_seen_at <= until)
    if before_id is not None:
        statement = statement.where(Alert.id < before_id)
    if service:
        _check_services_seen(session, service, known_services)
        statement = statement.where(Alert.service.in_(list(service)))
    if severity:
        statement = statement.where(Alert.severity.in_(list(severity)))
    if status:
        statement = statement.where(Alert.status.in_(list(status)))
    if firing:
        statement = statement.where(Alert.status != AlertStatus.resolved)
    if unrouted:
        # Held alerts are not unrouted (automation has not routed them yet), nor are those that resolved while
        # held (never released); released ones no rule took are.
        statement = statement.where(holds.unrouted())
    if snoozed:
        statement = statement.where(Alert.snoozed_until.is_not(None))
    # A filter naming nothing that exists is refused, not answered with an empty page (a typo looks like
    # "no alerts" otherwise).
    for one in source:
        if one not in ALERT_SOURCES:
            raise InvalidInput(
                f"unknown source {one!r}; one of {', '.join(ALERT_SOURCES)}", {"field": "source"}
            )
    if source:
        statement = statement.where(Alert.source.in_(list(source)))
    if integration:
        named: list[int] = []
        for name in integration:
            ids = list(session.scalars(select(IntegrationKey.id).where(IntegrationKey.name == name)))
            if not ids:
                raise InvalidInput(
                    f"no integration named {name!r} (see warroom integration list)", {"field": "integration"}
                )
            named.extend(ids)
        statement = statement.where(Alert.integration_id.in_(named))
    if incident:
        # One that does not exist is NotFound (404), as in the notifications', changes' and jobs' filters.
        ids = [incident_service.get_incident(session, ref).id for ref in incident]
        statement = statement.where(Alert.incident_id.in_(ids))
    total = session.scalar(select(func.count()).select_from(statement.subquery())) or 0
    rows = session.scalars(statement.order_by(Alert.id.desc()).limit(limit).offset(offset)).all()
    items = to_reads(session, rows)
    return AlertPage(items=items, total=total, limit=limit, offset=offset)


def _check_services_seen(session: Session, services: Sequence[str], known: Sequence[str]) -> None:
    """NotFound for a service that is neither the org file's nor one any alert has had: a typo in a filter
    would read as "no alerts" (an all-clear in a storm)."""
    for name in services:
        if (
            name not in known
            and session.scalar(select(Alert.id).where(Alert.service == name).limit(1)) is None
        ):
            listed = f"; the org file has {', '.join(known)}" if known else ""
            raise InvalidInput(
                f"unknown service {name!r}: no alert has had it{listed}",
                {"field": "service", "allowed": known},
            )


# An alert's name as conditions read it (``config.alert_name``): its alertname label, else its type. Mail
# alerts, tools' webhooks and plain JSON with labels share a type and differ by it. ``as_string`` reads a JSON
# key on SQLite and PostgreSQL alike.
ALERT_NAME = func.coalesce(Alert.labels["alertname"].as_string(), Alert.alert_type)

# Columns an alert noise report groups by (or "label:<name>"); "type" is the alert's name (``ALERT_NAME``).
NOISE_BY = {
    "type": ALERT_NAME,
    "service": Alert.service,
    "source": Alert.source,
    "severity": Alert.severity,
    "group": Alert.group_key,  # the automation group: rule and group-by values
    "integration": IntegrationKey.name,  # the integration it came in through (joined)
}


def noise_report(session: Session, *, since: timedelta, by: str = "type", limit: int = 20) -> NoiseReport:
    """The alert groups seen in the period, noisiest first (by notifications, then alerts)."""
    start = period_start(since)
    label = by.removeprefix("label:") if by.startswith("label:") else None
    if label is not None and not label.strip():
        raise InvalidInput("by label: name the label, e.g. label:instance", {"field": "by"})
    if label is None and by not in NOISE_BY:
        choices = ", ".join([*NOISE_BY, "label:<name>"])
        raise InvalidInput(f"by must be one of {choices}", {"field": "by"})
    key: Any = Alert.labels[label].as_string() if label is not None else NOISE_BY[by]
    occurrences = func.sum(Alert.occurrences)
    statement = select(
        key.label("key"),
        func.count().label("alerts"),
        occurrences.label("occurrences"),
        func.count(Alert.incident_id.distinct()).label("incidents"),
        func.count().filter(holds.unrouted()).label("unrouted"),
        func.count().filter(Alert.status != AlertStatus.resolved).label("open"),
    ).select_from(Alert)
    if by == "integration":
        statement = statement.outerjoin(IntegrationKey, IntegrationKey.id == Alert.integration_id)
    rows = session.execute(
        statement.where(Alert.last_seen_at >= start)
        .group_by(key)
        .order_by(occurrences.desc(), func.count().desc(), key.is_(None), key)  # nulls last on both
        .limit(limit)
    ).all()
    groups = [
        NoiseGroup(
            key=None if row.key is None else group_label(str(row.key)) if by == "group" else str(row.key),
            alerts=row.alerts,
            occurrences=row.occurrences or 0,
            incidents=row.incidents,
            unrouted=row.unrouted,
            open=row.open,
        )
        for row in rows
    ]
    return NoiseReport(since=start, by=by, groups=groups)


def group_label(key: str) -> str:
    """A group key as people read it: ``rule|["search","DiskFull"]`` is "rule: search, DiskFull"."""
    rule, _, values = key.partition("|")
    try:
        named = json.loads(values)
    except ValueError:  # a long key kept as its hash
        return f"{rule}: {values}"
    return f"{rule}: {', '.join(str(value) or '(none)' for value in named)}"


OVERVIEW_BUCKETS = 12
OVERVIEW_INCIDENTS = 20


def overview(session: Session, *, org: OrgConfig, since: timedelta) -> AlertOverview:
    """What is going on now: open alerts by severity and state, open incidents, new alerts over ``since`` in
    twelve buckets, and the alert types with the most open alerts."""
    start = period_start(since)
    now = start + since
    open_alert = Alert.status != AlertStatus.resolved
    held_now = holds.held_now()
    counts = session.execute(
        select(
            Alert.severity,
            func.count().filter(Alert.status == AlertStatus.firing).label("firing"),
            func.count().filter(Alert.status == AlertStatus.acknowledged).label("acknowledged"),
            func.count().filter(holds.unrouted()).label("unrouted"),
            func.count().filter(Alert.snoozed_until.is_not(None)).label("snoozed"),
            # Held now: an alert its window or inhibitor released is routed, or unrouted, like any other.
            func.count().filter(held_now).label("held"),
        )
        .where(open_alert)
        .group_by(Alert.severity)
    ).all()
    rank = {name: index for index, name in enumerate(get_args(AlertSeverity))}
    severities = sorted(
        (
            SeverityCounts(severity=row.severity, firing=row.firing, acknowledged=row.acknowledged)
            for row in counts
        ),
        key=lambda row: rank.get(row.severity, len(rank)),
    )
    alerts_open = (
        select(Alert.incident_id, func.count().label("alerts"))
        .where(open_alert, Alert.incident_id.is_not(None))
        .group_by(Alert.incident_id)
        .subquery()
    )
    incidents = session.execute(
        select(Incident, func.coalesce(alerts_open.c.alerts, 0))
        .outerjoin(alerts_open, alerts_open.c.incident_id == Incident.id)
        .where(Incident.status.in_(OPEN_STATUSES))
    ).all()
    ordered = sorted(incidents, key=lambda row: (org.severity_rank(row[0].severity), -row[0].id))
    width = since / OVERVIEW_BUCKETS
    arrivals = [0] * OVERVIEW_BUCKETS
    for first_seen in session.scalars(select(Alert.first_seen_at).where(Alert.first_seen_at >= start)):
        arrivals[min(int((first_seen - start) / width), OVERVIEW_BUCKETS - 1)] += 1
    name = ALERT_NAME.label("name")
    loudest = session.execute(
        select(name, func.count().label("alerts"), func.sum(Alert.occurrences).label("occurrences"))
        .where(open_alert)
        .group_by(ALERT_NAME)
        .order_by(func.count().desc(), ALERT_NAME)
        .limit(5)
    ).all()
    return AlertOverview(
        at=now,
        since=start,
        severities=severities,
        unrouted=sum(row.unrouted for row in counts),
        snoozed=sum(row.snoozed for row in counts),
        held=sum(row.held for row in counts),
        incidents=[
            OpenIncident(
                ref=incident.ref,
                severity=incident.severity,
                status=incident.status.value,
                title=incident.title,
                acknowledged=incident.acknowledged_at is not None,
                alerts_open=alerts,
                created_at=incident.created_at,
            )
            for incident, alerts in ordered[:OVERVIEW_INCIDENTS]
        ],
        incidents_open=len(ordered),
        arrivals=[
            ArrivalBucket(start=start + width * index, alerts=count) for index, count in enumerate(arrivals)
        ],
        loudest=[
            LoudType(type=row.name, alerts=row.alerts, occurrences=row.occurrences or 0) for row in loudest
        ],
    )


# --- promotion ---------------------------------------------------------------------------------------


def promote(
    session: Session, *, org: OrgConfig, ref: str | int, data: PromoteRequest, performer: str
) -> tuple[Alert, Incident]:
    """Open an incident from an alert that no rule routed (or any alert not yet on an incident). With
    ``move``, an alert already on an incident is taken out of it into the new one (the grouping put it with
    alerts of another cause), and both timelines say so. An alert that has resolved is refused unless
    ``force``: its problem is over. Forced, the incident is opened for the record and resolved at once, so it
    pages nobody and no live alert joins it (by its group, a service dependency or the storm guard) as if it
    were going on; a person reopens it if the problem is back."""
    alert = get_alert(session, ref, for_update=True)
    if alert.status == AlertStatus.resolved and not data.force:
        raise _resolved_promotion(alert)
    previous_id = alert.incident_id
    if previous_id is not None and not data.move:
        raise Conflict(
            f"{alert.ref} is already on INC-{previous_id}: to give it an incident of its own, move it "
            '(warroom alerts promote --move; "move": true)',
            {"field": "alert", "incident": f"INC-{previous_id}"},
        )
    if data.severity is not None:
        severity_service.validate_severity(org, data.severity)
    previous = None
    if previous_id is not None:
        previous = incident_service.get_incident(session, previous_id, for_update=True)
        _check_leaves(previous, alert)
    fields = automation.incident_fields(org, alert, title=data.title, severity=data.severity)
    incident = incident_service.create_incident(
        session, org=org, data=fields, performer=performer, kind_note=f"promoted from alert {alert.ref}"
    )
    if previous is not None:
        _say_moved(session, previous, alert, incident, performer=performer)
        automation.take_out_of_group(alert)  # its group's next alerts stay on the incident it left
    note = f" (moved from {previous.ref})" if previous else ""
    if alert.status == AlertStatus.resolved:
        # Forced: whoever reads the incident later sees that its alert was already over when it opened.
        note += f"; it had resolved{_resolved_when_by(alert)}, and {performer} promoted it anyway"
    automation.attach(session, incident, alert, performer=performer, note=note)
    # Someone already took the alert on (acknowledged, snoozed): the incident opens acknowledged by them, and
    # nobody is paged, as for an alert acknowledged while its rule's delay held it.
    automation.carry_acknowledgement(session, org, alert)
    if alert.status == AlertStatus.resolved:
        # Its opening's page finds it resolved and pages nobody.
        incident_service.resolve(
            session,
            org=org,
            ref=incident.id,
            performer=performer,
            note=f"opened for the record: {alert.ref} had resolved{_resolved_when_by(alert)}; reopen it if "
            "the problem is back",
        )
    session.flush()
    return alert, incident


def _check_leaves(previous: Incident, alert: Alert) -> None:
    """409 for moving an alert off a closed incident: its record is final (a timeline entry saying the alert
    left would change it)."""
    if previous.status == IncidentStatus.closed:
        raise Conflict(
            f"{alert.ref} is on {previous.ref}, which is closed: its record is final, and its alerts stay "
            "on it",
            {"field": "alert", "incident": previous.ref},
        )


def _resolved_when_by(alert: Alert) -> str:
    when = f" at {_when(alert.resolved_at)}" if alert.resolved_at else ""
    by = f" by {alert.resolved_by}" if alert.resolved_by else f" by its source ({alert.source})"
    return when + by


def _resolved_promotion(alert: Alert) -> Conflict:
    """409 for promoting an alert that resolved, saying when and by whom, and how to promote it anyway."""
    return Conflict(
        f"{alert.ref} resolved{_resolved_when_by(alert)}: its problem is over. To open an incident for the "
        'record all the same (resolved at once), force it (warroom alerts promote --force; "force": true)',
        {
            "field": "alert",
            "status": alert.status.value,
            "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None,
        },
    )


def _say_moved(
    session: Session, previous: Incident, alert: Alert, incident: Incident, *, performer: str
) -> None:
    """The timeline of the incident an alert leaves says where it went."""
    incident_service.append_timeline(
        session,
        previous,
        performer=performer,
        kind=TimelineKind.alert,
        action=f"Alert {alert.ref} moved to {incident.ref}: {alert.summary_line}",
        data={"alert": alert.id, "to": incident.id},
    )


def attach_to_incident(
    session: Session, *, ref: str | int, incident_ref: str | int, performer: str
) -> tuple[Alert, Incident]:
    """Put an alert on an open incident by hand: the cause is shared though the grouping did not see it
    (another service, another alert name). An alert already on another incident moves, and both timelines
    say so. Attaching changes no status: the responders decide."""
    alert = get_alert(session, ref, for_update=True)
    target_id = incident_service.parse_ref(incident_ref)
    previous_id = alert.incident_id
    if previous_id == target_id:
        # ``unchanged``: a repeat, which a bulk attach counts as done rather than as a failure.
        raise Conflict(
            f"{alert.ref} is already on INC-{target_id}",
            {"field": "incident", "incident": f"INC-{target_id}", "unchanged": True},
        )
    # Both incidents locked in id order, so two opposite moves cannot deadlock.
    locked = incident_service.lock_incidents(session, [target_id, *([previous_id] if previous_id else [])])
    incident = locked[target_id]
    if incident.status not in OPEN_STATUSES:
        raise Conflict(
            f"{incident.ref} is {incident.status.value}: alerts go on an open incident", {"field": "incident"}
        )
    if previous_id is not None:
        _check_leaves(locked[previous_id], alert)
    moved = ""
    if previous_id is not None:
        _say_moved(session, locked[previous_id], alert, incident, performer=performer)
        moved = f", moved from INC-{previous_id}"
        automation.take_out_of_group(alert)  # its group's next alerts stay on the incident it left
    automation.attach(session, incident, alert, performer=performer, note=f" (by hand{moved})")
    session.flush()
    return alert, incident


def merge_incidents(
    session: Session,
    *,
    org: OrgConfig,
    ref: str | int,
    into: str | int,
    performer: str,
    note: str | None = None,
) -> tuple[Incident, Incident, list[Alert]]:
    """Fold an open incident into another open one: one cause opened both. Every alert of it moves to the
    other (so the next alerts of its groups join that one too), both timelines say so, and it is resolved as
    merged, which ends its escalation (what it was paging unacknowledged is requested on the other). Its
    responders are named on the other's timeline, not moved: the commander there decides who stays on."""
    source_id = incident_service.parse_ref(ref)
    target_id = incident_service.parse_ref(into)
    if source_id == target_id:
        raise InvalidInput("an incident cannot be merged into itself", {"field": "into"})
    # Both incidents locked in id order, so two opposite merges cannot deadlock.
    locked = incident_service.lock_incidents(session, [source_id, target_id])
    source, target = locked[source_id], locked[target_id]
    for incident, role in ((target, "merged into"), (source, "merged")):
        if not incident.status.is_open:
            _refuse_not_open(session, incident, role, "into" if incident is target else "incident")
    if source.is_private and not target.is_private:
        # Its title and alerts would show on an incident whose news may reach customers.
        raise Conflict(
            f"{source.ref} is private and {target.ref} is not: make {target.ref} private first (or "
            f"{source.ref} public)",
            {"field": "into"},
        )
    alerts = automation.merge_into(session, org, source, target, performer=performer, note=note)
    return source, target, alerts


def _refuse_not_open(session: Session, incident: Incident, role: str, which: str) -> NoReturn:
    refusal = f"only an open incident is {role}"
    # One merged already (by a merge that won the race, say) is named with where it went.
    incident_service.refuse_merged(session, incident, lambda _: refusal, field=which)
    raise Conflict(f"{incident.ref} is {incident.status.value}: {refusal}", {"field": which})


def _when(moment: datetime) -> str:
    # In UTC whatever offset it came with (a snooze "until 09:00+05:30" is 03:30 UTC); naive ones are UTC.
    utc = moment.astimezone(UTC) if moment.tzinfo is not None else moment
    return utc.strftime("%Y-%m-%d %H:%M UTC")


def _already(
    alert: Alert, done: str, moment: datetime | None, person: str | None, by_source: str
) -> Conflict:
    """409 for a second acknowledgement or resolve, saying when and by whom (a person, or the source)."""
    when = _when(moment) if moment else "earlier"
    by = f" by {person}" if person else f" {by_source} ({alert.source})"
    return Conflict(f"{alert.ref} is already {done} ({when}{by})", {"field": "alert"})


def acknowledge(session: Session, *, org: OrgConfig, ref: str | int, performer: str) -> Alert:
    """A person acknowledges an alert: someone is on it. Its incident's timeline records it (by the person),
    and when it was the incident's last alert still firing, the incident is acknowledged too, as when its
    source acknowledges (``acknowledge_incident_with_alerts``), which stops escalation. Later firings of
    the alert update it and leave it acknowledged."""
    alert = lock_alert(session, ref)
    if alert.status == AlertStatus.resolved:
        raise Conflict(f"{alert.ref} is resolved; there is nothing to acknowledge", {"field": "alert"})
    if alert.status == AlertStatus.acknowledged:
        raise _already(alert, "acknowledged", alert.acknowledged_at, alert.acknowledged_by, "at its source")
    alert.status = AlertStatus.acknowledged
    alert.acknowledged_at = utcnow()
    alert.acknowledged_by = performer
    session.flush()
    if not held(session, alert):
        automation.on_acknowledged(session, org, alert, performer=performer)
    return alert


def unacknowledge(session: Session, *, org: OrgConfig, ref: str | int, performer: str) -> Alert:
    """A person takes an acknowledgement back (nobody is on it after all; or it was acknowledged by mistake):
    the alert is firing again, and its incident's timeline says so. The incident's own acknowledgement is
    left alone: its escalation does not start again. A snooze ends now as it would have at its end: an alert
    on no incident that got more severe while snoozed is routed (``route_worse_after_snooze``). One that got
    worse while plainly acknowledged is not: nothing promised the rules a look at it (its note says how to
    promote it), and its severity when acknowledged is not kept."""
    alert = lock_alert(session, ref)
    if alert.status != AlertStatus.acknowledged:
        raise Conflict(f"{alert.ref} is {alert.status.value}, not acknowledged", {"field": "alert"})
    earlier = f"by {alert.acknowledged_by}" if alert.acknowledged_by else f"at its source ({alert.source})"
    snoozed_by = alert.snoozed_by
    when_snoozed = _severity_when_snoozed(session, alert)
    alert.status = AlertStatus.firing
    alert.acknowledged_at = None
    alert.acknowledged_by = None
    clear_snooze(alert)
    session.flush()
    if alert.incident_id is None and when_snoozed is not None:
        route_worse_after_snooze(session, org, alert, was=when_snoozed, snoozed_by=snoozed_by)
        return alert
    if alert.incident_id is not None and not held(session, alert):
        automation.on_incident_timeline(
            session,
            alert,
            performer=performer,
            kind=TimelineKind.alert,
            action=f"Alert {alert.ref} unacknowledged (it was acknowledged {earlier}): it is firing and "
            "nobody is on it",
            data={"alert": alert.id, "unacknowledged_by": performer},
        )
    return alert


def resolve(
    session: Session, *, org: OrgConfig, ref: str | int, performer: str, note: str | None = None
) -> Alert:
    """A person resolves an alert its source will not resolve. It closes the same way as a resolve from the
    source: the dedup key is freed (the next firing opens a new alert), the incident's timeline records
    it (by the person), the incident moves to monitoring when it was its last open alert, and handlers run."""
    alert = lock_alert(session, ref)
    if alert.status == AlertStatus.resolved:
        raise _already(alert, "resolved", alert.resolved_at, alert.resolved_by, "by its source")
    _close(session, org, alert, performer=performer, resolved_by=performer, note=note)
    return alert


def clear_snooze(alert: Alert) -> None:
    """Forget the alert's snooze (it resolved, or someone unacknowledged it): its job then does nothing."""
    alert.snoozed_until = None
    alert.snoozed_by = None


# --- snoozing (the job that ends a snooze is ``alerts.snooze``) ---------------------------------------

SNOOZE_KIND = "alerts.snooze_end"


def _pending_snooze_ends(session: Session, alert_id: int) -> list[Job]:
    return list(
        session.scalars(
            select(Job).where(
                Job.kind == SNOOZE_KIND,
                Job.status == JobStatus.pending,
                Job.payload["alert_id"].as_integer() == alert_id,
            )
        )
    )


def _severity_when_snoozed(session: Session, alert: Alert) -> str | None:
    """The alert's severity when its snooze in force began (None: not snoozed), which the job that ends it
    keeps: moving the snooze or taking it back still compares the alert's severity with that one."""
    if alert.snoozed_until is None:
        return None
    for job in _pending_snooze_ends(session, alert.id):
        severity = job.payload.get("severity")
        if isinstance(severity, str) and datetime.fromisoformat(job.payload["until"]) == alert.snoozed_until:
            return severity
    return None


def _cancel_snooze_jobs(session: Session, alert_id: int) -> None:
    """Cancel the alert's pending snooze ends (a new snooze replaces them). Their handler would find the
    snooze moved and do nothing; cancelled, ``jobs list`` does not show them waiting."""
    for job in _pending_snooze_ends(session, alert_id):
        job_service.cancel(session, idempotency_key=job.idempotency_key)


def snooze(
    session: Session,
    *,
    org: OrgConfig,
    ref: str | int,
    performer: str,
    duration: timedelta | None = None,
    until: datetime | None = None,
) -> Alert:
    """Acknowledge the alert until a moment (a firing alert is acknowledged as by ``acknowledge``, so its
    incident may be too); snoozing a snoozed alert moves the end. 409 for a resolved alert."""
    alert = lock_alert(session, ref)
    if alert.status == AlertStatus.resolved:
        raise Conflict(f"{alert.ref} is resolved; there is nothing to snooze", {"field": "alert"})
    now = utcnow()
    end = snooze_end(now, duration=duration, until=until)
    # Snoozed again (the end moves): the severity it had when first snoozed stays the one a rise is measured
    # from; the alert's present one would hide a rise during the first snooze.
    when_snoozed = _severity_when_snoozed(session, alert) or alert.severity
    _cancel_snooze_jobs(session, alert.id)
    was_firing = alert.status == AlertStatus.firing
    alert.status = AlertStatus.acknowledged
    if was_firing:
        alert.acknowledged_at = now
        alert.acknowledged_by = performer
    alert.snoozed_until = end
    alert.snoozed_by = performer
    session.flush()
    job_service.enqueue(
        session,
        kind=SNOOZE_KIND,
        # Its severity when snoozed: one on no incident that is worse when the snooze ends is routed then
        # (``snooze``).
        payload={"alert_id": alert.id, "until": end.isoformat(), "severity": when_snoozed},
        run_at=end,
        # One per snooze, even of the same end as an earlier (cancelled) one.
        idempotency_key=f"{SNOOZE_KIND}:{alert.id}:{uuid.uuid4().hex}",
        incident_id=alert.incident_id,
    )
    if held(session, alert):
        return alert
    if was_firing:
        automation.on_acknowledged(session, org, alert, performer=performer)
    automation.on_incident_timeline(
        session,
        alert,
        performer=performer,
        kind=TimelineKind.alert,
        action=f"Alert {alert.ref} snoozed by {performer} until {_when(end)} ({format_duration(end - now)}): "
        "if it still fires then, it fires again and the first responders are paged as a reminder",
        data={"alert": alert.id, "snoozed_by": performer, "until": end.isoformat()},
    )
    return alert


def _note_text(body: str) -> str:
    text = body.strip()
    if not text:
        raise InvalidInput("the note is blank", {"field": "body"})
    return text


def _note_on_timeline(session: Session, alert: Alert, performer: str, action: str, **data: Any) -> None:
    """What happened to an alert's note, on the timeline of its incident if it has one."""
    automation.on_incident_timeline(
        session,
        alert,
        performer=performer,
        kind=TimelineKind.note,
        action=action,
        data={"alert": alert.id, **data},
    )


def add_note(session: Session, *, ref: str | int, body: str, author: str) -> Alert:
    """A responder's note on an alert, kept with it (``alerts show``). When the alert is on an incident, the
    note goes on the incident's timeline too."""
    text = _note_text(body)
    alert = get_alert(session, ref)
    alert.notes.append(AlertNote(author=author, body=text))
    session.flush()
    _note_on_timeline(session, alert, author, f"Note on alert {alert.ref}: {text}", note=alert.notes[-1].id)
    return alert


def _own_note(
    session: Session, ref: str | int, note_id: int, performer: str, admin: bool
) -> tuple[Alert, AlertNote]:
    """An alert's note, locked, if ``performer`` may change it: its author, or an admin."""
    alert = lock_alert(session, ref)
    note = next((note for note in alert.notes if note.id == note_id), None)
    if note is None:
        raise NotFound(f"{alert.ref} has no note {note_id}")
    if note.author != performer and not admin:
        raise Forbidden(
            f"note {note_id} on {alert.ref} is {note.author}'s: only its author or an admin may change it"
        )
    return alert, note


def edit_note(
    session: Session, *, ref: str | int, note_id: int, body: str, performer: str, admin: bool = False
) -> Alert:
    """Correct a note (its author, or an admin). The incident's timeline keeps what it said and gets the new
    text: the timeline is append-only."""
    text = _note_text(body)
    alert, note = _own_note(session, ref, note_id, performer, admin)
    note.body = text
    note.edited_at = utcnow()
    action = f"Note {note_id} on alert {alert.ref} corrected: {text}"
    _note_on_timeline(session, alert, performer, action, note=note_id, edited=True)
    return alert


def delete_note(
    session: Session, *, ref: str | int, note_id: int, performer: str, admin: bool = False
) -> Alert:
    """Take a note back (its author, or an admin). An incident's timeline keeps it and says so."""
    alert, note = _own_note(session, ref, note_id, performer, admin)
    alert.notes.remove(note)
    action = f"Note {note_id} on alert {alert.ref} taken back by {performer}"
    _note_on_timeline(session, alert, performer, action, note=note_id, deleted=True)
    return alert


def source_person(author: str | None, integration: str) -> str:
    """Who did what a source reports: the name the sender gives, marked with the integration (it is not a
    person's token here, so such a note is not theirs to edit, nor mistaken for one they wrote), else the
    integration."""
    return f"{author} (via {integration})" if author else integration


def change_by_source(
    session: Session,
    *,
    org: OrgConfig,
    secret: str | None,
    expected: IntegrationType,
    dedup_key: str,
    change: SourceChange,
) -> Alert:
    """Apply a source's change to its open alert of ``dedup_key`` (the integration of ``secret``): no new
    occurrence, and the rules do not run again. 404 when it has no such open alert. A snooze or an
    unacknowledge is done for the person the source names (else the integration), as if they had done it
    here; unacknowledging an alert that is not acknowledged changes nothing (Opsgenie's way)."""
    integration = integrations.authenticate_integration(session, secret, expected)
    missing = NotFound(f"{integration.name} has no open alert with the key {dedup_key!r}")
    found = session.scalar(
        select(Alert.id).where(Alert.scope == f"i:{integration.id}", Alert.open_dedup_key == dedup_key)
    )
    if found is None:
        raise missing
    alert = lock_alert(session, found)  # its incident first: a snooze or unacknowledge goes on to it
    if alert.open_dedup_key != dedup_key:  # resolved while this waited for it
        raise missing
    if change.summary is not None:
        alert.summary = change.summary
    if change.annotations:
        alert.annotations = {**alert.annotations, **change.annotations}
    if change.severity is not None:
        alert.severity = change.severity
    if change.add_tags or change.remove_tags:
        earlier = alert.annotations.get("tags")
        earlier_tags = earlier if isinstance(earlier, list) else []
        kept = [tag for tag in earlier_tags if tag not in change.remove_tags]
        tags = list(dict.fromkeys([*kept, *change.add_tags]))  # in order, each once
        alert.annotations = {name: value for name, value in alert.annotations.items() if name != "tags"} | (
            {"tags": tags} if tags else {}
        )
    if change.set_labels or change.remove_labels:
        labels = {name: value for name, value in alert.labels.items() if name not in change.remove_labels}
        alert.labels = labels | change.set_labels
    person = source_person(change.note_author, integration.name)
    if change.note is not None:
        add_note(session, ref=alert.id, body=change.note, author=person)
    if change.snooze_until is not None:
        snooze(session, org=org, ref=alert.id, performer=person, until=change.snooze_until)
    if change.unacknowledge and alert.status == AlertStatus.acknowledged:
        unacknowledge(session, org=org, ref=alert.id, performer=person)
    return alert


def expire(session: Session, *, org: OrgConfig, alert: Alert, after: timedelta) -> None:
    """Resolve an open alert not seen for ``after`` (``automation.auto_resolve``), as automation; the
    caller holds its row."""
    note = f"not seen for {format_duration(after)}: resolved automatically (auto_resolve)"
    _close(session, org, alert, performer=automation.PERFORMER, resolved_by=automation.PERFORMER, note=note)


def resolve_by_system(session: Session, *, org: OrgConfig, alert: Alert, note: str) -> None:
    """Resolve an open alert that its source can no longer resolve (a heartbeat or a status page taken out of
    the org file), as automation, with ``note`` saying why; the caller holds its row."""
    _close(session, org, alert, performer=automation.PERFORMER, resolved_by=automation.PERFORMER, note=note)


# Alerts closed by one statement when an incident takes its alerts with it: a list this long stays within
# every database's limit on parameters.
_CLOSE_CHUNK = 500
# Up to this many alerts closing with their incident, the timeline has an entry for each (as when they resolve
# one by one); more share one entry, so resolving an incident of thousands writes one row, not thousands.
_ENTRY_EACH_UP_TO = 10


def resolve_with_incident(session: Session, *, org: OrgConfig, incident: Incident, performer: str) -> int:
    """``incident`` (locked) is no longer open (resolved by a person or automation, or moved on to postmortem
    or closed): its alerts still firing or acknowledged resolve with it, as ``resolve`` closes an alert, by
    ``performer``. Their dedup keys are free again, so the same problem firing later opens a new alert that
    the rules route (a new incident, a page) instead of being absorbed into an incident nobody is on. The
    incident is not moved to monitoring by its alerts closing (``automation.settle`` leaves an incident that
    is not open alone, so it is not asked). How many alerts resolved.

    This runs in the incident's write transaction, which on SQLite holds alert intake back: the alerts close
    by a few set-wise statements whatever their number, never a flush and an automation pass per alert (an
    incident of 3,000 alerts held intake for 14 s that way). Up to ``_ENTRY_EACH_UP_TO`` alerts, each is
    recorded and followed up as ``resolve`` does; past it one timeline entry names them all."""
    found = session.execute(
        select(Alert.id, Alert.scope)
        .where(Alert.incident_id == incident.id, Alert.status != AlertStatus.resolved)
        .order_by(Alert.id)
        .with_for_update()
    ).all()
    if not found:
        return 0
    ids = [row.id for row in found]
    note = f"its incident {incident.ref} was {incident.status.value}"
    resolved_at = utcnow()
    for chunk in _chunks(ids):
        session.execute(
            update(Alert)
            .where(Alert.id.in_(chunk), Alert.status != AlertStatus.resolved)
            .values(
                status=AlertStatus.resolved,
                resolved_at=resolved_at,
                open_dedup_key=None,
                resolved_by=performer,
                resolution_note=note,
                # As ``clear_snooze``: a pending snooze end then finds nothing to do.
                snoozed_until=None,
                snoozed_by=None,
            ),
            # Alerts this session already holds show the resolve too (nothing is flushed for them again).
            execution_options={"synchronize_session": "fetch"},
        )
    from warroom.alerts import heartbeats  # it imports this module

    if len(ids) <= _ENTRY_EACH_UP_TO:
        for alert in _alerts_by_id(session, ids):
            # Not settled: the incident is not open, so its alerts closing cannot move it to monitoring.
            _on_resolved(session, org, alert, performer=performer, settle=False)
            heartbeats.watch_after_resolve(session, org, alert)
        return len(ids)
    _note_resolved_with_incident(session, incident, ids, performer=performer, note=note)
    if handlers.any_installed(session):  # else no alert type has a handler: none is loaded to ask
        # Only what scheduling reads: the labels and annotations of thousands cost more than the rest.
        scheduled = load_only(
            Alert.id, Alert.alert_type, Alert.incident_id, Alert.acknowledged_at, Alert.resolved_at
        )
        for chunk in _chunks(ids):
            handlers.schedule_handlers_many(session, _alerts_by_id(session, chunk, scheduled), "resolved")
    # Alerts on an incident are never held (``held``): automation's resolve is the timeline entry above and
    # the handlers. What they muted is released, each inhibitor's in turn, as ``release_muted`` does.
    for chunk in _chunks(ids):
        muted: dict[int, list[Alert]] = {}
        for alert in automation.held_alerts(session, Alert.inhibited_by_id.in_(chunk)):
            muted.setdefault(alert.inhibited_by_id or 0, []).append(alert)
        for inhibitor in _alerts_by_id(session, sorted(muted)):
            to_route = maintenance.hold_if_covered(session, muted[inhibitor.id])
            automation.release_inhibited(session, org, inhibitor, to_route)
    # Only a heartbeat's own alerts can start its watch again (see ``heartbeats.watch_after_resolve``).
    watched = [row.id for row in found if row.scope == heartbeats.SOURCE]
    for alert in _alerts_by_id(session, watched):
        heartbeats.watch_after_resolve(session, org, alert)
    return len(ids)


def _chunks(ids: list[int]) -> Iterator[list[int]]:
    for start in range(0, len(ids), _CLOSE_CHUNK):
        yield ids[start : start + _CLOSE_CHUNK]


def _alerts_by_id(session: Session, ids: list[int], *options: ORMOption) -> list[Alert]:
    """These alerts (at most ``_CLOSE_CHUNK``), as stored now, in id order."""
    if not ids:
        return []
    return list(
        session.scalars(
            select(Alert)
            .where(Alert.id.in_(ids))
            .order_by(Alert.id)
            .options(*options)
            .execution_options(populate_existing=True)
        )
    )


def _note_resolved_with_incident(
    session: Session, incident: Incident, ids: list[int], *, performer: str, note: str
) -> None:
    """One timeline entry for the many alerts that resolved with ``incident``: how many, the first few by
    reference, and every id in its data."""
    by_person = performer != automation.PERFORMER
    data: dict[str, Any] = {"alerts": ids, "count": len(ids), "note": note, "with_incident": True}
    if by_person:
        data["resolved_by"] = performer
    shown = ", ".join(f"ALR-{alert_id}" for alert_id in ids[:_ENTRY_EACH_UP_TO])
    more = len(ids) - _ENTRY_EACH_UP_TO
    incident_service.append_timeline(
        session,
        incident,
        performer=performer,
        kind=TimelineKind.alert,
        action=f"{len(ids):,} alerts resolved"
        + (" by hand" if by_person else "")
        + f": {shown}"
        + (f" and {more:,} more" if more > 0 else "")
        + f" — {note}",
        data=data,
    )
    session.flush()


def _close(
    session: Session,
    org: OrgConfig,
    alert: Alert,
    *,
    performer: str,
    resolved_by: str | None,
    note: str | None,
) -> None:
    alert.status = AlertStatus.resolved
    alert.resolved_at = utcnow()
    alert.open_dedup_key = None
    alert.resolved_by = resolved_by
    alert.resolution_note = note
    clear_snooze(alert)
    session.flush()
    _on_resolved(session, org, alert, performer=performer)
    # A heartbeat's missed alert closed without a ping: it is watched again, or the silence goes unheard.
    from warroom.alerts import heartbeats  # it imports this module

    heartbeats.watch_after_resolve(session, org, alert)


# --- reports from people -----------------------------------------------------------------------------


def customer_report(session: Session, *, org: OrgConfig, report: CustomerReport, client: str) -> Alert:
    """A customer's report becomes an alert (source customer-report), routed by the same rules."""
    event = reports.customer_report_event(org, report, client)
    result = ingest(session, org=org, source=reports.CUSTOMER, events=[event])
    return get_alert(session, result.alerts[0].id or 0)


def internal_report(session: Session, *, org: OrgConfig, report: InternalReport, reporter: str) -> Alert:
    event = reports.internal_report_event(org, report, reporter)
    result = ingest(session, org=org, source=reports.INTERNAL, events=[event])
    return get_alert(session, result.alerts[0].id or 0)
