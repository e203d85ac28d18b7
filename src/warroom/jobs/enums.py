"""A durable job's statuses.

Plain enums, apart from the tables, so that the API client and the CLI use them without SQLAlchemy."""

from __future__ import annotations

import enum


class JobStatus(enum.StrEnum):
    pending = "pending"
    running = "running"
    done = "done"
    dead = "dead"
    cancelled = "cancelled"
