"""On-call tables: runtime schedule overrides, escalations in progress, and every page sent."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Enum, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from warroom.db import Base, UTCDateTime, utcnow


class ScheduleOverride(Base):
    """Someone takes a schedule for a time range; wins over the org file's layers and overrides."""

    __tablename__ = "schedule_overrides"
    __table_args__ = (Index("ix_schedule_overrides_schedule_end", "schedule", "ends_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    schedule: Mapped[str] = mapped_column(String(200))
    person: Mapped[str] = mapped_column(String(200))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    reason: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class EscalationState(enum.StrEnum):
    active = "active"  # a check is pending
    acknowledged = "acknowledged"  # stopped: someone acknowledged
    resolved = "resolved"  # stopped: the incident is no longer open
    exhausted = "exhausted"  # every step and repeat paged, nobody acknowledged
    # A newer run of the incident's own policy took over (severity raised, or its policy left the org file);
    # never a run a rule's ``page`` or a person asked for.
    superseded = "superseded"
    silent = "silent"  # the severity pages nobody
    # Its policy left the org file (a reload) and no other covers the incident now; the ``length`` of the
    # column (non-native enum, no CHECK constraint) takes a new value without a migration.
    policy_gone = "policy_gone"
    # Held while the incident is in monitoring (its alerts resolved, or a person says the fix is in): no check
    # waits; it goes on from the step it was at if the incident goes back to investigating or identified.
    monitoring = "monitoring"


class EscalationOrigin(enum.StrEnum):
    """What started a run of a policy: a raise supersedes only the incident's own run (``incident``)."""

    incident = "incident"  # the incident's own policy: opened, raised, handed over from a policy gone
    rule = "rule"  # an automation rule's ``page``
    person = "person"  # ``warroom oncall page``
    # A run another incident's merge brought here, going on where it was (the merge's timeline entry names
    # that incident and who merged it).
    merge = "merge"


class Escalation(Base):
    """One policy escalating one incident; ``cycle``/``step`` say where it is (both 1-based)."""

    __tablename__ = "escalations"
    __table_args__ = (UniqueConstraint("incident_id", "policy", name="uq_escalations_incident_policy"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), index=True)
    policy: Mapped[str] = mapped_column(String(200))
    # ``EscalationPolicyConfig.fingerprint`` of the policy when it started: a reload that only renames the
    # policy hands the escalation on to it (``paging._stands_for``).
    policy_fingerprint: Mapped[str | None] = mapped_column(String(16))
    mode: Mapped[str] = mapped_column(String(20))
    severity: Mapped[str] = mapped_column(String(20))
    state: Mapped[EscalationState] = mapped_column(
        Enum(EscalationState, native_enum=False, length=20), default=EscalationState.active
    )
    cycle: Mapped[int] = mapped_column(Integer, default=1)
    # The cycle this run of the policy started at: a restart (severity raised) gets a fresh repeat count
    # while cycle numbers, and so page keys, stay unique.
    first_cycle: Mapped[int] = mapped_column(Integer, default=1)
    step: Mapped[int] = mapped_column(Integer, default=1)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    next_check_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # A run a person asked for (``warroom oncall page``): who, and their one-line why, which every page of
    # the run carries, so the expert paged at 3 a.m. knows what is wanted of them.
    requested_by: Mapped[str | None] = mapped_column(String(200))
    request_note: Mapped[str | None] = mapped_column(String(300))
    # ``EscalationOrigin``; None on rows from before migration 0035, read as ``incident`` (or ``person`` with
    # ``requested_by``). Kept across restarts by a snooze reminder.
    origin: Mapped[str | None] = mapped_column(String(20))


class PageStatus(enum.StrEnum):
    sent = "sent"  # handed to notification delivery
    scheduled = "scheduled"  # a delayed personal rule, waiting
    cancelled = "cancelled"  # the delayed rule found the incident acknowledged or closed
    failed = "failed"  # notification delivery refused it (e.g. a contact method it cannot use)
    # Not sent: the same person was paged at the same address for the incident moments before (another
    # policy, or another step of an all-hands page); ``delivery_id`` is that page's delivery, if it has one.
    duplicate = "duplicate"


class Page(Base):
    """One notification rule of one person for one step; the unique key means nobody is paged twice."""

    __tablename__ = "pages"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(400), unique=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), index=True)
    escalation_id: Mapped[int | None] = mapped_column(ForeignKey("escalations.id", ondelete="SET NULL"))
    policy: Mapped[str] = mapped_column(String(200))
    cycle: Mapped[int] = mapped_column(Integer)
    step: Mapped[int] = mapped_column(Integer)
    person: Mapped[str] = mapped_column(String(200))
    rule: Mapped[int] = mapped_column(Integer)
    channel: Mapped[str] = mapped_column(String(40))
    to: Mapped[str] = mapped_column(String(500))
    via: Mapped[str] = mapped_column(String(300), default="")
    status: Mapped[PageStatus] = mapped_column(Enum(PageStatus, native_enum=False, length=20))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    send_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    delivery_id: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
