"""Prometheus collectors that read the database at scrape time, so every process reports the truth
rather than its own counters."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from warroom.alerts import holds
from warroom.alerts.models import Alert, AlertStatus, Heartbeat
from warroom.auth.models import IntegrationKey
from warroom.context import AppContext
from warroom.incidents.models import OPEN_STATUSES, Incident


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
        with self.context.db.read() as session:
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
        with self.context.db.read() as session:
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
        with self.context.db.read() as session:
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
            with self.context.db.read() as session:
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
