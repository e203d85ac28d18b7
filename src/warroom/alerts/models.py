"""The one normalized alert, whatever sent it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Enum, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from warroom.alerts.enums import AlertStatus as AlertStatus
from warroom.db import Base, UTCDateTime, utcnow
from warroom.fields import one_line


class Alert(Base):
    __tablename__ = "alerts"
    __table_args__ = (
        # GoAlert's rule in the database: one open alert per (scope, dedup key). ``open_dedup_key`` is
        # cleared when the alert resolves, so the next firing opens a new alert; NULLs never collide.
        UniqueConstraint("scope", "open_dedup_key", name="uq_alerts_scope_open_dedup_key"),
        Index("ix_alerts_status_id", "status", "id"),
        # Inhibition's lookup of the newest open alert of a source's types (0038).
        Index("ix_alerts_type_status_id", "alert_type", "status", "id"),
        Index("ix_alerts_group_key", "group_key"),
        # Room on each page for the next version of a row: repeat notifications update in place (0009).
        {"postgresql_with": {"fillfactor": 70}},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(40))
    integration_id: Mapped[int | None] = mapped_column(
        ForeignKey("integration_keys.id", ondelete="SET NULL"), index=True
    )
    # The dedup namespace: the integration ("i:<id>") or, for reports, the source.
    scope: Mapped[str] = mapped_column(String(60))
    dedup_key: Mapped[str] = mapped_column(String(255))
    open_dedup_key: Mapped[str | None] = mapped_column(String(255))
    alert_type: Mapped[str] = mapped_column(String(200))
    status: Mapped[AlertStatus] = mapped_column(Enum(AlertStatus, native_enum=False, length=20))
    summary: Mapped[str] = mapped_column(Text)
    severity: Mapped[str] = mapped_column(String(20))
    service: Mapped[str | None] = mapped_column(String(200))
    labels: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    annotations: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    links: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # When it reached us; source_started_at is when its source says it began (None: not said).
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    source_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Set when a person acknowledged the alert here; NULL when its source did (or nobody has).
    acknowledged_by: Mapped[str | None] = mapped_column(String(200))
    # A snooze is an acknowledgement with an end: then, if the alert still fires, it fires again and its
    # incident's first responders are reminded (``alerts.snooze``).
    snoozed_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    snoozed_by: Mapped[str | None] = mapped_column(String(200))
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Set when a person resolved the alert (its source never will: a stale alert); NULL when the source did.
    resolved_by: Mapped[str | None] = mapped_column(String(200))
    resolution_note: Mapped[str | None] = mapped_column(Text)
    occurrences: Mapped[int] = mapped_column(Integer, default=1)
    # What the source sent for this alert, first and latest, kept as evidence.
    raw: Mapped[dict[str, Any]] = mapped_column(JSON)
    last_raw: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # sha256 of the last event applied: an identical redelivery (a retry) changes nothing.
    event_hash: Mapped[str] = mapped_column(String(64))
    incident_id: Mapped[int | None] = mapped_column(
        ForeignKey("incidents.id", ondelete="SET NULL"), index=True
    )
    group_key: Mapped[str | None] = mapped_column(String(500))
    # Names of the rules that matched; NULL (not []) when none did, so "unrouted" is a plain SQL test.
    rules: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True))
    handler_errors: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # The maintenance window this alert arrived in: automation left it alone until the window ended. Kept
    # afterwards, so a window shows what fired during it.
    maintenance_window_id: Mapped[int | None] = mapped_column(
        ForeignKey("maintenance_windows.id", ondelete="SET NULL"), index=True
    )
    # The open alert that inhibited this one when it fired (automation.inhibit_rules): automation left it
    # alone until that alert resolved. Kept afterwards, as the maintenance window is (``holds`` tells a hold
    # still on from one that is over).
    inhibited_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("alerts.id", ondelete="SET NULL"), index=True
    )
    # Loaded only when read (``alerts show``); the database deletes them with the alert (retention).
    notes: Mapped[list[AlertNote]] = relationship(
        order_by="AlertNote.id", passive_deletes=True, cascade="all, delete-orphan"
    )

    @property
    def ref(self) -> str:
        return f"ALR-{self.id}"

    @property
    def summary_line(self) -> str:
        """The summary on one line, for the timeline's one-line entries: a sender's line breaks must not lay
        out lines that pass for entries of their own."""
        return one_line(self.summary)


# What conditions read of a stored alert (``AlertFacts``, with its integration's name): queries that only
# match alerts against rules load these, not the raw payloads.
FACT_COLUMNS = (
    Alert.source,
    Alert.severity,
    Alert.alert_type,
    Alert.service,
    Alert.labels,
    Alert.integration_id,
)


class AlertNote(Base):
    """What a responder wrote about an alert: what they found, why it can wait, where it is tracked. Useful
    above all for alerts on no incident, which have no timeline."""

    __tablename__ = "alert_notes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    author: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    edited_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class MaintenanceWindow(Base):
    """Planned work on some services: alerts for them that arrive between ``starts_at`` and ``ends_at``
    are recorded but open no incident and page nobody; those still open when the window ends are then
    routed as if they had just arrived."""

    __tablename__ = "maintenance_windows"
    __table_args__ = (Index("ix_maintenance_windows_ends_at", "ends_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reason: Mapped[str] = mapped_column(Text)
    # An alert is covered when its service is one of these (if any), it has all these labels (if any) and
    # it meets the conditions.
    services: Mapped[list[str]] = mapped_column(JSON, default=list)
    labels: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    # Further conditions, as in an automation rule's match (alerts.config.AlertConditions): sources,
    # severities, types, label regexes, labels that must be absent.
    conditions: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Moved to the moment someone ends the window early.
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    ended_by: Mapped[str | None] = mapped_column(String(200))
    # When the alerts it held were handed to automation (once, at its end).
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Set only when it was cancelled before it started (``maintenance end``, or a reload that changed its
    # schedule): the times it was planned for. ``starts_at`` and ``ends_at`` are then both the moment it was
    # cancelled, so that every query of what a window holds finds it over and holding nothing.
    planned_starts_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    planned_ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    @property
    def ref(self) -> str:
        return f"MW-{self.id}"


class Heartbeat(Base):
    """The pings of one heartbeat of the org file: a row from its first ping on, or from startup for one
    watched before its first ping (``first_ping_within``; no ping times until then)."""

    __tablename__ = "heartbeats"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    first_ping_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_ping_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    pings: Mapped[int] = mapped_column(Integer, default=0)
    # The next ping is due by then (last ping + interval + grace, as configured at that ping).
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Set while its alert fires: when the ping it waited for was found missing.
    missed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # How many misses fired: names the check job of the next one (``heartbeat:<name>:<misses>``).
    misses: Mapped[int] = mapped_column(Integer, default=0)
    # Set while its failure alert fires: since the first of the failed runs the sender reported.
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The exit status the last signal carried (none for a plain ping or /fail).
    last_exit_status: Mapped[int | None] = mapped_column(Integer)
    # Set from a /start until the run ends (a ping or a failure), which records how long it took.
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_run_seconds: Mapped[int | None] = mapped_column(Integer)
    # Set when it was watched again with no ping: an alert of it resolved other than by a ping (a person, its
    # incident, auto-resolve), or it was put back in the org file. Cleared by the next ping or report.
    watched_again_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class StatusPage(Base):
    """A status page as the org file last read (at a start or a reload, in any process) has it: a poll in a
    process that has not read the newer file yet checks it before it writes, so a page taken out raises
    nothing more (``status_pages.record_pages``)."""

    __tablename__ = "status_pages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    # Set while the org file last read does not have it.
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ChangeEvent(Base):
    """A change to a system (a deploy, a config push, a flag flipped): not a problem, but the first thing
    responders ask about one. The changes just before a new incident go on its timeline."""

    __tablename__ = "change_events"
    __table_args__ = (Index("ix_change_events_happened_at", "happened_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    summary: Mapped[str] = mapped_column(Text)
    # A service of the org file, when the sender named one.
    service: Mapped[str | None] = mapped_column(String(200))
    # What made the change: a pipeline, a tool, a host.
    source: Mapped[str | None] = mapped_column(String(255))
    happened_at: Mapped[datetime] = mapped_column(UTCDateTime())
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # The API token's name, or "integration <name>" for a PagerDuty-style sender.
    recorded_by: Mapped[str] = mapped_column(String(200))
    integration_id: Mapped[int | None] = mapped_column(ForeignKey("integration_keys.id", ondelete="SET NULL"))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    links: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)

    @property
    def ref(self) -> str:
        return f"CHG-{self.id}"


class PagedOpening(Base):
    """An incident automation opened that paged an escalation policy: what the storm guard counts
    (``automation.storm_guard``). Written when the page is requested, since paging itself starts later."""

    __tablename__ = "alert_paged_openings"
    __table_args__ = (Index("ix_alert_paged_openings_policy_opened_at", "policy", "opened_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    policy: Mapped[str] = mapped_column(String(200))
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), index=True)
    rule: Mapped[str] = mapped_column(String(200))
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ReportHit(Base):
    """A report the public form took from a client (its bucket, ``ratelimit.client_bucket``): what the form's
    rate limit counts. In the database, so that every process behind a load balancer counts the same ones.
    Retention deletes those older than the limit's period."""

    __tablename__ = "report_hits"
    # The limit reads a bucket's newest hits: one index seek, however many other clients there are.
    __table_args__ = (Index("ix_report_hits_bucket_at", "bucket", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bucket: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
