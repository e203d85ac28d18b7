"""The durable job table: every timer and side effect is a row the worker claims, runs and records."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Enum, Index, Integer, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column

from warroom.db import Base, UTCDateTime, utcnow
from warroom.jobs.enums import JobStatus as JobStatus


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        # Claiming asks for "pending and due" (and "running with an expired lease"): one index serves both.
        Index("ix_jobs_status_run_at", "status", "run_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(100), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    run_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    status: Mapped[JobStatus] = mapped_column(
        Enum(JobStatus, native_enum=False, length=20), default=JobStatus.pending
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=8)
    last_error: Mapped[str | None] = mapped_column(Text)
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Unique when set (NULLs never collide on SQLite or PostgreSQL): enqueueing twice is a no-op.
    idempotency_key: Mapped[str | None] = mapped_column(String(300), unique=True)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Where a delivery goes (a webhook's host, a mail server): a worker keeps only so many of one peer's in
    # flight, so a slow peer cannot hold every slot while a page to someone else waits. None: no peer.
    peer: Mapped[str | None] = mapped_column(String(300))
    # For display and cancellation only; no foreign key so jobs outlive (and never block) incident rows.
    incident_id: Mapped[int | None] = mapped_column(Integer, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ConfigReload(Base):
    """An org file reload asked for through the API: every other process (``warroom serve``, ``warroom
    worker``) sees the new row and reads its own org file again (``warroom.reload``). Like the jobs, it
    coordinates processes through the database alone."""

    __tablename__ = "config_reloads"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    requested_by: Mapped[str] = mapped_column(String(200))
    # Asked with force (``warroom config reload --force``): the other processes take a file that defines
    # nothing that routes or pages too, as this one did.
    forced: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
