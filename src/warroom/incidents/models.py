from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Enum, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from warroom.db import Base, UTCDateTime, utcnow
from warroom.incidents.enums import (
    OPEN_STATUSES as OPEN_STATUSES,
)
from warroom.incidents.enums import (
    TRANSITIONS as TRANSITIONS,
)
from warroom.incidents.enums import (
    IncidentStatus as IncidentStatus,
)
from warroom.incidents.enums import (
    TimelineKind as TimelineKind,
)


class Incident(Base):
    __tablename__ = "incidents"
    # AUTOINCREMENT on SQLite so a number is never handed out twice, even after a delete.
    __table_args__ = (
        Index("ix_incidents_status_created", "status", "created_at"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(300))
    summary: Mapped[str] = mapped_column(Text, default="")
    severity: Mapped[str] = mapped_column(String(20), index=True)
    status: Mapped[IncidentStatus] = mapped_column(
        Enum(IncidentStatus, native_enum=False, length=20), default=IncidentStatus.investigating
    )
    is_private: Mapped[bool] = mapped_column(Boolean, default=False)
    commander: Mapped[str | None] = mapped_column(String(200))
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    acknowledged_by: Mapped[str | None] = mapped_column(String(200))
    identified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    monitoring_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    assessment: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    timeline_head: Mapped[str] = mapped_column(String(64), default="")
    timeline_count: Mapped[int] = mapped_column(Integer, default=0)
    # The chain's seal: a keyed hash (the server's secret key) of the incident's number, count, head and
    # ``timeline_keyed_from``, so a wipe or a re-chained timeline does not verify (``incidents.service``).
    # Empty: not sealed (an incident migrated without the key).
    timeline_seal: Mapped[str] = mapped_column(String(64), default="")
    # The first entry hashed with the key; the ones before it (written before 0041) have plain SHA-256
    # hashes and start from the all-zero genesis.
    timeline_keyed_from: Mapped[int] = mapped_column(Integer, default=1)

    services: Mapped[list[IncidentService]] = relationship(
        back_populates="incident",
        cascade="all, delete-orphan",
        order_by="(IncidentService.position, IncidentService.service)",
    )
    responders: Mapped[list[Responder]] = relationship(
        back_populates="incident", cascade="all, delete-orphan", order_by="Responder.id"
    )

    @property
    def ref(self) -> str:
        return f"INC-{self.id}"

    @property
    def service_names(self) -> list[str]:
        return [s.service for s in self.services]


class IncidentService(Base):
    __tablename__ = "incident_services"

    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), primary_key=True)
    service: Mapped[str] = mapped_column(String(200), primary_key=True, index=True)
    # The order the services were named in: the first one chooses the escalation policy.
    position: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    incident: Mapped[Incident] = relationship(back_populates="services")


_ACTIVE_COMMANDER = "role = 'commander' AND left_at IS NULL"


class Responder(Base):
    __tablename__ = "responders"
    __table_args__ = (
        # The database itself guarantees a single active commander per incident.
        Index(
            "uq_responders_one_commander",
            "incident_id",
            unique=True,
            sqlite_where=text(_ACTIVE_COMMANDER),
            postgresql_where=text(_ACTIVE_COMMANDER),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(50))
    contact: Mapped[str] = mapped_column(String(300), default="")
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    left_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    incident: Mapped[Incident] = relationship(back_populates="responders")


class TimelineEntry(Base):
    __tablename__ = "timeline_entries"
    __table_args__ = (UniqueConstraint("incident_id", "seq", name="uq_timeline_entries_incident_seq"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    performer: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(40))
    action: Mapped[str] = mapped_column(Text)
    impact: Mapped[str | None] = mapped_column(Text)
    system_state: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class IncidentNumberMark(Base):
    """One row (``id`` 1): the highest incident number created, sealed with the timeline key
    (``incidents.service.number_mark_seal``), moved in the transaction that creates the incident. So
    deleting the newest incident is found even when the number sequence (SQLite's ``sqlite_sequence``) is
    lowered with it: that needs the key. Migration 0042."""

    __tablename__ = "incident_number_mark"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    highest: Mapped[int] = mapped_column(Integer)
    seal: Mapped[str] = mapped_column(String(64), default="")


class Communication(Base):
    __tablename__ = "communications"

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), index=True)
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sender: Mapped[str] = mapped_column(String(200))
    audience: Mapped[str] = mapped_column(String(100))
    channels: Mapped[list[str]] = mapped_column(JSON)
    message: Mapped[str] = mapped_column(Text)
