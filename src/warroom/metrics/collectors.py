"""Prometheus collectors that read the database at scrape time, so every process reports the truth
rather than its own counters."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from warroom.alerts import holds
from warroom.alerts.models import Alert, AlertStatus, Heartbeat
from warroom.auth.models import IntegrationKey
from warroom.context import AppContext
from warroom.db import schema_missing, unavailable, unavailable_reason, utcnow
from warroom.incidents.models import OPEN_STATUSES, Incident
from warroom.jobs.models import Job, JobStatus

log = logging.getLogger(__name__)

# A scrape gives up on a locked table or a slow query after this long (PostgreSQL), well inside Prometheus's
# default 10 s scrape timeout, rather than the server's lock_timeout (30 s by default).
SCRAPE_TIMEOUT = "2s"


@contextmanager
def scrape_read(context: AppContext) -> Iterator[Session]:
    """A read session for a scrape, bounded in time on PostgreSQL (SQLite's readers never wait in WAL)."""
    with context.db.read() as session:
        if not context.db.is_sqlite:
            session.execute(text(f"SET LOCAL lock_timeout = '{SCRAPE_TIMEOUT}'"))
            session.execute(text(f"SET LOCAL statement_timeout = '{SCRAPE_TIMEOUT}'"))
        yield session


class _DatabaseUp(Collector):
    def __init__(self, up: bool) -> None:
        self.up = up

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(
            "warroom_metrics_database_up",
            "1 when this scrape could read the database's gauges (incidents, alerts, jobs, heartbeats, "
            "integrations); 0 when it could not, and they are left out of it.",
            value=1 if self.up else 0,
        )


def exposition(process: CollectorRegistry, database: CollectorRegistry) -> bytes:
    """The /metrics body: this process's own metrics always, the database's gauges when it can be read. A
    database that is down, locked or without its tables leaves those out (``warroom_metrics_database_up``
    0) rather than failing the scrape: the process's counters (refused deliveries, jobs run) describe the
    outage, so they must stay readable through it."""
    try:
        from_database = generate_latest(database)
        up = True
    except Exception as exc:
        if not (unavailable(exc) or schema_missing(exc)):
            raise
        log.warning("GET /metrics: the database's gauges are left out: %s", unavailable_reason(exc))
        from_database, up = b"", False
    status = CollectorRegistry(auto_describe=False)
    status.register(_DatabaseUp(up))
    return generate_latest(process) + from_database + generate_latest(status)


class IncidentCollector(Collector):
    def __init__(self, context: AppContext) -> None:
        self.context = context

    def collect(self) -> Iterator[GaugeMetricFamily]:
        by_status = GaugeMetricFamily(
            "warroom_incidents", "Incidents by status and severity.", labels=["status", "severity"]
        )
        unacknowledged = GaugeMetricFamily(
            "warroom_incidents_unacknowledged", "Open incidents nobody has acknowledged.", labels=["severity"]
        )
        with scrape_read(self.context) as session:
            rows = session.execute(
                select(Incident.status, Incident.severity, func.count()).group_by(
                    Incident.status, Incident.severity
                )
            ).all()
            waiting = session.execute(
                select(Incident.severity, func.count())
                .where(Incident.status.in_(OPEN_STATUSES), Incident.acknowledged_at.is_(None))
                .group_by(Incident.severity)
            ).all()
        for status, severity, count in rows:
            by_status.add_metric([str(status), severity], count)
        for severity, count in waiting:
            unacknowledged.add_metric([severity], count)
        yield by_status
        yield unacknowledged


class AlertCollector(Collector):
    """Alerts not yet resolved, and those of them that no rule routed: firing, and nobody is paged."""

    def __init__(self, context: AppContext) -> None:
        self.context = context

    def collect(self) -> Iterator[GaugeMetricFamily]:
        open_alerts = GaugeMetricFamily(
            "warroom_alerts",
            "Alerts not yet resolved, by status (firing, acknowledged), source and severity.",
            labels=["status", "source", "severity"],
        )
        unrouted = GaugeMetricFamily(
            "warroom_alerts_unrouted",
            "Alerts not yet resolved that no rule routed to an incident and nothing holds now, by source and "
            "severity.",
            labels=["source", "severity"],
        )
        with scrape_read(self.context) as session:
            rows = session.execute(
                select(
                    Alert.status,
                    Alert.source,
                    Alert.severity,
                    func.count(),
                    # Held ones (a maintenance window, an open inhibitor) are not unrouted until released.
                    func.count().filter(holds.unrouted()),
                )
                .where(Alert.status != AlertStatus.resolved)
                .group_by(Alert.status, Alert.source, Alert.severity)
            ).all()
        not_routed: dict[tuple[str, str], int] = {}
        for status, source, severity, count, without_rule in rows:
            open_alerts.add_metric([str(status), source, severity], count)
            not_routed[(source, severity)] = not_routed.get((source, severity), 0) + without_rule
        for (source, severity), count in sorted(not_routed.items()):
            unrouted.add_metric([source, severity], count)
        yield open_alerts
        yield unrouted


class IntegrationCollector(Collector):
    """When each integration key not revoked last authenticated a delivery: a sender gone quiet shows here,
    whether or not it has a heartbeat."""

    def __init__(self, context: AppContext) -> None:
        self.context = context

    def collect(self) -> Iterator[GaugeMetricFamily]:
        last_used = GaugeMetricFamily(
            "warroom_integration_last_used_timestamp_seconds",
            "When each integration's key last authenticated a delivery (Unix time, to the minute); "
            "absent for one never used.",
            labels=["integration", "type"],
        )
        with scrape_read(self.context) as session:
            rows = session.execute(
                select(IntegrationKey.name, IntegrationKey.type, IntegrationKey.last_used_at)
                .where(IntegrationKey.revoked_at.is_(None), IntegrationKey.last_used_at.is_not(None))
                .order_by(IntegrationKey.id)
            ).all()
        for name, kind, used_at in rows:
            if used_at is not None:  # the query's condition; typed as optional
                last_used.add_metric([name, str(kind)], used_at.timestamp())
        yield last_used


class HeartbeatCollector(Collector):
    """Each heartbeat of the org file: when it last pinged, and whether its alerts are firing."""

    def __init__(self, context: AppContext) -> None:
        self.context = context

    def collect(self) -> Iterator[GaugeMetricFamily]:
        last_ping = GaugeMetricFamily(
            "warroom_heartbeat_last_ping_timestamp_seconds",
            "When each heartbeat last pinged (Unix time); absent for one that never pinged.",
            labels=["name"],
        )
        missed = GaugeMetricFamily(
            "warroom_heartbeat_missed",
            "1 while a heartbeat's alert fires (its ping is missing).",
            labels=["name"],
        )
        failed = GaugeMetricFamily(
            "warroom_heartbeat_failed",
            "1 while a heartbeat's sender reports failed runs (its failure alert fires).",
            labels=["name"],
        )
        configured = [heartbeat.name for heartbeat in self.context.org.automation.heartbeats]
        if configured:
            with scrape_read(self.context) as session:
                rows = {row.name: row for row in session.scalars(select(Heartbeat))}
            for name in configured:
                row = rows.get(name)
                if row is not None and row.last_ping_at is not None:
                    last_ping.add_metric([name], row.last_ping_at.timestamp())
                missed.add_metric([name], 1 if row is not None and row.missed_at is not None else 0)
                failed.add_metric([name], 1 if row is not None and row.failed_at is not None else 0)
        yield last_ping
        yield missed
        yield failed


class JobCollector(Collector):
    """The durable job queue as a whole, whichever process runs it: due jobs that no worker has taken show a
    worker dead, stuck or too few, which no process's own counters can (a dead one exports nothing)."""

    def __init__(self, context: AppContext) -> None:
        self.context = context

    def collect(self) -> Iterator[GaugeMetricFamily]:
        due = GaugeMetricFamily(
            "warroom_jobs_due",
            "Pending jobs whose time has come and that no worker has taken yet, by kind.",
            labels=["kind"],
        )
        oldest = GaugeMetricFamily(
            "warroom_jobs_oldest_due_seconds",
            "How long the longest-waiting due job has waited past its time (0 when none waits): more than a "
            "few seconds means no worker is taking jobs (pages and notifications wait).",
        )
        expired = GaugeMetricFamily(
            "warroom_jobs_lease_expired",
            "Jobs taken by a worker whose lease ran out before it finished them (a worker died or hangs); "
            "another worker takes them again.",
        )
        now = utcnow()
        with scrape_read(self.context) as session:
            rows = session.execute(
                select(Job.kind, func.count(), func.min(Job.run_at))
                .where(Job.status == JobStatus.pending, Job.run_at <= now)
                .group_by(Job.kind)
                .order_by(Job.kind)
            ).all()
            lapsed = session.scalar(
                select(func.count())
                .select_from(Job)
                .where(Job.status == JobStatus.running, Job.lease_expires_at < now)
            )
        earliest = None
        for kind, count, run_at in rows:
            due.add_metric([kind], count)
            if run_at is not None and (earliest is None or run_at < earliest):
                earliest = run_at
        oldest.add_metric([], max(0.0, (now - earliest).total_seconds()) if earliest is not None else 0.0)
        expired.add_metric([], lapsed or 0)
        yield due
        yield oldest
        yield expired
